package nspawn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider"
)

// TestCloseDuringBoot: Close, while a Create waits for a container that
// does not start, ends that wait at once (before, the wait ignored its
// context for up to startTimeout) and leaves nothing behind. The
// container is a stand-in systemd-nspawn that only sleeps: it runs in
// the server's cgroup, but never makes the payload cgroup.
func TestCloseDuringBoot(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	p, err := New(Options{StateDir: state, CacheDir: t.TempDir()})
	if errors.Is(err, ErrRequirements) {
		testenv.Missing(t, err.Error())
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	spec := imageSpec{Suite: p.opts.Suite, Mirror: p.opts.Mirror, Security: p.opts.SecurityMirror, Packages: p.packages}
	require.NoError(t, os.MkdirAll(filepath.Join(p.cacheDir, "images", spec.key()), 0o755), "an empty image")
	fake := filepath.Join(t.TempDir(), "systemd-nspawn")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755))
	p.prog.nspawn = fake

	created := make(chan error, 1)
	go func() {
		_, err := p.Create(context.Background(), provider.CreateRequest{Name: "never-starts", UserData: []byte("#cloud-config\n")})
		created <- err
	}()
	var cgroups []string
	require.Eventually(t, func() bool {
		recs, err := p.records(t.Context())
		if err != nil || len(recs) != 1 || recs[0].Port == 0 || !populated(recs[0].Cgroups[0]) {
			return false
		}
		cgroups = recs[0].Cgroups
		return true
	}, time.Minute, 10*time.Millisecond, "the stand-in never ran")

	start := time.Now()
	require.NoError(t, p.Close())
	assert.Less(t, time.Since(start), startTimeout/2, "Close waited for the boot")
	require.ErrorIs(t, <-created, context.Canceled)
	for _, cg := range cgroups {
		assert.NoDirExists(t, cg)
	}
	entries, err := os.ReadDir(state)
	require.NoError(t, err)
	for _, e := range entries {
		assert.Equal(t, lockName, e.Name(), "left in the state directory")
	}
}
