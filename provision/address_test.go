package provision_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// lateAddrProvider creates servers whose addresses it does not know yet
// (late), as DigitalOcean does until a droplet is active, and counts its
// Gets; getIPv4, when set, is the IPv4 its Get reports.
type lateAddrProvider struct {
	provider.Provider
	late    bool
	getIPv4 string
	gets    atomicCounter
}

func (l *lateAddrProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	srv, err := l.Provider.Create(ctx, req)
	if l.late {
		srv.IPv4, srv.IPv6, srv.SSHAddr = "", "", ""
	}
	return srv, err
}

func (l *lateAddrProvider) Get(ctx context.Context, id string) (provider.Server, error) {
	l.gets.add()
	srv, err := l.Provider.Get(ctx, id)
	if l.getIPv4 != "" {
		srv.IPv4 = l.getIPv4
	}
	return srv, err
}

// A server whose address the provider does not know at create is recorded
// in cloud_init without one; its address comes from one Get before the
// injection and is recorded then. With CallbackCheckSource, the phone_home
// that the handler could not check (no address to compare) is checked
// against it: a phone_home from elsewhere is not injected, and the pin is
// dropped. A provider that knows the address at create costs no Get.
func TestAddressesThatComeLater(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		late        bool
		checkSource bool
		getIPv4     string
		wantGets    int64
		wantReady   bool
	}{
		{name: "known at create", checkSource: true, wantGets: 0, wantReady: true},
		{name: "later", late: true, wantGets: 1, wantReady: true},
		{name: "later, source checked", late: true, checkSource: true, wantGets: 1, wantReady: true},
		{name: "later, phone_home from elsewhere", late: true, checkSource: true, getIPv4: "127.0.0.3", wantGets: 1},
		{name: "later, unchecked", late: true, getIPv4: "127.0.0.3", wantGets: 1, wantReady: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The server is recorded before it phones home.
			b := setup(t, bundleOpts{bootDelay: 300 * time.Millisecond})
			lp := &lateAddrProvider{Provider: b.cloud, late: tt.late, getIPv4: tt.getIPv4}
			cfg := b.config("r1", nil)
			cfg.Provider = lp
			cfg.CallbackCheckSource = tt.checkSource
			cfg.MaxAttempts = 1
			p := b.replica(cfg)
			ctx := context.Background()
			id := newID()
			require.NoError(t, p.Provision(ctx, id))
			r, err := b.store.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusCloudInit, r.Status)
			if tt.late {
				assert.Empty(t, r.IPv4+r.IPv6, "no address yet")
			} else {
				assert.Equal(t, "127.0.0.1", r.IPv4)
			}

			r, err = p.Wait(ctxTimeout(t, 20*time.Second), id)
			require.NoError(t, err)
			assert.Equal(t, tt.wantGets, lp.gets.n.Load(), "provider Gets")
			srv := b.server(id)
			wantIP := "127.0.0.1"
			if tt.getIPv4 != "" {
				wantIP = tt.getIPv4
			}
			assert.Equal(t, wantIP, r.IPv4, "the address is recorded")
			if tt.wantReady {
				require.Equal(t, store.StatusReady, r.Status, r.Error)
				assert.Equal(t, 1, injections(srv))
				return
			}
			require.Equal(t, store.StatusFailed, r.Status)
			assert.True(t, strings.HasPrefix(r.Error, "inject: "), "not final: %s", r.Error)
			assert.Contains(t, r.Error, "did not come from the server's address")
			assert.Contains(t, r.Error, "127.0.0.1")
			assert.Empty(t, r.HostKeys, "the pin is dropped: the retry creates a new server")
			assert.Empty(t, srv.Commands(), "nothing reached the server")
		})
	}
}
