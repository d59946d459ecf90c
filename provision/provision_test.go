package provision_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	tests := []struct {
		name string
		mod  func(*provision.Config)
		want string
	}{
		{"no provider", func(c *provision.Config) { c.Provider = nil }, "Provider"},
		{"no store", func(c *provision.Config) { c.Store = nil }, "Store"},
		{"no secrets", func(c *provision.Config) { c.Secrets = nil }, "Secrets"},
		{"no bootstrap", func(c *provision.Config) { c.BootstrapFunc = nil }, "BootstrapFunc"},
		{"no steps", func(c *provision.Config) { c.StepsFunc = nil }, "StepsFunc"},
		{"no user", func(c *provision.Config) { c.SSHUser = "" }, "SSHUser"},
		{"bad user", func(c *provision.Config) { c.SSHUser = "root; rm" }, "SSHUser"},
		{"no signer", func(c *provision.Config) { c.Signer = nil }, "Signer"},
		{"short key", func(c *provision.Config) { c.CallbackKey = []byte("short") }, "CallbackKey"},
		{"no base", func(c *provision.Config) { c.CallbackBase = "" }, "CallbackBase"},
		{"relative base", func(c *provision.Config) { c.CallbackBase = "/api/callback" }, "CallbackBase"},
		{"base with query", func(c *provision.Config) { c.CallbackBase = "http://x/cb?a=b" }, "CallbackBase"},
		{"http, not loopback", func(c *provision.Config) { c.CallbackBase = "http://cp.example.com/cb" }, "https"},
		{"http, private address", func(c *provision.Config) { c.CallbackBase = "http://10.0.0.5:8080/cb" }, "https"},
		{"http, unspecified address", func(c *provision.Config) { c.CallbackBase = "http://0.0.0.0:8080/cb" }, "https"},
		{"http, loopback-like name", func(c *provision.Config) { c.CallbackBase = "http://localhost.example.com/cb" }, "https"},
		{"negative lease", func(c *provision.Config) { c.LeaseDuration = -time.Second }, "LeaseDuration"},
		{"negative skew", func(c *provision.Config) { c.MaxClockSkew = -time.Second }, "MaxClockSkew"},
		{"negative resume concurrency", func(c *provision.Config) { c.ResumeConcurrency = -1 }, "ResumeConcurrency"},
		{"negative attempts", func(c *provision.Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"jump without address", func(c *provision.Config) {
			c.SSHJump = &provision.JumpHost{User: "u", HostKeyCallback: ssh.FixedHostKey(c.Signer.PublicKey())}
		}, "SSHJump.Addr"},
		{"jump without user", func(c *provision.Config) {
			c.SSHJump = &provision.JumpHost{Addr: "127.0.0.1:22", HostKeyCallback: ssh.FixedHostKey(c.Signer.PublicKey())}
		}, "SSHJump.User"},
		{"jump without host key check", func(c *provision.Config) {
			c.SSHJump = &provision.JumpHost{Addr: "127.0.0.1:22", User: "u"}
		}, "SSHJump.HostKeyCallback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := b.config("r", nil)
			tt.mod(&cfg)
			p, err := provision.New(cfg)
			require.ErrorIs(t, err, provision.ErrConfig)
			assert.Contains(t, err.Error(), tt.want)
			assert.Nil(t, p)
		})
	}
	p, err := provision.New(b.config("", nil))
	require.NoError(t, err)
	assert.NotEmpty(t, p.Replica(), "a default replica name")
	require.NoError(t, p.Close())

	// Plain http is fine on loopback, or when allowed explicitly.
	for _, base := range []string{"http://127.0.0.1:8080/cb", "http://127.9.9.9/cb", "http://[::1]:8080/cb",
		"http://localhost:8080/cb", "http://LOCALHOST/cb", "https://cp.example.com/cb", "https://10.0.0.5/cb"} {
		cfg := b.config("r", nil)
		cfg.CallbackBase = base
		p, err := provision.New(cfg)
		require.NoError(t, err, base)
		require.NoError(t, p.Close())
	}
	cfg := b.config("r", nil)
	cfg.CallbackBase = "http://10.0.0.5:8080/cb"
	cfg.AllowInsecureCallback = true
	p, err = provision.New(cfg)
	require.NoError(t, err)
	require.NoError(t, p.Close())
}

// An SSH agent with nowhere to find it is a configuration error, at New.
func TestNewAgentNeedsASocket(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	b := setup(t, bundleOpts{store: memory.New()})
	for _, mod := range []func(*provision.Config){
		func(c *provision.Config) { c.SSHAgent = true },
		func(c *provision.Config) {
			c.SSHJump = &provision.JumpHost{Addr: "127.0.0.1:22", User: "u", Agent: true,
				HostKeyCallback: ssh.FixedHostKey(c.Signer.PublicKey())}
		},
	} {
		cfg := b.config("r", nil)
		mod(&cfg)
		_, err := provision.New(cfg)
		require.ErrorIs(t, err, provision.ErrConfig)
		assert.Contains(t, err.Error(), "SSH agent")
		cfg.SSHAgentSocket = "/run/agent.sock"
		p, err := provision.New(cfg)
		require.NoError(t, err)
		require.NoError(t, p.Close())
	}
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	p := b.replica(b.config("r1", nil))
	ctx := context.Background()
	id := newID()

	require.NoError(t, p.Provision(ctx, id))
	r, err := p.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.StatusReady, r.Status, "error: %s", r.Error)

	assert.Equal(t, []store.Status{store.StatusPending, store.StatusCreating, store.StatusCloudInit,
		store.StatusInjectingSecrets, store.StatusReady}, b.events.statuses(id))
	assert.Empty(t, r.LeaseOwner, "the lease is released")
	assert.Zero(t, r.Attempts)

	srv := b.server(id)
	assert.Equal(t, srv.ID(), r.ServerID)
	assert.Equal(t, provision.DefaultServerName(id), r.ServerName)
	assert.Equal(t, "127.0.0.1", r.IPv4)
	assert.Equal(t, srv.InstanceID(), r.InstanceID)
	require.Len(t, r.HostKeys, 1)
	assert.Contains(t, srv.HostKeyLine(), r.HostKeys[0])
	assert.Equal(t, id, srv.Info().Labels[provision.LabelTenant])

	// The secret is on the server, 0600, owned by the app user; the unit runs.
	env := srv.Path(envPath)
	data, err := os.ReadFile(env)
	require.NoError(t, err)
	assert.Equal(t, "API_TOKEN="+b.secrets.token(id)+"\n", string(data))
	assert.Equal(t, os.FileMode(0o600), fileMode(t, env))
	assert.Equal(t, os.FileMode(0o750), fileMode(t, srv.Path(appDir)))
	assert.Equal(t, appUser+":"+appUser, srv.Owner(appDir))
	assert.Equal(t, appUser+":"+appUser, srv.Owner(envPath))
	assert.Equal(t, os.FileMode(0o644), fileMode(t, srv.Path("/etc/systemd/system/"+unit)))
	u := srv.Unit(unit)
	assert.True(t, u.Active, "unit active")
	assert.True(t, u.Enabled, "unit enabled")
	assert.Equal(t, 1, injections(srv))

	// The secret never went into the user-data, nor into a command line.
	ud := b.cloud.lastUserData(provision.DefaultServerName(id))
	assert.NotContains(t, string(ud), b.secrets.token(id))
	rec, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Contains(t, string(ud), p.CallbackURL(rec))
	for _, c := range srv.Commands() {
		assert.NotContains(t, c, b.secrets.token(id))
	}
	cfg, err := cloudinit.Parse(ud)
	require.NoError(t, err)
	require.NotNil(t, cfg.PhoneHome)
	assert.Contains(t, cfg.PhoneHome.Post, "pub_key_ed25519")
	assert.Equal(t, provision.DefaultPhoneHomeTries, cfg.PhoneHome.Tries)
	var found bool
	for _, u := range cfg.Users {
		if u.Name == sshUser {
			found = true
			require.Len(t, u.SSHAuthorizedKeys, 1)
			assert.True(t, strings.HasPrefix(u.SSHAuthorizedKeys[0], "ssh-ed25519 "))
		}
	}
	assert.True(t, found, "the SSH user is in the cloud-config")

	// Provision again: nothing happens twice.
	require.NoError(t, p.Provision(ctx, id))
	assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)))
	assert.Len(t, b.fake.Servers(), 1)

	// Rotate: fresh secret, the unit restarted, the same server.
	b.secrets.set(id, "tok-rotated-"+randHex(8))
	require.NoError(t, p.Rotate(ctx, id))
	data, err = os.ReadFile(env)
	require.NoError(t, err)
	assert.Equal(t, "API_TOKEN="+b.secrets.token(id)+"\n", string(data))
	assert.Equal(t, os.FileMode(0o600), fileMode(t, env))
	cmds := strings.Join(srv.Commands(), "\n")
	assert.Contains(t, cmds, "restart")
	assert.True(t, srv.Unit(unit).Active)
	r, err = b.store.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusReady, r.Status)
	assert.Len(t, b.fake.Servers(), 1, "rotation does not rebuild")

	// Deprovision: the server goes, the record says deleted; twice is fine.
	require.NoError(t, p.Deprovision(ctx, id))
	require.NoError(t, p.Deprovision(ctx, id))
	r, err = b.store.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusDeleted, r.Status)
	assert.Empty(t, r.ServerID)
	assert.Empty(t, b.fake.Servers())
	assert.ErrorIs(t, p.Rotate(ctx, id), provision.ErrNotReady)
}

func TestProvisionRejectsBadID(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	p := b.replica(b.config("r1", nil))
	for _, id := range []string{"", "not-a-uuid", "00000000-0000-0000-0000-00000000000G", "../../etc/passwd"} {
		assert.ErrorIs(t, p.Provision(context.Background(), id), store.ErrInvalid, id)
	}
	assert.Empty(t, b.fake.Servers())
}

// A secret that slipped into the bootstrap fails the build: no server, a
// final failure, and the secret is not in the error.
func TestSecretInBootstrapFails(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	cfg := b.config("r1", nil)
	cfg.BootstrapFunc = func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
		c, _ := bootstrap(ctx, r)
		c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/etc/app.conf", Content: "token=" + b.secrets.token(r.ID)})
		return c, nil
	}
	p := b.replica(cfg)
	id := newID()
	err := p.Provision(context.Background(), id)
	require.ErrorIs(t, err, cloudinit.ErrSecret)
	var pe *provision.Error
	require.ErrorAs(t, err, &pe)
	assert.True(t, pe.Final)
	assert.Equal(t, "create", pe.Phase)
	assert.NotContains(t, err.Error(), b.secrets.token(id))

	r, err := p.Wait(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusFailed, r.Status)
	assert.True(t, strings.HasPrefix(r.Error, "final: create: "), r.Error)
	assert.NotContains(t, r.Error, b.secrets.token(id))
	assert.Equal(t, 1, r.Attempts)
	assert.Empty(t, b.fake.Servers())
}

// Create fails once: failed, then retried to ready.
func TestFaultCreateFails(t *testing.T) {
	t.Parallel()
	var calls atomicCounter
	b := setup(t, bundleOpts{faults: func(string) fake.Faults {
		if calls.add() == 1 {
			return fake.Faults{CreateErr: provider.ErrUnavailable}
		}
		return fake.Faults{}
	}})
	p := b.replica(b.config("r1", nil))
	id := newID()
	err := p.Provision(context.Background(), id)
	require.ErrorIs(t, err, provider.ErrUnavailable)
	var pe *provision.Error
	require.ErrorAs(t, err, &pe)
	assert.False(t, pe.Final)

	r := waitReady(t, p, id)
	assert.Equal(t, 1, r.Attempts, "one failed attempt")
	assert.Equal(t, []store.Status{store.StatusPending, store.StatusCreating, store.StatusFailed,
		store.StatusCreating, store.StatusCloudInit, store.StatusInjectingSecrets, store.StatusReady},
		b.events.statuses(id))
	assert.Len(t, b.fake.Servers(), 1)
	assert.Equal(t, 1, injections(b.server(id)))
}

// phone_home never comes: failed after the deadline; the retry deletes the
// silent server and creates a new one, which fails the same way.
func TestFaultNoPhoneHome(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{faults: func(string) fake.Faults { return fake.Faults{NoPhoneHome: true} }})
	cfg := b.config("r1", nil)
	cfg.PhoneHomeTimeout = 300 * time.Millisecond
	cfg.MaxAttempts = 2
	p := b.replica(cfg)
	b.run(p)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	first := b.server(id).ID()

	r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Equal(t, 2, r.Attempts)
	assert.Contains(t, r.Error, "phone_home: no phone_home within 300ms")
	// The last event may trail the store write that Wait saw.
	want := []store.Status{store.StatusPending, store.StatusCreating, store.StatusCloudInit, store.StatusFailed,
		store.StatusCreating, store.StatusCloudInit, store.StatusFailed}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, want, b.events.statuses(id))
	}, 5*time.Second, 10*time.Millisecond)
	second := b.server(id).ID()
	assert.NotEqual(t, first, second, "the silent server was replaced")
	_, ok := b.fake.Server(first)
	assert.False(t, ok, "the first server was deleted")
	assert.Len(t, b.fake.Servers(), 1)
	assert.Zero(t, injections(b.server(id)))
}

// A man in the middle: the host key posted at phone_home is not the one
// SSH presents. Nothing reaches the server; the attempt fails (not for
// good) and the pin is dropped, so the retry deletes the server and
// creates a new one, which phones home afresh: never an injection to the
// same pin again. Here every server does it, until the attempts are spent;
// Retry by hand goes back to a new server too.
func TestFaultWrongHostKey(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{faults: func(string) fake.Faults { return fake.Faults{WrongHostKey: true} }})
	var mu sync.Mutex
	var servers []*fake.Server
	b.cloud.afterFunc = func(name string) {
		if s, ok := b.fake.ServerByName(name); ok {
			mu.Lock()
			servers = append(servers, s)
			mu.Unlock()
		}
	}
	cfg := b.config("r1", nil)
	cfg.MaxAttempts = 2
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.True(t, strings.HasPrefix(r.Error, "inject: "), r.Error)
	assert.Contains(t, r.Error, "host key not accepted")
	assert.Equal(t, 2, r.Attempts, "retried, on a new server")
	assert.Empty(t, r.HostKeys, "the pin is dropped")
	name := provision.DefaultServerName(id)
	assert.Equal(t, 2, b.cloud.distinctServers(name))
	assert.Len(t, b.fake.Servers(), 1, "the first server was deleted")

	// Retrying by hand creates a new server too.
	require.NoError(t, p.Retry(context.Background(), id))
	r, err = p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Equal(t, 3, b.cloud.distinctServers(name))
	assert.Len(t, b.fake.Servers(), 1)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, servers, 3)
	for _, s := range servers {
		assert.Empty(t, s.Commands(), "no command reached server %s", s.ID())
		assert.False(t, s.Unit(unit).Active)
	}
}

// The SSH connection is cut in the middle of the injection: the retry
// converges to ready.
func TestFaultConnectionDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{faults: func(string) fake.Faults { return fake.Faults{DropAfter: 1} }})
	p := b.replica(b.config("r1", nil))
	b.run(p)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r := waitReady(t, p, id)
	assert.Equal(t, 1, r.Attempts, "one failed attempt")
	st := b.events.statuses(id)
	assert.Contains(t, st, store.StatusFailed)
	assert.Equal(t, store.StatusReady, st[len(st)-1])
	srv := b.server(id)
	data, err := os.ReadFile(srv.Path(envPath))
	require.NoError(t, err)
	assert.Equal(t, "API_TOKEN="+b.secrets.token(id)+"\n", string(data))
	assert.True(t, srv.Unit(unit).Active)
}

// The unit does not stay active: failed with the journal's tail, after
// every attempt.
func TestFaultUnitFails(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{faults: func(string) fake.Faults { return fake.Faults{UnitFails: true} }})
	cfg := b.config("r1", nil)
	cfg.MaxAttempts = 2
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Equal(t, 2, r.Attempts)
	assert.True(t, strings.HasPrefix(r.Error, "inject: "), r.Error)
	journal := strings.TrimSpace(b.server(id).Journal(unit))
	require.NotEmpty(t, journal)
	lines := strings.Split(journal, "\n")
	assert.Contains(t, r.Error, lines[len(lines)-1], "the journal's tail is in the error")
	assert.NotContains(t, r.Error, b.secrets.token(id))
	assert.Equal(t, 2, injections(b.server(id)))
}

// cloud-init reports an error (the bootstrap failed): the injection stops at
// the wait, before any secret is sent.
func TestFaultCloudInitError(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{faults: func(string) fake.Faults { return fake.Faults{CloudInitError: true} }})
	cfg := b.config("r1", nil)
	cfg.MaxAttempts = 1
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Contains(t, r.Error, "runcmd")
	_, err = os.Stat(b.server(id).Path(envPath))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// Deprovision while the server is being created: the record ends deleted
// and the server that the racing create brought up is deleted too.
func TestDeprovisionDuringCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	id := newID()
	var p *provision.Provisioner
	deleted := make(chan struct{})
	b.cloud.afterFunc = func(string) {
		require.NoError(t, p.Deprovision(context.Background(), id))
		close(deleted)
	}
	p = b.replica(b.config("r1", nil))
	require.NoError(t, p.Provision(context.Background(), id))
	<-deleted
	r, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusDeleted, r.Status)
	assert.Empty(t, b.fake.Servers(), "the racing create's server is deleted")
}

// hangingDelete is a provider whose Delete hangs until its context ends.
type hangingDelete struct {
	provider.Provider
	calls atomicCounter
}

func (h *hangingDelete) Delete(ctx context.Context, id string) error {
	h.calls.add()
	<-ctx.Done()
	return ctx.Err()
}

// Deleting the server of a tenant deprovisioned during its create is not
// cancelled with the create, but it is bounded (by CreateTimeout): a
// provider that hangs does not hold the Provisioner forever.
func TestDeprovisionDuringCreateBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	id := newID()
	var p *provision.Provisioner
	b.cloud.afterFunc = func(string) {
		require.NoError(t, p.Deprovision(context.Background(), id))
	}
	hd := &hangingDelete{Provider: b.cloud}
	cfg := b.config("r1", nil)
	cfg.Provider = hd
	cfg.CreateTimeout = time.Second
	p = b.replica(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Provision(ctx, id) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("Provision still waits for the provider's Delete")
	}
	cancel()
	assert.Equal(t, int64(1), hd.calls.n.Load())
	r, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusDeleted, r.Status)
}

func TestShutdownWaitsAndRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	p := b.replica(b.config("r1", nil))
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	waitReady(t, p, id)
	require.NoError(t, p.Shutdown(context.Background()))
	assert.ErrorIs(t, p.Provision(context.Background(), newID()), provision.ErrClosed)
	assert.ErrorIs(t, p.Resume(context.Background()), provision.ErrClosed)
	assert.ErrorIs(t, p.Run(context.Background()), provision.ErrClosed)
}

func waitReady(t testing.TB, p *provision.Provisioner, id string) store.Record {
	t.Helper()
	r, err := p.Wait(ctxTimeout(t, 30*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusReady, r.Status, "error: %s", r.Error)
	return r
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add() int64 { return c.n.Add(1) }
