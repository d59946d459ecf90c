package provision_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// crashed is replica A of a crash test: it dies (its store answers nothing
// more, its callbacks stop, its work is cancelled) when its kill fires.
type crashed struct {
	p      *provision.Provisioner
	st     *killable
	events *events
	dead   chan struct{}
	closed chan struct{}
}

// startCrashing starts replica "a" on a killable view of b's store; mod,
// when set, changes its config.
func startCrashing(t *testing.T, b *bundle, killIf func(store.Record) bool, mod func(*provision.Config)) *crashed {
	t.Helper()
	a := &crashed{
		st:     &killable{Store: b.store, killIf: killIf},
		events: &events{},
		dead:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	cfg := b.config("a", a.st)
	cfg.OnEvent = func(e provision.Event) {
		a.events.add(e)
		b.events.add(e)
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := provision.New(cfg)
	require.NoError(t, err)
	a.p = p
	a.st.onKill = func() {
		b.front.remove("a")
		close(a.dead)
		go func() { _ = p.Close(); close(a.closed) }()
	}
	b.front.add("a", p.Handler())
	t.Cleanup(func() {
		a.st.kill()
		<-a.closed
	})
	return a
}

// takeOver waits for A to die and starts replica "b" on the real store.
func takeOver(t *testing.T, b *bundle, a *crashed) *provision.Provisioner {
	t.Helper()
	select {
	case <-a.dead:
	case <-time.After(20 * time.Second):
		t.Fatal("replica a never died")
	}
	<-a.closed
	p := b.replica(b.config("b", nil))
	b.run(p)
	return p
}

// For each lifecycle state, replica A dies right after writing it; a fresh
// replica B on the same store, through Resume and the callback, gets the
// tenant to ready: its server created once, its secrets injected once.
func TestCrashAtEachState(t *testing.T) {
	t.Parallel()
	is := func(s store.Status) func(store.Record) bool {
		return func(r store.Record) bool { return r.Status == s }
	}
	leased := func(s store.Status) func(store.Record) bool {
		return func(r store.Record) bool { return r.Status == s && r.LeaseOwner == "a" }
	}
	tests := []struct {
		name   string
		killIf func(store.Record) bool
		// afterCreate kills A right after the provider accepted the server,
		// before A could record it.
		afterCreate bool
		// midScript kills A while the server runs its injection script.
		midScript      bool
		failFirstCreat bool
		wantInjections int
	}{
		{name: "pending", killIf: is(store.StatusPending), wantInjections: 1},
		{name: "creating", killIf: leased(store.StatusCreating), wantInjections: 1},
		{name: "creating/server accepted", afterCreate: true, wantInjections: 1},
		{name: "cloud_init", killIf: is(store.StatusCloudInit), wantInjections: 1},
		{name: "injecting_secrets", killIf: leased(store.StatusInjectingSecrets), wantInjections: 1},
		// A started injecting: the steps run again (they are idempotent).
		{name: "injecting_secrets/mid-script", midScript: true, wantInjections: 2},
		{name: "ready", killIf: is(store.StatusReady), wantInjections: 1},
		{name: "failed", killIf: is(store.StatusFailed), failFirstCreat: true, wantInjections: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var creates atomic.Int64
			b := setup(t, bundleOpts{faults: func(string) fake.Faults {
				if tt.failFirstCreat && creates.Add(1) == 1 {
					return fake.Faults{CreateErr: provider.ErrRateLimited}
				}
				return fake.Faults{}
			}})
			var mod func(*provision.Config)
			if tt.midScript {
				mod = func(c *provision.Config) { c.StepsFunc = slowSteps(300 * time.Millisecond) }
			}
			a := startCrashing(t, b, tt.killIf, mod)
			if tt.afterCreate {
				b.cloud.afterFunc = func(string) { a.st.kill() }
			}
			id := newID()
			if tt.midScript {
				whenInjecting(ctxTimeout(t, 20*time.Second), func() (*fake.Server, bool) {
					return b.fake.ServerByName(provision.DefaultServerName(id))
				}, a.st.kill)
			}
			_ = a.p.Provision(context.Background(), id) // fails when A dies in it

			bp := takeOver(t, b, a)
			r := waitReady(t, bp, id)
			name := provision.DefaultServerName(id)
			assert.Equal(t, 1, b.cloud.distinctServers(name), "one server for the tenant")
			assert.Len(t, b.fake.Servers(), 1, "no second server")
			assert.Equal(t, tt.wantInjections, injections(b.server(id)), "injections (statuses %v, attempts %d)", b.events.statuses(id), r.Attempts)
			assert.Empty(t, r.LeaseOwner)
			assert.Equal(t, "API_TOKEN="+b.secrets.token(id)+"\n", readFile(t, b.server(id).Path(envPath)))
			assert.True(t, b.server(id).Unit(unit).Active)
		})
	}
}

// Replica A dies at a random store write while provisioning ten tenants;
// replica B finishes all of them. No tenant gets a second server, and only
// a tenant A was injecting when it died is injected again.
func TestCrashMidFleet(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	var writes atomic.Int64
	killAt := int64(10 + rand.IntN(40))
	a := startCrashing(t, b, func(store.Record) bool { return writes.Add(1) == killAt }, nil)
	tenants := ids(10)
	var wg sync.WaitGroup
	for _, id := range tenants {
		wg.Go(func() { _ = a.p.Provision(context.Background(), id) })
	}
	wg.Wait()
	bp := takeOver(t, b, a)
	for _, id := range tenants { // those A never got to record
		if _, err := b.store.Get(context.Background(), id); err != nil {
			require.ErrorIs(t, err, store.ErrNotFound)
			require.NoError(t, bp.Provision(context.Background(), id))
		}
	}
	recs := waitAll(t, bp, tenants, 60*time.Second)

	// Tenants A was injecting (a step started) but did not finish.
	interrupted := map[string]bool{}
	a.events.mu.Lock()
	for _, e := range a.events.all {
		if e.Step != "" {
			interrupted[e.Tenant] = true
		}
	}
	for _, e := range a.events.all {
		if e.To == store.StatusReady {
			delete(interrupted, e.Tenant)
		}
	}
	a.events.mu.Unlock()

	assert.Len(t, b.fake.Servers(), len(tenants))
	for _, id := range tenants {
		assert.Equal(t, store.StatusReady, recs[id].Status, "%s: %s", id, recs[id].Error)
		assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)))
		n := injections(b.server(id))
		if interrupted[id] {
			assert.Contains(t, []int{1, 2}, n, "%s was being injected when A died", id)
		} else {
			assert.Equal(t, 1, n, "%s injected once: %v attempts %d err %q", id, b.events.statuses(id), recs[id].Attempts, recs[id].Error)
		}
	}
	t.Logf("killed at write %d; %d tenants were being injected", killAt, len(interrupted))
}
