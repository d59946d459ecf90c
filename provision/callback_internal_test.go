package provision

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// testConfig is a valid Config that reaches no server.
func testConfig(t *testing.T) Config {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	fp := fake.New(fake.Options{})
	t.Cleanup(func() { fp.Close() })
	return Config{
		// Only the Provider interface: none of the optional ones that the
		// fake may implement.
		Provider: struct{ provider.Provider }{fp},
		Store:    memory.New(),
		Secrets:  inject.StaticSecrets{},
		BootstrapFunc: func(context.Context, store.Record) (cloudinit.Config, error) {
			return cloudinit.Config{}, nil
		},
		StepsFunc:    func(context.Context, StepsInput) ([]inject.Step, error) { return nil, nil },
		SSHUser:      "hatchery",
		Signer:       signer,
		CallbackBase: "http://127.0.0.1:1/cb",
		CallbackKey:  []byte("0123456789abcdef0123456789abcdef"),
		Replica:      "r",
	}
}

// instanceIDer is a provider that knows its servers' instance IDs.
type instanceIDer struct{ provider.Provider }

func (instanceIDer) InstanceID(serverID string) string { return "i-" + serverID }

// The callback options of Config reach the handler; the instance ID check
// is the provider's when Config has none.
func TestCallbackOptionsReachTheHandler(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cfg.CallbackCheckSource = true
	cfg.CallbackTrustedProxies = proxies
	cfg.InstanceIDFunc = func(r store.Record) string { return "x-" + r.ServerID }
	cfg.Provider = instanceIDer{cfg.Provider}
	p, err := New(cfg)
	require.NoError(t, err)
	proxies[0] = netip.MustParsePrefix("192.168.0.0/16") // New took a copy
	h := p.handler
	assert.True(t, h.CheckSource)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, h.TrustedProxies)
	require.NotNil(t, h.InstanceIDFunc)
	assert.Equal(t, "x-7", h.InstanceIDFunc(store.Record{ServerID: "7"}), "Config's wins")

	cfg = testConfig(t)
	p, err = New(cfg)
	require.NoError(t, err)
	assert.False(t, p.handler.CheckSource)
	assert.Nil(t, p.handler.InstanceIDFunc, "no check when the provider cannot tell")

	cfg.Provider = instanceIDer{cfg.Provider}
	p, err = New(cfg)
	require.NoError(t, err)
	require.NotNil(t, p.handler.InstanceIDFunc, "the provider's by default")
	assert.Equal(t, "i-7", p.handler.InstanceIDFunc(store.Record{ServerID: "7"}))
	assert.Empty(t, p.handler.InstanceIDFunc(store.Record{}), "no server, no instance ID")
}
