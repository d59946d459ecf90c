package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// userDataOf is a Provider that keeps the user-data of its last Create.
type userDataOf struct {
	provider.Provider
	mu   sync.Mutex
	last []byte
}

func (u *userDataOf) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	u.mu.Lock()
	u.last = req.UserData
	u.mu.Unlock()
	return u.Provider.Create(ctx, req)
}

// The quickstart's tenants, Rachel8 with BootProgress, still fit
// Hetzner's 32 KiB of user-data: the webhook adds a few hundred bytes.
func TestRachel8UserDataFitsWithBootProgress(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	cloud := fake.New(fake.Options{Dir: t.TempDir(), BootDelay: 1 << 40}) // never phones home
	t.Cleanup(func() { cloud.Close() })
	size := map[bool]int{}
	for _, on := range []bool{false, true} {
		ud := &userDataOf{Provider: cloud}
		id := newUUID()
		cfg := provision.Config{
			Provider: ud, Store: memory.New(), Secrets: inject.StaticSecrets{id: demoSecrets().Map()},
			Signer: signer, CallbackBase: "http://127.0.0.1:8080" + callbackPath, CallbackKey: make([]byte, 32),
			BootProgress: on,
		}
		rachel8.Apply(&cfg, rachel8.Options{})
		p, err := provision.New(cfg)
		require.NoError(t, err)
		require.NoError(t, p.Provision(context.Background(), id))
		require.NoError(t, p.Close())
		ud.mu.Lock()
		size[on] = len(ud.last)
		ud.mu.Unlock()
	}
	t.Logf("Rachel8's user-data: %d bytes, %d with BootProgress (limit %d)", size[false], size[true], cloudinit.MaxSize)
	assert.Greater(t, size[true], size[false])
	assert.Less(t, size[true], cloudinit.MaxSize)
}
