package nspawn_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/nspawntest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
)

// deathChild makes TestProcessDeath, run again as a child, create a
// server in the StateDir it names and wait to be killed.
const (
	deathChild = "HATCHERY_NSPAWN_DEATH_CHILD"
	deathKeep  = "HATCHERY_NSPAWN_DEATH_KEEP"
)

// TestProcessDeath kills (SIGKILL) a process that started a server: without
// Keep the server powers off (the parent-death signal), with Keep it runs
// on; either way a Provider of another process finds it and deletes it.
func TestProcessDeath(t *testing.T) {
	if dir := os.Getenv(deathChild); dir != "" {
		deathChildMain(t, dir, os.Getenv(deathKeep) == "1")
		return
	}
	t.Parallel()
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			later := nspawntest.New(t, nspawn.Options{StateDir: dir})
			ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
			defer cancel()

			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestProcessDeath$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), deathChild+"="+dir, deathKeep+"="+map[bool]string{true: "1", false: "0"}[keep])
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			var id string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "server-id="); ok {
					id = v
					break
				}
			}
			require.NotEmpty(t, id, "the child reported no server")
			t.Cleanup(func() { _ = later.Delete(context.Background(), id) })
			srv, err := later.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, "running", srv.Status)
			time.Sleep(2 * time.Second) // well into the boot

			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			want := map[bool]string{true: "running", false: "off"}[keep]
			deadline := time.Now().Add(time.Minute)
			for {
				srv, err = later.Get(ctx, id)
				require.NoError(t, err)
				if srv.Status == want || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			assert.Equal(t, want, srv.Status, "after the process that started it died")
			if keep {
				time.Sleep(2 * time.Second)
				srv, err = later.Get(ctx, id)
				require.NoError(t, err)
				assert.Equal(t, "running", srv.Status, "still running")
			}
			require.NoError(t, later.Delete(ctx, id))
			_, err = later.Get(ctx, id)
			require.ErrorIs(t, err, provider.ErrNotFound)
			assert.True(t, portFree(srv.SSHAddr))
		})
	}
}

// deathChildMain creates a server, reports its ID and waits to be killed.
func deathChildMain(t *testing.T, dir string, keep bool) {
	p, err := nspawn.New(nspawn.Options{StateDir: dir, Keep: keep})
	require.NoError(t, err)
	srv, err := p.Create(t.Context(), provider.CreateRequest{Name: "orphan", UserData: []byte("#cloud-config\n")})
	require.NoError(t, err)
	fmt.Printf("server-id=%s\n", srv.ID)
	time.Sleep(time.Hour) // until killed
}
