package nspawn

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
)

func TestParseCgroups(t *testing.T) {
	t.Parallel()
	const hybridMounts = `25 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
`
	const v2Mounts = `25 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	tests := []struct {
		name             string
		mounts, cgroup   string
		unified, systemd string
		err              string
	}{
		{"hybrid", hybridMounts, "9:name=systemd:/\n4:memory:/x\n1:cpu:/\n0::/\n",
			"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", ""},
		{"hybrid, in a cgroup", hybridMounts, "9:name=systemd:/ci/job\n0::/ci/job\n",
			"/sys/fs/cgroup/unified/ci/job", "/sys/fs/cgroup/systemd/ci/job", ""},
		{"pure v2", v2Mounts, "0::/user.slice/user-0.slice/session-1.scope\n",
			"/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope", "", ""},
		{"pure v2, root", v2Mounts, "0::/\n", "/sys/fs/cgroup", "", ""},
		{"v2 mounted from a subtree (a container)",
			"30 25 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/docker/abc/job\n",
			"/sys/fs/cgroup/job", "", ""},
		{"outside the mounted subtree",
			"30 25 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/docker/abcd\n",
			"", "", "outside the mounted hierarchy"},
		{"escaped mount point", `30 25 0:26 / /sys/fs/cg\040x rw - cgroup2 cgroup2 rw` + "\n", "0::/a\n",
			"/sys/fs/cg x/a", "", ""},
		{"pure v1", "32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n", "1:name=systemd:/\n",
			"", "", "no cgroup v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parseCgroups([]byte(tt.mounts), []byte(tt.cgroup))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.unified, b.unified)
			assert.Equal(t, tt.systemd, b.systemd)
			assert.True(t, strings.HasPrefix(b.unified, b.unifiedMount), "%s below %s", b.unified, b.unifiedMount)
			assert.True(t, strings.HasPrefix(b.systemd, b.systemdMount), "%s below %s", b.systemd, b.systemdMount)
			assert.NoError(t, b.check("hatchery-x", b.dirs("hatchery-x")), "its own servers' cgroups")
		})
	}
	b := cgroupBases{unified: "/u", systemd: "/s"}
	assert.Equal(t, []string{"/u/m", "/s/m"}, b.dirs("m"), "unified first")
	assert.Equal(t, []string{"/u/m"}, cgroupBases{unified: "/u"}.dirs("m"))
}

// TestCgroupCheck: the cgroups a record may name are its machine's, one
// per hierarchy and in the same order, under any cgroup of the hierarchy
// (a Provider of another process makes them under its own cgroup).
func TestCgroupCheck(t *testing.T) {
	t.Parallel()
	b := cgroupBases{unified: "/u/job", systemd: "/s/job", unifiedMount: "/u", systemdMount: "/s"}
	const m = "hatchery-0123456789ab"
	tests := []struct {
		name string
		dirs []string
		ok   bool
	}{
		{"this Provider's", []string{"/u/job/" + m, "/s/job/" + m}, true},
		{"another process's", []string{"/u/other/" + m, "/s/other/" + m}, true},
		{"at the hierarchies' root", []string{"/u/" + m, "/s/" + m}, true},
		{"swapped", []string{"/s/job/" + m, "/u/job/" + m}, false},
		{"unified only", []string{"/u/job/" + m}, false},
		{"another machine", []string{"/u/job/hatchery-000000000000", "/s/job/hatchery-000000000000"}, false},
		{"below the machine's", []string{"/u/job/" + m + "/payload", "/s/job/" + m + "/payload"}, false},
		{"the hierarchies", []string{"/u", "/s"}, false},
		{"outside", []string{"/x/" + m, "/s/job/" + m}, false},
		{"dot-dot", []string{"/u/../x/" + m, "/s/job/" + m}, false},
		{"a mount's sibling", []string{"/uu/" + m, "/s/job/" + m}, false},
		{"relative", []string{"u/job/" + m, "s/job/" + m}, false},
		{"trailing slash", []string{"/u/job/" + m + "/", "/s/job/" + m}, false},
	}
	for _, tt := range tests {
		err := b.check(m, tt.dirs)
		if tt.ok {
			assert.NoError(t, err, tt.name)
		} else {
			assert.Error(t, err, tt.name)
		}
	}
}

func TestRequirements(t *testing.T) {
	t.Parallel()
	all := func(name string) (string, error) { return "/usr/bin/" + name, nil }
	without := func(missing ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, m := range missing {
				if m == name {
					return "", exec.ErrNotFound
				}
			}
			return all(name)
		}
	}
	p, err := requirements(0, all)
	require.NoError(t, err)
	assert.Equal(t, "/usr/bin/systemd-nspawn", p.nspawn)
	assert.Equal(t, "/usr/bin/debootstrap", p.debootstrap)

	_, err = requirements(0, without("debootstrap", "systemd-nspawn"))
	require.ErrorIs(t, err, ErrRequirements)
	assert.NotErrorIs(t, err, provider.ErrUnauthorized)
	assert.ErrorContains(t, err, "systemd-nspawn is not installed (apt-get install --no-install-recommends systemd-container)")
	assert.ErrorContains(t, err, "debootstrap is not installed (apt-get install --no-install-recommends debootstrap)")

	_, err = requirements(1000, all)
	require.ErrorIs(t, err, ErrRequirements)
	require.ErrorIs(t, err, provider.ErrUnauthorized, "not root: the credentials are refused")
	assert.ErrorContains(t, err, "run as root")
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	good := Options{Suite: "bookworm", Mirror: DefaultMirror, SecurityMirror: DefaultSecurityMirror, StateDir: "/var/lib/x", CacheDir: "/var/cache/x"}
	require.NoError(t, good.validate())
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"unknown suite", func(o *Options) { o.Suite = "sid" }},
		{"mirror not a URL", func(o *Options) { o.Mirror = "deb.debian.org/debian" }},
		{"mirror ftp", func(o *Options) { o.Mirror = "ftp://deb.debian.org/debian" }},
		{"mirror with a space", func(o *Options) { o.Mirror = "http://deb.debian.org/debian main" }},
		{"security mirror", func(o *Options) { o.SecurityMirror = "" }},
		{"package name", func(o *Options) { o.Packages = []string{"jq", "jq;rm"} }},
		{"package with version", func(o *Options) { o.Packages = []string{"jq=1.6"} }},
		{"comma in StateDir", func(o *Options) { o.StateDir = "/var/lib/a,upperdir=/x" }},
		{"colon in CacheDir", func(o *Options) { o.CacheDir = "/var/cache/a:b" }},
		{"negative StopTimeout", func(o *Options) { o.StopTimeout = -time.Second }},
	}
	for _, tt := range tests {
		o := good
		tt.mod(&o)
		require.ErrorIs(t, o.validate(), provider.ErrInvalid, tt.name)
	}
}

func TestSuiteOf(t *testing.T) {
	t.Parallel()
	p := &Provider{opts: Options{Suite: "trixie"}}
	for image, want := range map[string]string{"": "trixie", "bookworm": "bookworm", "debian-12": "bookworm", "trixie": "trixie", "debian-13": "trixie"} {
		got, err := p.suiteOf(image)
		require.NoError(t, err, image)
		assert.Equal(t, want, got, image)
	}
	for _, image := range []string{"sid", "debian-11", "ubuntu-24.04", "Bookworm", " bookworm"} {
		_, err := p.suiteOf(image)
		require.ErrorIs(t, err, provider.ErrInvalid, image)
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for range 100 {
		require.True(t, validID(newID()))
	}
	for _, id := range []string{"", "0123456789a", "0123456789abc", "0123456789aB", "../../etc/pa", "0123456789a/", "0123456789a\x00"} {
		assert.False(t, validID(id), "%q", id)
	}
	assert.Equal(t, "nspawn-0123456789ab", InstanceID("0123456789ab"))
}

func TestImageKey(t *testing.T) {
	t.Parallel()
	base := imageSpec{Suite: "bookworm", Mirror: DefaultMirror, Security: DefaultSecurityMirror, Packages: basePackages}
	k := base.key()
	assert.Regexp(t, `^bookworm-[0-9a-f]{16}$`, k)
	assert.Equal(t, k, base.key(), "stable")
	seen := map[string]string{k: "base"}
	for name, s := range map[string]imageSpec{
		"suite":    {Suite: "trixie", Mirror: base.Mirror, Security: base.Security, Packages: base.Packages},
		"mirror":   {Suite: base.Suite, Mirror: "http://ftp.de.debian.org/debian", Security: base.Security, Packages: base.Packages},
		"security": {Suite: base.Suite, Mirror: base.Mirror, Security: "http://security.debian.org/debian-security", Packages: base.Packages},
		"packages": {Suite: base.Suite, Mirror: base.Mirror, Security: base.Security, Packages: append(append([]string(nil), base.Packages...), "jq")},
	} {
		key := s.key()
		_, dup := seen[key]
		assert.False(t, dup, "%s: key %s also for %s", name, key, seen[key])
		seen[key] = name
	}
	assert.Equal(t, "deb http://m/debian bookworm main\ndeb http://m/debian bookworm-updates main\ndeb http://s/sec bookworm-security main\n",
		imageSpec{Suite: "bookworm", Mirror: "http://m/debian", Security: "http://s/sec"}.sources())
}

// freePorts returns n ports in the servers' range that are free now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	for port := portMin + 4000 + int(time.Now().UnixNano()%3000); len(out) < n && port <= portMax; port++ {
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			l.Close()
			out = append(out, port)
		}
	}
	require.Len(t, out, n)
	return out
}

func TestPorts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	free := freePorts(t, 1)
	pp := ports{dir: filepath.Join(t.TempDir(), "ports"), min: free[0], max: free[0] + 1}
	owner := func(port int) string {
		d := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(d, recordFile), []byte(`{"port":`+strconv.Itoa(port)+`}`), 0o600))
		return d
	}
	// Only the first port may be free: the second is taken by a listener.
	if l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(pp.max)); err == nil {
		defer l.Close()
	}
	a := owner(0) // being created: no port in its record yet
	port, err := pp.reserve(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, pp.min, port)
	_, err = pp.reserve(ctx, owner(0))
	require.ErrorIs(t, err, errNoPort, "the one free port is reserved, the other bound")

	// A reservation whose owner is gone is stale.
	require.NoError(t, os.Remove(filepath.Join(a, recordFile)))
	b := owner(0)
	port, err = pp.reserve(ctx, b)
	require.NoError(t, err, "stale reservation taken over")
	assert.Equal(t, pp.min, port)

	// A reservation whose owner records another port is stale too.
	require.NoError(t, os.WriteFile(filepath.Join(b, recordFile), []byte(`{"port":1}`), 0o600))
	c := owner(pp.min)
	_, err = pp.reserve(ctx, c)
	require.NoError(t, err)

	// Only the owner releases.
	require.NoError(t, pp.release(ctx, pp.min, b))
	_, err = pp.reserve(ctx, owner(0))
	require.ErrorIs(t, err, errNoPort, "c still holds the port")
	require.NoError(t, pp.release(ctx, pp.min, c))
	_, err = pp.reserve(ctx, owner(0))
	require.NoError(t, err)
	require.NoError(t, pp.release(ctx, 0, c), "no port, nothing to do")
}

func TestWriteLayer(t *testing.T) {
	t.Parallel()
	lower, upper := t.TempDir(), t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(lower, "etc/ssh"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(lower, "etc/ssh"), 0o711))
	require.NoError(t, writeLayer(upper, lower, "etc/ssh/sshd_config.d/x.conf", []byte("a\n"), 0o644))
	require.NoError(t, writeLayer(upper, lower, "var/lib/cloud/seed/nocloud/user-data", []byte("#cloud-config\n"), 0o600))
	require.NoError(t, writeLayer(upper, lower, "var/lib/cloud/seed/nocloud/meta-data", []byte("x"), 0o644))
	for path, want := range map[string]os.FileMode{
		"etc": 0o755, "etc/ssh": 0o711, "etc/ssh/sshd_config.d": 0o755, "var/lib/cloud/seed/nocloud": 0o755,
		"var/lib/cloud/seed/nocloud/user-data": 0o600, "etc/ssh/sshd_config.d/x.conf": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(upper, path))
		require.NoError(t, err)
		assert.Equal(t, want, fi.Mode().Perm(), path)
	}
}

func TestLockFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := lockFile(context.Background(), path)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = lockFile(ctx, path)
	require.ErrorIs(t, err, context.DeadlineExceeded, "held by another open file, in this process too")

	got := make(chan error, 1)
	go func() {
		u, err := lockFile(context.Background(), path)
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	unlock()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the lock was not handed over")
	}
}

func TestMountsUnder(t *testing.T) {
	t.Parallel()
	points, err := mountsUnder("/proc")
	require.NoError(t, err)
	assert.Contains(t, points, "/proc")
	points, err = mountsUnder(t.TempDir())
	require.NoError(t, err)
	assert.Empty(t, points)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	require.NoError(t, removeTree(dir))
	assert.NoDirExists(t, dir)
	require.NoError(t, removeTree(dir), "nothing to remove")
	assert.True(t, errors.Is(func() error { _, err := os.Stat(dir); return err }(), os.ErrNotExist))
}

func TestRecords(t *testing.T) {
	t.Parallel()
	p := testProvider(t)
	older, newer := newID(), newID()
	for i, id := range []string{newer, older} {
		require.NoError(t, os.Mkdir(p.dir(id), 0o700))
		r := validRecord(p, id)
		r.Port, r.Created = 20000+i, time.Date(2026, 1, 2-i, 0, 0, 0, 0, time.UTC)
		require.NoError(t, p.writeRecord(r))
	}
	corrupt := newID()
	require.NoError(t, os.Mkdir(p.dir(corrupt), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(p.dir(corrupt), recordFile), []byte("{"), 0o600))
	require.NoError(t, os.Mkdir(p.dir(newID()), 0o700)) // no record (yet)
	require.NoError(t, os.Mkdir(filepath.Join(p.stateDir, "not-a-server"), 0o700))
	other := newID()
	require.NoError(t, os.Mkdir(p.dir(other), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(p.dir(other), recordFile), []byte(`{"id":"000000000000"}`), 0o600))

	recs, err := p.records(t.Context())
	require.NoError(t, err)
	require.Len(t, recs, 2, "the corrupt one, the one naming another ID and the non-servers are skipped")
	_, err = p.readRecord(other)
	require.ErrorIs(t, err, ErrUntrustedRecord, "a record naming another ID")
	assert.Equal(t, older, recs[0].ID, "oldest first")
	assert.Equal(t, newer, recs[1].ID)
	r, err := p.readRecord(newer)
	require.NoError(t, err)
	assert.Equal(t, recs[1], r)
}
