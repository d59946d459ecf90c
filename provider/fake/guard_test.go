package fake_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

// outside returns a path on the real machine under dir that no test
// creates, and removes it at the end should a failing test have made it.
func outside(t *testing.T, dir string) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	p := filepath.Join(dir, "hatchery-fake-"+hex.EncodeToString(b))
	t.Cleanup(func() { _ = os.RemoveAll(p) })
	return p
}

// TestCommandPathsStayInSandbox: the ways a command could name a file of
// the real machine are moved into the sandbox or refused, with or without
// the namespace.
func TestCommandPathsStayInSandbox(t *testing.T) {
	t.Parallel()
	for _, ns := range []bool{false, true} {
		t.Run("namespace="+strconv.FormatBool(ns), func(t *testing.T) {
			t.Parallel()
			b := setup(t, fake.Options{NoNamespace: !ns}, nil)
			_, s := b.create(t, "srv", doc{})
			c := dial(t, s, "rachel", b.key)

			// moved into the sandbox
			r := run(t, c, "sudo -n mkdir -p /etc/sudoers.d && echo x > f && sudo -n cp -t/etc/sudoers.d f && sudo -n cp f --target-directory=/etc", "")
			require.Equal(t, 0, r.Code, r.Stderr)
			assert.FileExists(t, s.Path("/etc/sudoers.d/f"))
			assert.FileExists(t, s.Path("/etc/f"))
			r = run(t, c, "echo secret > ~rachel/.env && sudo -n sh -c 'echo r > ~root/r && echo ~' && echo ~ ~guest", "")
			require.Equal(t, 0, r.Code, r.Stderr)
			assert.Equal(t, s.Path("/root")+"\n"+s.Path("/home/rachel")+" "+s.Path("/home/guest")+"\n", r.Stdout)
			assert.FileExists(t, s.Path("/home/rachel/.env"))
			assert.FileExists(t, s.Path("/root/r"))

			// refused
			tmp := outside(t, os.TempDir())
			varTmp := outside(t, "/var/tmp")
			bin := outside(t, "/usr/local/bin")
			for _, cmd := range []string{
				"cd / && echo x > " + strings.TrimPrefix(tmp, "/"),
				"f=" + filepath.Base(filepath.Dir(tmp)) + "; echo x > /$f/" + filepath.Base(tmp),
				"echo x > " + bin,
				"echo x > " + varTmp,
				"echo x > " + tmp,
				"cat /home/rachel/../../../../../../../" + strings.TrimPrefix(tmp, "/"),
				"sudo -n sh -c 'echo x > " + tmp + "'",
			} {
				r := run(t, c, cmd, "")
				assert.Equal(t, fake.RefusedExit, r.Code, cmd)
				assert.Contains(t, r.Stderr, "fake: refusing", cmd)
				assert.Contains(t, r.Stderr, "outside the sandbox", cmd)
				assert.Empty(t, r.Stdout, cmd)
			}
			for _, p := range []string{tmp, varTmp, bin} {
				assert.NoFileExists(t, p, "created on the real machine")
			}
			// the refused commands are recorded as received
			assert.Contains(t, s.Commands(), "echo x > "+varTmp)

			// TMPDIR is the sandbox's
			r = run(t, c, `f=$(mktemp) && echo "$f"`, "")
			require.Equal(t, 0, r.Code, r.Stderr)
			assert.True(t, strings.HasPrefix(r.Stdout, s.Path("/tmp")+"/"), r.Stdout)
		})
	}
}

// TestNamespace: where user namespaces work, what gets past the text
// checks still cannot write outside the sandbox; without the namespace it
// can, which is the documented limit of rewriting.
func TestNamespace(t *testing.T) {
	t.Parallel()
	for _, prog := range []string{"unshare", "nsenter"} {
		testenv.LookPath(t, prog)
	}
	if out, err := exec.Command("unshare", "--user", "--map-root-user", "--mount", "true").CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("this machine does not allow user namespaces (unshare: %v %s); commands run with rewriting and checks only", err, out))
	}
	dir := t.TempDir()
	b := setup(t, fake.Options{Dir: dir}, nil)
	_, s := b.create(t, "srv", doc{})
	require.True(t, s.Isolated(), "unshare works here, so the server must run commands in its namespace")
	c := dial(t, s, "rachel", b.key)

	// $HOME is DIR/srv-XXX/fs/home/rachel: four levels up is DIR, which
	// the text checks cannot see in these commands.
	escapes := []string{
		`d=$HOME; for i in 1 2 3 4; do d=$(dirname "$d"); done; echo x > "$d/escaped"`,
		"cd ../../../.. && echo x > escaped",
		// root (the test's user in CI) cannot make the file system writable
		`r=$(printf '\057'); mount -o remount,bind,rw "$r"; mount -o remount,rw "$r"; cd ../../../.. && echo x > escaped`,
	}
	var r result
	for _, cmd := range escapes {
		r = run(t, c, cmd, "")
		assert.NotEqual(t, 0, r.Code, cmd)
		assert.Contains(t, r.Stderr, "Read-only file system", cmd)
		assert.NoFileExists(t, filepath.Join(dir, "escaped"), cmd)
	}

	// the sandbox is writable, id tells the truth, commands still work
	r = run(t, c, "echo ok > /home/rachel/x && cat /home/rachel/x && id -u && pwd", "")
	require.Equal(t, 0, r.Code, r.Stderr)
	assert.Equal(t, "ok\n"+strconv.Itoa(os.Getuid())+"\n"+s.Path("/home/rachel")+"\n", r.Stdout)

	// nor can it write into another server's sandbox: the namespaces of
	// a provider's servers share their base, not their writable part
	_, other := b.create(t, "other", doc{})
	require.True(t, other.Isolated())
	rel := filepath.Join(filepath.Base(other.Dir()), "fs", "home", "rachel", "escaped")
	r = run(t, c, "cd ../../../.. && echo x > "+rel, "")
	assert.NotEqual(t, 0, r.Code)
	assert.Contains(t, r.Stderr, "Read-only file system")
	assert.NoFileExists(t, other.Path("/home/rachel/escaped"))
	co := dial(t, other, "rachel", b.key)
	assert.Equal(t, 0, run(t, co, "echo ok > /home/rachel/escaped", "").Code, "the other server writes its own sandbox")

	// the holder goes with the server
	pid := fake.HolderPID(s)
	require.NotZero(t, pid)
	require.NoError(t, b.p.Delete(context.Background(), s.ID()))
	assert.True(t, gone(pid), "the namespace holder outlived Delete")

	// without the namespace, the same command does escape: rewriting and
	// checks are not a security boundary
	b2 := setup(t, fake.Options{Dir: t.TempDir(), NoNamespace: true}, nil)
	_, s2 := b2.create(t, "srv", doc{})
	assert.False(t, s2.Isolated())
	c2 := dial(t, s2, "rachel", b2.key)
	for _, cmd := range escapes[:2] {
		escaped := filepath.Join(filepath.Dir(s2.Dir()), "escaped")
		r := run(t, c2, cmd, "")
		assert.Equal(t, 0, r.Code, r.Stderr)
		assert.FileExists(t, escaped, cmd)
		require.NoError(t, os.Remove(escaped))
	}
}

// TestOwnerFollowsWriteFile: inject.WriteFile chowns its temp file and
// renames it over the target; the recorded owner follows the rename.
func TestOwnerFollowsWriteFile(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := injectConn(t, b, s)

	own := inject.Owner("rachel:rachel")
	for _, pipelined := range []bool{false, true} {
		steps := []inject.Step{
			inject.Mkdir("/home/rachel/app", 0o750, own),
			inject.WriteFile("/home/rachel/app/.env", []byte("A=1\n"), 0o600, own),
			// replaces a file owned by root with one owned by rachel
			inject.WriteFile("/etc/rachel8/config.toml", []byte("x\n"), 0o640, inject.AsRoot(), inject.Owner("root:sudo")),
			inject.WriteFile("/etc/rachel8/config.toml", []byte("y\n"), 0o640, inject.AsRoot(), own),
			inject.WriteFile("/srv/plain", []byte("p\n"), 0o644, inject.AsRoot()),
		}
		require.NoError(t, inject.Run(ctx, conn, steps, inject.WithPipelining(pipelined)))
		assert.Equal(t, "rachel:rachel", s.Owner("/home/rachel/app"))
		assert.Equal(t, "rachel:rachel", s.Owner("/home/rachel/app/.env"))
		assert.Equal(t, "rachel:rachel", s.Owner("/etc/rachel8/config.toml"))
		assert.Equal(t, "", s.Owner("/srv/plain"), "mktemp's file had no recorded owner")
		data, err := os.ReadFile(s.Path("/etc/rachel8/config.toml"))
		require.NoError(t, err)
		assert.Equal(t, "y\n", string(data))
		leftovers, err := filepath.Glob(s.Path("/home/rachel/app/.*hatchery*"))
		require.NoError(t, err)
		assert.Empty(t, leftovers)
	}
}

// TestOwnerFollowsMv: mv carries recorded owners to the destination (a
// file, a directory with what is below it, into a directory, with -t),
// replacing what the destination had; chown follows symbolic links
// unless -h.
func TestOwnerFollowsMv(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})
	c := dial(t, s, "rachel", b.key)
	steps := []string{
		"mkdir -p /home/rachel/d/sub /home/rachel/into && touch /home/rachel/d/sub/f /home/rachel/a /home/rachel/b /home/rachel/c /home/rachel/e",
		"sudo -n chown -R root:sudo /home/rachel/d && sudo -n chown guest /home/rachel/d/sub/f",
		"sudo -n chown guest:guest /home/rachel/a && sudo -n chown root /home/rachel/b",
		"mv /home/rachel/a /home/rachel/b",                                                 // file over file
		"/bin/mv -f /home/rachel/d /home/rachel/d2",                                        // directory, by absolute path
		"sudo -n chown root:root /home/rachel/c && mv -t /home/rachel/into /home/rachel/c", // -t
		"sudo -n chown guest /home/rachel/e && mv /home/rachel/e /home/rachel/into",        // into a directory
		"ln -s /home/rachel/b /home/rachel/link && ln -s /home/rachel/into /home/rachel/link2",
		"sudo -n chown -h root:root /home/rachel/link && sudo -n chown guest:guest /home/rachel/link2",
		"mv /home/rachel/missing /home/rachel/x; true",
	}
	for _, cmd := range steps {
		r := run(t, c, cmd, "")
		require.Equal(t, 0, r.Code, "%s: %s", cmd, r.Stderr)
	}
	for path, want := range map[string]string{
		"/home/rachel/a":                    "",
		"/home/rachel/b":                    "guest:guest",
		"/home/rachel/d":                    "",
		"/home/rachel/d/sub/f":              "",
		"/home/rachel/d2":                   "root:sudo",
		"/home/rachel/d2/sub":               "root:sudo",
		"/home/rachel/d2/sub/f":             "guest:sudo",
		"/home/rachel/c":                    "",
		"/home/rachel/into/c":               "root:root",
		"/home/rachel/into/e":               "guest:",
		"/home/rachel/link":                 "root:root",
		"/home/rachel/into":                 "guest:guest",
		"/home/rachel/link2":                "",
		"/home/rachel/x":                    "",
		"/home/rachel/.ssh/authorized_keys": "rachel:rachel",
	} {
		assert.Equal(t, want, s.Owner(path), path)
	}
	// mv's own failures come back as they are
	r := run(t, c, "mv /home/rachel/missing /home/rachel/x", "")
	assert.Equal(t, 1, r.Code)
	assert.Contains(t, r.Stderr, "cannot stat")
}

// TestInjectStepsPass runs every kind of step inject builds against a
// simulated server, stepwise and pipelined, with and without the
// namespace: none is refused.
func TestInjectStepsPass(t *testing.T) {
	t.Parallel()
	for _, ns := range []bool{false, true} {
		t.Run("namespace="+strconv.FormatBool(ns), func(t *testing.T) {
			t.Parallel()
			b := setup(t, fake.Options{NoNamespace: !ns}, nil)
			_, s := b.create(t, "srv", doc{})
			waitBooted(t, s)
			conn := injectConn(t, b, s)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, pipelined := range []bool{false, true} {
				steps := []inject.Step{
					inject.WaitCloudInit(true),
					inject.Mkdir("/home/rachel/.claude", 0o700, inject.AsRoot(), inject.Owner("rachel:rachel")),
					inject.WriteFile("/home/rachel/.claude/.credentials.json", []byte("{}"), 0o600, inject.AsRoot(), inject.Owner("rachel:rachel")),
					inject.WriteFile("/home/rachel/plain", []byte("x"), 0o644),
					inject.InstallUnit("app.service", []byte("[Service]\nExecStart=/usr/bin/true\n")),
					inject.DaemonReload(),
					inject.EnableUnit("app.service"),
					inject.StartUnit("app.service"),
					inject.RestartUnit("app.service"),
					inject.CheckActive("app.service", 0),
					inject.Command("ls", "-la", "/home/rachel"),
					inject.RootCommand("cat", "/etc/hostname"),
				}
				err := inject.Run(ctx, conn, steps, inject.WithPipelining(pipelined))
				var se *inject.StepError
				if errors.As(err, &se) {
					t.Fatalf("pipelined=%v: step %q: exit %d: %s", pipelined, se.Step, se.ExitCode, se.Stderr)
				}
				require.NoError(t, err)
				assert.Equal(t, "rachel:rachel", s.Owner("/home/rachel/.claude/.credentials.json"))
				assert.True(t, s.Unit("app").Active)
			}
			if !ns {
				assert.False(t, s.Isolated())
			}
		})
	}
}

// injectConn dials s with inject as rachel, pinning its host key.
func injectConn(t *testing.T, b *bundle, s *fake.Server) *inject.SSH {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hostKeys, err := inject.PinnedHostKeys([]string{s.HostKeyLine()})
	require.NoError(t, err)
	conn, err := inject.Dial(ctx, s.Addr(), inject.SSHConfig{User: "rachel", Signer: b.key.signer, HostKeyCallback: hostKeys, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestWaitCloudInit: inject's cloud-init wait, as inject.Run sends it (in
// its setsid and watchdog script), runs like any command: it waits for the
// simulated boot and exits 0 once cloud-init is done, or fails with
// cloud-init's own report when it ended in error.
func TestWaitCloudInit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, fake.Options{BootDelay: 200 * time.Millisecond}, nil)
	_, s := b.create(t, "srv", doc{})
	conn := injectConn(t, b, s)
	require.NoError(t, inject.Run(ctx, conn, []inject.Step{inject.WaitCloudInit(false)}))
	select {
	case <-s.Booted():
	default:
		t.Fatal("the wait ended before cloud-init")
	}
	cmds := s.Commands()
	assert.Contains(t, cmds[len(cmds)-1], "cloud-init status --wait >/dev/null", "run as a command")

	// cloud-init in error: the command says why
	fb := setup(t, fake.Options{Faults: func(string) fake.Faults { return fake.Faults{CloudInitError: true} }}, nil)
	_, fs := fb.create(t, "srv", doc{})
	err := inject.Run(ctx, injectConn(t, fb, fs), []inject.Step{inject.WaitCloudInit(true)})
	var se *inject.StepError
	require.ErrorAs(t, err, &se)
	assert.True(t, strings.HasPrefix(se.Stderr, "hatchery: cloud-init status --wait exited 1\n"), se.Stderr)
	assert.Contains(t, se.Stderr, "cc_scripts_user.py[WARNING]: Failed to run module scripts-user", "the final stage's journal, as on Debian 12")
	assert.Contains(t, se.Stderr, "Failed to start cloud-final.service - Execute cloud user/final scripts.\nstatus: error\n", "then cloud-init's report, last")
	assert.NotContains(t, se.Stderr, "Cloud-init v. 22.4.2", "banners left out")
	assert.Contains(t, se.Stderr, "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))")
}
