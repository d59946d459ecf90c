package provision_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// hangStore is a Store whose writes hang once hang is called: each Update
// blocks until its context ends (a stalled connection, with a driver that
// honours deadlines) or, with ignoreCtx, for stall whatever its context
// says, and then fails without writing.
type hangStore struct {
	store.Store
	ignoreCtx bool
	stall     time.Duration
	mu        sync.Mutex
	hung      bool
}

func (h *hangStore) hang() {
	h.mu.Lock()
	h.hung = true
	h.mu.Unlock()
}

func (h *hangStore) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	h.mu.Lock()
	hung := h.hung
	h.mu.Unlock()
	if !hung {
		return h.Store.Update(ctx, id, fn)
	}
	if h.ignoreCtx {
		time.Sleep(h.stall)
		return store.Record{}, errKilled
	}
	<-ctx.Done()
	return store.Record{}, ctx.Err()
}

// Replica A's store hangs in the middle of an injection, so A cannot
// renew its lease. A must stop injecting when its lease runs out, before
// replica B may take the tenant over: the two never inject at once.
func TestLeaseStopsWhenStoreHangs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		ignoreCtx bool
	}{
		{"store honours deadlines", false},
		{"store ignores its context", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{})
			const lease = time.Second
			hs := &hangStore{Store: b.store, ignoreCtx: tt.ignoreCtx, stall: 3 * lease}
			cfgA := b.config("a", hs)
			cfgA.LeaseDuration = lease
			cfgA.StepsFunc = slowSteps(4 * lease) // far longer than the lease
			a := b.replica(cfgA)

			id := newID()
			armed := make(chan time.Time, 1)
			whenInjecting(ctxTimeout(t, 20*time.Second), func() (*fake.Server, bool) {
				return b.fake.ServerByName(provision.DefaultServerName(id))
			}, func() {
				hs.hang()
				armed <- time.Now()
			})
			require.NoError(t, a.Provision(context.Background(), id))
			var hungAt time.Time
			select {
			case hungAt = <-armed:
			case <-time.After(20 * time.Second):
				t.Fatal("A never injected")
			}
			// B only now: it would otherwise take part from the start.
			cfgB := b.config("b", nil)
			cfgB.LeaseDuration = lease
			bp := b.replica(cfgB)
			b.run(bp)
			r := waitReady(t, bp, id)
			assert.Empty(t, r.LeaseOwner)
			// A's injection script has ended, one way or the other.
			require.Eventually(t, func() bool {
				b.events.mu.Lock()
				defer b.events.mu.Unlock()
				for _, e := range b.events.all {
					if e.Tenant == id && e.Replica == "a" && e.Step != "" && e.StepIndex > 0 && e.StepDone {
						return true
					}
				}
				return false
			}, 20*time.Second, 10*time.Millisecond, "A's script never ended")

			var aLast, bFirst time.Time
			b.events.mu.Lock()
			for _, e := range b.events.all {
				if e.Tenant != id || e.Step == "" {
					continue
				}
				switch e.Replica {
				case "a":
					aLast = e.Time
				case "b":
					if bFirst.IsZero() {
						bFirst = e.Time
					}
				}
			}
			b.events.mu.Unlock()
			require.False(t, aLast.IsZero(), "A ran steps")
			require.False(t, bFirst.IsZero(), "B ran steps")
			assert.True(t, aLast.Before(bFirst), "A's injection ended (%v) before B's began (%v)",
				aLast.Format("15:04:05.000"), bFirst.Format("15:04:05.000"))
			assert.Less(t, aLast.Sub(hungAt), 2*lease, "A stopped by the time its lease ran out, not at the end of its steps")
			assert.Equal(t, 2, injections(b.server(id)), "A's interrupted run, then B's")
			assert.Equal(t, "API_TOKEN="+b.secrets.token(id)+"\n", readFile(t, b.server(id).Path(envPath)))
		})
	}
}
