package provision_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
)

// The callback options of Config reach the handler.
func TestCallbackOptions(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	cfg := b.config("r1", nil)
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cfg.CallbackCheckSource = true
	cfg.CallbackTrustedProxies = proxies
	cfg.InstanceIDFunc = func(r store.Record) string { return "i-" + r.ServerID }
	p := b.replica(cfg)
	proxies[0] = netip.MustParsePrefix("192.168.0.0/16") // New took a copy

	h, ok := p.Handler().(*callback.Handler)
	require.True(t, ok, "Handler is a *callback.Handler")
	assert.True(t, h.CheckSource)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, h.TrustedProxies)
	require.NotNil(t, h.InstanceIDFunc)
	assert.Equal(t, "i-7", h.InstanceIDFunc(store.Record{ServerID: "7"}))

	// With the right instance ID (provider/fake's), and the callback from
	// the server's own address, a tenant gets ready.
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	waitReady(t, p, id)

	h, ok = b.replica(b.config("r2", nil)).Handler().(*callback.Handler)
	require.True(t, ok)
	assert.False(t, h.CheckSource)
	assert.Nil(t, h.InstanceIDFunc, "no check by default")
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
