package inject_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// localRunner runs commands with /bin/sh on this machine: a Runner with no
// SSH in the way, for the semantics of Run and the steps.
type localRunner struct {
	env     []string            // added to the environment
	rewrite func(string) string // applied to the command first (a sandbox, like provider/fake's)
	limit   int                 // > 0: feed only this many bytes of stdin, as a dropped connection would
	cancel  func()              // called after the first call, to cancel the run's context

	mu    sync.Mutex
	calls []string
}

func (r *localRunner) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, []byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, cmd)
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		defer cancel()
	}
	if r.rewrite != nil {
		cmd = r.rewrite(cmd)
	}
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Env = append(os.Environ(), r.env...)
	if stdin != nil && r.limit > 0 {
		stdin = io.LimitReader(stdin, int64(r.limit))
	}
	c.Stdin = stdin
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

func (r *localRunner) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// allowed are the external programs the steps may use (builtins aside).
var allowed = []string{"cat", "head", "dd", "mkdir", "mktemp", "chmod", "chown", "mv", "rm", "sleep", "setsid"}

// standins builds a bin directory holding the allowed programs (as
// symlinks) and stand-ins for sudo, systemctl, journalctl and cloud-init,
// whose behaviour files in state steer:
//
//	state/inactive       systemctl is-active reports "failed" (exit 3)
//	state/fail-after     ... and so does every is-active after the first N
//	state/journal        what journalctl prints
//	state/cloud-init     the exit code of cloud-init status --wait
//	state/calls          every stand-in call is appended here
//
// With only this directory on PATH, a step that runs any other program
// fails with "not found".
func standins(t testing.TB) (bin, state string) {
	t.Helper()
	dir := t.TempDir()
	bin, state = filepath.Join(dir, "bin"), filepath.Join(dir, "state")
	require.NoError(t, os.Mkdir(bin, 0o755))
	require.NoError(t, os.Mkdir(state, 0o755))
	for _, p := range allowed {
		path, err := exec.LookPath(p)
		require.NoError(t, err)
		require.NoError(t, os.Symlink(path, filepath.Join(bin, p)))
	}
	scripts := map[string]string{
		"sudo": `[ "$1" = -n ] || { printf 'sudo: -n missing\n' >&2; exit 1; }
shift
printf 'sudo %s\n' "$1" >> STATE/calls
exec "$@"`,
		"systemctl": `printf 'systemctl %s\n' "$*" >> STATE/calls
if [ "$1" = is-active ]; then
	if [ -e STATE/fail-after ]; then
		n=$(($(cat STATE/checks 2>/dev/null || echo 0) + 1))
		echo $n > STATE/checks
		[ $n -le $(cat STATE/fail-after) ] || : > STATE/inactive
	fi
	if [ -e STATE/inactive ]; then printf 'failed\n'; exit 3; fi
	printf 'active\n'
fi
exit 0`,
		"journalctl": `printf 'journalctl %s\n' "$*" >> STATE/calls
[ -e STATE/journal ] && cat STATE/journal
exit 0`,
		"cloud-init": `printf 'cloud-init %s\n' "$*" >> STATE/calls
code=0
[ -e STATE/cloud-init ] && code=$(cat STATE/cloud-init)
if [ "$2" = --long ]; then printf 'status: error\ndetail: runcmd failed\n'; fi
[ "$2" = --wait ] && exit $code
exit 0`,
	}
	for name, body := range scripts {
		body = "#!/bin/sh\n" + strings.ReplaceAll(body, "STATE", state) + "\n"
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755))
	}
	return bin, state
}

// sandbox rewrites absolute paths under the directories provider/fake
// rewrites (/home, /root, /etc, /var/lib, /opt, /srv) into root, the way a
// simulated server does with the command text it receives.
func sandbox(root string) func(string) string {
	re := regexp.MustCompile(`(^|[^A-Za-z0-9_.-])(/(?:home|root|etc|var/lib|opt|srv)(?:/|\b))`)
	return func(cmd string) string {
		return re.ReplaceAllString(cmd, "${1}"+root+"${2}")
	}
}

// leftovers lists the entries of dir other than want.
func leftovers(t testing.TB, dir string, want ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var extra []string
	for _, e := range entries {
		found := false
		for _, w := range want {
			if e.Name() == w {
				found = true
			}
		}
		if !found {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

// modes is the table both paths of Run are tested with.
var modes = []struct {
	name      string
	pipelined bool
}{{"pipelined", true}, {"stepwise", false}}

func ed25519Key(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	return priv
}
