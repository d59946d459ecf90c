package nspawn_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/nspawntest"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
)

// cgroup2Child marks the run of TestPureCgroupV2 inside its mount
// namespace.
const cgroup2Child = "HATCHERY_NSPAWN_CGROUP2_CHILD"

// TestPureCgroupV2 boots a server on a pure cgroup v2 host. On a hybrid
// host (v1 controllers, the unified hierarchy at /sys/fs/cgroup/unified,
// as in CI) the test runs itself again in a mount namespace whose
// /sys/fs/cgroup is the unified hierarchy alone: the provider and
// systemd-nspawn then see what they see on a pure v2 host, except that
// the controllers stay bound to v1 (the container gets none).
func TestPureCgroupV2(t *testing.T) {
	t.Parallel()
	p := nspawntest.New(t, nspawn.Options{})
	_, v1 := nspawn.CgroupBases(p)
	if v1 == "" {
		bootPureV2(t, p)
		return
	}
	if os.Getenv(cgroup2Child) == "1" {
		t.Fatal("the child still sees a name=systemd hierarchy")
	}
	unshare := testenv.LookPath(t, "unshare")
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--mount", "--propagation", "private", "sh", "-c",
		`umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"`, "sh",
		os.Args[0], "-test.run=^TestPureCgroupV2$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), cgroup2Child+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("the test in a pure cgroup v2 view:\n%s", out)
	require.NoError(t, err)
	require.Contains(t, string(out), "--- PASS: TestPureCgroupV2")
}

func bootPureV2(t *testing.T, p *nspawn.Provider) {
	hm := newHome(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	tn := hm.create(ctx, t, p, "cgroup2", nil)
	cgroups := nspawn.Cgroups(p, tn.srv.ID)
	require.Len(t, cgroups, 1, "the unified hierarchy only")
	r := hm.wait(ctx, t, tn)
	c := hm.dial(ctx, t, tn.srv, r)
	assert.Equal(t, "systemd\n", run(ctx, t, c, "cat /proc/1/comm"))
	// /proc/self/cgroup lists the kernel's v1 hierarchies anyway; what
	// the container mounted tells.
	assert.Equal(t, "cgroup2fs\n", run(ctx, t, c, "stat -fc %T /sys/fs/cgroup"), "the container's systemd runs on the unified hierarchy alone")
	assert.Contains(t, run(ctx, t, c, "cloud-init status --long"), "status: done")
	assert.Equal(t, "active\n", run(ctx, t, c, "systemctl is-active ssh.service"))
	require.NoError(t, p.Delete(ctx, tn.srv.ID))
	assert.NoDirExists(t, cgroups[0])
	assert.True(t, portFree(tn.srv.SSHAddr))
}
