package provision_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// placingProvider has no capacity in some locations, records the create
// requests it gets, and reports where a server ended up when report is set.
type placingProvider struct {
	provider.Provider
	full   map[string]bool
	report bool

	mu   sync.Mutex
	reqs []provider.CreateRequest // without user-data
}

func (p *placingProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	p.mu.Lock()
	r := req
	r.UserData = nil
	p.reqs = append(p.reqs, r)
	p.mu.Unlock()
	if p.full[req.Location] {
		return provider.Server{}, fmt.Errorf("placing: no %s in %s: %w", req.ServerType, req.Location, provider.ErrUnavailable)
	}
	srv, err := p.Provider.Create(ctx, req)
	if err == nil && p.report {
		srv.Location, srv.ServerType = "dc-"+req.Location, "type-"+req.ServerType
	}
	return srv, err
}

func (p *placingProvider) requests() []provider.CreateRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]provider.CreateRequest(nil), p.reqs...)
}

func locations(reqs []provider.CreateRequest) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Location)
	}
	return out
}

// A tenant's server type, image and locations come from PlacementFunc.
// Locations without capacity are skipped within the attempt, which is not
// spent; the record says where the server ended up: the provider's word
// when it says, else the request's.
func TestPlacement(t *testing.T) {
	t.Parallel()
	place := provision.Placement{ServerType: "cx-big", Image: "debian-13", Locations: []string{"a", "b", "c"}}
	tests := []struct {
		name      string
		full      []string
		report    bool
		wantLoc   string
		wantType  string
		wantTried []string
	}{
		{name: "first has capacity", wantLoc: "a", wantType: "cx-big", wantTried: []string{"a"}},
		{name: "first two full", full: []string{"a", "b"}, wantLoc: "c", wantType: "cx-big", wantTried: []string{"a", "b", "c"}},
		{name: "provider reports", full: []string{"a"}, report: true, wantLoc: "dc-b", wantType: "type-cx-big", wantTried: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{store: memory.New()})
			pp := &placingProvider{Provider: b.cloud, full: map[string]bool{}, report: tt.report}
			for _, l := range tt.full {
				pp.full[l] = true
			}
			cfg := b.config("r1", nil)
			cfg.Provider = pp
			var asked sync.Map
			cfg.PlacementFunc = func(_ context.Context, r store.Record) (provision.Placement, error) {
				asked.Store(r.ID, r.Status)
				return place, nil
			}
			p := b.replica(cfg)
			id := newID()
			require.NoError(t, p.Provision(context.Background(), id))
			r := waitReady(t, p, id)
			assert.Equal(t, tt.wantLoc, r.Location)
			assert.Equal(t, tt.wantType, r.ServerType)
			assert.Zero(t, r.Attempts, "capacity errors spend no attempt")
			assert.NotContains(t, b.events.statuses(id), store.StatusFailed)
			reqs := pp.requests()
			assert.Equal(t, tt.wantTried, locations(reqs))
			for _, req := range reqs {
				assert.Equal(t, "cx-big", req.ServerType)
				assert.Equal(t, "debian-13", req.Image)
				assert.Equal(t, provision.DefaultServerName(id), req.Name)
			}
			st, ok := asked.Load(id)
			require.True(t, ok, "PlacementFunc got the tenant's record")
			assert.Equal(t, store.StatusCreating, st)
		})
	}
}

// When every location is full the attempt fails (ErrUnavailable, not
// final) and the retry starts from the first location again.
func TestPlacementAllFull(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	pp := &placingProvider{Provider: b.cloud, full: map[string]bool{"a": true, "b": true}}
	cfg := b.config("r1", nil)
	cfg.Provider = pp
	cfg.MaxAttempts = 2
	cfg.PlacementFunc = func(context.Context, store.Record) (provision.Placement, error) {
		return provision.Placement{Locations: []string{"a", "b"}}, nil
	}
	p := b.replica(cfg)
	id := newID()
	err := p.Provision(context.Background(), id)
	require.ErrorIs(t, err, provider.ErrUnavailable)
	assert.Contains(t, err.Error(), "(location b)", "the error names the last location tried")
	r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Equal(t, 2, r.Attempts)
	assert.False(t, strings.HasPrefix(r.Error, "final: "), r.Error)
	assert.Equal(t, []string{"a", "b", "a", "b"}, locations(pp.requests()))
	assert.Empty(t, b.fake.Servers())
}

// PlacementFunc's error fails the create attempt; without PlacementFunc the
// request leaves the choice to the driver.
func TestPlacementErrorAndDefault(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	pp := &placingProvider{Provider: b.cloud, full: map[string]bool{}}
	cfg := b.config("r1", nil)
	cfg.Provider = pp
	cfg.MaxAttempts = 1
	errPlace := errors.New("no plan for this tenant")
	cfg.PlacementFunc = func(context.Context, store.Record) (provision.Placement, error) {
		return provision.Placement{}, errPlace
	}
	p := b.replica(cfg)
	id := newID()
	err := p.Provision(context.Background(), id)
	require.ErrorIs(t, err, errPlace)
	assert.Contains(t, err.Error(), "create: placement: ")
	assert.Empty(t, pp.requests())

	cfg = b.config("r2", nil)
	cfg.Provider = pp
	p = b.replica(cfg)
	id = newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r := waitReady(t, p, id)
	require.Len(t, pp.requests(), 1)
	req := pp.requests()[0]
	assert.Empty(t, req.ServerType+req.Location+req.Image, "the driver's defaults")
	// Where the server ended up, as the provider reports it: the fake's
	// defaults.
	assert.Equal(t, "local", r.Location)
	assert.Equal(t, "sim", r.ServerType)
}

// credentialsProvider answers CheckCredentials with err.
type credentialsProvider struct {
	provider.Provider
	err   error
	calls atomicCounter
}

func (c *credentialsProvider) CheckCredentials(context.Context) error {
	c.calls.add()
	return c.err
}

// A provider that refuses the credentials stops Run at once, before any
// work; CheckProvider says so too. A check that cannot tell does not stop
// Run, and a provider that cannot check is fine.
func TestCheckProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, bundleOpts{store: memory.New()})

	// A tenant left pending: Run's Resume would create its server.
	id := newID()
	require.NoError(t, b.store.Create(ctx, store.Record{ID: id, Status: store.StatusPending}))
	refused := &credentialsProvider{Provider: b.cloud, err: fmt.Errorf("hetzner: 401 unauthorized: %w", provider.ErrUnauthorized)}
	cfg := b.config("r1", nil)
	cfg.Provider = refused
	p := b.replica(cfg)
	require.ErrorIs(t, p.CheckProvider(ctx), provider.ErrUnauthorized)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, provider.ErrUnauthorized)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	r, err := b.store.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusPending, r.Status, "no work started")
	assert.Empty(t, b.fake.Servers())

	// Could not tell: Run goes on (and the pending tenant gets ready).
	unsure := &credentialsProvider{Provider: b.cloud, err: errors.New("connection refused")}
	cfg = b.config("r2", nil)
	cfg.Provider = unsure
	p = b.replica(cfg)
	assert.Error(t, p.CheckProvider(ctx))
	b.run(p)
	waitReady(t, p, id)
	assert.EqualValues(t, 2, unsure.calls.n.Load(), "ours, then Run's")

	p = b.replica(b.config("r3", nil))
	assert.NoError(t, p.CheckProvider(ctx), "a provider that cannot check")
}

// A create refused for the credentials is final: never retried.
func TestUnauthorizedIsFinal(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{faults: func(string) fake.Faults {
		return fake.Faults{CreateErr: fmt.Errorf("hetzner: 403 forbidden: %w", provider.ErrUnauthorized)}
	}})
	p := b.replica(b.config("r1", nil))
	b.run(p)
	id := newID()
	err := p.Provision(context.Background(), id)
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	var pe *provision.Error
	require.ErrorAs(t, err, &pe)
	assert.True(t, pe.Final)
	r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusFailed, r.Status)
	assert.Equal(t, 1, r.Attempts, "not retried")
	assert.True(t, strings.HasPrefix(r.Error, "final: create: "), r.Error)
}

// limitedProvider has a user-data limit of its own.
type limitedProvider struct {
	provider.Provider
	limit int
}

func (l limitedProvider) MaxUserData() int { return l.limit }

// The user-data is checked against the provider's limit (when it has
// one), or the bootstrap's MaxSize when that is smaller.
func TestUserDataLimitFromProvider(t *testing.T) {
	t.Parallel()
	filler := strings.Repeat("the quick brown fox jumps over the lazy dog\n", 1000) // 44 KB
	tests := []struct {
		name      string
		limit     int // the provider's; 0: the fake's own (1 MiB); -1: none
		bootstrap int // the bootstrap's MaxSize
		wantLimit int // 0: ready
	}{
		{name: "provider allows more than the default", limit: 64 << 10},
		{name: "the provider's own limit: the fake's, 1 MiB"},
		{name: "no limit of the provider's: the default", limit: -1, wantLimit: cloudinit.MaxSize},
		{name: "provider allows less", limit: 40 << 10, wantLimit: 40 << 10},
		{name: "bootstrap's is smaller", limit: 64 << 10, bootstrap: 40 << 10, wantLimit: 40 << 10},
		{name: "bootstrap's is larger", limit: 40 << 10, bootstrap: 64 << 10, wantLimit: 40 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The fake takes anything; the limit checked is the wrapper's.
			b := setup(t, bundleOpts{store: memory.New(), maxUserData: 1 << 20})
			cfg := b.config("r1", nil)
			switch {
			case tt.limit > 0:
				cfg.Provider = limitedProvider{Provider: b.cloud, limit: tt.limit}
			case tt.limit < 0:
				cfg.Provider = struct{ provider.Provider }{b.cloud} // hides MaxUserData
			}
			cfg.BootstrapFunc = bootstrapWith(func(c *cloudinit.Config) {
				c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/etc/filler", Content: filler})
				c.MaxSize = tt.bootstrap
			})
			p := b.replica(cfg)
			id := newID()
			err := p.Provision(context.Background(), id)
			if tt.wantLimit == 0 {
				require.NoError(t, err)
				waitReady(t, p, id)
				return
			}
			var se *cloudinit.SizeError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.wantLimit, se.Limit)
			assert.Empty(t, b.fake.Servers())
		})
	}
}
