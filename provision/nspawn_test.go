package provision_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/nspawntest"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// realWorld provisions on real local servers (provider/nspawn): real
// cloud-init runs the bootstrap, real sshd and systemd take the
// injection.
type realWorld struct {
	cloud   *nspawn.Provider
	store   store.Store
	secrets *secretBox
	cfg     provision.Config // start uses it
	p       *provision.Provisioner
}

func newRealWorld(t *testing.T) *realWorld {
	t.Helper()
	w := &realWorld{cloud: nspawntest.New(t, nspawn.Options{}), store: memory.New(), secrets: &secretBox{}}
	mux := http.NewServeMux()
	cp := httptest.NewServer(mux) // on 127.0.0.1, which the servers share
	t.Cleanup(cp.Close)
	w.cfg = provision.Config{
		Provider:            w.cloud,
		Store:               w.store,
		Secrets:             w.secrets,
		BootstrapFunc:       bootstrap,
		StepsFunc:           steps,
		SSHUser:             sshUser,
		Signer:              newSigner(t),
		CallbackBase:        cp.URL + "/callback",
		CallbackKey:         []byte(randHex(32)),
		CallbackCheckSource: true,
		MaxAttempts:         1,
		PhoneHomeTimeout:    5 * time.Minute,
		Logger:              testenv.Logger(t),
	}
	mux.Handle("POST /callback/{id}", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.p.Handler().ServeHTTP(rw, r)
	}))
	return w
}

// start makes the Provisioner from w.cfg; it is closed at the end of the
// test, before the servers are.
func (w *realWorld) start(t *testing.T) *provision.Provisioner {
	t.Helper()
	p, err := provision.New(w.cfg)
	require.NoError(t, err)
	w.p = p
	t.Cleanup(func() { p.Close() })
	return p
}

// realContext returns t's context, ended after 10 minutes: time for a
// real server's boot or two.
func realContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// provision provisions a new tenant with w's Provisioner and returns its
// ID and its record once settled (see Provisioner.Wait).
func (w *realWorld) provision(ctx context.Context, t *testing.T) (string, store.Record) {
	t.Helper()
	id := newID()
	require.NoError(t, w.p.Provision(ctx, id))
	r, err := w.p.Wait(ctx, id)
	require.NoError(t, err)
	return id, r
}

// shell connects as the SSH user to r's server, pinned to the host keys
// it posted at phone_home, and returns a function that runs a command
// there and returns its output, failing the test when it fails.
func (w *realWorld) shell(ctx context.Context, t *testing.T, r store.Record) func(cmd string) string {
	t.Helper()
	srv, err := w.cloud.Get(ctx, r.ServerID)
	require.NoError(t, err)
	cb, err := inject.PinnedHostKeys(r.HostKeys)
	require.NoError(t, err)
	algos, err := inject.PinnedHostKeyAlgorithms(r.HostKeys)
	require.NoError(t, err)
	c, err := inject.Dial(ctx, srv.Addr(), inject.SSHConfig{
		User: sshUser, Signer: w.cfg.Signer, HostKeyCallback: cb, HostKeyAlgorithms: algos, Timeout: time.Minute,
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return func(cmd string) string {
		t.Helper()
		o, e, err := c.Run(ctx, cmd, nil)
		require.NoError(t, err, "%s: %s", cmd, e)
		return string(o)
	}
}

func TestNspawnProvision(t *testing.T) {
	t.Parallel()
	w := newRealWorld(t)
	p := w.start(t)
	ctx := realContext(t)

	id, r := w.provision(ctx, t)
	require.Equal(t, store.StatusReady, r.Status, "error: %s", r.Error)
	assert.Equal(t, nspawn.InstanceID(r.ServerID), r.InstanceID)
	assert.Equal(t, provision.DefaultServerName(id), r.Hostname)

	// What the injection left, seen over a connection of our own.
	out := w.shell(ctx, t, r)
	assert.Equal(t, "600 tenant:tenant\n", out("sudo -n stat -c '%a %U:%G' "+envPath))
	assert.Equal(t, "API_TOKEN="+w.secrets.token(id)+"\n", out("sudo -n cat "+envPath))
	assert.Equal(t, "active\n", out("systemctl is-active "+unit))
	assert.Equal(t, "enabled\n", out("systemctl is-enabled "+unit))
	assert.Equal(t, "tenant\n", out("stat -c %U /proc/$(systemctl show -p MainPID --value "+unit+")"), "the unit runs as its User=")
	assert.Contains(t, out("cat /etc/motd"), "tenant "+id)
	// No password login: root's password is locked, sshd refuses passwords.
	assert.Equal(t, "root L", strings.Join(strings.Fields(out("sudo -n passwd -S root"))[:2], " "))
	assert.Contains(t, out("sudo -n sshd -T"), "\npasswordauthentication no\n")

	require.NoError(t, p.Deprovision(ctx, id))
	deleted, err := w.store.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusDeleted, deleted.Status)
	_, err = w.cloud.Get(ctx, r.ServerID)
	require.ErrorIs(t, err, provider.ErrNotFound)
}

// brokenUnit exits at once: the injection's CheckActive finds it failed
// and reports its journal.
var brokenUnit = []byte(`[Unit]
Description=a unit that fails

[Service]
ExecStart=/bin/sh -c 'echo nspawn-broken-unit-says-goodbye >&2; exit 3'
`)

func TestNspawnUnitFails(t *testing.T) {
	t.Parallel()
	w := newRealWorld(t)
	w.cfg.StepsFunc = func(_ context.Context, in provision.StepsInput) ([]inject.Step, error) {
		return []inject.Step{
			inject.InstallUnit("broken.service", brokenUnit),
			inject.DaemonReload(),
			inject.StartUnit("broken.service"),
			inject.CheckActive("broken.service", 2*time.Second),
		}, nil
	}
	w.start(t)

	_, r := w.provision(realContext(t), t)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Contains(t, r.Error, "check broken.service active", "the step")
	assert.Contains(t, r.Error, "nspawn-broken-unit-says-goodbye", "the journal tail reaches the record")
	assert.Contains(t, r.Error, "status=3/NOTIMPLEMENTED", "systemd's own words")
	t.Logf("Record.Error:\n%s", r.Error)
}

// A runcmd command that fails fails the tenant with what the command said
// (from cloud-init's journal) and cloud-init's own report.
func TestNspawnRunCmdFails(t *testing.T) {
	t.Parallel()
	w := newRealWorld(t)
	w.cfg.BootstrapFunc = bootstrapWith(func(c *cloudinit.Config) {
		c.RunCmd = append(c.RunCmd, cloudinit.Command{"sh", "-c", "echo installer-exploded-here >&2; exit 7"})
	})
	w.start(t)

	_, r := w.provision(realContext(t), t)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Contains(t, r.Error, "installer-exploded-here", "what the command said")
	assert.Contains(t, r.Error, "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))")
	assert.NotContains(t, r.Error, "SHA256:", "no host key fingerprints")
}

// On real servers: Replace brings a ready tenant up on a new server, then
// deletes the old one; the new one runs the unit, pinned to its own keys.
func TestNspawnReplace(t *testing.T) {
	t.Parallel()
	w := newRealWorld(t)
	p := w.start(t)
	ctx := realContext(t)
	id, old := w.provision(ctx, t)
	require.Equal(t, store.StatusReady, old.Status, old.Error)

	require.NoError(t, p.Replace(ctx, id))
	r, err := p.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.StatusReady, r.Status, r.Error)
	assert.NotEqual(t, old.ServerID, r.ServerID)
	assert.NotEqual(t, old.HostKeys, r.HostKeys, "a new server, its own host keys")
	assert.Empty(t, r.RetiringServerID)
	_, err = w.cloud.Get(ctx, old.ServerID)
	require.ErrorIs(t, err, provider.ErrNotFound, "the old server is deleted")
	assert.Equal(t, "active\n", w.shell(ctx, t, r)("systemctl is-active "+unit))
}

// On real servers: a server deleted behind the library's back is seen by
// the drift check and, with ReplaceOnDrift, replaced.
func TestNspawnDrift(t *testing.T) {
	t.Parallel()
	w := newRealWorld(t)
	w.cfg.ReplaceOnDrift = true
	w.cfg.DriftInterval = -1 // checked by hand below
	var mu sync.Mutex
	var drifts []string
	w.cfg.OnEvent = func(e provision.Event) {
		if e.Drift != "" {
			mu.Lock()
			drifts = append(drifts, e.Drift)
			mu.Unlock()
		}
	}
	p := w.start(t)
	ctx := realContext(t)
	id, old := w.provision(ctx, t)
	require.Equal(t, store.StatusReady, old.Status, old.Error)

	require.NoError(t, w.cloud.Delete(ctx, old.ServerID)) // not through the library
	require.NoError(t, p.CheckDrift(ctx))
	var r store.Record
	var err error
	require.Eventually(t, func() bool {
		r, err = w.store.Get(ctx, id)
		return err == nil && r.Status == store.StatusReady && r.ServerID != old.ServerID
	}, 5*time.Minute, 100*time.Millisecond, "replaced")
	assert.Empty(t, r.Drift, "cleared once ready on the new server")
	mu.Lock()
	assert.NotEmpty(t, drifts, "the drift was reported")
	mu.Unlock()
	assert.Equal(t, "active\n", w.shell(ctx, t, r)("systemctl is-active "+unit))
}
