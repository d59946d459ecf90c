package fake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
)

// DefaultPhoneHomeInterval is the pause between phone_home tries when
// Options.PhoneHomeInterval is zero: cloud-init's own 3 seconds.
const DefaultPhoneHomeInterval = 3 * time.Second

// Where servers go when neither the request nor the Options say.
const (
	DefaultLocation   = "local"
	DefaultServerType = "sim"
)

// Options configures a Provider. The zero value works.
type Options struct {
	// BootDelay is how long after Create the server phones home.
	BootDelay time.Duration
	// PhoneHomeInterval is the pause between phone_home tries; 0 means
	// DefaultPhoneHomeInterval.
	PhoneHomeInterval time.Duration
	// HTTPClient posts phone_home and the reporting webhook's events; nil
	// means a client of the provider's own that opens a new connection per
	// request, as cloud-init does (a new python-requests session each).
	HTTPClient *http.Client
	// Logger receives what the simulated servers do; nil means quiet.
	Logger *slog.Logger
	// Faults returns the faults to inject for a server name; nil means none.
	Faults func(name string) Faults
	// Dir is where the servers' sandboxes go, one directory per server;
	// "" means a temporary directory, removed by Close unless Keep. A Dir
	// whose path a shell would not read as one plain word (a space, a
	// parenthesis, a quote) is reached through a symbolic link in a
	// temporary directory, removed by Close.
	Dir string
	// Keep leaves the sandboxes in place after Delete and Close.
	Keep bool
	// NoNamespace runs commands without the read-only mount namespace
	// even where it could be set up (see the package documentation): the
	// command text is still rewritten and checked.
	NoNamespace bool
	// ServerType and Location are what a server reports when its request
	// names none; "" means DefaultServerType and DefaultLocation.
	ServerType string
	Location   string
	// MaxUserData is the largest user-data Create accepts, in bytes; 0
	// means cloudinit.MaxSize (32 KiB, Hetzner's limit), so that what
	// passes here passes there.
	MaxUserData int
}

// Faults are failures injected into one simulated server.
type Faults struct {
	// CreateErr is returned by Create as is; no server is created.
	CreateErr error
	// NoPhoneHome makes the server never phone home (cloud-init still
	// reports done).
	NoPhoneHome bool
	// WrongHostKey makes phone_home post an ed25519 key other than the one
	// the SSH server presents, as a man in the middle would.
	WrongHostKey bool
	// DropAfter cuts the SSH connection after N exec sessions: when the
	// server's (N+1)-th exec session starts (counted over all its
	// connections), the underlying TCP connection is closed before the
	// command runs. It happens once per server; later connections work,
	// so a retry can converge. 0 means never.
	DropAfter int
	// UnitFails makes every systemd unit fail right after it starts:
	// systemctl start exits 0, is-active then reports "failed", and
	// journalctl shows the failure.
	UnitFails bool
	// CloudInitError fails the runcmd: the scripts-user module fails (a
	// FAIL in the boot events), and `cloud-init status` reports "error"
	// (exit 1) with cloud-init's runcmd failure in --long, as when the
	// bootstrap failed; phone_home is still posted, as cloud-init does.
	CloudInitError bool
}

// Provider simulates a cloud whose servers run in-process. It implements
// provider.Provider and is safe for concurrent use.
type Provider struct {
	opts   Options
	log    *slog.Logger
	client *http.Client    // Options.HTTPClient; nil: a new transport per request
	base   *http.Transport // cloned for each request when client is nil
	iso    *isolation

	mu          sync.Mutex
	closed      bool
	dir         string // where sandboxes go, created on first use
	tempDir     bool   // dir is ours to remove
	linkDir     string // a directory of ours holding a link to Options.Dir (see safeLink)
	next        int
	byID        map[string]*Server
	byName      map[string]*Server
	foreign     map[string]provider.Server // by ID: servers not ours (AddForeign)
	refused     bool                       // credentials refused (SetUnauthorized)
	unavailable map[string]bool            // locations out of capacity
}

var (
	_ provider.Provider          = (*Provider)(nil)
	_ provider.Lister            = (*Provider)(nil)
	_ provider.CredentialChecker = (*Provider)(nil)
	_ provider.InstanceIDer      = (*Provider)(nil)
	_ provider.UserDataLimiter   = (*Provider)(nil)
)

// ErrClosed is returned by Create once Close has been called. It is not
// provider.ErrUnavailable: a closed Provider has no capacity anywhere, and
// a caller falling back through locations must not try the next one.
var ErrClosed = errors.New("the provider is closed")

// New returns a Provider with no servers.
func New(opts Options) *Provider {
	opts.ServerType = cmp.Or(opts.ServerType, DefaultServerType)
	opts.Location = cmp.Or(opts.Location, DefaultLocation)
	if opts.MaxUserData <= 0 {
		opts.MaxUserData = cloudinit.MaxSize
	}
	p := &Provider{
		opts:        opts,
		log:         opts.Logger,
		client:      opts.HTTPClient,
		byID:        map[string]*Server{},
		byName:      map[string]*Server{},
		foreign:     map[string]provider.Server{},
		unavailable: map[string]bool{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.iso = newIsolation(opts.NoNamespace, p.log)
	if p.opts.PhoneHomeInterval <= 0 {
		p.opts.PhoneHomeInterval = DefaultPhoneHomeInterval
	}
	if p.client == nil {
		// cloud-init opens a new requests.Session per request: a new
		// connection each, though it asks for keep-alive. Each request
		// gets a transport cloned from base, closed after the answer.
		p.base = http.DefaultTransport.(*http.Transport).Clone()
	}
	return p
}

// Create validates the request, applies the faults for its name, and boots
// a simulated server; it returns at once with Status "initializing". A name
// that already has a server adopts it (no second boot) when the server
// carries every label of the request; otherwise, or when the name belongs
// to a foreign server (AddForeign), the error wraps provider.ErrConflict.
// User-data over Options.MaxUserData, or that is not a cloud-config with a
// phone_home and at least one user with an SSH key, and a server type,
// location or image that is not a name (letters, digits, '.', '_', '-')
// are errors wrapping provider.ErrInvalid. A location made unavailable
// (SetUnavailable) is provider.ErrUnavailable; refused credentials
// (SetUnauthorized) provider.ErrUnauthorized.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	if err := req.Validate(); err != nil {
		return provider.Server{}, fmt.Errorf("fake: create server: %w", err)
	}
	if n := len(req.UserData); n > p.opts.MaxUserData {
		return provider.Server{}, fmt.Errorf("fake: create server %q: %w: user-data is %d bytes, over the limit of %d",
			req.Name, provider.ErrInvalid, n, p.opts.MaxUserData)
	}
	if err := checkNames(req); err != nil {
		return provider.Server{}, fmt.Errorf("fake: create server %q: %w", req.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return provider.Server{}, fmt.Errorf("fake: create server %q: %w", req.Name, err)
	}
	if err := p.credentials(); err != nil {
		return provider.Server{}, fmt.Errorf("fake: create server %q: %w", req.Name, err)
	}
	var faults Faults
	if p.opts.Faults != nil {
		faults = p.opts.Faults(req.Name)
	}
	if faults.CreateErr != nil {
		return provider.Server{}, faults.CreateErr
	}
	location := cmp.Or(req.Location, p.opts.Location)

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return provider.Server{}, fmt.Errorf("fake: create server %q: %w", req.Name, ErrClosed)
	}
	for _, f := range p.foreign {
		if f.Name == req.Name {
			return provider.Server{}, fmt.Errorf("fake: create server %q: %w (server %s)", req.Name, provider.ErrConflict, f.ID)
		}
	}
	if s, ok := p.byName[req.Name]; ok {
		for k, v := range req.Labels {
			if got, ok := s.labels[k]; !ok || got != v {
				return provider.Server{}, fmt.Errorf("fake: create server %q: %w (server %s has other labels)", req.Name, provider.ErrConflict, s.id)
			}
		}
		p.log.Debug("fake: adopting server", "name", req.Name, "id", s.id)
		return s.info(), nil
	}
	if p.unavailable[location] {
		return provider.Server{}, fmt.Errorf("fake: create server %q: %w", req.Name, provider.ErrUnavailable)
	}
	spec, err := parseUserData(req.UserData)
	if err != nil {
		return provider.Server{}, fmt.Errorf("fake: create server %q: %w", req.Name, err)
	}
	if p.dir == "" {
		if p.opts.Dir != "" {
			if err := os.MkdirAll(p.opts.Dir, 0o755); err != nil {
				return provider.Server{}, fmt.Errorf("fake: create server %q: sandbox dir: %w", req.Name, err)
			}
			p.dir = p.opts.Dir
			if !shellSafe(p.dir) {
				// Commands name sandbox paths as plain words: reach an
				// awkward Dir through a symbolic link that is one.
				link, err := safeLink(p.dir)
				if err != nil {
					return provider.Server{}, fmt.Errorf("fake: create server %q: sandbox dir: %w", req.Name, err)
				}
				p.dir, p.linkDir = filepath.Join(link, "dir"), link
			}
		} else {
			d, err := os.MkdirTemp("", "hatchery-fake-")
			if err != nil {
				return provider.Server{}, fmt.Errorf("fake: create server %q: sandbox dir: %w", req.Name, err)
			}
			p.dir, p.tempDir = d, true
		}
	}
	p.next++
	id := strconv.Itoa(p.next)
	s, err := boot(serverConfig{
		id:         id,
		name:       req.Name,
		labels:     maps.Clone(req.Labels),
		serverType: cmp.Or(req.ServerType, p.opts.ServerType),
		location:   location,
		spec:       spec,
		faults:     faults,
		parent:     p.dir,
		keep:       p.opts.Keep,
		delay:      p.opts.BootDelay,
		interval:   p.opts.PhoneHomeInterval,
		client:     p.client,
		transport:  p.base,
		iso:        p.iso,
		log:        p.log.With("server", req.Name, "id", id),
	})
	if err != nil {
		return provider.Server{}, fmt.Errorf("fake: create server %q: %w", req.Name, err)
	}
	p.byID[id] = s
	p.byName[req.Name] = s
	p.log.Info("fake: server created", "name", req.Name, "id", id, "ssh", s.addr)
	return s.info(), nil
}

// Get returns the server with the given ID (a foreign one included), or an
// error wrapping provider.ErrNotFound when it is unknown or deleted.
func (p *Provider) Get(ctx context.Context, id string) (provider.Server, error) {
	if err := ctx.Err(); err != nil {
		return provider.Server{}, fmt.Errorf("fake: get server %q: %w", id, err)
	}
	if err := p.credentials(); err != nil {
		return provider.Server{}, fmt.Errorf("fake: get server %q: %w", id, err)
	}
	p.mu.Lock()
	s, ok := p.byID[id]
	f, isForeign := p.foreign[id]
	p.mu.Unlock()
	switch {
	case ok:
		return s.info(), nil
	case isForeign:
		f.Labels = maps.Clone(f.Labels)
		return f, nil
	}
	return provider.Server{}, fmt.Errorf("fake: get server %q: %w", id, provider.ErrNotFound)
}

// Delete stops the server and removes its sandbox (unless Options.Keep).
// Deleting an unknown or deleted server succeeds.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake: delete server %q: %w", id, err)
	}
	if err := p.credentials(); err != nil {
		return fmt.Errorf("fake: delete server %q: %w", id, err)
	}
	if p.remove(id) {
		p.log.Info("fake: server deleted", "id", id)
	}
	return nil
}

// remove stops and forgets the server with the given ID and reports
// whether there was one.
func (p *Provider) remove(id string) bool {
	p.mu.Lock()
	s, ok := p.byID[id]
	if ok {
		delete(p.byID, id)
		delete(p.byName, s.name)
	}
	_, isForeign := p.foreign[id]
	delete(p.foreign, id)
	p.mu.Unlock()
	if ok {
		s.stop()
	}
	return ok || isForeign
}

// List returns the live servers of this Provider that carry every label of
// selector (all of them for an empty selector), oldest first; foreign
// servers (AddForeign) never. Like every call, it fails with
// provider.ErrUnauthorized while credentials are refused.
func (p *Provider) List(ctx context.Context, selector map[string]string) ([]provider.Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fake: list servers: %w", err)
	}
	if err := p.credentials(); err != nil {
		return nil, fmt.Errorf("fake: list servers: %w", err)
	}
	var out []provider.Server
	for _, s := range p.Servers() {
		info := s.info()
		if hasLabels(info.Labels, selector) {
			out = append(out, info)
		}
	}
	return out, nil
}

// hasLabels reports whether have holds every label of want.
func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// CheckCredentials returns nil, or an error wrapping
// provider.ErrUnauthorized while SetUnauthorized(true) holds.
func (p *Provider) CheckCredentials(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake: check credentials: %w", err)
	}
	if err := p.credentials(); err != nil {
		return fmt.Errorf("fake: check credentials: %w", err)
	}
	return nil
}

// credentials returns the error every call fails with while credentials
// are refused, else nil.
func (p *Provider) credentials() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refused {
		return fmt.Errorf("%w: revoked by SetUnauthorized", provider.ErrUnauthorized)
	}
	return nil
}

// SetUnauthorized makes every call (Create, Get, Delete, List,
// CheckCredentials) fail with provider.ErrUnauthorized, as a cloud does
// with a revoked token, or stops it. Servers keep running.
func (p *Provider) SetUnauthorized(refused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused = refused
}

// SetUnavailable makes Create in location fail with
// provider.ErrUnavailable, as a cloud out of capacity there does, or
// stops it. Adopting an existing server of the name still works.
func (p *Provider) SetUnavailable(location string, unavailable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if unavailable {
		p.unavailable[location] = true
	} else {
		delete(p.unavailable, location)
	}
}

// InstanceID returns the instance ID a server posts at phone_home: "i-"
// followed by its ID, as Server.InstanceID.
func (p *Provider) InstanceID(serverID string) string { return "i-" + serverID }

// MaxUserData returns the largest user-data Create accepts
// (Options.MaxUserData).
func (p *Provider) MaxUserData() int { return p.opts.MaxUserData }

// AddForeign registers a server this Provider did not create, as another
// control plane or a person sharing the account would, and returns its
// ID: Create of its name fails with provider.ErrConflict, Get returns it,
// List never does, Delete removes it. It runs nothing.
func (p *Provider) AddForeign(name string, labels map[string]string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	id := strconv.Itoa(p.next)
	p.foreign[id] = provider.Server{
		ID: id, Name: name, IPv4: "127.0.0.1", Status: "running", Labels: maps.Clone(labels),
		ServerType: p.opts.ServerType, Location: p.opts.Location, Created: time.Now(),
	}
	return id
}

// Vanish deletes a server behind its user's back, as someone in the
// cloud's console would: it stops as with Delete (Get then wraps
// provider.ErrNotFound, List leaves it out). It reports whether the
// server existed, and works whatever SetUnauthorized says.
func (p *Provider) Vanish(id string) bool {
	ok := p.remove(id)
	if ok {
		p.log.Info("fake: server vanished", "id", id)
	}
	return ok
}

// PowerOff stops a server behind its user's back, as a crash or a
// person would, but keeps it: Get and List report it with Status "off",
// its SSH port refuses connections, nothing it ran keeps running. It
// reports whether the server exists. Delete removes it as usual.
func (p *Provider) PowerOff(id string) bool {
	s, ok := p.Server(id)
	if ok {
		s.stop()
		p.log.Info("fake: server powered off", "id", id)
	}
	return ok
}

// Close deletes every server and waits until all of them have stopped. A
// closed Provider refuses Create; Close is idempotent.
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed = true
	servers := slices.Collect(maps.Values(p.byID))
	clear(p.byID)
	clear(p.byName)
	clear(p.foreign)
	dir, temp, link := p.dir, p.tempDir, p.linkDir
	p.mu.Unlock()
	if link != "" {
		defer os.RemoveAll(link) // the link, not what it points to
	}

	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(s.stop)
	}
	wg.Wait()
	p.iso.stop()
	if temp && !p.opts.Keep {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("fake: remove sandboxes: %w", err)
		}
	}
	return nil
}

// Server returns the live server with the given ID.
func (p *Provider) Server(id string) (*Server, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.byID[id]
	return s, ok
}

// ServerByName returns the live server with the given name.
func (p *Provider) ServerByName(name string) (*Server, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.byName[name]
	return s, ok
}

// Servers returns the live servers, oldest first.
func (p *Provider) Servers() []*Server {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Collect(maps.Values(p.byID))
	slices.SortFunc(out, func(a, b *Server) int { return a.seq - b.seq })
	return out
}

// checkNames checks the request's server type, location and image ("" is
// fine): names as clouds have them, letters, digits, '.', '_' and '-', at
// most 63 bytes. Errors wrap provider.ErrInvalid.
func checkNames(req provider.CreateRequest) error {
	for _, f := range []struct{ field, v string }{
		{"ServerType", req.ServerType}, {"Location", req.Location}, {"Image", req.Image},
	} {
		if len(f.v) > 63 || strings.IndexFunc(f.v, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
		}) >= 0 {
			return fmt.Errorf("%w: %s %q is not a name", provider.ErrInvalid, f.field, f.v)
		}
	}
	return nil
}

// shellSafe reports whether a shell reads path as one plain word: the
// simulated server rewrites absolute paths in commands into the sandbox
// without quoting them (they may sit inside the command's own quotes).
func shellSafe(path string) bool {
	for i := 0; i < len(path); i++ {
		c := path[i]
		if !(isLetter(c) || isDigit(c) || strings.IndexByte("/._-+,@:%=", c) >= 0) {
			return false
		}
	}
	return path != ""
}

// safeLink makes a new directory of shell-safe name holding "dir", a
// symbolic link to dir, and returns the directory.
func safeLink(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	link, err := os.MkdirTemp("", "hatchery-fake-")
	if err != nil {
		return "", err
	}
	if !shellSafe(link) {
		os.RemoveAll(link)
		return "", fmt.Errorf("neither %q nor the temporary directory %q is a plain word to a shell", dir, link)
	}
	if err := os.Symlink(abs, filepath.Join(link, "dir")); err != nil {
		os.RemoveAll(link)
		return "", err
	}
	return link, nil
}
