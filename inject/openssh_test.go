package inject_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/latency"
	"github.com/hatchery-dev/hatchery/internal/opensshd"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// TestOpenSSH runs the injection against a real OpenSSH sshd started on
// 127.0.0.1 with a generated host key, logging every command line it is
// asked to run (where `ps` on a server would show it).
func TestOpenSSH(t *testing.T) {
	t.Parallel()
	key := sshtest.NewKey(t)
	bin, _ := standins(t)
	srv := opensshd.Start(t, opensshd.Options{
		AuthorizedKeys: []ssh.PublicKey{key.PublicKey()},
		// Nothing but the programs the steps may use.
		Env: []string{"PATH=" + bin},
	})
	pinned, err := inject.PinnedHostKeys([]string{srv.HostKeyLine() + "\n"})
	require.NoError(t, err)
	algos, err := inject.PinnedHostKeyAlgorithms([]string{srv.HostKeyLine()})
	require.NoError(t, err)
	cfg := inject.SSHConfig{User: srv.User, Signer: key, HostKeyCallback: pinned, HostKeyAlgorithms: algos, Timeout: 10 * time.Second}
	ctx := context.Background()

	const secretA, secretB = "sk-live-AAAAAAAAAAAAAAAA", "ghp_BBBBBBBBBBBBBBBBBBBB"
	secrets := []string{secretA, secretB}

	t.Run("pinned key accepted, any other refused", func(t *testing.T) {
		c, err := inject.Dial(ctx, srv.Addr, cfg)
		require.NoError(t, err)
		require.NoError(t, c.Close())

		other := cfg
		other.HostKeyCallback, err = inject.PinnedHostKeys([]string{sshtest.AuthorizedLine(sshtest.Key("impostor").PublicKey())})
		require.NoError(t, err)
		other.HostKeyAlgorithms = nil
		_, err = inject.Dial(ctx, srv.Addr, other)
		require.ErrorIs(t, err, inject.ErrHostKey)

		stranger := cfg
		stranger.Signer = sshtest.Key("stranger")
		_, err = inject.Dial(ctx, srv.Addr, stranger)
		require.ErrorIs(t, err, inject.ErrAuth)
	})

	c, err := inject.Dial(ctx, srv.Addr, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	for _, m := range modes {
		t.Run(m.name+"/secret files", func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(dir+"/b.env", []byte("old\n"), 0o644))
			before := len(srv.Commands())
			steps := []inject.Step{
				inject.Mkdir(dir+"/app", 0o700),
				inject.WriteFile(dir+"/app/a.env", []byte("KEY="+secretA+"\n"), 0o600),
				inject.WriteFile(dir+"/b.env", []byte("TOKEN="+secretB+"\n"), 0o600),
			}
			require.NoError(t, inject.Run(ctx, c, steps, inject.WithPipelining(m.pipelined), inject.WithRedact(secrets...)))
			for path, want := range map[string]string{dir + "/app/a.env": "KEY=" + secretA + "\n", dir + "/b.env": "TOKEN=" + secretB + "\n"} {
				got, err := os.ReadFile(path)
				require.NoError(t, err)
				assert.Equal(t, want, string(got))
				fi, err := os.Stat(path)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), path)
			}
			assert.Empty(t, leftovers(t, dir, "app", "b.env"), "nothing beside the files")
			assert.Empty(t, leftovers(t, dir+"/app", "a.env"))
			n := len(srv.Commands()) - before
			if m.pipelined {
				assert.Equal(t, 1, n, "one session for the whole list")
			} else {
				assert.Equal(t, len(steps), n)
			}
		})

		t.Run(m.name+"/failing step named, stderr redacted", func(t *testing.T) {
			dir := t.TempDir()
			steps := []inject.Step{
				inject.WriteFile(dir+"/a.env", []byte("KEY="+secretA+"\n"), 0o600),
				{Name: "start app", Cmd: "printf 'loading %s\\n' \"$(cat " + dir + "/a.env)\" >&2; cat >&2; exit 4", Stdin: []byte(secretB)},
				{Name: "never", Cmd: "touch " + dir + "/never"},
			}
			err := inject.Run(ctx, c, steps, inject.WithPipelining(m.pipelined), inject.WithRedact(secrets...))
			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, "start app", se.Step)
			assert.Equal(t, 1, se.Index)
			assert.Equal(t, 4, se.ExitCode)
			assert.Equal(t, "loading [REDACTED]\n[REDACTED]", se.Stderr)
			for _, s := range secrets {
				assert.NotContains(t, err.Error(), s)
			}
			assert.NoFileExists(t, dir+"/never")
		})
	}

	t.Run("connection cut mid-run, then the run converges", func(t *testing.T) {
		for _, m := range modes {
			p, err := latency.New(srv.Addr, 0)
			require.NoError(t, err)
			defer p.Close()
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(dir+"/big.env", []byte("old\n"), 0o600))
			big := bytes.Repeat([]byte(secretB+"\n"), 40000) // about 1 MiB
			steps := []inject.Step{
				inject.WriteFile(dir+"/small.env", []byte(secretA), 0o600),
				inject.WriteFile(dir+"/big.env", big, 0o600),
			}

			// The link drops while big.env's bytes are on their way.
			p.CutAfter(300 << 10)
			cc, err := inject.Dial(ctx, p.Addr(), cfg)
			require.NoError(t, err)
			err = inject.Run(ctx, cc, steps, inject.WithPipelining(m.pipelined), inject.WithRedact(secrets...))
			cc.Close()
			var se *inject.StepError
			require.ErrorAs(t, err, &se, m.name)
			// Stepwise, step 0's session is over before the cut. Pipelined,
			// the cut may come before step 0's end marker reaches us: the
			// client cannot know it finished.
			assert.LessOrEqual(t, se.Index, 1, m.name)
			assert.Equal(t, -1, se.ExitCode, m.name)
			for _, s := range secrets {
				assert.NotContains(t, err.Error(), s)
			}
			// The server notices the EOF and cleans up its temp file; the
			// target is never partial.
			require.Eventually(t, func() bool {
				return len(leftovers(t, dir, "small.env", "big.env")) == 0
			}, 10*time.Second, 20*time.Millisecond, "temp files left: %v", leftovers(t, dir, "small.env", "big.env"))
			got, err := os.ReadFile(dir + "/big.env")
			require.NoError(t, err)
			assert.Equal(t, "old\n", string(got), "%s: the old file, not a partial one", m.name)

			// The same run again, on a good link, converges.
			p.CutAfter(0)
			cc, err = inject.Dial(ctx, p.Addr(), cfg)
			require.NoError(t, err)
			require.NoError(t, inject.Run(ctx, cc, steps, inject.WithPipelining(m.pipelined)))
			cc.Close()
			got, err = os.ReadFile(dir + "/big.env")
			require.NoError(t, err)
			assert.Equal(t, big, got)
			got, err = os.ReadFile(dir + "/small.env")
			require.NoError(t, err)
			assert.Equal(t, secretA, string(got))
			assert.Empty(t, leftovers(t, dir, "small.env", "big.env"))
		}
	})

	t.Run("symlinks planted in the directory are refused", func(t *testing.T) {
		for _, m := range modes {
			dir, v := t.TempDir(), newVictim(t)
			require.NoError(t, os.Symlink(v.dir, dir+"/app"))
			require.NoError(t, os.Symlink(v.dir+"/file", dir+"/f.env"))
			before := v.snapshot(t)
			for _, st := range []inject.Step{
				inject.Mkdir(dir+"/app", 0o700, inject.AsRoot(), inject.Owner(srv.User)),
				inject.WriteFile(dir+"/app/a.env", []byte("KEY="+secretA+"\n"), 0o600, inject.AsRoot(), inject.Owner(srv.User)),
				inject.WriteFile(dir+"/f.env", []byte("KEY="+secretA+"\n"), 0o644, inject.AsRoot(), inject.Owner(srv.User)),
			} {
				err := inject.Run(ctx, c, []inject.Step{{Name: "first", Cmd: "true"}, st}, inject.WithPipelining(m.pipelined))
				var se *inject.StepError
				require.ErrorAs(t, err, &se, "%s: %s", m.name, st.Name)
				assert.Equal(t, 1, se.Index)
				assert.Contains(t, se.Stderr, "is a symbolic link; refusing to follow it", "%s: %s", m.name, st.Name)
			}
			assert.Equal(t, before, v.snapshot(t), m.name)
			assert.Empty(t, leftovers(t, dir, "app", "f.env"), m.name)
		}
	})

	t.Run("no secret in any command line", func(t *testing.T) {
		cmds := srv.Commands()
		require.NotEmpty(t, cmds)
		for _, cmd := range cmds {
			for _, s := range secrets {
				assert.False(t, strings.Contains(cmd, s), "secret in command line %q", cmd)
			}
		}
	})
}

// openSSH starts a real sshd with the stand-ins (and evil's programs
// before them) on PATH, and connects to it.
func openSSH(t *testing.T, evil string) (*opensshd.Server, *inject.SSH) {
	t.Helper()
	key := sshtest.NewKey(t)
	bin, _ := standins(t)
	path := bin
	if evil != "" {
		path = evil + ":" + bin
	}
	srv := opensshd.Start(t, opensshd.Options{AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}, Env: []string{"PATH=" + path}})
	pinned, err := inject.PinnedHostKeys([]string{srv.HostKeyLine()})
	require.NoError(t, err)
	c, err := inject.Dial(context.Background(), srv.Addr, inject.SSHConfig{User: srv.User, Signer: key, HostKeyCallback: pinned, Timeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// TestOpenSSHCancelStopsStep: issue 13 L2. sshd refuses the signal a
// cancelled Run sends when the user is root without privilege separation,
// or under ForceCommand (internal/opensshd has both when the tests run as
// root); the step used to go on running after Run returned. The script
// now stops its own process group once its session is gone.
func TestOpenSSHCancelStopsStep(t *testing.T) {
	t.Parallel()
	srv, c := openSSH(t, "")
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := dir + "/pid"
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Cancel once the step runs and its start marker, written
			// just before, has had time to reach the client.
			go func() {
				defer cancel()
				for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					if _, err := os.Stat(pidFile); err == nil {
						time.Sleep(300 * time.Millisecond)
						return
					}
				}
			}()
			steps := []inject.Step{
				{Name: "quick", Cmd: "true"},
				// The sleep writes its own PID (the subshell's $$ is the
				// script's).
				{Name: "slow", Cmd: "/bin/sh -c 'echo $$ >" + pidFile + ".new && mv " + pidFile + ".new " + pidFile + " && exec sleep 60'"},
				{Name: "never", Cmd: ": >" + dir + "/never"},
			}
			err := inject.Run(ctx, c, steps, inject.WithPipelining(m.pipelined))
			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, "slow", se.Step)
			assert.ErrorIs(t, err, context.Canceled)

			b, err := os.ReadFile(pidFile)
			require.NoError(t, err)
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			require.NoError(t, err)
			require.Greater(t, pid, 1)
			t.Cleanup(func() {
				if running(pid) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			assert.Eventually(t, func() bool { return !running(pid) }, 10*time.Second, 20*time.Millisecond,
				"the cancelled step (pid %d) still runs 10s after Run returned", pid)
			assert.NoFileExists(t, dir+"/never")
		})
	}
	// The premise: sshd did refuse the signal.
	assert.Regexp(t, `refusing to send signal|session signalling requires privilege separation`, srv.Log())
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestOpenSSHRenameNeverMovesIntoADirectory: issue 13 L1, against real
// sshd. The owner of the directory swaps the target for a symbolic link
// to another directory just before the rename (a stand-in mv wins that
// race every time): mv -f moved the secret file into that directory;
// mv -fT renames over the link itself.
func TestOpenSSHRenameNeverMovesIntoADirectory(t *testing.T) {
	t.Parallel()
	v := newVictim(t)
	_, c := openSSH(t, evilBin(t, v, "mv"))
	for _, m := range modes {
		dir := t.TempDir()
		before := v.snapshot(t)
		err := inject.Run(context.Background(), c, []inject.Step{
			{Name: "first", Cmd: "true"},
			inject.WriteFile(dir+"/f.env", []byte("TOKEN=secret-token-value\n"), 0o600, inject.AsRoot(), inject.Owner(currentUser(t))),
		}, inject.WithPipelining(m.pipelined))
		assert.Equal(t, before, v.snapshot(t), "%s: nothing landed in the directory the link points at", m.name)
		require.NoError(t, err, m.name)
		fi, err := os.Lstat(dir + "/f.env")
		require.NoError(t, err)
		assert.True(t, fi.Mode().IsRegular(), m.name)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), m.name)
	}
}
