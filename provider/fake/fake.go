package fake

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hatchery-dev/hatchery/provider"
)

// DefaultPhoneHomeInterval is the pause between phone_home tries when
// Options.PhoneHomeInterval is zero: cloud-init's own 3 seconds.
const DefaultPhoneHomeInterval = 3 * time.Second

// Options configures a Provider. The zero value works.
type Options struct {
	// BootDelay is how long after Create the server phones home.
	BootDelay time.Duration
	// PhoneHomeInterval is the pause between phone_home tries; 0 means
	// DefaultPhoneHomeInterval.
	PhoneHomeInterval time.Duration
	// HTTPClient posts phone_home; nil means a client of the provider's own
	// that opens a new connection per try, as cloud-init does.
	HTTPClient *http.Client
	// Logger receives what the simulated servers do; nil means quiet.
	Logger *slog.Logger
	// Faults returns the faults to inject for a server name; nil means none.
	Faults func(name string) Faults
	// Dir is where the servers' sandboxes go, one directory per server;
	// "" means a temporary directory, removed by Close unless Keep.
	Dir string
	// Keep leaves the sandboxes in place after Delete and Close.
	Keep bool
	// NoNamespace runs commands without the read-only mount namespace
	// even where it could be set up (see the package documentation): the
	// command text is still rewritten and checked.
	NoNamespace bool
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
	// CloudInitError makes `cloud-init status` report "error" (exit 1) with
	// a runcmd failure in --long, as when the bootstrap failed; phone_home
	// is still posted, as cloud-init does.
	CloudInitError bool
}

// Provider simulates a cloud whose servers run in-process. It implements
// provider.Provider and is safe for concurrent use.
type Provider struct {
	opts   Options
	log    *slog.Logger
	client *http.Client
	own    *http.Transport // the client's transport when it is ours
	iso    *isolation

	mu      sync.Mutex
	closed  bool
	dir     string // where sandboxes go, created on first use
	tempDir bool   // dir is ours to remove
	next    int
	byID    map[string]*Server
	byName  map[string]*Server
}

var _ provider.Provider = (*Provider)(nil)

// New returns a Provider with no servers.
func New(opts Options) *Provider {
	p := &Provider{
		opts:   opts,
		log:    opts.Logger,
		client: opts.HTTPClient,
		byID:   map[string]*Server{},
		byName: map[string]*Server{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.iso = newIsolation(opts.NoNamespace, p.log)
	if p.opts.PhoneHomeInterval <= 0 {
		p.opts.PhoneHomeInterval = DefaultPhoneHomeInterval
	}
	if p.client == nil {
		// cloud-init opens a new requests.Session per try; no keep-alive
		// also means no idle connection outlives Close.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableKeepAlives = true
		p.own = t
		p.client = &http.Client{Transport: t}
	}
	return p
}

// Create validates the request, applies the faults for its name, and boots
// a simulated server; it returns at once with Status "initializing". A name
// that already has a server returns that server (adoption): no second boot.
// User-data that is not a cloud-config with a phone_home and at least one
// user with an SSH key is an error wrapping provider.ErrInvalid.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	if err := req.Validate(); err != nil {
		return provider.Server{}, err
	}
	if err := ctx.Err(); err != nil {
		return provider.Server{}, err
	}
	var faults Faults
	if p.opts.Faults != nil {
		faults = p.opts.Faults(req.Name)
	}
	if faults.CreateErr != nil {
		return provider.Server{}, faults.CreateErr
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return provider.Server{}, fmt.Errorf("%w: fake provider closed", provider.ErrUnavailable)
	}
	if s, ok := p.byName[req.Name]; ok {
		p.log.Debug("fake: adopting server", "name", req.Name, "id", s.id)
		return s.info(), nil
	}
	spec, err := parseUserData(req.UserData)
	if err != nil {
		return provider.Server{}, fmt.Errorf("fake: create %q: %w", req.Name, err)
	}
	if p.dir == "" {
		if p.opts.Dir != "" {
			if err := os.MkdirAll(p.opts.Dir, 0o755); err != nil {
				return provider.Server{}, fmt.Errorf("fake: sandbox dir: %w", err)
			}
			p.dir = p.opts.Dir
		} else {
			d, err := os.MkdirTemp("", "hatchery-fake-")
			if err != nil {
				return provider.Server{}, fmt.Errorf("fake: sandbox dir: %w", err)
			}
			p.dir, p.tempDir = d, true
		}
	}
	p.next++
	id := strconv.Itoa(p.next)
	s, err := boot(serverConfig{
		id:       id,
		name:     req.Name,
		labels:   maps.Clone(req.Labels),
		spec:     spec,
		faults:   faults,
		parent:   p.dir,
		keep:     p.opts.Keep,
		delay:    p.opts.BootDelay,
		interval: p.opts.PhoneHomeInterval,
		client:   p.client,
		iso:      p.iso,
		log:      p.log.With("server", req.Name, "id", id),
	})
	if err != nil {
		return provider.Server{}, fmt.Errorf("fake: create %q: %w", req.Name, err)
	}
	p.byID[id] = s
	p.byName[req.Name] = s
	p.log.Info("fake: server created", "name", req.Name, "id", id, "ssh", s.addr)
	return s.info(), nil
}

// Get returns the server with the given ID, or an error wrapping
// provider.ErrNotFound when it is unknown or deleted.
func (p *Provider) Get(ctx context.Context, id string) (provider.Server, error) {
	if err := ctx.Err(); err != nil {
		return provider.Server{}, err
	}
	s, ok := p.Server(id)
	if !ok {
		return provider.Server{}, fmt.Errorf("fake: server %q: %w", id, provider.ErrNotFound)
	}
	return s.info(), nil
}

// Delete stops the server and removes its sandbox (unless Options.Keep).
// Deleting an unknown or deleted server succeeds.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	s, ok := p.byID[id]
	if ok {
		delete(p.byID, id)
		delete(p.byName, s.name)
	}
	p.mu.Unlock()
	if !ok {
		return nil
	}
	s.stop()
	p.log.Info("fake: server deleted", "name", s.name, "id", id)
	return nil
}

// Close deletes every server and waits until all of them have stopped. A
// closed Provider refuses Create; Close is idempotent.
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed = true
	servers := slices.Collect(maps.Values(p.byID))
	clear(p.byID)
	clear(p.byName)
	dir, temp := p.dir, p.tempDir
	p.mu.Unlock()

	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(s.stop)
	}
	wg.Wait()
	p.iso.stop()
	if p.own != nil {
		p.own.CloseIdleConnections()
	}
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
