package provision_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/store"
)

// holdingProvider keeps the name of a deleted server for hold, as Hetzner
// does while a server is being deleted: Get still finds the server (status
// "deleting"), and a Create by that name fails, with an error that is not
// provider.ErrConflict.
type holdingProvider struct {
	provider.Provider
	hold time.Duration

	mu       sync.Mutex
	deleting map[string]provider.Server // by ID
	until    map[string]time.Time       // by ID
	refused  atomic.Int64               // creates refused while a name was held
	polls    atomic.Int64               // Gets that found a server being deleted
}

func (h *holdingProvider) Delete(ctx context.Context, id string) error {
	srv, err := h.Provider.Get(ctx, id)
	if err := h.Provider.Delete(ctx, id); err != nil {
		return err
	}
	if err == nil {
		h.mu.Lock()
		srv.Status = "deleting"
		h.deleting[id], h.until[id] = srv, time.Now().Add(h.hold)
		h.mu.Unlock()
	}
	return nil
}

// held returns the server being deleted with that ID or name, if any.
func (h *holdingProvider) held(match func(provider.Server) bool) (provider.Server, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, srv := range h.deleting {
		if time.Now().After(h.until[id]) {
			delete(h.deleting, id)
			delete(h.until, id)
			continue
		}
		if match(srv) {
			return srv, true
		}
	}
	return provider.Server{}, false
}

func (h *holdingProvider) Get(ctx context.Context, id string) (provider.Server, error) {
	if srv, ok := h.held(func(s provider.Server) bool { return s.ID == id }); ok {
		h.polls.Add(1)
		return srv, nil
	}
	return h.Provider.Get(ctx, id)
}

func (h *holdingProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	if srv, ok := h.held(func(s provider.Server) bool { return s.Name == req.Name }); ok {
		h.refused.Add(1)
		return provider.Server{}, fmt.Errorf("holding: create server %q: our server %s by that name is being deleted: %w",
			req.Name, srv.ID, errors.New("uniqueness_error"))
	}
	return h.Provider.Create(ctx, req)
}

// A retry after a server that never phoned home deletes it and creates a
// new one by the same name. The provider holds the name for a while after
// the delete: the retry waits for the old server to be gone instead of
// failing, and spends no attempt on it.
func TestRetryWaitsForTheNameToBeReleased(t *testing.T) {
	t.Parallel()
	var creates atomic.Int64
	b := setup(t, bundleOpts{faults: func(string) fake.Faults {
		if creates.Add(1) == 1 {
			return fake.Faults{NoPhoneHome: true}
		}
		return fake.Faults{}
	}})
	hp := &holdingProvider{Provider: b.cloud, hold: 700 * time.Millisecond,
		deleting: map[string]provider.Server{}, until: map[string]time.Time{}}
	cfg := b.config("r1", nil)
	cfg.Provider = hp
	cfg.PhoneHomeTimeout = 300 * time.Millisecond
	cfg.MaxAttempts = 2
	p := b.replica(cfg)
	b.run(p)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	first := b.server(id).ID()

	r := waitReady(t, p, id)
	assert.Equal(t, 1, r.Attempts, "only the missing phone_home counts")
	assert.NotEqual(t, first, r.ServerID)
	assert.Zero(t, hp.refused.Load(), "no create while the name was held")
	assert.Positive(t, hp.polls.Load(), "the retry saw the old server being deleted")
	assert.Equal(t, []store.Status{store.StatusPending, store.StatusCreating, store.StatusCloudInit, store.StatusFailed,
		store.StatusCreating, store.StatusCloudInit, store.StatusInjectingSecrets, store.StatusReady}, b.events.statuses(id))
}
