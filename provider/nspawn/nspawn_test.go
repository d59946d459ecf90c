package nspawn_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
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
	"github.com/hatchery-dev/hatchery/provider/providertest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providertest.Driver {
			return providertest.Driver{Provider: nspawntest.New(t, nspawn.Options{})}
		},
		Concurrency: 3,
		Timeout:     5 * time.Minute,
	})
}

const helloUnit = `[Unit]
Description=a unit installed by the test

[Service]
ExecStart=/bin/sh -c 'echo hello from a real unit; exec sleep infinity'

[Install]
WantedBy=multi-user.target
`

// TestRealServer boots a server from a cloud-config built with
// cloudinit.Build, receives its phone_home on the real callback.Handler,
// connects pinned to the posted host keys and runs a unit under the
// server's systemd.
func TestRealServer(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	hm := newHome(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()

	tn := hm.create(ctx, t, p, "real-server", func(c *cloudinit.Config) {
		c.WriteFiles = []cloudinit.File{{Path: "/etc/hatchery-test", Content: "written by cloud-init\n", Permissions: "0640"}}
		c.RunCmd = []cloudinit.Command{
			cloudinit.Shell("echo runcmd ran as $(id -un) > /var/tmp/runcmd-done"),
		}
	})
	assert.Equal(t, "127.0.0.1", tn.srv.IPv4)
	assert.Regexp(t, `^127\.0\.0\.1:\d+$`, tn.srv.SSHAddr)
	assert.Equal(t, "running", tn.srv.Status)
	assert.WithinDuration(t, time.Now(), tn.srv.Created, time.Minute)

	r := hm.wait(ctx, t, tn)
	assert.Equal(t, "real-server", r.Hostname, "hostname posted at phone_home")
	assert.Equal(t, nspawn.InstanceID(tn.srv.ID), r.InstanceID, "instance_id posted at phone_home")
	assert.Equal(t, p.InstanceID(tn.srv.ID), r.InstanceID)
	assert.Len(t, r.HostKeys, 3, "rsa, ecdsa and ed25519 host keys")

	c := hm.dial(ctx, t, tn.srv, r)
	require.NoError(t, inject.Run(ctx, c, []inject.Step{
		inject.WaitCloudInit(false),
		inject.InstallUnit("hello.service", []byte(helloUnit)),
		inject.DaemonReload(),
		inject.EnableUnit("hello.service"),
		inject.StartUnit("hello.service"),
		inject.CheckActive("hello.service", time.Second),
	}))

	assert.Equal(t, "active\n", run(ctx, t, c, "systemctl is-active hello.service"))
	assert.Contains(t, run(ctx, t, c, "sudo -n journalctl -u hello.service --no-pager"), "hello from a real unit")
	assert.Equal(t, "systemd\n", run(ctx, t, c, "cat /proc/1/comm"), "PID 1")
	status := run(ctx, t, c, "cloud-init status --long")
	assert.Contains(t, status, "status: done")
	assert.Equal(t, "runcmd ran as root\n", run(ctx, t, c, "cat /var/tmp/runcmd-done"))
	assert.Equal(t, "written by cloud-init\n", run(ctx, t, c, "sudo -n cat /etc/hatchery-test"))
	assert.Equal(t, "real-server\n", run(ctx, t, c, "hostname"))
	assert.Equal(t, "app\n", run(ctx, t, c, "id -un"))
	assert.Equal(t, "running\n", run(ctx, t, c, "systemctl is-system-running --wait || true"), "booted, no unit failed")
	assert.Contains(t, run(ctx, t, c, "grep ^VERSION_CODENAME= /etc/os-release"), "bookworm")
	assert.Equal(t, "LANG=en_US.UTF-8\n", run(ctx, t, c, "grep ^LANG= /etc/default/locale"))
	assert.Empty(t, run(ctx, t, c, "LANG=en_US.UTF-8 locale 2>&1 >/dev/null"), "the locale is generated")
	t.Logf("cloud-init status --long:\n%s", status)

	// The server shares the host's network: ss sees every socket, and
	// names the processes of the server's own PID namespace. Those listen
	// on 127.0.0.1:PORT only (sshd), not on the host's port 22.
	var own []string
	for line := range strings.Lines(run(ctx, t, c, "sudo -n ss -Hlntup")) {
		if f := strings.Fields(line); strings.Contains(line, "users:((") && len(f) >= 5 {
			own = append(own, f[0]+" "+f[1]+" "+f[4]) // netid, state, local address
		}
	}
	assert.Equal(t, []string{"tcp LISTEN " + tn.srv.SSHAddr}, own, "the server's listening sockets")

	require.NoError(t, p.Delete(ctx, tn.srv.ID))
	assert.True(t, portFree(tn.srv.SSHAddr), "Delete frees the port %s", tn.srv.SSHAddr)
	_, err := p.Get(ctx, tn.srv.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
}

// TestAptPackages: cloud-init installs packages with apt from the
// host's Debian mirror, and the server's apt sources are the image's.
func TestAptPackages(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	hm := newHome(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	tn := hm.create(ctx, t, p, "apt", func(c *cloudinit.Config) {
		c.PackageUpdate = true
		c.Packages = []string{"jq"}
	})
	r := hm.wait(ctx, t, tn)
	c := hm.dial(ctx, t, tn.srv, r)
	assert.Contains(t, run(ctx, t, c, "cloud-init status --long"), "status: done")
	assert.Equal(t, "install ok installed\n", run(ctx, t, c, "dpkg-query -W -f '${Status}\\n' jq"))
	assert.Equal(t, "2\n", run(ctx, t, c, `echo '{"a":2}' | jq .a`))
	policy := run(ctx, t, c, "apt-cache policy jq")
	assert.Contains(t, policy, nspawn.DefaultMirror+" bookworm/main", "installed from the host's mirror:\n%s", policy)
	assert.Equal(t, "deb "+nspawn.DefaultMirror+" bookworm main\n"+
		"deb "+nspawn.DefaultMirror+" bookworm-updates main\n"+
		"deb "+nspawn.DefaultSecurityMirror+" bookworm-security main\n",
		run(ctx, t, c, "cat /etc/apt/sources.list"))
}

// TestThreeAtOnce boots three servers at once: each phones home with its
// own host keys and answers on its own port as itself.
func TestThreeAtOnce(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	hm := newHome(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()

	names := []string{"three-a", "three-b", "three-c"}
	tenants := make([]tenant, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { tenants[i] = hm.create(ctx, t, p, name, nil) })
	}
	wg.Wait()
	keys := map[string]bool{}
	ports := map[string]bool{}
	for i, tn := range tenants {
		r := hm.wait(ctx, t, tn)
		for _, k := range r.HostKeys {
			assert.False(t, keys[k], "host key shared between servers")
			keys[k] = true
		}
		assert.False(t, ports[tn.srv.SSHAddr], "port shared between servers")
		ports[tn.srv.SSHAddr] = true
		c := hm.dial(ctx, t, tn.srv, r)
		assert.Equal(t, names[i]+"\n", run(ctx, t, c, "hostname"))
		assert.Equal(t, "active\n", run(ctx, t, c, "systemctl is-active ssh.service"))
	}
	for _, tn := range tenants {
		wg.Go(func() { assert.NoError(t, p.Delete(ctx, tn.srv.ID)) })
	}
	wg.Wait()
	for _, tn := range tenants {
		assert.True(t, portFree(tn.srv.SSHAddr), "Delete frees the port %s", tn.srv.SSHAddr)
	}
}

// TestLaterProvider: a Provider on the same StateDir, after the one that
// started a server was closed with Keep, sees the server, adopts it by
// name and deletes it.
func TestLaterProvider(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := nspawntest.New(t, nspawn.Options{StateDir: dir, Keep: true})
	later := nspawntest.New(t, nspawn.Options{StateDir: dir})
	hm := newHome(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()

	tn := hm.create(ctx, t, first, "outlives", nil)
	t.Cleanup(func() { _ = later.Delete(context.Background(), tn.srv.ID) })
	r := hm.wait(ctx, t, tn)
	require.NoError(t, first.Close())

	got, err := later.Get(ctx, tn.srv.ID)
	require.NoError(t, err)
	assert.Equal(t, "running", got.Status, "the server outlives the Provider that started it")
	assert.Equal(t, tn.srv.SSHAddr, got.SSHAddr)
	c := hm.dial(ctx, t, got, r)
	assert.Equal(t, "outlives\n", run(ctx, t, c, "hostname"))
	c.Close()

	all, err := later.List(ctx, map[string]string{"tenant": tn.id})
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.Equal(t, tn.srv.ID, all[0].ID)

	adopted, err := later.Create(ctx, provider.CreateRequest{Name: "outlives", UserData: []byte("#cloud-config\n"), Labels: map[string]string{"tenant": tn.id}})
	require.NoError(t, err)
	assert.Equal(t, tn.srv.ID, adopted.ID, "adopted by name")
	_, err = later.Create(ctx, provider.CreateRequest{Name: "outlives", UserData: []byte("#cloud-config\n"), Labels: map[string]string{"tenant": "another"}})
	require.ErrorIs(t, err, provider.ErrConflict, "the name is another tenant's server")

	cgroups := nspawn.Cgroups(later, tn.srv.ID)
	require.NotEmpty(t, cgroups)
	require.NoError(t, later.Delete(ctx, tn.srv.ID))
	_, err = later.Get(ctx, tn.srv.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
	assert.True(t, portFree(tn.srv.SSHAddr), "port %s", tn.srv.SSHAddr)
	for _, cg := range cgroups {
		assert.NoDirExists(t, cg)
	}
}

// TestCloseLeavesNothing: Close stops every server of the Provider and
// leaves no process, cgroup, mount, port or directory behind.
func TestCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := nspawntest.New(t, nspawn.Options{StateDir: dir})
	hm := newHome(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()

	a := hm.create(ctx, t, p, "close-a", nil)
	b := hm.create(ctx, t, p, "close-b", nil)
	hm.wait(ctx, t, a)
	hm.wait(ctx, t, b)
	var pids []int
	var cgroups []string
	for _, tn := range []tenant{a, b} {
		cg := nspawn.Cgroups(p, tn.srv.ID)
		cgroups = append(cgroups, cg...)
		pids = append(pids, nspawn.Processes(cg[0])...)
		assert.False(t, portFree(tn.srv.SSHAddr), "sshd listens on %s", tn.srv.SSHAddr)
	}
	require.GreaterOrEqual(t, len(pids), 10, "nspawn, systemd, journald, sshd... in each")

	require.NoError(t, p.Close())
	for _, pid := range pids {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		assert.True(t, errors.Is(err, os.ErrNotExist), "process %d still exists", pid)
	}
	for _, cg := range cgroups {
		assert.NoDirExists(t, cg)
	}
	for _, tn := range []tenant{a, b} {
		assert.True(t, portFree(tn.srv.SSHAddr), "port %s", tn.srv.SSHAddr)
		assert.NoDirExists(t, filepath.Join(dir, tn.srv.ID))
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(mounts), dir, "no mount of the servers shows on the host")
	_, err = p.Create(ctx, provider.CreateRequest{Name: "after-close", UserData: []byte("#cloud-config\n")})
	require.ErrorIs(t, err, provider.ErrUnavailable, "a closed Provider creates nothing")
}

// TestStopTimeout: a server whose poweroff hangs (a unit that never
// stops) is killed after StopTimeout, and leaves nothing either, not even
// systemd-nspawn's own files.
func TestStopTimeout(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{StopTimeout: 3 * time.Second})
	hm := newHome(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	tn := hm.create(ctx, t, p, "hangs", func(c *cloudinit.Config) {
		c.WriteFiles = []cloudinit.File{{Path: "/etc/systemd/system/hang.service", Content: "[Service]\n" +
			"ExecStart=/bin/sleep infinity\nExecStop=/bin/sleep infinity\nTimeoutStopSec=infinity\n"}}
		c.RunCmd = []cloudinit.Command{{"systemctl", "start", "hang.service"}}
	})
	hm.wait(ctx, t, tn)
	cg := nspawn.Cgroups(p, tn.srv.ID)
	pids := nspawn.Processes(cg[0])
	machine := nspawn.Machine(p, tn.srv.ID)
	require.NotEmpty(t, machine)

	start := time.Now()
	require.NoError(t, p.Delete(ctx, tn.srv.ID))
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, 3*time.Second, "the poweroff hangs until StopTimeout")
	assert.Less(t, took, 20*time.Second)
	for _, pid := range pids {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		assert.True(t, errors.Is(err, os.ErrNotExist), "process %d still exists", pid)
	}
	for _, d := range cg {
		assert.NoDirExists(t, d)
	}
	assert.True(t, portFree(tn.srv.SSHAddr))
	assert.NoDirExists(t, "/run/systemd/nspawn/propagate/"+machine, "systemd-nspawn cleaned up after itself")
}

// TestTrixie boots the newer suite, chosen per request.
func TestTrixie(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), nspawntest.ImageTimeout+bootTimeout)
	defer cancel()
	require.NoError(t, p.Prepare(ctx, "trixie"))
	hm := newHome(t)

	tn := hm.createImage(ctx, t, p, "trixie", "trixie", func(c *cloudinit.Config) {
		c.RunCmd = []cloudinit.Command{{"touch", "/var/tmp/runcmd-done"}}
	})
	r := hm.wait(ctx, t, tn)
	c := hm.dial(ctx, t, tn.srv, r)
	assert.Contains(t, run(ctx, t, c, "grep ^VERSION_CODENAME= /etc/os-release"), "trixie")
	assert.Contains(t, run(ctx, t, c, "cloud-init status --long"), "status: done")
	run(ctx, t, c, "test -f /var/tmp/runcmd-done")
	assert.Equal(t, "systemd\n", run(ctx, t, c, "cat /proc/1/comm"))
}

func TestImageOption(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	for _, image := range []string{"ubuntu-24.04", "debian-11", "sid", "Bookworm"} {
		_, err := p.Create(t.Context(), provider.CreateRequest{Name: "img", UserData: []byte("#cloud-config\n"), Image: image})
		require.ErrorIs(t, err, provider.ErrInvalid, image)
	}
	all, err := p.List(t.Context(), nil)
	require.NoError(t, err)
	assert.Empty(t, all)

	// ServerType and Location are ignored; "debian-12" is bookworm.
	srv, err := p.Create(t.Context(), provider.CreateRequest{Name: "img", UserData: []byte("#cloud-config\n"),
		Image: "debian-12", ServerType: "cx22", Location: "fsn1"})
	require.NoError(t, err)
	assert.Equal(t, "bookworm", nspawn.Suite(p, srv.ID))
	require.NoError(t, p.Delete(t.Context(), srv.ID))
}

// TestBrokenImage: a server whose container cannot start leaves nothing
// behind, and Create says why.
func TestBrokenImage(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	p := nspawntest.Open(t, nspawn.Options{StateDir: state, CacheDir: t.TempDir()})
	require.NoError(t, os.MkdirAll(nspawn.ImageDir(p, nspawn.DefaultSuite), 0o755), "an empty image")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	_, err := p.Create(ctx, provider.CreateRequest{Name: "broken", UserData: []byte("#cloud-config\n")})
	require.ErrorContains(t, err, "systemd-nspawn ended at once")
	t.Log(err)
	all, err := p.List(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, all)
	entries, err := os.ReadDir(state)
	require.NoError(t, err)
	for _, e := range entries {
		assert.Equal(t, ".lock", e.Name(), "left in the state directory")
	}
}

func TestCheckCredentials(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	require.NoError(t, p.CheckCredentials(t.Context()))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, p.CheckCredentials(ctx), context.Canceled)
}

func TestConsole(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	hm := newHome(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	tn := hm.create(ctx, t, p, "console", nil)
	hm.wait(ctx, t, tn)
	out, err := p.Console(tn.srv.ID)
	require.NoError(t, err)
	assert.Contains(t, string(out), "Cloud-init v.", "cloud-init's lines on the console")
	_, err = p.Console("000000000000")
	require.ErrorIs(t, err, provider.ErrNotFound)
	_, err = p.Console("../../etc")
	require.ErrorIs(t, err, provider.ErrNotFound)
	require.NoError(t, p.Delete(ctx, tn.srv.ID))
	_, err = p.Console(tn.srv.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
}

func TestGetUnknown(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	for _, id := range []string{"", "000000000000", "../../../etc", "ABCDEF012345", strings.Repeat("a", 13)} {
		_, err := p.Get(t.Context(), id)
		require.ErrorIs(t, err, provider.ErrNotFound, "%q", id)
		require.NoError(t, p.Delete(t.Context(), id), "%q", id)
	}
}

// TestUnsafeDirs: New refuses a StateDir or CacheDir that another user
// could change (it would plant records naming cgroups and processes for
// root to kill, or an image for root to mount), and says which and why.
func TestUnsafeDirs(t *testing.T) {
	t.Parallel()
	ww := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(ww, 0o700))
	require.NoError(t, os.Chmod(ww, 0o777))
	for _, tt := range []struct {
		option string
		opts   nspawn.Options
		path   string
	}{
		{"StateDir", nspawn.Options{StateDir: ww, CacheDir: t.TempDir()}, ww},
		{"StateDir", nspawn.Options{StateDir: filepath.Join(ww, "state"), CacheDir: t.TempDir()}, ww},
		{"CacheDir", nspawn.Options{StateDir: t.TempDir(), CacheDir: filepath.Join(ww, "cache")}, ww},
	} {
		p, err := nspawn.New(tt.opts)
		if errors.Is(err, nspawn.ErrRequirements) {
			testenv.Missing(t, err.Error())
		}
		if err == nil {
			p.Close()
		}
		require.ErrorIs(t, err, nspawn.ErrUnsafeDir, "%+v", tt.opts)
		var ue *nspawn.UnsafeDirError
		require.ErrorAs(t, err, &ue)
		assert.Equal(t, tt.option, ue.Option)
		assert.Equal(t, tt.path, ue.Path)
		assert.ErrorContains(t, err, "writable by group or others")
	}
	entries, err := os.ReadDir(ww)
	require.NoError(t, err)
	assert.Empty(t, entries, "New made nothing in the unsafe directory")
}
