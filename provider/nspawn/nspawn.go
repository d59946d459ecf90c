package nspawn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hatchery-dev/hatchery/provider"
)

// Defaults for the zero Options.
const (
	DefaultSuite          = "bookworm"
	DefaultMirror         = "http://deb.debian.org/debian"
	DefaultSecurityMirror = "http://deb.debian.org/debian-security"
	DefaultStateDir       = "/var/lib/hatchery/nspawn"
	DefaultStopTimeout    = 30 * time.Second
)

// CacheEnv is the environment variable that names the image cache when
// Options.CacheDir is empty, so that every test package of a CI run
// shares one image without configuring it.
const CacheEnv = "HATCHERY_NSPAWN_CACHE"

// Options configure a Provider. The zero value works on a machine that has
// the requirements (see the package documentation).
type Options struct {
	// StateDir holds one directory per server (its record, its writable
	// layer, its console log). Providers on the same StateDir, in one
	// process or several, see and manage the same servers: server names
	// are unique per StateDir. "" means DefaultStateDir. New refuses one
	// that another user could change (ErrUnsafeDir) and makes a missing
	// one 0700.
	StateDir string
	// CacheDir holds the images and the packages they were built from.
	// "" means $HATCHERY_NSPAWN_CACHE (CacheEnv) when set, else
	// hatchery/nspawn under os.UserCacheDir(). New refuses one that
	// another user could change (ErrUnsafeDir) and makes a missing one
	// 0700. Providers on the same StateDir use the same CacheDir.
	CacheDir string
	// Suite is the Debian release of servers whose request names no
	// Image: "bookworm" or "trixie"; "" means DefaultSuite.
	Suite string
	// Mirror is the Debian mirror images are built from and servers use
	// for apt; "" means DefaultMirror. Keep it the one the host uses.
	Mirror string
	// SecurityMirror is the mirror of Debian's security updates in the
	// servers' apt sources; "" means DefaultSecurityMirror.
	SecurityMirror string
	// Packages are installed in the image besides the base packages (a
	// recipe's packages, preinstalled, make its tests faster). They are
	// part of the image's address in the cache.
	Packages []string
	// Keep leaves the servers running when the Provider is closed, or
	// when the process that started them ends: a later Provider on the
	// same StateDir finds them. Without Keep, Close deletes every server
	// this Provider started, and they power off when the process dies.
	Keep bool
	// StopTimeout is how long Delete waits for a server's clean poweroff
	// before it kills what is left; 0 means DefaultStopTimeout.
	StopTimeout time.Duration
	// Logger receives what the provider does; nil means quiet.
	Logger *slog.Logger
}

// ErrRequirements is wrapped by the errors of New and CheckCredentials
// when the machine cannot run servers; the message names what is missing
// and how to install it.
var ErrRequirements = errors.New("nspawn: this machine cannot run servers")

// Provider runs servers as systemd-nspawn containers on the local
// machine. It implements provider.Provider, provider.Lister,
// provider.InstanceIDer and provider.CredentialChecker, and is safe for
// concurrent use.
type Provider struct {
	opts     Options
	log      *slog.Logger
	stateDir string
	cacheDir string
	packages []string
	prog     programs
	cg       cgroupBases
	ports    ports
	sp       spawner

	closing context.Context // cancelled by Close
	cancel  context.CancelFunc

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	started  map[string]chan struct{} // servers this Provider started: closed once nspawn is reaped
}

var (
	_ provider.Provider          = (*Provider)(nil)
	_ provider.Lister            = (*Provider)(nil)
	_ provider.InstanceIDer      = (*Provider)(nil)
	_ provider.CredentialChecker = (*Provider)(nil)
)

// New checks the requirements and the directories and returns a
// Provider. A StateDir or CacheDir that another user than root could
// change is refused with an error wrapping ErrUnsafeDir (see "Trust in the
// directories" in the package documentation). New builds nothing: the
// image of a suite is built by the first Create that needs it (or by
// Prepare).
func New(opts Options) (*Provider, error) {
	opts.Suite = cmp.Or(opts.Suite, DefaultSuite)
	opts.Mirror = cmp.Or(opts.Mirror, DefaultMirror)
	opts.SecurityMirror = cmp.Or(opts.SecurityMirror, DefaultSecurityMirror)
	opts.StateDir = cmp.Or(opts.StateDir, DefaultStateDir)
	opts.StopTimeout = cmp.Or(opts.StopTimeout, DefaultStopTimeout)
	if opts.CacheDir == "" {
		opts.CacheDir = os.Getenv(CacheEnv)
	}
	if opts.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("nspawn: no Options.CacheDir and no user cache directory: %w", err)
		}
		opts.CacheDir = filepath.Join(d, "hatchery", "nspawn")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	prog, err := requirements(os.Geteuid(), lookPath)
	if err != nil {
		return nil, err
	}
	cg, err := findCgroups()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRequirements, err)
	}
	stateDir, err := rootDir("StateDir", opts.StateDir)
	if err != nil {
		return nil, err
	}
	cacheDir, err := rootDir("CacheDir", opts.CacheDir)
	if err != nil {
		return nil, err
	}
	pkgs := append(slices.Clone(basePackages), opts.Packages...)
	slices.Sort(pkgs)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	closing, cancel := context.WithCancel(context.Background())
	p := &Provider{
		opts:     opts,
		log:      log,
		stateDir: stateDir,
		cacheDir: cacheDir,
		packages: slices.Compact(pkgs),
		prog:     prog,
		cg:       cg,
		ports:    ports{dir: portDir, min: portMin, max: portMax},
		closing:  closing,
		cancel:   cancel,
		started:  map[string]chan struct{}{},
	}
	p.removeTrash()
	return p, nil
}

var packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// validate checks the options New was given, defaults applied.
func (o Options) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: nspawn: "+format, append([]any{provider.ErrInvalid}, args...)...)
	}
	if !slices.Contains(knownSuites, o.Suite) {
		return bad("Suite %q: want one of %s", o.Suite, strings.Join(knownSuites, ", "))
	}
	for name, m := range map[string]string{"Mirror": o.Mirror, "SecurityMirror": o.SecurityMirror} {
		u, err := url.Parse(m)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(m, " \t\n") {
			return bad("%s %q is not an http(s) URL", name, m)
		}
	}
	for _, pkg := range o.Packages {
		if !packageRE.MatchString(pkg) {
			return bad("Packages: %q is not a Debian package name", pkg)
		}
	}
	for name, d := range map[string]string{"StateDir": o.StateDir, "CacheDir": o.CacheDir} {
		if err := mountOptionSafe(name, d); err != nil {
			return err
		}
	}
	if o.StopTimeout < 0 {
		return bad("negative StopTimeout")
	}
	return nil
}

// rootDir returns the directory of an option, absolute with its symbolic
// links resolved, made if missing, once it is checked that no other user
// than root can change it (secureDir): root acts on what StateDir and
// CacheDir hold (records naming cgroups and processes, images mounted as
// the servers' systems).
func rootDir(option, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("nspawn: %s: %w", option, err)
	}
	resolved, err := secureDir(option, abs, os.Geteuid())
	if err != nil {
		return "", err
	}
	if err := mountOptionSafe(option, resolved); err != nil {
		return "", err
	}
	return resolved, nil
}

// mountOptionSafe checks a directory that ends up in overlayfs mount
// options, separated by commas and colons.
func mountOptionSafe(name, dir string) error {
	if strings.ContainsAny(dir, ",:\n\\") {
		return fmt.Errorf("%w: nspawn: %s %q holds a comma, colon, backslash or newline", provider.ErrInvalid, name, dir)
	}
	return nil
}

// programs are the paths of the programs the provider runs.
type programs struct {
	nspawn, debootstrap, mount, chroot, sh string
}

// lookPath searches PATH, then the usual system directories (root's PATH
// may lack /usr/sbin, where debootstrap lives).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range filepath.SplitList(safePath) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// requirements checks what servers need: Linux, root and the programs.
// The error names everything missing, with how to install it.
func requirements(euid int, look func(string) (string, error)) (programs, error) {
	if !supported {
		return programs{}, fmt.Errorf("%w: systemd-nspawn runs on Linux only", ErrRequirements)
	}
	var missing []string
	if euid != 0 {
		missing = append(missing, "root: systemd-nspawn, overlay mounts and cgroups need CAP_SYS_ADMIN (run as root)")
	}
	var p programs
	for _, prog := range []struct {
		dst           *string
		name, install string
	}{
		{&p.nspawn, "systemd-nspawn", "apt-get install --no-install-recommends systemd-container"},
		{&p.debootstrap, "debootstrap", "apt-get install --no-install-recommends debootstrap"},
		{&p.mount, "mount", "apt-get install mount"},
		{&p.chroot, "chroot", "apt-get install coreutils"},
		{&p.sh, "sh", "apt-get install dash"},
	} {
		path, err := look(prog.name)
		if err != nil {
			missing = append(missing, prog.name+" is not installed ("+prog.install+")")
			continue
		}
		*prog.dst = path
	}
	if len(missing) > 0 {
		err := fmt.Errorf("%w: %s", ErrRequirements, strings.Join(missing, "; "))
		if euid != 0 {
			err = fmt.Errorf("%w: %w", provider.ErrUnauthorized, err)
		}
		return programs{}, err
	}
	return p, nil
}

// CheckCredentials checks the requirements again: root (else the error
// wraps provider.ErrUnauthorized as well as ErrRequirements), the
// programs, the cgroup hierarchy. It starts nothing.
func (p *Provider) CheckCredentials(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := requirements(os.Geteuid(), lookPath); err != nil {
		return err
	}
	if _, err := findCgroups(); err != nil {
		return fmt.Errorf("%w: %w", ErrRequirements, err)
	}
	return nil
}

// InstanceID returns the cloud-init instance ID of the server with the
// given ID; see the function InstanceID.
func (p *Provider) InstanceID(serverID string) string { return InstanceID(serverID) }

// suiteOf returns the suite a request's Image names: a suite name, or
// Debian's cloud image name for it ("debian-12", "debian-13"); "" is the
// default suite.
func (p *Provider) suiteOf(image string) (string, error) {
	switch image {
	case "":
		return p.opts.Suite, nil
	case "bookworm", "debian-12":
		return "bookworm", nil
	case "trixie", "debian-13":
		return "trixie", nil
	}
	return "", fmt.Errorf("%w: nspawn: image %q: want bookworm (debian-12) or trixie (debian-13)", provider.ErrInvalid, image)
}

// Create makes a server and starts booting it: it returns once the
// container's process runs (Status "running"); cloud-init's phone_home
// tells when it is up. The first Create of a suite builds its image.
//
// A name that already belongs to a server (in the StateDir, whichever
// process made it) that carries every label of req.Labels is adopted: that
// server is returned, nothing is started. A server of that name with other
// labels (another tenant's) is an error wrapping provider.ErrConflict.
//
// req.Image selects the suite ("bookworm" or "debian-12", "trixie" or
// "debian-13"; "" is Options.Suite). req.ServerType and req.Location are
// ignored: every server is a container on this machine.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	if err := req.Validate(); err != nil {
		return provider.Server{}, fmt.Errorf("nspawn: create server: %w", err)
	}
	suite, err := p.suiteOf(req.Image)
	if err != nil {
		return provider.Server{}, err
	}
	if err := ctx.Err(); err != nil {
		return provider.Server{}, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return provider.Server{}, fmt.Errorf("%w: nspawn: provider closed", provider.ErrUnavailable)
	}
	p.inflight.Add(1)
	p.mu.Unlock()
	defer p.inflight.Done()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(p.closing, stop)()

	image, err := p.image(ctx, suite)
	if err != nil {
		return provider.Server{}, fmt.Errorf("nspawn: create server %q: %w", req.Name, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(p.stateDir, lockName))
	if err != nil {
		return provider.Server{}, fmt.Errorf("nspawn: create server %q: %w", req.Name, err)
	}
	defer unlock()
	recs, err := p.records(ctx)
	if err != nil {
		return provider.Server{}, fmt.Errorf("nspawn: create server %q: %w", req.Name, err)
	}
	for _, r := range recs {
		switch {
		case r.Port == 0:
			// Creates hold the lock until the port is recorded: this one
			// died before.
			if err := p.destroy(context.WithoutCancel(ctx), r, true); err != nil {
				p.log.WarnContext(ctx, "nspawn: removing a server whose create died", "id", r.ID, "err", err)
			}
			continue
		case r.Name != req.Name || r.Deleting:
			continue
		case !r.hasLabels(req.Labels):
			return provider.Server{}, fmt.Errorf("nspawn: create server %q: %w (server %s has other labels)", req.Name, provider.ErrConflict, r.ID)
		}
		p.log.InfoContext(ctx, "nspawn: adopted existing server", "name", r.Name, "id", r.ID)
		return r.server(p.status(r)), nil
	}

	id := newID()
	machine := "hatchery-" + id
	r := record{
		ID:      id,
		Name:    req.Name,
		Labels:  maps.Clone(req.Labels),
		Created: time.Now().UTC(),
		Suite:   suite,
		Image:   image,
		Machine: machine,
		Cgroups: p.cg.dirs(machine),
	}
	if err := os.Mkdir(p.dir(id), 0o700); err != nil {
		return provider.Server{}, fmt.Errorf("nspawn: create server %q: %w", req.Name, err)
	}
	if err := p.writeRecord(r); err != nil {
		_ = removeTree(p.dir(id))
		return provider.Server{}, fmt.Errorf("nspawn: create server %q: %w", req.Name, err)
	}
	if err := p.boot(ctx, &r, req.UserData); err != nil {
		if derr := p.destroy(context.WithoutCancel(ctx), r, true); derr != nil {
			p.log.ErrorContext(ctx, "nspawn: cleaning up a server that did not start", "id", id, "err", derr)
		}
		return provider.Server{}, fmt.Errorf("nspawn: create server %q: %w", req.Name, err)
	}
	p.log.InfoContext(ctx, "nspawn: server started", "name", r.Name, "id", id, "ssh", "127.0.0.1:"+strconv.Itoa(r.Port), "suite", suite)
	return r.server("running"), nil
}

// status is the provider's word for a server's state: "running" while
// its container has a process, "off" when it has none (it powered off, or
// the machine rebooted), "deleting" once a Delete began.
func (p *Provider) status(r record) string {
	switch {
	case r.Deleting:
		return "deleting"
	case len(r.Cgroups) > 0 && populated(r.Cgroups[0]):
		return "running"
	}
	return "off"
}

// Get returns the server with the given ID, or an error wrapping
// provider.ErrNotFound.
func (p *Provider) Get(ctx context.Context, id string) (provider.Server, error) {
	if err := ctx.Err(); err != nil {
		return provider.Server{}, err
	}
	if !validID(id) {
		return provider.Server{}, fmt.Errorf("nspawn: server %q: %w", id, provider.ErrNotFound)
	}
	r, err := p.readRecord(id)
	switch {
	case errors.Is(err, fs.ErrNotExist) || err == nil && r.Port == 0: // not yet, or a create that died
		return provider.Server{}, fmt.Errorf("nspawn: server %q: %w", id, provider.ErrNotFound)
	case err != nil:
		return provider.Server{}, fmt.Errorf("nspawn: server %s: %w", id, err)
	}
	return r.server(p.status(r)), nil
}

// List returns the servers in the StateDir that carry every label of
// selector, oldest first; servers being deleted are left out.
func (p *Provider) List(ctx context.Context, selector map[string]string) ([]provider.Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs, err := p.records(ctx)
	if err != nil {
		return nil, err
	}
	out := []provider.Server{}
	for _, r := range recs {
		if !r.Deleting && r.Port != 0 && r.hasLabels(selector) {
			out = append(out, r.server(p.status(r)))
		}
	}
	return out, nil
}

// Delete powers the server off (SIGTERM to its systemd-nspawn, which asks
// the container's systemd for a clean poweroff; what is left after
// Options.StopTimeout is killed through its cgroup) and removes
// everything it had: processes, cgroups, its port, its directory. It
// works on servers of any Provider on the same StateDir. Deleting a
// server that does not exist succeeds. When ctx ends first, the server
// is left being deleted; Delete again finishes the work.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validID(id) {
		return nil
	}
	unlock, err := lockFile(ctx, filepath.Join(p.stateDir, lockName))
	if err != nil {
		return fmt.Errorf("nspawn: delete server %s: %w", id, err)
	}
	r, err := p.readRecord(id)
	if err == nil && !r.Deleting {
		r.Deleting = true
		err = p.writeRecord(r)
	}
	unlock()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("nspawn: delete server %s: %w", id, err)
	}
	if err := p.destroy(ctx, r, false); err != nil {
		return fmt.Errorf("nspawn: delete server %s: %w", id, err)
	}
	p.log.InfoContext(ctx, "nspawn: server deleted", "name", r.Name, "id", id)
	return nil
}

// destroy stops the server of r and removes its port reservation,
// cgroups and directory. locked tells that the caller holds the state
// lock.
func (p *Provider) destroy(ctx context.Context, r record, locked bool) error {
	if err := p.stop(ctx, r); err != nil {
		return err
	}
	for _, cg := range r.Cgroups {
		if err := removeCgroup(ctx, cg); err != nil {
			return err
		}
	}
	if err := p.ports.release(ctx, r.Port, p.dir(r.ID)); err != nil {
		return err
	}
	unlock := func() {}
	if !locked {
		var err error
		if unlock, err = lockFile(ctx, filepath.Join(p.stateDir, lockName)); err != nil {
			return err
		}
	}
	// Out of sight first (a rename), then removed: a crash in between
	// leaves trash that the next New removes, never half a server.
	trash := filepath.Join(p.stateDir, ".trash-"+r.ID)
	err := os.Rename(p.dir(r.ID), trash)
	unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // another Delete got there first
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.started, r.ID)
	p.mu.Unlock()
	return removeTree(trash)
}

// removeTrash removes what deletions interrupted by a crash left.
func (p *Provider) removeTrash() {
	trash, _ := filepath.Glob(filepath.Join(p.stateDir, ".trash-*"))
	for _, t := range trash {
		if err := removeTree(t); err != nil {
			p.log.WarnContext(context.Background(), "nspawn: removing the rest of a deleted server", "dir", t, "err", err)
		}
	}
}

// Console returns the end (at most 64 KiB) of the server's console:
// what systemd and cloud-init printed while it booted. It helps to tell
// why a server never phoned home.
func (p *Provider) Console(id string) ([]byte, error) {
	if !validID(id) {
		return nil, fmt.Errorf("nspawn: server %q: %w", id, provider.ErrNotFound)
	}
	dir, err := p.serverDir(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nspawn: server %q: %w", id, provider.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("nspawn: server %q: %w", id, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, consoleFile), os.O_RDONLY|oNoFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nspawn: server %q: %w", id, provider.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const limit = 64 << 10
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-limit, 0)
	b := make([]byte, fi.Size()-off)
	n, err := f.ReadAt(b, off)
	if err != nil && n < len(b) {
		return nil, err
	}
	return b[:n], nil
}

// Close stops taking new servers and, unless Options.Keep, deletes every
// server this Provider started, in parallel. Close is idempotent.
func (p *Provider) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.inflight.Wait()

	var errs []error
	if !p.opts.Keep {
		p.mu.Lock()
		ids := slices.Sorted(maps.Keys(p.started))
		p.mu.Unlock()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				if err := p.Delete(context.Background(), id); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	p.sp.stop()
	return errors.Join(errs...)
}
