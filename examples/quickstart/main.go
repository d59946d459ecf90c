package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/hatchery-dev/hatchery/examples/internal/cloud"
	"github.com/hatchery-dev/hatchery/examples/internal/mirror"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

// callbackPath is where the phone_home handler is mounted.
const callbackPath = "/api/provision/callback"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK     = 0 // every tenant is ready
	exitFailed = 1 // a tenant is not ready, or the run broke
	exitUsage  = 2 // bad flags or environment
)

// run is the whole program, in-process: parse args, provision, report.
// It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, os.Getenv, stdout, stderr)
}

// runEnv is run with the environment read through getenv.
func runEnv(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "quickstart:", err)
		return exitUsage
	}
	// Logs on the same terminal would break the board.
	o.size = terminalSize(stdout, getenv)
	o.tty = o.size != nil && !o.verbose
	o.color = getenv("NO_COLOR") == ""
	return o.run(ctx, stdout, stderr)
}

// options are the parsed flags, plus what tests set directly.
type options struct {
	tenants     int
	db          string // keep the database here; "" means a temporary one
	verbose     bool
	cloud       *cloud.Flags // -provider and its flags
	listen      string       // the callback server's listen address
	callback    string       // public base URL of the callback server; "" means the listen address
	timeout     time.Duration
	settle      time.Duration
	deprovision bool
	internet    bool // local servers: the recipe's real sources, not the local mirror

	// Set by run from the environment, or by tests.
	tty, color  bool
	size        func() (width, height int)    // the terminal's; nil means 80x24
	maxAttempts int                           // 0 means provision's default
	faults      func(name string) fake.Faults // fake only; nil means none
	// newNspawn and startMirror replace nspawn.New and mirror.Start
	// (tests: a machine without the requirements); nil means those.
	newNspawn   func(nspawn.Options) (*nspawn.Provider, error)
	startMirror func(context.Context, mirror.Options) (*mirror.Mirror, error)
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	// The FlagSet prints nothing itself: a parse error is returned, and
	// run prints it once; -h prints the usage below.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.IntVar(&o.tenants, "tenants", 3, "number of tenants to provision (1-50)")
	fs.StringVar(&o.db, "db", "", "keep the SQLite database at this `path` (default: a temporary one, removed at exit)")
	fs.BoolVar(&o.verbose, "v", false, "log what the provisioner and the servers do (slog, to stderr)")
	o.cloud = cloud.Register(fs, cloud.Defaults{BootDelay: time.Second})
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "`address` the phone_home callback server listens on")
	fs.StringVar(&o.callback, "callback-base", "", "public `URL` where servers reach this process, e.g. https://cp.example.com (required with real servers; default: the listen address)")
	fs.DurationVar(&o.timeout, "timeout", 0, "give up after this long (default 2m with fake, 20m with real servers)")
	fs.DurationVar(&o.settle, "settle", time.Second, "how long the service must stay active after it starts")
	fs.BoolVar(&o.deprovision, "deprovision", false, "delete every tenant's server at the end (real servers otherwise keep running, and costing)")
	fs.BoolVar(&o.internet, "internet", false, "nspawn: fetch from the recipe's real sources (bun.sh, claude.ai, github.com, cli.github.com) instead of a local mirror")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return o, err
		}
		return o, fmt.Errorf("%w (see -h)", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	if o.tenants < 1 || o.tenants > 50 {
		return o, fmt.Errorf("-tenants %d: want 1 to 50", o.tenants)
	}
	if o.settle < 0 || o.timeout < 0 {
		return o, errors.New("durations must not be negative")
	}
	if o.callback != "" {
		u, err := url.Parse(o.callback)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return o, fmt.Errorf("-callback-base %q: want an absolute http(s) URL such as https://cp.example.com", o.callback)
		}
		o.callback = strings.TrimRight(o.callback, "/")
	}
	if err := o.cloud.Check(getenv); err != nil {
		return o, err
	}
	if o.internet && !o.cloud.Local() {
		return o, fmt.Errorf("-internet is for -provider nspawn: the servers of -provider %s never see the local mirror", o.cloud.Provider)
	}
	switch {
	case o.cloud.Local():
		// The first run builds the image (about two minutes), and each
		// server installs packages.
		o.timeout = cmp.Or(o.timeout, 20*time.Minute)
	case !o.cloud.Real():
		o.timeout = cmp.Or(o.timeout, 2*time.Minute)
	case o.callback == "":
		return o, fmt.Errorf("-provider %s needs -callback-base: the public URL where the servers reach -listen", o.cloud.Provider)
	default:
		o.timeout = cmp.Or(o.timeout, 20*time.Minute)
	}
	return o, nil
}

const usage = `Usage: go run ./examples/quickstart [flags]

Provisions tenants end to end with Hatchery: each gets a server, bootstrapped
by cloud-init with nothing secret, which phones home to this process; its
secrets then go over SSH, pinned to the host key it posted, and its service
starts. By default everything is local: simulated servers (provider/fake), a
SQLite store in a temporary directory, and the callback on 127.0.0.1. The
recipe is examples/rachel8, with fixed demo secrets on simulated servers.

With real servers (they cost money; see -deprovision), on Hetzner Cloud:

  export HCLOUD_TOKEN=...  RACHEL8_CLAUDE_ACCESS_TOKEN=... (see examples/rachel8)
  go run ./examples/quickstart -provider hetzner -listen :8080 \
      -callback-base https://cp.example.com

On real Debian servers on this machine (provider/nspawn: root, systemd-nspawn
and debootstrap; the image is built once, in about two minutes), the recipe
runs for real: cloud-init, apt, the installers, git, systemd. The quickstart
serves what the servers fetch from a local mirror on 127.0.0.1 (stand-in
installers, the Rachel8 repository, a signed apt repository for gh);
-internet uses the real sources instead:

  go run ./examples/quickstart -provider nspawn   # as root

or on DigitalOcean (-ssh-key is required there):

  export DIGITALOCEAN_TOKEN=...  RACHEL8_CLAUDE_ACCESS_TOKEN=...
  go run ./examples/quickstart -provider digitalocean -ssh-key aa:bb:...:ff \
      -listen :8080 -callback-base https://cp.example.com

Exit status: 0 when every tenant is ready, 1 otherwise, 2 on bad usage.

Flags:
`

// terminalSize returns a function that reads the size of the terminal w
// is, when it is one that can redraw a board; else nil, and w gets plain
// lines. A terminal is what answers the terminal ioctls (term.IsTerminal):
// /dev/null, a character device too, does not. TERM=dumb says the
// terminal cannot move the cursor. The size is read at every call, so
// that the board follows a resized window; when it cannot be read, 80x24
// is assumed.
func terminalSize(w io.Writer, getenv func(string) string) func() (width, height int) {
	f, ok := w.(*os.File)
	if !ok || getenv("TERM") == "dumb" {
		return nil
	}
	fd := int(f.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	return func() (int, int) {
		width, height, err := term.GetSize(fd)
		if err != nil || width <= 0 || height <= 0 {
			return 80, 24
		}
		return width, height
	}
}

// demoSecrets are the fixed secrets every tenant gets on simulated
// servers. DEMO VALUES, NOT SECRETS: they only ever reach the sandboxes of
// provider/fake. Real servers take theirs from the environment
// (rachel8.EnvSource).
func demoSecrets() rachel8.Secrets {
	return rachel8.Secrets{
		ClaudeAccessToken:   "demo-claude-access-token-not-a-secret",
		ClaudeRefreshToken:  "demo-claude-refresh-token-not-a-secret",
		ClaudeExpiresAt:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		TelegramBotToken:    "123456789:demo-telegram-bot-token",
		OwnerTelegramUserID: "123456789",
	}
}

func (o options) run(ctx context.Context, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("timed out after %s (see -timeout)", o.timeout))
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	if o.verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "quickstart: "+format+"\n", args...)
		return exitFailed
	}

	// The secrets: demo values on simulated servers, the environment on
	// real ones, checked before any server is created.
	ids := make([]string, o.tenants)
	for i := range ids {
		ids[i] = newUUID()
	}
	var secrets inject.SecretSource
	if !o.cloud.Real() {
		demo := make(inject.StaticSecrets, len(ids))
		for _, id := range ids {
			demo[id] = demoSecrets().Map()
		}
		secrets = demo
	} else {
		if _, err := rachel8.Load(ctx, rachel8.EnvSource{}, ids[0]); err != nil {
			fmt.Fprintln(stderr, "quickstart:", err)
			return exitUsage
		}
		secrets = rachel8.EnvSource{}
	}

	// The store: SQLite, in a temporary directory unless -db.
	dbPath := o.db
	var tmpDir string
	if dbPath == "" {
		d, err := os.MkdirTemp("", "hatchery-quickstart-")
		if err != nil {
			return fail("%v", err)
		}
		tmpDir = d
		defer os.RemoveAll(tmpDir)
		dbPath = filepath.Join(tmpDir, "hatchery.db")
	}
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return fail("%v", err) // "sqlite: open PATH: ..."
	}
	defer st.Close()

	// Local servers fetch the recipe's sources from a mirror on
	// 127.0.0.1, unless -internet.
	recipe := rachel8.Options{Settle: o.settle}
	var sources string
	if o.cloud.Local() && !o.internet {
		start := o.startMirror
		if start == nil {
			start = mirror.Start
		}
		m, err := start(ctx, mirror.Options{Logger: log})
		if errors.Is(err, mirror.ErrRequirements) {
			fmt.Fprintf(stderr, "quickstart: the local mirror for -provider %s (or use -internet): %v\n", o.cloud.Provider, err)
			return exitUsage
		}
		if err != nil {
			return fail("%v", err)
		}
		defer m.Close()
		recipe = m.RecipeOptions(recipe)
		sources = "a local mirror that this quickstart serves at " + m.URL() + ", with its own CA:\n" +
			"          stand-in Bun and Claude installers, the Rachel8 repository (git http-backend),\n" +
			"          a signed apt repository for gh (-internet: the real sources instead)"
	} else if o.cloud.Local() {
		sources = "the internet: bun.sh, claude.ai, github.com, cli.github.com (-internet)"
	}

	// The provider.
	if o.cloud.Local() {
		fmt.Fprintln(stdout, "Preparing the local servers: the Debian image is built once with debootstrap (about two minutes), then cached.")
	}
	servers, closeServers, err := o.cloud.Open(ctx, cloud.Env{
		Logger: log, PhoneHomeInterval: 250 * time.Millisecond, Faults: o.faults, NewNspawn: o.newNspawn,
	})
	if errors.Is(err, nspawn.ErrRequirements) {
		fmt.Fprintf(stderr, "quickstart: -provider %s: %v\n", o.cloud.Provider, err)
		return exitUsage
	}
	if err != nil {
		return fail("open the provider: %v", err)
	}
	defer closeServers()

	// The callback server: the real phone_home handler, over HTTP.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fail("%v", err) // "listen tcp ADDR: ..."
	}
	base := o.callback
	if base == "" {
		base = "http://" + ln.Addr().String()
	}

	// The control plane's identity: a fresh SSH key for this run, and the
	// HMAC key of the phone_home URLs.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		ln.Close()
		return fail("%v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		ln.Close()
		return fail("%v", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)

	fmt.Fprintf(stdout, "Provisioning %d %s on %s\nstore:    SQLite, %s\ncallback: %s\n",
		len(ids), plural(len(ids), "tenant", "tenants"), o.cloud.Describe(), dbPath, base+callbackPath+"/")
	if sources != "" {
		fmt.Fprintln(stdout, "sources:  "+sources)
	}
	switch {
	case o.cloud.Local():
		fmt.Fprintln(stdout, "secrets:  fixed DEMO values (not secrets), written only into the local servers")
	case !o.cloud.Real():
		fmt.Fprintln(stdout, "secrets:  fixed DEMO values (not secrets), written only into the simulated servers' sandboxes")
	default:
		fmt.Fprintln(stdout, "secrets:  from the environment ("+rachel8.EnvPrefix+"*)")
	}
	fmt.Fprintln(stdout)
	prog := newProgress(stdout, ids, progressOptions{tty: o.tty, color: o.color, size: o.size})
	defer prog.stop()

	cfg := provision.Config{
		Provider:     servers,
		Store:        st,
		Secrets:      secrets,
		Signer:       signer,
		CallbackBase: base + callbackPath,
		CallbackKey:  key,
		MaxAttempts:  o.maxAttempts,
		BootProgress: true, // the board shows what each server's boot does
		RetryBackoff: 2 * time.Second,
		Logger:       log,
		OnEvent:      func(e provision.Event) { prog.observe(e) },
	}
	rachel8.Apply(&cfg, recipe)
	recipeSteps := cfg.StepsFunc
	cfg.StepsFunc = func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
		steps, err := recipeSteps(ctx, in)
		prog.setSteps(in.Record.ID, len(steps))
		return steps, err
	}
	p, err := provision.New(cfg)
	if err != nil {
		ln.Close()
		return fail("%v", err)
	}

	mux := http.NewServeMux()
	mux.Handle("POST "+callbackPath+"/{id}", p.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = p.Run(ctx) // Resume now and then: retries, phone_home deadlines
	}()
	defer func() {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer scancel()
		_ = p.Shutdown(sctx)
		<-runDone
		_ = srv.Shutdown(sctx)
	}()

	results := make([]result, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			start := time.Now()
			prog.begin(id)
			res := result{ID: id}
			// A failed create is recorded and retried in the background;
			// Wait follows it to the end either way.
			_ = p.Provision(ctx, id)
			res.Record, res.Err = p.Wait(ctx, id)
			if res.Record.Status == "" {
				res.Record, _ = st.Get(context.WithoutCancel(ctx), id)
			}
			if res.Err != nil && ctx.Err() != nil {
				res.Err = fmt.Errorf("stopped while %s: %w", res.Record.Status, context.Cause(ctx))
			}
			res.Took = time.Since(start)
			if d, ok := prog.took(id); ok && res.Record.Status != "" && res.Err == nil {
				res.Took = d // when the status changed, not when Wait's poll saw it
			}
			results[i] = res
		})
	}
	wg.Wait()
	prog.stop()

	fmt.Fprintln(stdout)
	if err := writeTable(stdout, results); err != nil {
		return fail("%v", err)
	}
	ready := 0
	for _, r := range results {
		if r.Record.Status == store.StatusReady {
			ready++
		}
	}
	fmt.Fprintf(stdout, "\n%d of %d tenants ready.\n", ready, len(results))

	if o.deprovision {
		dctx := context.WithoutCancel(ctx)
		for _, id := range ids {
			if err := p.Deprovision(dctx, id); err != nil {
				fmt.Fprintf(stderr, "quickstart: deprovision %s: %v\n", id, err)
			}
		}
		fmt.Fprintln(stdout, "Every tenant deprovisioned: their servers are deleted.")
	} else if o.cloud.Real() {
		fmt.Fprintln(stdout, "The servers keep running: delete them "+o.cloud.Leftovers()+", or run with -deprovision.")
	} else if o.cloud.Local() {
		fmt.Fprintln(stdout, "The local servers are deleted as the quickstart exits.")
	}
	if o.db != "" {
		fmt.Fprintf(stdout, "The records are kept in %s.\n", o.db)
	}
	if ctx.Err() != nil && ready < len(results) {
		fmt.Fprintf(stderr, "quickstart: stopped: %v\n", context.Cause(ctx))
	}
	if ready < len(results) {
		return exitFailed
	}
	return exitOK
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// newUUID returns a random (version 4) UUID in canonical form.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
