package provision_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// gaugeProvider counts the creates in flight and remembers the most.
type gaugeProvider struct {
	provider.Provider
	delay time.Duration

	mu        sync.Mutex
	in, most  int
	completed int
}

func (g *gaugeProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	g.mu.Lock()
	g.in++
	g.most = max(g.most, g.in)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.in--
		g.completed++
		g.mu.Unlock()
	}()
	select {
	case <-time.After(g.delay):
	case <-ctx.Done():
		return provider.Server{}, ctx.Err()
	}
	return g.Provider.Create(ctx, req)
}

// Resume runs at most Config.ResumeConcurrency pieces of work at once,
// and returns once the last of them has started.
func TestResumeConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	g := &gaugeProvider{Provider: b.cloud, delay: 150 * time.Millisecond}
	cfg := b.config("r1", nil)
	cfg.Provider = g
	cfg.ResumeConcurrency = 2
	p := b.replica(cfg)

	// Six tenants whose replica died before claiming them.
	tenants := ids(6)
	for _, id := range tenants {
		require.NoError(t, b.store.Create(context.Background(), store.Record{ID: id, Status: store.StatusPending}))
	}
	require.NoError(t, p.Resume(context.Background()))
	g.mu.Lock()
	completed := g.completed
	g.mu.Unlock()
	assert.GreaterOrEqual(t, completed, 4, "Resume waited for slots: the first four creates are over when it returns")

	recs := waitAll(t, p, tenants, 30*time.Second)
	for _, id := range tenants {
		assert.Equal(t, store.StatusReady, recs[id].Status, "%s: %s", id, recs[id].Error)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	assert.Equal(t, 2, g.most, "at most two creates at once, and two do run together")
	assert.Equal(t, 6, g.completed)

	// A Resume whose context ends while it waits for a slot returns.
	cfg = b.config("r2", nil)
	cfg.Provider = &gaugeProvider{Provider: b.cloud, delay: 10 * time.Second}
	cfg.ResumeConcurrency = 1
	p2 := b.replica(cfg)
	for _, id := range ids(3) {
		require.NoError(t, b.store.Create(context.Background(), store.Record{ID: id, Status: store.StatusPending}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p2.Resume(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second, "gave up waiting for the slot with its context")
}
