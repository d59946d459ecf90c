package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/examples/internal/cloud"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/postgres"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole service, in-process: it serves until ctx ends (SIGINT
// or SIGTERM in main), then shuts down gracefully, and returns the exit
// code: 0 after a clean shutdown, 1 when the service broke, 2 on bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, stdout, stderr, nil)
}

// runWith is run with the parsed flags changed by tweak (nil: none), for
// what tests set and flags do not: simulated servers' faults.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, tweak func(*config)) int {
	c, err := parseFlags(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "controlplane:", err)
		return 2
	}
	if tweak != nil {
		tweak(&c)
	}
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := c.serve(ctx, stdout, log); err != nil {
		log.Error("controlplane stopped", "err", err)
		return 1
	}
	return 0
}

// config is the parsed flags.
type config struct {
	addr        string
	dir         string
	dirSet      bool         // -dir was given
	db          string       // "" means dir/hatchery.db
	postgres    string       // a DSN; "" means SQLite
	cloud       *cloud.Flags // -provider and its flags
	callback    string       // public base URL; "" means the listen address
	secrets     string       // "demo" or "env"
	verbose     bool
	resumeEvery time.Duration
	shutdown    time.Duration
	settle      time.Duration
	faults      func(name string) fake.Faults // simulated servers' faults (tests); nil: none
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	// The FlagSet prints nothing itself: a parse error is returned, and
	// run prints it once; -h prints the usage below.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen `address` of the API, the status page and the callback")
	defaultDir, dirErr := stateDir(getenv, runtime.GOOS)
	fs.StringVar(&c.dir, "dir", defaultDir, "`directory` of the SQLite database and the control plane's keys (created 0700; the default is the user's state directory)")
	fs.StringVar(&c.db, "db", "", "SQLite database `path` (default DIR/hatchery.db)")
	fs.StringVar(&c.postgres, "postgres", "", "PostgreSQL `DSN`; use it instead of SQLite, e.g. for several replicas")
	c.cloud = cloud.Register(fs, cloud.Defaults{BootDelay: 2 * time.Second})
	fs.StringVar(&c.callback, "callback-base", "", "public `URL` where servers reach this service, e.g. https://cp.example.com (required with real servers; default: the listen address)")
	fs.StringVar(&c.secrets, "secrets", "", "where tenants' secrets come from: `demo` (fixed demo values; the default with fake) or env (RACHEL8_* variables; the default with real servers)")
	fs.BoolVar(&c.verbose, "v", false, "debug logs")
	fs.DurationVar(&c.resumeEvery, "resume-interval", 0, "pause between Resume passes, which pick up crashed work, retries and phone_home deadlines (default 30s)")
	fs.DurationVar(&c.shutdown, "shutdown-timeout", 30*time.Second, "how long a shutdown waits for requests and injections in flight")
	fs.DurationVar(&c.settle, "settle", time.Second, "how long the service must stay active after it starts")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return c, err
		}
		return c, fmt.Errorf("%w (see -h)", err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { c.dirSet = c.dirSet || f.Name == "dir" })
	if c.dir == "" {
		if dirErr == nil {
			dirErr = errors.New("empty")
		}
		return c, fmt.Errorf("-dir: %w; name a directory for the keys and the database", dirErr)
	}
	if c.settle < 0 || c.resumeEvery < 0 || c.shutdown < 0 {
		return c, errors.New("durations must not be negative")
	}
	if c.callback != "" {
		u, err := url.Parse(c.callback)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return c, fmt.Errorf("-callback-base %q: want an absolute http(s) URL such as https://cp.example.com", c.callback)
		}
		c.callback = strings.TrimRight(c.callback, "/")
	}
	if err := c.cloud.Check(getenv); err != nil {
		return c, err
	}
	switch {
	case !c.cloud.Real():
		c.secrets = cmp.Or(c.secrets, "demo")
	case c.callback == "":
		return c, fmt.Errorf("-provider %s needs -callback-base: the public URL where the servers reach -addr", c.cloud.Provider)
	default:
		c.secrets = cmp.Or(c.secrets, "env")
	}
	if c.secrets != "demo" && c.secrets != "env" {
		return c, fmt.Errorf("-secrets %q: want demo or env", c.secrets)
	}
	return c, nil
}

const usage = `Usage: go run ./examples/controlplane [flags]

A control plane that gives every tenant its own server, with Hatchery:

  POST   /tenants/{id}           provision tenant id (a lowercase UUID): 202 + record
  GET    /tenants/{id}           the tenant's record, as JSON (404 when unknown)
  GET    /tenants                every record (?status=ready,failed filters)
  POST   /tenants/{id}/retry     retry a failed tenant now
  POST   /tenants/{id}/rotate    inject a ready tenant's secrets again, restart it
  POST   /tenants/{id}/replace   a new server for a ready or failed tenant
  DELETE /tenants/{id}           deprovision: the record says deleted, the server is gone
  POST   /sweep[?dry_run=0]      servers no tenant owns: a dry run unless dry_run=0
  GET    /                       a status page that refreshes itself, with the actions
  GET    /healthz, /readyz       liveness, readiness (the store answers)
  GET    /metrics                Prometheus metrics
  POST   /api/provision/callback/{id}   cloud-init's phone_home (token-checked)

The API has no authentication of its own: keep -addr on loopback, or put it
behind your own. Only the callback path needs to be reachable by servers.
SIGINT or SIGTERM shut it down gracefully.

Flags:
`

// demoSecrets is an inject.SecretSource that gives every tenant the same
// fixed secrets. DEMO VALUES, NOT SECRETS: meant for simulated servers.
type demoSecrets struct{}

func (demoSecrets) Secrets(ctx context.Context, id string) (map[string]string, error) {
	return rachel8.Secrets{
		ClaudeAccessToken:   "demo-claude-access-token-not-a-secret",
		ClaudeRefreshToken:  "demo-claude-refresh-token-not-a-secret",
		ClaudeExpiresAt:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		TelegramBotToken:    "123456789:demo-telegram-bot-token",
		OwnerTelegramUserID: "123456789",
	}.Map(), ctx.Err()
}

// stateDir returns the default -dir: hatchery/controlplane in the user's
// state directory, which holds what a program keeps between runs and
// that is neither configuration (os.UserConfigDir, which users edit and
// copy between machines) nor cache (os.UserCacheDir, which may be deleted
// at any time: losing the SSH key loses access to the servers):
//
//	Linux and other Unix  $XDG_STATE_HOME, else ~/.local/state (XDG Base Directory)
//	macOS                 ~/Library/Application Support
//	Windows               %LocalAppData% (not roaming: the keys stay on the machine)
//
// An XDG_STATE_HOME that is not absolute is ignored, as the XDG
// specification says.
func stateDir(getenv func(string) string, goos string) (string, error) {
	var base string
	switch goos {
	case "windows":
		base = getenv("LocalAppData")
		if base == "" {
			return "", errors.New("no default: %LocalAppData% is not set")
		}
	case "darwin", "ios":
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("no default: $HOME is not set")
		}
		base = filepath.Join(home, "Library", "Application Support")
	default:
		if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
			base = d
			break
		}
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("no default: neither $XDG_STATE_HOME nor $HOME is set")
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "hatchery", "controlplane"), nil
}

// oldDir is where the keys and the database were by default before they
// moved to the user's state directory: relative to the working directory.
const oldDir = "controlplane-data"

// openDir creates dir (and its missing parents) 0700, and warns when dir
// was there already with access for others: it holds the control plane's
// private keys.
func openDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows" {
		log.Warn("the state directory is accessible to other users; it holds the control plane's keys: chmod 700 it",
			"dir", dir, "mode", fi.Mode().Perm().String())
	}
	return nil
}

// serve runs the service until ctx ends, then shuts it down.
func (c config) serve(ctx context.Context, stdout io.Writer, log *slog.Logger) error {
	if err := openDir(c.dir, log); err != nil {
		return err
	}
	if fi, err := os.Stat(oldDir); err == nil && fi.IsDir() && !c.dirSet {
		log.Warn("./"+oldDir+" holds the keys and the database of an earlier version, which kept them in the working directory; "+
			"pass -dir "+oldDir+" to go on with them (its servers accept only those keys)", "dir", c.dir)
	}

	// The store.
	var st store.Store
	if c.postgres != "" {
		pg, err := postgres.Open(ctx, c.postgres)
		if err != nil {
			return err // "postgres: open: ..."
		}
		defer pg.Close()
		st = pg
	} else {
		path := c.db
		if path == "" {
			path = filepath.Join(c.dir, "hatchery.db")
		}
		// A missing directory is left to sqlite.Open to say.
		if err := createPrivate(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("create the database: %w", err)
		}
		sq, err := sqlite.Open(ctx, path) // its errors name the path
		if err != nil {
			return err
		}
		defer sq.Close()
		st = sq
	}

	// The control plane's identity, kept across restarts (and shared by
	// replicas): Resume must be able to log in to servers created before.
	signer, err := loadOrCreateSSHKey(filepath.Join(c.dir, "id_ed25519"))
	if err != nil {
		return err
	}
	key, err := loadOrCreateCallbackKey(filepath.Join(c.dir, "callback.key"))
	if err != nil {
		return err
	}

	var secrets inject.SecretSource = demoSecrets{}
	if c.secrets == "env" {
		secrets = rachel8.EnvSource{}
	}

	// The provider.
	servers, closeServers, err := c.cloud.Open(ctx, cloud.Env{Logger: log, PhoneHomeInterval: 500 * time.Millisecond, Faults: c.faults})
	if err != nil {
		return fmt.Errorf("open the provider: %w", err)
	}
	defer closeServers()

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	base := c.callback
	if base == "" {
		base = "http://" + reachable(ln.Addr())
	}

	// Metrics, served at /metrics in Prometheus's format: the HTTP
	// server's, the Go runtime's and the process's, and the provisioner's
	// (provision.Config.MeterProvider). No global is set.
	meters, metrics, err := newMetrics()
	if err != nil {
		ln.Close()
		return err
	}
	defer meters.Shutdown(context.WithoutCancel(ctx))

	// What this process sees of the tenants (the last event, the step of
	// the injection), for the API and the page.
	events := newProgress()
	cfg := provision.Config{
		Provider:       servers,
		Store:          st,
		Secrets:        secrets,
		Signer:         signer,
		CallbackBase:   base + CallbackPath,
		CallbackKey:    key,
		ResumeInterval: c.resumeEvery,
		Logger:         log,
		OnEvent:        events.record,
		MeterProvider:  meters,
	}
	rachel8.Apply(&cfg, rachel8.Options{Settle: c.settle})
	cfg.StepsFunc = events.stepsCounter(cfg.StepsFunc)
	p, err := provision.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	tcp, _ := ln.Addr().(*net.TCPAddr)
	a := &api{
		p: p, store: st, log: log, events: events,
		loopbackOnly:     tcp != nil && tcp.IP.IsLoopback(),
		maxAttempts:      cmp.Or(cfg.MaxAttempts, provision.DefaultMaxAttempts),
		provisionTimeout: 2 * time.Minute,
		meters:           meters, metrics: metrics,
	}
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // bounds callback bodies too
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// Resume at start, then every ResumeInterval: work a crashed replica
	// left, retries, phone_home deadlines.
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()

	fmt.Fprintf(stdout, "controlplane: listening on http://%s (callback %s/)\n", ln.Addr(), base+CallbackPath)
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("the tenants API has no authentication and listens beyond loopback: put it behind your own auth, expose only " + CallbackPath + "/")
	}
	log.Info("serving", "addr", ln.Addr().String(), "callback", base+CallbackPath, "provider", c.cloud.Provider, "secrets", c.secrets, "dir", c.dir)

	var broke error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		broke = fmt.Errorf("serve: %w", err)
	}

	// Graceful shutdown: stop taking requests and finish those in flight,
	// then let the injections in flight end. Whatever is cut short is left
	// in the store for the next start's (or another replica's) Resume.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := p.Shutdown(sctx); err != nil {
		log.Warn("provisioner shutdown: work cut short is left to Resume", "err", err)
	}
	a.work.Wait() // actions that outlived their request: the provisioner ended their work
	<-runDone
	log.Info("stopped")
	return broke
}

// reachable is the listen address as a URL host: an unspecified IP
// (":8080", "0.0.0.0:8080") is replaced by loopback, which is where the
// simulated servers phone home from.
func reachable(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}

// createPrivate creates the empty file path 0600 unless it exists, so
// that the database SQLite then opens there (and its -wal and -shm files,
// which SQLite creates with the database's mode) is the user's alone.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// readKey reads the key file at path, refusing it when other users may
// read or write it (as ssh refuses such an identity file): it would have
// to be taken as leaked.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s is accessible to other users (mode %s): if they may have read it, treat the key as leaked; else chmod 600 it", path, perm)
	}
	return io.ReadAll(f)
}

// loadOrCreateSSHKey reads the control plane's SSH private key (OpenSSH
// format) from path, creating an ed25519 key there (0600) the first time.
func loadOrCreateSSHKey(path string) (ssh.Signer, error) {
	data, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		block, merr := ssh.MarshalPrivateKey(priv, "hatchery control plane")
		if merr != nil {
			return nil, merr
		}
		data = pem.EncodeToMemory(block)
		if err := writeNew(path, data); errors.Is(err, fs.ErrExist) {
			return loadOrCreateSSHKey(path) // another process was first
		} else if err != nil {
			return nil, fmt.Errorf("ssh key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", path, err)
	}
	return signer, nil
}

// loadOrCreateCallbackKey reads the HMAC key of the phone_home URLs (hex)
// from path, creating 32 random bytes there (0600) the first time.
func loadOrCreateCallbackKey(path string) ([]byte, error) {
	data, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		if err := writeNew(path, []byte(hex.EncodeToString(key)+"\n")); errors.Is(err, fs.ErrExist) {
			return loadOrCreateCallbackKey(path) // another process was first
		} else if err != nil {
			return nil, fmt.Errorf("callback key: %w", err)
		}
		return key, nil
	} else if err != nil {
		return nil, fmt.Errorf("callback key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("callback key %s: want at least 16 bytes in hex", path)
	}
	return key, nil
}

// writeNew creates path with mode 0600 holding data, atomically (a temp
// file linked into place). It fails with fs.ErrExist when path exists, so
// two processes starting together cannot each keep a key of their own.
func writeNew(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(tmp, path)
}
