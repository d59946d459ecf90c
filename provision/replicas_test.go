package provision_test

import (
	"context"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/postgres"
)

// postgresStore opens a store in a schema of its own on
// HATCHERY_POSTGRES_URL, dropped at the end of the test.
func postgresStore(t *testing.T) store.Store {
	t.Helper()
	dsn := testenv.PostgresURL(t)
	ctx := context.Background()
	schema := "provision_" + randHex(6)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})

	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// Two replicas on one PostgreSQL store, 100 tenants, each provisioned
// through either replica and each callback sent to either at random:
// every tenant ready, every server created once and injected once.
func TestReplicasPostgres(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: postgresStore(t)})
	// No replica dies here: a lease long enough that no stall on a loaded
	// machine lets one replica take over from the other.
	cfg := func(name string) provision.Config {
		c := b.config(name, nil)
		c.LeaseDuration = 20 * time.Second
		return c
	}
	p1 := b.replica(cfg("r1"))
	p2 := b.replica(cfg("r2"))
	b.run(p1)
	b.run(p2)
	tenants := ids(100)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, id := range tenants {
		p := p1
		if i%2 == 1 {
			p = p2
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			assert.NoError(t, p.Provision(context.Background(), id))
		})
	}
	// Provisioning the same tenants again, through the other replica, does
	// nothing more.
	for i, id := range tenants[:20] {
		p := p2
		if i%2 == 1 {
			p = p1
		}
		wg.Go(func() { assert.NoError(t, p.Provision(context.Background(), id)) })
	}
	wg.Wait()
	recs := waitAll(t, p1, tenants, 90*time.Second)

	assert.Len(t, b.fake.Servers(), len(tenants))
	byReplica := map[string]int{}
	for _, id := range tenants {
		r := recs[id]
		require.Equal(t, store.StatusReady, r.Status, "%s: %s", id, r.Error)
		assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)), "%s: one server", id)
		if !assert.Equal(t, 1, injections(b.server(id)), "%s: injected once", id) {
			b.events.mu.Lock()
			for _, e := range b.events.all {
				if e.Tenant == id {
					t.Logf("%s %s %v", e.Time.Format("15:04:05.000"), e.Replica, e)
				}
			}
			b.events.mu.Unlock()
		}
		assert.Zero(t, r.Attempts, "%s: no failed attempt", id)
	}
	b.events.mu.Lock()
	for _, e := range b.events.all {
		if e.To == store.StatusReady {
			byReplica[e.Tenant]++
		}
	}
	b.events.mu.Unlock()
	for _, id := range tenants {
		assert.Equal(t, 1, byReplica[id], "%s reached ready once", id)
	}
}

// Replica A is killed in the middle of injecting; replica B takes its
// tenants over once their leases have expired and finishes them.
func TestReplicaKilledMidInjection(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: postgresStore(t)})
	p2 := b.replica(b.config("b", nil))
	b.run(p2)
	// A's first injection is the victim: A dies while the server runs it.
	var victimID atomic.Value
	chosen := make(chan struct{})
	var a *crashed
	a = startCrashing(t, b, func(r store.Record) bool {
		if r.Status == store.StatusInjectingSecrets && r.LeaseOwner == "a" && victimID.CompareAndSwap(nil, r.ID) {
			close(chosen)
			whenInjecting(ctxTimeout(t, 20*time.Second), func() (*fake.Server, bool) {
				return b.fake.ServerByName(provision.DefaultServerName(r.ID))
			}, func() { go a.st.kill() })
		}
		return false
	}, func(c *provision.Config) { c.StepsFunc = slowSteps(300 * time.Millisecond) })
	tenants := ids(20)
	var wg sync.WaitGroup
	for i, id := range tenants {
		p := a.p
		if i%2 == 1 {
			p = p2
		}
		wg.Go(func() { _ = p.Provision(context.Background(), id) })
	}
	wg.Wait()
	<-chosen
	<-a.closed
	victim := victimID.Load().(string)
	for _, id := range tenants { // those A never got to record
		if _, err := b.store.Get(context.Background(), id); err != nil {
			require.ErrorIs(t, err, store.ErrNotFound)
			require.NoError(t, p2.Provision(context.Background(), id))
		}
	}
	start := time.Now()
	r := waitReady(t, p2, victim)
	t.Logf("victim %s ready %v after A died (lease %v)", victim, time.Since(start).Round(time.Millisecond), b.config("", nil).LeaseDuration)
	assert.Empty(t, r.LeaseOwner)
	assert.Contains(t, b.events.statuses(victim), store.StatusReady)

	recs := waitAll(t, p2, tenants, 60*time.Second)
	for _, id := range tenants {
		require.Equal(t, store.StatusReady, recs[id].Status, "%s: %s", id, recs[id].Error)
		assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)))
		n := injections(b.server(id))
		assert.GreaterOrEqual(t, n, 1)
		assert.LessOrEqual(t, n, 2, "%s: at most A's interrupted run and B's", id)
	}
	assert.Equal(t, 2, injections(b.server(victim)), "the victim: A's interrupted run, then B's")
	assert.Equal(t, "API_TOKEN="+b.secrets.token(victim)+"\n", readFile(t, b.server(victim).Path(envPath)))
}
