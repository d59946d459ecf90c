package provision_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// slowStore delays the answer to a write for which slow is true: the write
// is done, the caller hears of it late.
type slowStore struct {
	store.Store
	slow  func(store.Record) bool
	delay time.Duration
}

func (s *slowStore) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	r, err := s.Store.Update(ctx, id, fn)
	if err == nil && s.slow(r) {
		time.Sleep(s.delay)
	}
	return r, err
}

// slowCreate is a provider whose Create answers late: the server is up
// (and phones home) before the creator hears of it.
type slowCreate struct {
	provider.Provider
	delay time.Duration
}

func (s slowCreate) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	srv, err := s.Provider.Create(ctx, req)
	time.Sleep(s.delay)
	return srv, err
}

// The server phones home while its creator is still busy with the tenant:
// the injection runs once, either by the creator (the callback came before
// cloud_init was recorded) or right after the creator is done (it came
// after).
func TestCallbackDuringCreate(t *testing.T) {
	t.Parallel()
	t.Run("before cloud_init is recorded", func(t *testing.T) {
		t.Parallel()
		b := setup(t, bundleOpts{})
		cfg := b.config("r1", nil)
		cfg.Provider = slowCreate{Provider: b.cloud, delay: 500 * time.Millisecond}
		p := b.replica(cfg)
		id := newID()
		require.NoError(t, p.Provision(context.Background(), id))
		waitReady(t, p, id)
		assert.Equal(t, []store.Status{store.StatusPending, store.StatusCreating, store.StatusInjectingSecrets,
			store.StatusInjectingSecrets, store.StatusReady}, b.events.statuses(id),
			"the callback's transition, then the creator's own record of it")
		assert.Equal(t, 1, injections(b.server(id)))
		r, err := b.store.Get(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, b.server(id).ID(), r.ServerID, "the server is recorded")
	})
	t.Run("after cloud_init is recorded", func(t *testing.T) {
		t.Parallel()
		b := setup(t, bundleOpts{})
		slow := &slowStore{Store: b.store, delay: 500 * time.Millisecond,
			slow: func(r store.Record) bool { return r.Status == store.StatusCloudInit }}
		p := b.replica(b.config("r1", slow))
		id := newID()
		require.NoError(t, p.Provision(context.Background(), id))
		waitReady(t, p, id)
		// The creator reports cloud_init late, after the callback's event.
		assert.ElementsMatch(t, []store.Status{store.StatusPending, store.StatusCreating, store.StatusCloudInit,
			store.StatusInjectingSecrets, store.StatusReady}, b.events.statuses(id))
		assert.Equal(t, 1, injections(b.server(id)))
	})
}

// A Deprovision interrupted between recording deleted and deleting the
// server is finished by the next Provisioner's first Resume.
func TestResumeFinishesDeprovision(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	p := b.replica(b.config("r1", nil))
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r := waitReady(t, p, id)
	_, err := store.Transition(context.Background(), b.store, id, []store.Status{store.StatusReady}, store.StatusDeleted, nil)
	require.NoError(t, err)
	require.Len(t, b.fake.Servers(), 1, "the server is still there")

	p2 := b.replica(b.config("r2", nil))
	require.NoError(t, p2.Resume(context.Background()))
	assert.Empty(t, b.fake.Servers())
	got, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusDeleted, got.Status)
	assert.Empty(t, got.ServerID)
	assert.NotEmpty(t, r.ServerID)
}

// The bootstrap may not point phone_home elsewhere: the Provisioner owns it.
func TestBootstrapPhoneHomeURLRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	cfg := b.config("r1", nil)
	cfg.BootstrapFunc = func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
		c, _ := bootstrap(ctx, r)
		c.PhoneHome = &cloudinit.PhoneHome{URL: "https://elsewhere.example/cb", Post: []string{"pub_key_ed25519"}}
		return c, nil
	}
	p := b.replica(cfg)
	id := newID()
	err := p.Provision(context.Background(), id)
	require.ErrorIs(t, err, provision.ErrConfig)
	r, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusFailed, r.Status)
	assert.True(t, strings.HasPrefix(r.Error, "final: create: "), r.Error)
	assert.Empty(t, b.fake.Servers())
}

// Rotate on a tenant that is not ready is refused; a failed rotation is
// retried with StepsInput.Rotate set, to ready.
func TestRotate(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	cfg := b.config("r1", nil)
	var failOnce atomicCounter
	var mu sync.Mutex
	var rotations []bool
	cfg.StepsFunc = func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
		mu.Lock()
		rotations = append(rotations, in.Rotate)
		mu.Unlock()
		if in.Rotate && failOnce.add() == 1 {
			return nil, errors.New("secret store unreachable")
		}
		return steps(ctx, in)
	}
	p := b.replica(cfg)
	id := newID()
	assert.ErrorIs(t, p.Rotate(context.Background(), id), store.ErrNotFound)
	require.NoError(t, p.Provision(context.Background(), id))
	waitReady(t, p, id)

	b.secrets.set(id, "tok-rotated-"+randHex(8))
	err := p.Rotate(context.Background(), id)
	var pe *provision.Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "rotate", pe.Phase)
	r := waitReady(t, p, id)
	assert.Equal(t, 1, r.Attempts)
	mu.Lock()
	assert.Equal(t, []bool{false, true, true}, rotations)
	mu.Unlock()
	assert.Equal(t, "API_TOKEN="+b.secrets.token(id)+"\n", readFile(t, b.server(id).Path(envPath)))
}
