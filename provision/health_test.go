package provision_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// pingStore is a store whose Ping answers err.
type pingStore struct {
	store.Store
	err error
}

func (s pingStore) Ping(context.Context) error { return s.err }

// plainStore hides every optional interface of its store (no Pinger).
type plainStore struct{ store.Store }

// brokenGets is a store without Ping whose Gets fail.
type brokenGets struct{ store.Store }

func (brokenGets) Get(context.Context, string) (store.Record, error) {
	return store.Record{}, errors.New("connection refused")
}

// checkingProvider is a provider whose credential check answers err and
// is counted.
type checkingProvider struct {
	*countingProvider
	mu    sync.Mutex
	err   error
	calls atomic.Int32
}

func (c *checkingProvider) CheckCredentials(context.Context) error {
	c.calls.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *checkingProvider) set(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func TestCheckStore(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		st   store.Store
		bad  bool
	}{
		{"Ping passes", pingStore{memory.New(), nil}, false},
		{"Ping fails", pingStore{memory.New(), errors.New("database is locked")}, true},
		{"no Ping, Get answers not found", plainStore{memory.New()}, false},
		{"no Ping, Get fails", brokenGets{memory.New()}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{store: memory.New()})
			p := b.replica(b.config("r1", tt.st))
			err := p.Check(context.Background())
			if !tt.bad {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, provision.ErrStoreUnhealthy)
			assert.NotErrorIs(t, err, provision.ErrRunStopped)
			assert.NotErrorIs(t, err, provision.ErrProviderUnhealthy)
		})
	}
}

// TestCheckRun: Check passes before Run is called, while it runs, and
// reports it once it returned or stopped making progress.
func TestCheckRun(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	hang := &hangingList{Store: b.store}
	cfg := b.config("r1", hang)
	// Long enough that a pass delayed by a loaded machine is no stall
	// (a stall is RunStallFactor intervals without progress).
	cfg.ResumeInterval = 300 * time.Millisecond
	p := b.replica(cfg)
	require.NoError(t, p.Check(context.Background()), "Run never started: nothing to report")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for range 3 { // over more than one pass
		time.Sleep(cfg.ResumeInterval / 2)
		require.NoError(t, p.Check(context.Background()), "Run is running")
	}

	// A pass that hangs (a store that does not answer) stops the loop.
	hang.block()
	time.Sleep(provision.RunStallFactor*cfg.ResumeInterval + 300*time.Millisecond)
	err := p.Check(context.Background())
	require.ErrorIs(t, err, provision.ErrRunStopped)
	assert.Contains(t, err.Error(), "no progress")
	hang.unblock()
	require.Eventually(t, func() bool { return p.Check(context.Background()) == nil }, 5*time.Second, 10*time.Millisecond,
		"progress again")

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	err = p.Check(context.Background())
	require.ErrorIs(t, err, provision.ErrRunStopped)
	assert.ErrorIs(t, err, context.Canceled, "says why it returned")

	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Check(context.Background()), provision.ErrClosed)
}

// hangingList is a store whose List waits while blocked.
type hangingList struct {
	store.Store
	mu      sync.Mutex
	release chan struct{}
}

func (h *hangingList) block() {
	h.mu.Lock()
	h.release = make(chan struct{})
	h.mu.Unlock()
}

func (h *hangingList) unblock() {
	h.mu.Lock()
	close(h.release)
	h.release = nil
	h.mu.Unlock()
}

func (h *hangingList) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	h.mu.Lock()
	ch := h.release
	h.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return h.Store.List(ctx, statuses...)
}

// TestCheckProviderHealth: refused credentials fail Check with both sentinels;
// the result is reused, Run's check included, so probes cost no provider
// call each; a provider that cannot be reached fails without
// provider.ErrUnauthorized.
func TestCheckProviderHealth(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cp := &checkingProvider{countingProvider: b.cloud}
	cfg := b.config("r1", nil)
	cfg.Provider = cp
	p := b.replica(cfg)
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	provision.SetClock(p, func() time.Time { return time.Unix(0, clock.Load()) })

	for range 3 {
		require.NoError(t, p.Check(context.Background()))
	}
	assert.Equal(t, int32(1), cp.calls.Load(), "one provider call for three probes")

	cp.set(provider.ErrUnauthorized)
	require.NoError(t, p.Check(context.Background()), "still the result of the last check")
	clock.Add(int64(provision.ProviderCheckEvery))
	err := p.Check(context.Background())
	require.ErrorIs(t, err, provision.ErrProviderUnhealthy)
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	assert.NotErrorIs(t, err, provision.ErrStoreUnhealthy)
	assert.Equal(t, int32(2), cp.calls.Load())

	cp.set(errors.New("connection refused"))
	clock.Add(int64(provision.ProviderCheckEvery))
	err = p.Check(context.Background())
	require.ErrorIs(t, err, provision.ErrProviderUnhealthy)
	assert.NotErrorIs(t, err, provider.ErrUnauthorized)
}

// TestCheckRunProviderCheck: Run's credential check is the one Check
// reports, without a call of its own.
func TestCheckRunProviderCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cp := &checkingProvider{countingProvider: b.cloud}
	cfg := b.config("r1", pingStore{memory.New(), errors.New("down")})
	cfg.Provider = cp
	cp.set(provider.ErrUnauthorized)
	p := b.replica(cfg)
	require.ErrorIs(t, p.Run(context.Background()), provider.ErrUnauthorized)
	err := p.Check(context.Background())
	assert.Equal(t, int32(1), cp.calls.Load(), "Run's check, reused")
	require.ErrorIs(t, err, provision.ErrProviderUnhealthy)
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	require.ErrorIs(t, err, provision.ErrStoreUnhealthy, "every failing part is reported")
	require.ErrorIs(t, err, provision.ErrRunStopped, "Run returned")
}
