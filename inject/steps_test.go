package inject_test

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConstructorsRejectBadInput(t *testing.T) {
	t.Parallel()
	tests := map[string]inject.Step{
		"relative mkdir":        inject.Mkdir("a/b", 0o755),
		"unclean path":          inject.WriteFile("/a/../b", nil, 0o600),
		"root path":             inject.WriteFile("/", nil, 0o600),
		"newline in path":       inject.WriteFile("/a\nb", nil, 0o600),
		"setuid mode":           inject.WriteFile("/a", nil, 0o600|os.ModeSetuid),
		"dir mode":              inject.Mkdir("/a", os.ModeDir|0o755),
		"bad owner":             inject.WriteFile("/a", nil, 0o600, inject.Owner("root; rm -rf /")),
		"empty command":         inject.Command(""),
		"NUL in args":           inject.Command("printf", "a\x00b"),
		"unit with slash":       inject.InstallUnit("../evil.service", nil),
		"unit without type":     inject.InstallUnit("rachel8", nil),
		"bad unit for enable":   inject.EnableUnit("-rf"),
		"bad unit for check":    inject.CheckActive("a b", time.Second),
		"negative settle":       inject.CheckActive("a.service", -time.Second),
		"root command, no name": inject.RootCommand(""),
	}
	for name, s := range tests {
		assert.ErrorIs(t, s.Err(), inject.ErrInvalid, name)
		assert.NotEmpty(t, s.Name, name)
	}
	for _, s := range []inject.Step{
		inject.Mkdir("/srv/app", 0o755, inject.Owner("app:app"), inject.AsRoot()),
		inject.WriteFile("/home/u/.env", []byte("x"), 0o600, inject.Owner("u")),
		inject.InstallUnit("app@1.service", []byte("x")),
		inject.EnableUnit("app"), inject.StartUnit("app.service"), inject.RestartUnit("app.service"),
		inject.DaemonReload(), inject.WaitCloudInit(true), inject.CheckActive("app.service", 0),
		inject.Command("printf", "%s", "x"), inject.RootCommand("id"),
	} {
		assert.NoError(t, s.Err(), s.Name)
		assert.NotEmpty(t, s.Cmd, s.Name)
	}
}

func TestQuote(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "/home/rachel/.env", inject.Quote("/home/rachel/.env"))
	assert.Equal(t, "''", inject.Quote(""))
	assert.Equal(t, `'it'\''s'`, inject.Quote("it's"))
	assert.Equal(t, "'FOO=bar'", inject.Quote("FOO=bar"), "= would make an assignment of a first word")
	assert.Equal(t, "'~'", inject.Quote("~"))
}

// FuzzQuote: /bin/sh reads a quoted word back as the original.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", "a b", "it's", "$HOME", "`id`", "*", "\\", "\n", "'\"", "-n", "FOO=bar", "~root", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return
		}
		out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+inject.Quote(s)).Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		if string(out) != s {
			t.Fatalf("sh read %q back as %q", s, out)
		}
	})
}

func TestCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"a b", "it's", "$HOME", "`id`", "*", "FOO=bar", "", "line\nbreak"}
	s := inject.Command("/bin/sh", append([]string{"-c", `for a; do printf '[%s]' "$a"; done > "$0"`, dir + "/out"}, args...)...)
	require.NoError(t, s.Err())
	assert.True(t, strings.HasPrefix(s.Name, "/bin/sh -c "), s.Name)
	assert.Equal(t, "sleep 0.5", inject.Command("sleep", "0.5").Name)
	assert.Equal(t, "sudo -n systemctl daemon-reload", inject.RootCommand("systemctl", "daemon-reload").Cmd)
	require.NoError(t, inject.Run(context.Background(), &localRunner{}, []inject.Step{s}))
	got, err := os.ReadFile(dir + "/out")
	require.NoError(t, err)
	assert.Equal(t, "[a b][it's][$HOME][`id`][*][FOO=bar][][line\nbreak]", string(got))
}

func TestOwner(t *testing.T) {
	t.Parallel()
	u, err := user.Current()
	require.NoError(t, err)
	g, err := user.LookupGroupId(u.Gid)
	require.NoError(t, err)
	dir := t.TempDir()
	owner := u.Username + ":" + g.Name
	steps := []inject.Step{
		inject.Mkdir(dir+"/d", 0o700, inject.Owner(owner)),
		inject.WriteFile(dir+"/d/f", []byte("x"), 0o600, inject.Owner(u.Username)),
	}
	require.NoError(t, inject.Run(context.Background(), &localRunner{}, steps))
	for _, p := range []string{dir + "/d", dir + "/d/f"} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		assert.Equal(t, u.Uid, strconv.FormatUint(uint64(st.Uid), 10), p)
		assert.Equal(t, u.Gid, strconv.FormatUint(uint64(st.Gid), 10), p)
	}
}

func TestWaitCloudInit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code        string
		recoverable bool
		wantExit    int // 0: success
	}{
		{"0", false, 0},
		{"1", false, 1},
		{"1", true, 1},
		{"2", false, 2},
		{"2", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			bin, state := standins(t)
			require.NoError(t, os.WriteFile(state+"/cloud-init", []byte(tt.code), 0o644))
			r := &localRunner{env: []string{"PATH=" + bin}}
			err := inject.Run(context.Background(), r, []inject.Step{inject.WaitCloudInit(tt.recoverable)})
			if tt.wantExit == 0 {
				require.NoError(t, err)
				return
			}
			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.wantExit, se.ExitCode)
			assert.Equal(t, "wait for cloud-init", se.Step)
			assert.Contains(t, se.Stderr, "status: error\ndetail: runcmd failed", "cloud-init's own report")
		})
	}
}

func TestCheckActive(t *testing.T) {
	t.Parallel()
	const secret = "db-password-in-a-log-line"
	bin, state := standins(t)
	r := &localRunner{env: []string{"PATH=" + bin}}
	steps := []inject.Step{inject.CheckActive("app.service", 0)}
	require.NoError(t, inject.Run(context.Background(), r, steps))

	require.NoError(t, os.WriteFile(state+"/inactive", nil, 0o644))
	require.NoError(t, os.WriteFile(state+"/journal", []byte("app[1]: connecting with "+secret+"\napp[1]: crashed\n"), 0o644))
	err := inject.Run(context.Background(), r, steps, inject.WithRedact(secret))
	var se *inject.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 3, se.ExitCode)
	assert.Equal(t, "check app.service active", se.Step)
	assert.Equal(t, "hatchery: app.service is failed\napp[1]: connecting with [REDACTED]\napp[1]: crashed\n", se.Stderr)
	assert.NotContains(t, err.Error(), secret)
	calls, err := os.ReadFile(state + "/calls")
	require.NoError(t, err)
	assert.Contains(t, string(calls), "journalctl -u app.service -n 50 --no-pager")
}

func TestCheckActiveSettles(t *testing.T) {
	t.Parallel()
	bin, state := standins(t)
	r := &localRunner{env: []string{"PATH=" + bin}}
	// The unit is active at the first check and fails after it: a
	// one-second settle must catch it.
	require.NoError(t, os.WriteFile(state+"/fail-after", []byte("1"), 0o644))
	err := inject.Run(context.Background(), r, []inject.Step{inject.CheckActive("app.service", time.Second)})
	var se *inject.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 3, se.ExitCode)
	checks, err := os.ReadFile(state + "/checks")
	require.NoError(t, err)
	assert.Equal(t, "2\n", string(checks), "checked at once, then after a second")

	// Without a settle time, one check is all.
	require.NoError(t, os.Remove(state+"/inactive"))
	require.NoError(t, os.Remove(state+"/checks"))
	require.NoError(t, inject.Run(context.Background(), r, []inject.Step{inject.CheckActive("app.service", 0)}))
}

// TestSimulatedServer runs a whole injection the way provider/fake's
// simulated servers will: absolute paths under /home, /etc... rewritten
// into a sandbox in the command text, stand-ins for sudo, systemctl,
// journalctl and cloud-init, and nothing on PATH but the programs the
// steps are allowed to use. Any other program, or a path computed on the
// server, would fail it.
func TestSimulatedServer(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			bin, state := standins(t)
			root := t.TempDir()
			require.NoError(t, os.MkdirAll(root+"/etc/systemd/system", 0o755))
			require.NoError(t, os.MkdirAll(root+"/home/rachel", 0o755))
			u, err := user.Current()
			require.NoError(t, err)
			env := []byte("ANTHROPIC_API_KEY=sk-ant-0123456789\n")
			key := []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
			unit := []byte("[Service]\nExecStart=/home/rachel/app/run\n")
			steps := []inject.Step{
				inject.WaitCloudInit(false),
				inject.Mkdir("/home/rachel/app", 0o750, inject.Owner(u.Username)),
				inject.WriteFile("/home/rachel/app/.env", env, 0o600, inject.Owner(u.Username)),
				inject.WriteFile("/home/rachel/.ssh_key", key, 0o600),
				inject.InstallUnit("rachel8.service", unit),
				inject.DaemonReload(),
				inject.EnableUnit("rachel8.service"),
				inject.RestartUnit("rachel8.service"),
				inject.CheckActive("rachel8.service", 0),
			}
			r := &localRunner{env: []string{"PATH=" + bin}, rewrite: sandbox(root)}
			require.NoError(t, inject.Run(context.Background(), r, steps, inject.WithPipelining(m.pipelined)))

			for path, want := range map[string][]byte{
				"/home/rachel/app/.env":               env,
				"/home/rachel/.ssh_key":               key,
				"/etc/systemd/system/rachel8.service": unit,
			} {
				got, err := os.ReadFile(filepath.Join(root, path))
				require.NoError(t, err, path)
				assert.Equal(t, want, got, path)
			}
			fi, err := os.Stat(root + "/etc/systemd/system/rachel8.service")
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
			assert.Empty(t, leftovers(t, root+"/home/rachel/app", ".env"))
			assert.Empty(t, leftovers(t, root+"/etc/systemd/system", "rachel8.service"))

			calls, err := os.ReadFile(state + "/calls")
			require.NoError(t, err)
			assert.Equal(t, strings.Join([]string{
				"cloud-init status --wait",
				"sudo /bin/sh",
				"sudo systemctl",
				"systemctl daemon-reload",
				"sudo systemctl",
				"systemctl enable rachel8.service",
				"sudo systemctl",
				"systemctl restart rachel8.service",
				"systemctl is-active rachel8.service",
				"",
			}, "\n"), string(calls))
			for _, c := range r.Calls() {
				assert.NotContains(t, c, "sk-ant-0123456789")
				assert.NotContains(t, c, "b3BlbnNzaC1rZXktdjEAAAAA")
			}
		})
	}
}
