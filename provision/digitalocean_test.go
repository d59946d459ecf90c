package provision_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/dotest"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// doCloud is provider/digitalocean against the fake DigitalOcean API, whose
// droplets get their addresses a moment after Create, as on DigitalOcean.
func doCloud(t *testing.T) (*dotest.API, *digitalocean.Provider) {
	t.Helper()
	const token, fingerprint = "do-test-token", "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"
	api := dotest.New(dotest.Options{Token: token, ActiveAfter: 200 * time.Millisecond})
	t.Cleanup(api.Close)
	api.AddSSHKey("ops", fingerprint)
	client, err := digitalocean.NewClient(token, godo.SetBaseURL(api.URL()))
	require.NoError(t, err)
	return api, digitalocean.New(client, digitalocean.Options{
		Size: "s-1vcpu-1gb", Image: "debian-12-x64", Region: "fra1",
		SSHKeys: []string{fingerprint}, LookupDelay: 50 * time.Millisecond,
	})
}

// errCrash is what a replica's store answers once the replica is dead.
var errCrash = errors.New("replica crashed")

// crashBeforeServer is a store of a replica that dies between its
// provider's Create and the store write that records the server: that
// write, and every later one, fails.
type crashBeforeServer struct {
	store.Store
	dead atomic.Bool
}

func (c *crashBeforeServer) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	if c.dead.Load() {
		return store.Record{}, errCrash
	}
	return c.Store.Update(ctx, id, func(r *store.Record) error {
		before := r.ServerID
		if err := fn(r); err != nil {
			return err
		}
		if before == "" && r.ServerID != "" {
			c.dead.Store(true)
			return errCrash
		}
		return nil
	})
}

// A replica that dies after DigitalOcean made the droplet and before the
// store recorded it leaves no second droplet: the replica that takes over
// creates by name again, and the driver adopts the droplet the dead one
// made (DigitalOcean has no uniqueness error to tell it).
func TestDigitalOceanCrashBetweenCreateAndStore(t *testing.T) {
	t.Parallel()
	api, cloud := doCloud(t)
	b := setup(t, bundleOpts{store: memory.New()})
	id := newID()

	crashing := &crashBeforeServer{Store: b.store}
	cfg := b.config("a", crashing)
	cfg.Provider = cloud
	a := b.replica(cfg)
	err := a.Provision(context.Background(), id)
	require.ErrorIs(t, err, errCrash)
	require.Len(t, api.Created(), 1, "the droplet was made")
	r, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusCreating, r.Status, "but not recorded")
	require.Empty(t, r.ServerID)

	cfg = b.config("b", nil)
	cfg.Provider = cloud
	p := b.replica(cfg)
	b.run(p) // Resume takes the creating record over once A's lease ends
	require.Eventually(t, func() bool {
		r, err = b.store.Get(context.Background(), id)
		return err == nil && r.Status != store.StatusCreating
	}, 30*time.Second, 50*time.Millisecond)
	assert.Equal(t, store.StatusCloudInit, r.Status, r.Error)
	assert.Len(t, api.Droplets(), 1, "one droplet for the tenant")
	assert.Len(t, api.Created(), 1, "created once, adopted by the replica that took over")
	assert.Equal(t, "fra1", r.Location)
	assert.Equal(t, "s-1vcpu-1gb", r.ServerType)
	assert.Equal(t, strconv.Itoa(api.Droplets()[0].ID), r.ServerID)
}

// A create whose answer is lost (the droplet was made) is not sent
// again blindly: the driver finds the droplet by name and the tenant
// gets exactly one.
func TestDigitalOceanLostCreateAnswer(t *testing.T) {
	t.Parallel()
	api, cloud := doCloud(t)
	b := setup(t, bundleOpts{store: memory.New()})
	cfg := b.config("a", nil)
	cfg.Provider = cloud
	p := b.replica(cfg)
	api.Inject(dotest.Fault{Method: "POST", Path: "/v2/droplets", Lost: true})
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusCloudInit, r.Status, r.Error)
	assert.Len(t, api.Droplets(), 1)
	assert.Len(t, api.Created(), 1)
	assert.Equal(t, provision.DefaultServerName(id), r.ServerName)
}
