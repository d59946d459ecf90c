package nspawn_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// bootTimeout bounds one server's boot to phone_home; generous, for a
// 2-core machine shared with other test packages.
const bootTimeout = 5 * time.Minute

// home is the control plane's side of a test: the real callback.Handler
// on 127.0.0.1 with a memory store, and the records of servers that phoned
// home.
type home struct {
	store  *memory.Store
	h      *callback.Handler
	base   string
	signer ssh.Signer

	mu    sync.Mutex
	ready map[string]chan store.Record // by tenant ID
}

func newHome(t *testing.T) *home {
	t.Helper()
	hm := &home{store: memory.New(), signer: newSigner(t), ready: map[string]chan store.Record{}}
	hm.h = &callback.Handler{
		Store:          hm.store,
		Key:            []byte(randHex(32)),
		CheckSource:    true,
		InstanceIDFunc: func(r store.Record) string { return nspawn.InstanceID(r.ServerID) },
		Logger:         testenv.Logger(t),
		OnReady: func(_ context.Context, r store.Record) {
			hm.ch(r.ID) <- r
		},
	}
	srv := httptest.NewServer(hm.h) // on 127.0.0.1
	t.Cleanup(srv.Close)
	hm.base = srv.URL + "/callback"
	return hm
}

func (hm *home) ch(id string) chan store.Record {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	c, ok := hm.ready[id]
	if !ok {
		c = make(chan store.Record, 1)
		hm.ready[id] = c
	}
	return c
}

// tenant is one server booted through the home.
type tenant struct {
	id  string // the tenant's ID in the store
	srv provider.Server
}

// config is the cloud-config of a test server: user app with the home's
// key and passwordless sudo, and phone_home to the callback.
func (hm *home) config(id, name string) cloudinit.Config {
	return cloudinit.Config{
		Hostname: name,
		Users: []cloudinit.User{{
			Name: "app", Shell: "/bin/bash", Sudo: "ALL=(ALL) NOPASSWD:ALL",
			SSHAuthorizedKeys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hm.signer.PublicKey())))},
		}},
		PhoneHome: &cloudinit.PhoneHome{
			URL:  hm.h.URL(hm.base, id),
			Post: []string{"pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"},
		},
	}
}

// create records a tenant, builds its user-data (edit changes the
// config first) and creates its server.
func (hm *home) create(ctx context.Context, t *testing.T, p provider.Provider, name string, edit func(*cloudinit.Config)) tenant {
	t.Helper()
	return hm.createImage(ctx, t, p, name, "", edit)
}

// createImage is create with the request's Image.
func (hm *home) createImage(ctx context.Context, t *testing.T, p provider.Provider, name, image string, edit func(*cloudinit.Config)) tenant {
	t.Helper()
	id := newUUID()
	require.NoError(t, hm.store.Create(ctx, store.Record{ID: id, Status: store.StatusCreating}))
	cfg := hm.config(id, name)
	if edit != nil {
		edit(&cfg)
	}
	ud, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	srv, err := p.Create(ctx, provider.CreateRequest{Name: name, UserData: ud, Image: image, Labels: map[string]string{"tenant": id}})
	require.NoError(t, err)
	_, err = store.Transition(ctx, hm.store, id, []store.Status{store.StatusCreating}, store.StatusCloudInit, func(r *store.Record) error {
		r.ServerID, r.ServerName, r.IPv4 = srv.ID, srv.Name, srv.IPv4
		return nil
	})
	if err != nil { // phoned home already: the record moved on
		var ce *store.ConflictError
		require.ErrorAs(t, err, &ce)
	}
	return tenant{id: id, srv: srv}
}

// wait waits for the tenant's phone_home and returns its record.
func (hm *home) wait(ctx context.Context, t *testing.T, tn tenant) store.Record {
	t.Helper()
	select {
	case r := <-hm.ch(tn.id):
		return r
	case <-ctx.Done():
		t.Fatalf("no phone_home from %s (%s): %v", tn.srv.Name, tn.srv.ID, ctx.Err())
	}
	return store.Record{}
}

// dial connects as app, pinned to the host keys the server posted.
func (hm *home) dial(ctx context.Context, t *testing.T, srv provider.Server, r store.Record) *inject.SSH {
	t.Helper()
	cb, err := inject.PinnedHostKeys(r.HostKeys)
	require.NoError(t, err)
	algos, err := inject.PinnedHostKeyAlgorithms(r.HostKeys)
	require.NoError(t, err)
	c, err := inject.Dial(ctx, srv.Addr(), inject.SSHConfig{
		User: "app", Signer: hm.signer, HostKeyCallback: cb, HostKeyAlgorithms: algos, Timeout: time.Minute,
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs cmd on the server and returns its stdout; it fails the test
// when the command fails.
func run(ctx context.Context, t *testing.T, c *inject.SSH, cmd string) string {
	t.Helper()
	out, errOut, err := c.Run(ctx, cmd, nil)
	require.NoError(t, err, "%s\nstdout: %s\nstderr: %s", cmd, out, errOut)
	return string(out)
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// portFree reports whether 127.0.0.1:port can be bound.
func portFree(addr string) bool {
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}
