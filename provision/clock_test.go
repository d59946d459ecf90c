package provision_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// clockStore is a store with a clock of its own (store.NowUpdater), as
// PostgreSQL has: UpdateNow hands fn the store's time, offset from this
// machine's by offset (nanoseconds).
type clockStore struct {
	store.Store
	offset atomic.Int64
}

func (c *clockStore) UpdateNow(ctx context.Context, id string, fn func(*store.Record, time.Time) error) (store.Record, error) {
	return c.Store.Update(ctx, id, func(r *store.Record) error {
		return fn(r, time.Now().Add(time.Duration(c.offset.Load())).UTC())
	})
}

// The case: replica B's clock is 3 s ahead. Leases were taken and
// checked with each replica's own clock, so B took over the injection A
// was still running (both ran it for a while). Lease times now come from
// the store's clock, and B, which sees the store's clock 3 s behind its
// own, refuses to take any lease, loudly, until the clocks agree: A's
// injection runs once, alone.
func TestClockSkewedReplica(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	st := &clockStore{Store: b.store}
	cfgA := b.config("a", st)
	cfgA.StepsFunc = slowSteps(3 * time.Second) // longer than the lease
	a := b.replica(cfgA)
	b.run(a)

	logs := &logLines{}
	cfgB := b.config("b", st)
	cfgB.Logger = slog.New(logs)
	bp, err := provision.New(cfgB) // not behind the front: callbacks go to A
	require.NoError(t, err)
	t.Cleanup(func() { bp.Close() })
	provision.SetClock(bp, func() time.Time { return time.Now().Add(3 * time.Second) })
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = bp.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-runDone })

	id := newID()
	require.NoError(t, a.Provision(context.Background(), id))
	r := waitReady(t, a, id)
	assert.Equal(t, 1, injections(b.server(id)), "injected once (statuses %v)", b.events.statuses(id))
	assert.Empty(t, r.LeaseOwner)
	b.events.mu.Lock()
	for _, e := range b.events.all {
		assert.NotEqual(t, "b", e.Replica, "B took part: %v", e)
	}
	b.events.mu.Unlock()
	assert.NotEmpty(t, logs.matching("ERROR", "clock skew"), "B says why it takes no lease")
	assert.ErrorIs(t, bp.Provision(context.Background(), newID()), provision.ErrClockSkew)
}

// A store whose clock is 3 s ahead of every replica's: no lease is taken
// (Provision fails with ErrClockSkew, logged at error level once, not per
// claim), until the clocks agree again.
func TestClockSkewedStore(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	st := &clockStore{Store: b.store}
	st.offset.Store(int64(3 * time.Second))
	logs := &logLines{}
	cfg := b.config("r1", st)
	cfg.Logger = slog.New(logs)
	p := b.replica(cfg)
	id := newID()
	err := p.Provision(context.Background(), id)
	require.ErrorIs(t, err, provision.ErrClockSkew)
	assert.Contains(t, err.Error(), "ahead of")
	assert.Equal(t, store.StatusPending, get(t, b.store, id).Status, "not claimed")
	require.ErrorIs(t, p.Provision(context.Background(), newID()), provision.ErrClockSkew)
	assert.Len(t, logs.matching("ERROR", "clock skew"), 1, "logged once, not per claim")

	st.offset.Store(int64(50 * time.Millisecond)) // within MaxClockSkew
	require.NoError(t, p.Resume(context.Background()))
	assert.Equal(t, store.StatusReady, waitReady(t, p, id).Status)
	assert.NotEmpty(t, logs.matching("INFO", "agrees"))
}
