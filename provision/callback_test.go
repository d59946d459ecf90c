package provision_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// With the callback's checks on (the callback from the server's own
// address, the instance ID of provider/fake), a tenant gets ready. (That
// the options reach the callback.Handler is TestCallbackOptionsReachTheHandler.)
func TestCallbackOptions(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	cfg := b.config("r1", nil)
	cfg.CallbackCheckSource = true
	cfg.CallbackTrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cfg.InstanceIDFunc = func(r store.Record) string { return "i-" + r.ServerID }
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	waitReady(t, p, id)
}

// instanceIDProvider is a provider that knows the instance ID cloud-init
// reports on its servers (provider.InstanceIDer), as drivers do.
type instanceIDProvider struct {
	provider.Provider
	fn func(serverID string) string
}

func (p instanceIDProvider) InstanceID(serverID string) string { return p.fn(serverID) }

// Without Config.InstanceIDFunc, a provider that knows its instance IDs
// turns the check on: a server posting another instance ID is refused,
// and one posting its own gets ready.
func TestInstanceIDFromProvider(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		fn    func(string) string
		ready bool
	}{
		{"right", func(id string) string { return "i-" + id }, true},
		{"wrong", func(string) string { return "i-someone-else" }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A boot long enough that the server is recorded before it
			// phones home: a callback that comes first is not checked.
			b := setup(t, bundleOpts{bootDelay: 300 * time.Millisecond})
			cfg := b.config("r1", nil)
			cfg.PhoneHomeTries = 2
			cfg.Provider = instanceIDProvider{Provider: b.cloud, fn: tt.fn}
			p := b.replica(cfg)
			id := newID()
			require.NoError(t, p.Provision(context.Background(), id))
			if tt.ready {
				waitReady(t, p, id)
				return
			}
			srv := b.server(id)
			select {
			case <-srv.Booted():
			case <-time.After(20 * time.Second):
				t.Fatal("the server never finished booting")
			}
			assert.Equal(t, 2, srv.PhoneHomes(), "both tries refused")
			r, err := b.store.Get(context.Background(), id)
			require.NoError(t, err)
			assert.Equal(t, store.StatusCloudInit, r.Status)
			assert.Empty(t, srv.Commands())
		})
	}
}

// A server that posts another instance ID than Config.InstanceIDFunc
// says is refused: the tenant stays in cloud_init, nothing is injected.
func TestInstanceIDMismatchRefused(t *testing.T) {
	t.Parallel()
	// A boot long enough that the server is recorded before it phones
	// home: a callback that comes first is not checked (see callback).
	b := setup(t, bundleOpts{bootDelay: 300 * time.Millisecond})
	cfg := b.config("r1", nil)
	cfg.PhoneHomeTries = 2
	cfg.InstanceIDFunc = func(r store.Record) string { return "i-someone-else" }
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	srv := b.server(id)
	select {
	case <-srv.Booted(): // phone_home answered or given up
	case <-time.After(20 * time.Second):
		t.Fatal("the server never finished booting")
	}
	assert.Equal(t, 2, srv.PhoneHomes(), "both tries refused")
	r, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusCloudInit, r.Status)
	assert.Empty(t, r.HostKeys)
	assert.Zero(t, injections(srv))
	assert.Empty(t, srv.Commands())
	assert.NotContains(t, b.events.statuses(id), store.StatusInjectingSecrets)
}
