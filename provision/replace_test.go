package provision_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// deleteHook is a provider that calls after once a Delete succeeded, and
// can make Delete fail; it passes the wrapped provider's abilities on.
type deleteHook struct {
	*countingProvider
	mu      sync.Mutex
	after   func(id string)
	failing func(id string) error // nil: Delete works
	deletes []string
}

func (d *deleteHook) Delete(ctx context.Context, id string) error {
	d.mu.Lock()
	failing, after := d.failing, d.after
	d.mu.Unlock()
	if failing != nil {
		if err := failing(id); err != nil {
			return err
		}
	}
	if err := d.countingProvider.Delete(ctx, id); err != nil {
		return err
	}
	d.mu.Lock()
	d.deletes = append(d.deletes, id)
	d.mu.Unlock()
	if after != nil {
		after(id)
	}
	return nil
}

func (d *deleteHook) setFailing(f func(id string) error) {
	d.mu.Lock()
	d.failing = f
	d.mu.Unlock()
}

// createdIDs returns every server ID the provider's Create returned,
// whatever the name.
func (c *countingProvider) createdIDs() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for _, ids := range c.ids {
		for id := range ids {
			out[id] = true
		}
	}
	return out
}

// liveServer returns the fake server a record names.
func liveServer(t testing.TB, b *bundle, r store.Record) *fake.Server {
	t.Helper()
	s, ok := b.fake.Server(r.ServerID)
	require.True(t, ok, "no server %s", r.ServerID)
	return s
}

// Replace gives a ready tenant a new server, named apart from the old one,
// with a new callback nonce; the old server keeps serving (it exists, its
// unit active) until the new one is injected, and is deleted then. The
// phone_home of the old server, replayed during the replacement, is
// refused. The events name the retiring server.
func TestReplace(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New(), bootDelay: 300 * time.Millisecond})
	var (
		mu         sync.Mutex
		oldID      string
		violations []string
		retiring   []provision.Event
	)
	cfg := b.config("r1", nil)
	cfg.OnEvent = func(e provision.Event) {
		b.events.add(e)
		if e.RetiringServer == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		retiring = append(retiring, e)
		if e.To == store.StatusReady {
			return
		}
		// Until ready, the old server serves.
		if s, ok := b.fake.Server(oldID); !ok || !s.Unit(unit).Active {
			violations = append(violations, e.String())
		}
	}
	p := b.replica(cfg)
	ctx := context.Background()
	id := newID()
	require.NoError(t, p.Provision(ctx, id))
	before := waitReady(t, p, id)
	old := liveServer(t, b, before)
	mu.Lock()
	oldID = old.ID()
	mu.Unlock()

	require.NoError(t, p.Replace(ctx, id))
	during, err := b.store.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusCloudInit, during.Status)
	assert.Equal(t, old.ID(), during.RetiringServerID)
	assert.NotEqual(t, old.ID(), during.ServerID)
	assert.Empty(t, during.HostKeys, "the old pin is gone: the new server's phone_home sets its own")
	assert.NotEqual(t, before.CallbackNonce, during.CallbackNonce, "a new server, a new nonce")
	assert.NotEqual(t, before.ServerName, during.ServerName, "a new name: providers adopt by name")
	assert.True(t, strings.HasPrefix(during.ServerName, provision.DefaultServerName(id)+"-"), during.ServerName)
	// The old server's phone_home, replayed with its token, does not move
	// the new attempt: the token is bound to the old server's nonce; and
	// with the new token, the old server's instance ID does not match.
	assert.Equal(t, http.StatusUnauthorized, postForged(t, p.CallbackURL(before), old.InstanceID()))
	assert.Equal(t, http.StatusConflict, postForged(t, p.CallbackURL(during), old.InstanceID()))

	r := waitReady(t, p, id)
	assert.Empty(t, r.RetiringServerID)
	assert.Equal(t, during.ServerID, r.ServerID)
	assert.Equal(t, during.ServerName, r.ServerName)
	_, ok := b.fake.Server(old.ID())
	assert.False(t, ok, "the old server is deleted")
	assert.Len(t, b.fake.Servers(), 1)
	srv := liveServer(t, b, r)
	require.Len(t, r.HostKeys, 1)
	assert.Contains(t, srv.HostKeyLine(), r.HostKeys[0], "pinned to the new server's key")
	assert.Equal(t, 1, injections(srv))
	assert.True(t, srv.Unit(unit).Active)
	assert.Equal(t, "API_TOKEN="+b.secrets.token(id)+"\n", readFile(t, srv.Path(envPath)))
	assert.Equal(t, 1, injections(old), "the old server was not injected again")
	assert.Equal(t, r.IPv4, srv.Info().IPv4, "the record has the new server's address")

	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, violations, "the old server serves until the new one is ready")
	var path []store.Status
	for _, e := range retiring {
		if e.Step == "" {
			path = append(path, e.To)
		}
		assert.Equal(t, old.ID(), e.RetiringServer)
	}
	assert.Equal(t, []store.Status{store.StatusCreating, store.StatusCloudInit, store.StatusInjectingSecrets, store.StatusReady}, path)
	assert.Contains(t, retiring[0].String(), "replacing server "+old.ID())
}

// Replace is refused for a tenant that is neither ready nor failed, and
// for an unknown one; a deleted tenant cannot be replaced.
func TestReplaceRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New(), bootDelay: 2 * time.Second})
	p := b.replica(b.config("r1", nil))
	ctx := context.Background()
	assert.ErrorIs(t, p.Replace(ctx, newID()), store.ErrNotFound)
	assert.ErrorIs(t, p.Replace(ctx, "nope"), store.ErrInvalid)
	id := newID()
	require.NoError(t, p.Provision(ctx, id))
	assert.ErrorIs(t, p.Replace(ctx, id), provision.ErrNotReady, "cloud_init")
	require.NoError(t, p.Deprovision(ctx, id))
	assert.ErrorIs(t, p.Replace(ctx, id), provision.ErrNotReady, "deleted")
	assert.Empty(t, b.fake.Servers())
}

// A failed tenant (its injection failed for good) is replaced too: the
// failed server retires once the new one is ready.
func TestReplaceFailedTenant(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	var broken atomic.Bool
	broken.Store(true)
	cfg := b.config("r1", nil)
	cfg.MaxAttempts = 1
	cfg.StepsFunc = func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
		if broken.Load() {
			return nil, errors.New("the app's package is missing")
		}
		return steps(ctx, in)
	}
	p := b.replica(cfg)
	ctx := context.Background()
	id := newID()
	require.NoError(t, p.Provision(ctx, id))
	failed, err := p.Wait(ctxTimeout(t, 30*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, failed.Status)

	broken.Store(false)
	require.NoError(t, p.Replace(ctx, id))
	r := waitReady(t, p, id)
	assert.NotEqual(t, failed.ServerID, r.ServerID)
	assert.Zero(t, r.Attempts)
	_, ok := b.fake.Server(failed.ServerID)
	assert.False(t, ok, "the failed server retired")
	assert.Len(t, b.fake.Servers(), 1)
}

// A replacement that fails for good keeps the old server, which goes on
// serving: the record stays failed with RetiringServerID naming it, and
// no server is deleted but the failed attempts'. Retry takes the
// replacement up again; Deprovision during a replacement deletes both
// servers.
func TestReplaceFailsKeepsTheOldServer(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	var broken atomic.Bool
	cfg := b.config("r1", nil)
	cfg.MaxAttempts = 2
	cfg.StepsFunc = func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
		if broken.Load() {
			return nil, errors.New("the new image lacks the app's runtime")
		}
		return steps(ctx, in)
	}
	p := b.replica(cfg)
	b.run(p)
	ctx := context.Background()
	id := newID()
	require.NoError(t, p.Provision(ctx, id))
	before := waitReady(t, p, id)
	old := liveServer(t, b, before)

	broken.Store(true)
	require.NoError(t, p.Replace(ctx, id))
	r, err := p.Wait(ctxTimeout(t, 30*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Equal(t, 2, r.Attempts, "the replacement had its attempts")
	assert.Equal(t, old.ID(), r.RetiringServerID, "the old server is kept")
	assert.True(t, strings.HasPrefix(r.Error, "inject: "), r.Error)
	kept, ok := b.fake.Server(old.ID())
	require.True(t, ok, "the old server is not deleted")
	assert.True(t, kept.Unit(unit).Active, "and serves")
	assert.Len(t, b.fake.Servers(), 2, "the old server and the failed new one")

	broken.Store(false)
	require.NoError(t, p.Retry(ctx, id))
	r = waitReady(t, p, id)
	assert.Empty(t, r.RetiringServerID)
	_, ok = b.fake.Server(old.ID())
	assert.False(t, ok)
	assert.Len(t, b.fake.Servers(), 1)

	// Deprovision in the middle of a replacement deletes both servers.
	require.NoError(t, p.Replace(ctx, id))
	during, err := b.store.Get(ctx, id)
	require.NoError(t, err)
	require.NotEmpty(t, during.RetiringServerID)
	require.NoError(t, p.Deprovision(ctx, id))
	gone, err := b.store.Get(ctx, id)
	require.NoError(t, err)
	assert.Empty(t, gone.ServerID)
	assert.Empty(t, gone.RetiringServerID)
	require.Eventually(t, func() bool { return len(b.fake.Servers()) == 0 }, 10*time.Second, 10*time.Millisecond,
		"both servers deleted")
}

// The retiring server's deletion that fails is retried within the
// attempt; when it keeps failing the attempt fails (phase retire), the
// record keeps both servers, and the retry deletes the old one.
func TestReplaceRetireFails(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	dh := &deleteHook{countingProvider: b.cloud}
	var stuck atomic.Bool // the provider refuses to delete the old server
	cfg := b.config("r1", nil)
	cfg.Provider = dh
	cfg.CreateTimeout = 500 * time.Millisecond // bounds the retire's tries
	var retireFailures atomicCounter
	cfg.OnEvent = func(e provision.Event) {
		b.events.add(e)
		if e.To == store.StatusFailed && e.Err != nil && strings.HasPrefix(e.Err.Error(), "retire: ") {
			assert.NotEmpty(t, e.RetiringServer)
			retireFailures.add()
			stuck.Store(false) // the provider recovers
		}
	}
	p := b.replica(cfg)
	ctx := context.Background()
	id := newID()
	require.NoError(t, p.Provision(ctx, id))
	before := waitReady(t, p, id)
	var refused atomicCounter
	dh.setFailing(func(id string) error {
		if id == before.ServerID && stuck.Load() {
			refused.add()
			return provider.ErrRateLimited
		}
		return nil
	})
	stuck.Store(true)
	require.NoError(t, p.Replace(ctx, id))
	r := waitReady(t, p, id)
	assert.Equal(t, int64(1), retireFailures.n.Load())
	assert.Equal(t, 1, r.Attempts, "one attempt failed in phase retire")
	assert.Empty(t, r.RetiringServerID)
	assert.GreaterOrEqual(t, refused.n.Load(), int64(2), "tried again within the attempt")
	_, ok := b.fake.Server(before.ServerID)
	assert.False(t, ok)
	assert.Len(t, b.fake.Servers(), 1)
	assert.Equal(t, 2, injections(liveServer(t, b, r)), "the retry injects again, then deletes")
}

// Replica A dies at each step of a replacement; replica B, through Resume
// and the callback, finishes it: the tenant ready on one new server, the
// old one deleted, no server leaked.
func TestReplaceCrashAtEachStep(t *testing.T) {
	t.Parallel()
	replacing := func(s store.Status) func(store.Record) bool {
		return func(r store.Record) bool { return r.Status == s && r.RetiringServerID != "" }
	}
	tests := []struct {
		name   string
		killIf func(store.Record) bool
		// afterCreate kills A once the provider accepted the new server.
		afterCreate bool
		// midScript kills A while the new server runs its script.
		midScript bool
		// afterRetire kills A once the old server is deleted, before
		// ready is recorded.
		afterRetire    bool
		wantInjections int
	}{
		{name: "claimed", killIf: func(r store.Record) bool {
			return replacing(store.StatusCreating)(r) && r.LeaseOwner == "a"
		}, wantInjections: 1},
		{name: "creating/server accepted", afterCreate: true, wantInjections: 1},
		{name: "cloud_init", killIf: replacing(store.StatusCloudInit), wantInjections: 1},
		{name: "injecting_secrets", killIf: func(r store.Record) bool {
			return replacing(store.StatusInjectingSecrets)(r) && r.LeaseOwner == "a"
		}, wantInjections: 1},
		{name: "injecting_secrets/mid-script", midScript: true, wantInjections: 2},
		// The new server was injected; B injects again, then deletes the
		// (gone) old server again.
		{name: "old server deleted", afterRetire: true, wantInjections: 2},
		{name: "ready", killIf: func(r store.Record) bool { return r.Status == store.StatusReady }, wantInjections: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{})
			var armed atomic.Bool
			var old atomic.Value
			var a *crashed
			dh := &deleteHook{countingProvider: b.cloud}
			killIf := func(r store.Record) bool {
				return armed.Load() && tt.killIf != nil && tt.killIf(r)
			}
			a = startCrashing(t, b, killIf, func(c *provision.Config) {
				c.Provider = dh
				if tt.midScript {
					c.StepsFunc = slowSteps(300 * time.Millisecond)
				}
			})
			ctx := context.Background()
			id := newID()
			require.NoError(t, a.p.Provision(ctx, id))
			before := waitReady(t, a.p, id)
			old.Store(before.ServerID)
			oldServer := liveServer(t, b, before)

			armed.Store(true)
			if tt.afterCreate {
				b.cloud.afterFunc = func(name string) {
					if name != before.ServerName {
						a.st.kill()
					}
				}
			}
			if tt.afterRetire {
				dh.after = func(id string) {
					if id == old.Load().(string) {
						a.st.kill()
					}
				}
			}
			if tt.midScript {
				whenInjecting(ctxTimeout(t, 20*time.Second), func() (*fake.Server, bool) {
					for _, s := range b.fake.Servers() {
						if s.ID() != before.ServerID {
							return s, true
						}
					}
					return nil, false
				}, a.st.kill)
			}
			_ = a.p.Replace(ctx, id) // fails when A dies in it

			bp := takeOver(t, b, a)
			r := waitReady(t, bp, id)
			assert.NotEqual(t, before.ServerID, r.ServerID, "a new server")
			assert.Empty(t, r.RetiringServerID)
			assert.Empty(t, r.LeaseOwner)
			_, ok := b.fake.Server(before.ServerID)
			assert.False(t, ok, "the old server is deleted")
			assert.Len(t, b.fake.Servers(), 1, "no server leaked")
			created := b.cloud.createdIDs()
			delete(created, before.ServerID)
			assert.Len(t, created, 1, "one new server, created once (statuses %v)", b.events.statuses(id))
			srv := liveServer(t, b, r)
			assert.Equal(t, tt.wantInjections, injections(srv), "statuses %v, attempts %d", b.events.statuses(id), r.Attempts)
			assert.Equal(t, "API_TOKEN="+b.secrets.token(id)+"\n", readFile(t, srv.Path(envPath)))
			assert.True(t, srv.Unit(unit).Active)
			assert.Equal(t, 1, injections(oldServer))
		})
	}
}

// Two replicas that call Replace at once run one replacement: one call
// starts it, the other is told the tenant is not ready (or busy); one new
// server is created, the old one deleted once.
func TestReplaceRace(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: postgresStore(t)})
	cfg := func(name string) provision.Config {
		c := b.config(name, nil)
		c.LeaseDuration = 20 * time.Second // no takeover on a loaded machine
		return c
	}
	p1 := b.replica(cfg("r1"))
	p2 := b.replica(cfg("r2"))
	b.run(p1)
	b.run(p2)
	ctx := context.Background()
	tenants := ids(5)
	for _, id := range tenants {
		require.NoError(t, p1.Provision(ctx, id))
	}
	before := waitAll(t, p1, tenants, 60*time.Second)
	for _, id := range tenants {
		require.Equal(t, store.StatusReady, before[id].Status)
	}
	var wg sync.WaitGroup
	errs := map[string][]error{}
	var mu sync.Mutex
	for _, id := range tenants {
		for _, p := range []*provision.Provisioner{p1, p2} {
			wg.Go(func() {
				err := p.Replace(ctx, id)
				mu.Lock()
				errs[id] = append(errs[id], err)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	after := waitAll(t, p1, tenants, 60*time.Second)
	created := b.cloud.createdIDs()
	for _, id := range tenants {
		var ok, refused int
		for _, err := range errs[id] {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, provision.ErrNotReady), errors.Is(err, provision.ErrBusy):
				refused++
			default:
				t.Errorf("%s: %v", id, err)
			}
		}
		assert.Equal(t, 1, ok, "%s: one Replace ran", id)
		assert.Equal(t, 1, refused, "%s: the other was refused", id)
		r := after[id]
		require.Equal(t, store.StatusReady, r.Status, "%s: %s", id, r.Error)
		assert.NotEqual(t, before[id].ServerID, r.ServerID)
		assert.Equal(t, 1, injections(liveServer(t, b, r)))
		assert.True(t, created[r.ServerID])
	}
	assert.Len(t, created, 2*len(tenants), "one new server per tenant")
	assert.Len(t, b.fake.Servers(), len(tenants), "the old servers are deleted")
	b.events.mu.Lock()
	defer b.events.mu.Unlock()
	replacements := map[string]int{}
	for _, e := range b.events.all {
		if e.To == store.StatusCreating && e.RetiringServer != "" {
			replacements[e.Tenant]++
		}
	}
	for _, id := range tenants {
		assert.Equal(t, 1, replacements[id], "%s: one replacement", id)
	}
}

// A replacement's server names differ from the old server's, stay within
// 63 bytes, and are stable for a record (a resumed create adopts by name).
func TestReplacementServerNames(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cfg := b.config("r1", nil)
	cfg.ServerNameFunc = func(id string) string { return "a-very-long-prefix-for-every-server-" + id[:24] }
	p, err := provision.New(cfg)
	require.NoError(t, err)
	id := newID()
	r := store.Record{ID: id, CallbackNonce: "n1"}
	assert.Equal(t, cfg.ServerNameFunc(id), provision.ServerName(p, r), "not a replacement: the tenant's name")
	r.RetiringServerID = "17"
	n1 := provision.ServerName(p, r)
	assert.Equal(t, n1, provision.ServerName(p, r), "stable")
	assert.LessOrEqual(t, len(n1), 63)
	assert.NoError(t, provider.CreateRequest{Name: n1}.Validate())
	r.CallbackNonce = "n2"
	assert.NotEqual(t, n1, provision.ServerName(p, r), "a new nonce, a new name")
}
