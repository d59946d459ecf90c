package provision_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// apart starts a Provisioner with cfg that has a public callback address
// of its own, as another control plane (or another store) would: the
// bundle's front is for the replicas of one control plane.
func apart(t *testing.T, cfg provision.Config) *provision.Provisioner {
	t.Helper()
	f := newFront(t)
	cfg.CallbackBase = f.base()
	p, err := provision.New(cfg)
	require.NoError(t, err)
	f.add(cfg.Replica, p.Handler())
	t.Cleanup(func() { p.Close() })
	return p
}

// orphansBy returns Sweep's orphans by server ID.
func orphansBy(res provision.SweepResult) map[string]provision.Orphan {
	out := map[string]provision.Orphan{}
	for _, o := range res.Orphans {
		out[o.Server.ID] = o
	}
	return out
}

// Sweep deletes the servers of its control plane that no live record
// owns, once older than SweepGrace, and never in a dry run: a server of
// a tenant the store does not know, of a deleted tenant, and a stray one
// of a tenant that has another. Live tenants' servers (a ready one's, a
// replacement's two), another control plane's servers in the same
// account, and servers the driver did not create are never touched.
func TestSweep(t *testing.T) {
	t.Parallel()
	// The replacement below stays in cloud_init: its server never phones
	// home, so both its servers are there while Sweep runs.
	b := setup(t, bundleOpts{store: memory.New(), faults: func(name string) fake.Faults {
		return fake.Faults{NoPhoneHome: len(name) > len(provision.DefaultServerName(newID()))}
	}})
	cloud := &listing{lookups: &lookups{countingProvider: b.cloud}}
	dh := &deleteHook{countingProvider: b.cloud}
	cfg := b.config("main", nil)
	cfg.Provider = struct {
		*deleteHook
		provider.Lister
	}{dh, cloud}
	cfg.DriftInterval = -1
	cfg.SweepGrace = time.Hour
	p := b.replica(cfg)
	ctx := context.Background()
	live := readyTenants(t, p, 2)
	// A replacement under way: both its servers are owned.
	require.NoError(t, p.Replace(ctx, live[1].ID))
	replacing := get(t, b.store, live[1].ID)
	require.Equal(t, live[1].ServerID, replacing.RetiringServerID)

	// A deleted tenant whose server deletion failed.
	deleted := readyTenants(t, p, 1)[0]
	dh.setFailing(func(id string) error {
		if id == deleted.ServerID {
			return provider.ErrRateLimited
		}
		return nil
	})
	require.Error(t, p.Deprovision(ctx, deleted.ID))
	dh.setFailing(nil)

	// Another store, the same control plane: its tenants are unknown to
	// this one ("no record"), and one of them has this store's tenant ID
	// under another name ("tenant has another server").
	ghostCfg := b.config("ghost", memory.New())
	ghostCfg.ServerNameFunc = func(id string) string { return "ghost-" + id }
	ghost := apart(t, ghostCfg)
	unknown := readyTenants(t, ghost, 1)[0]
	require.NoError(t, ghost.Provision(ctx, live[0].ID))
	stray, err := ghost.Wait(ctxTimeout(t, 30*time.Second), live[0].ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusReady, stray.Status)

	// Another control plane in the same account, and a foreign server.
	otherCfg := b.config("other", memory.New())
	otherCfg.ControlPlane = "staging"
	other := apart(t, otherCfg)
	staging := readyTenants(t, other, 2)
	foreign := b.fake.AddForeign("hand-made", map[string]string{provision.LabelControlPlane: provision.DefaultControlPlane})

	all := len(b.fake.Servers())
	// Too young (SweepGrace of an hour): found, kept.
	res, err := p.Sweep(ctx, false)
	require.NoError(t, err)
	found := orphansBy(res)
	require.Len(t, found, 3, "%+v", res.Orphans)
	assert.Equal(t, "no record", found[unknown.ServerID].Reason)
	assert.Equal(t, "tenant deleted", found[deleted.ServerID].Reason)
	assert.Equal(t, "tenant has another server", found[stray.ServerID].Reason)
	assert.Equal(t, unknown.ID, found[unknown.ServerID].Tenant)
	for _, o := range found {
		assert.False(t, o.Deleted)
		assert.Equal(t, "younger than SweepGrace", o.Kept)
	}
	assert.Len(t, b.fake.Servers(), all)

	// Old enough, dry run: found, kept.
	cfg.Replica, cfg.SweepGrace = "main2", time.Nanosecond
	p2 := apart(t, cfg)
	res, err = p2.Sweep(ctx, true)
	require.NoError(t, err)
	require.Len(t, res.Orphans, 3)
	for _, o := range res.Orphans {
		assert.Equal(t, "dry run", o.Kept)
	}
	assert.Len(t, b.fake.Servers(), all)

	res, err = p2.Sweep(ctx, false)
	require.NoError(t, err)
	require.Len(t, res.Orphans, 3)
	for _, o := range res.Orphans {
		assert.True(t, o.Deleted, "%+v", o)
	}
	assert.Len(t, b.fake.Servers(), all-3)
	for _, id := range []string{live[0].ServerID, replacing.ServerID, replacing.RetiringServerID, staging[0].ServerID, staging[1].ServerID} {
		_, ok := b.fake.Server(id)
		assert.True(t, ok, "server %s kept", id)
	}
	_, err = b.fake.Get(ctx, foreign)
	assert.NoError(t, err, "the foreign server is kept")
	assert.Equal(t, store.StatusCloudInit, get(t, b.store, live[1].ID).Status, "the replacement was under way")

	// Nothing left to find.
	res, err = p2.Sweep(ctx, false)
	require.NoError(t, err)
	assert.Empty(t, res.Orphans)

	// Without a provider.Lister, Sweep cannot tell.
	cfg.Replica, cfg.Provider = "nolist", b.cloud
	p3 := apart(t, cfg)
	_, err = p3.Sweep(ctx, true)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
}

// A server whose create was accepted but not recorded (its replica died)
// is owned by its record, which the resumed create will adopt it by:
// Sweep leaves it alone, however old.
func TestSweepSparesCreatesUnderWay(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	a := startCrashing(t, b, nil, nil)
	b.cloud.afterFunc = func(string) { a.st.kill() }
	id := newID()
	_ = a.p.Provision(context.Background(), id) // A dies after its Create
	<-a.closed
	r := get(t, b.store, id)
	require.Equal(t, store.StatusCreating, r.Status)
	require.Empty(t, r.ServerID)
	require.Len(t, b.fake.Servers(), 1)

	cloud := &listing{lookups: &lookups{countingProvider: b.cloud}}
	cfg := b.config("b", nil)
	cfg.Provider = cloud
	cfg.SweepGrace = time.Nanosecond
	cfg.DriftInterval = -1
	p := b.replica(cfg)
	res, err := p.Sweep(context.Background(), false)
	require.NoError(t, err)
	assert.Empty(t, res.Orphans)
	b.run(p)
	r = waitReady(t, p, id)
	assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)), "adopted")
}

// A Sweep that dies halfway (its provider fails after the first
// deletion) has deleted only orphans; run again, it deletes the rest.
func TestSweepInterrupted(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cloud := &listing{lookups: &lookups{countingProvider: b.cloud}}
	dh := &deleteHook{countingProvider: b.cloud}
	var deletes atomic.Int64
	dh.setFailing(func(string) error {
		if deletes.Add(1) > 1 {
			return errKilled
		}
		return nil
	})
	cfg := b.config("main", nil)
	cfg.Provider = struct {
		*deleteHook
		provider.Lister
	}{dh, cloud}
	cfg.DriftInterval = -1
	cfg.SweepGrace = time.Nanosecond
	p := b.replica(cfg)
	live := readyTenants(t, p, 2)

	ghost := apart(t, b.config("ghost", memory.New()))
	orphans := readyTenants(t, ghost, 3)

	res, err := p.Sweep(context.Background(), false)
	require.ErrorIs(t, err, errKilled)
	var deleted int
	for _, o := range res.Orphans {
		if o.Deleted {
			deleted++
		} else {
			assert.Contains(t, o.Kept, "delete failed")
		}
	}
	assert.Equal(t, 1, deleted)
	assert.Len(t, b.fake.Servers(), 4)

	dh.setFailing(nil)
	res, err = p.Sweep(context.Background(), false)
	require.NoError(t, err)
	assert.Len(t, res.Orphans, 2)
	assert.Len(t, b.fake.Servers(), 2)
	for _, r := range live {
		_, ok := b.fake.Server(r.ServerID)
		assert.True(t, ok)
	}
	for _, r := range orphans {
		_, ok := b.fake.Server(r.ServerID)
		assert.False(t, ok)
	}
}

// Config.ControlPlane is checked against what Hetzner's label values and
// DigitalOcean's tags hold; Labels cannot set the Provisioner's own.
func TestControlPlaneConfig(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"", true}, {"default", true}, {"prod-eu-1", true}, {"a", true},
		{"Prod", false}, {"-prod", false}, {"prod-", false}, {"prod_eu", false}, {"prod.eu", false},
		{"p/q", false}, {string(make([]byte, 64)), false},
	} {
		cfg := b.config("r", nil)
		cfg.ControlPlane = tt.name
		_, err := provision.New(cfg)
		if tt.ok {
			assert.NoError(t, err, "%q", tt.name)
		} else {
			assert.ErrorIs(t, err, provision.ErrConfig, "%q", tt.name)
		}
	}
	cfg := b.config("r", nil)
	cfg.Labels = map[string]string{provision.LabelControlPlane: "x"}
	_, err := provision.New(cfg)
	assert.ErrorIs(t, err, provision.ErrConfig)

	// Every server carries the label.
	p := b.replica(b.config("r1", nil))
	r := readyTenants(t, p, 1)[0]
	assert.Equal(t, provision.DefaultControlPlane, liveServer(t, b, r).Info().Labels[provision.LabelControlPlane])
}
