package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

// fast are the flags that make a run quick: simulated servers boot at
// once and the service need stay active only briefly.
var fast = []string{"-boot-delay", "10ms", "-settle", "100ms", "-timeout", "90s"}

// syncBuffer is a bytes.Buffer safe for the writes of several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	tableHeader = regexp.MustCompile(`(?m)^TENANT +STATUS +SERVER +TIME$`)
	readyRow    = regexp.MustCompile(`(?m)^([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})  ready +hatchery-([0-9a-f-]{36})  ([0-9.]+m?s|[0-9]+m[0-9.]+s)$`)
)

// The main job: three tenants, end to end, exit 0 and the final table.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	code := run(ctx, append([]string{"-tenants", "3"}, fast...), &stdout, &stderr)
	out := stdout.String()
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out, stderr.String())
	assert.Empty(t, stderr.String())

	// The final table: a header and one ready row per tenant.
	require.Regexp(t, tableHeader, out)
	table := out[tableHeader.FindStringIndex(out)[0]:]
	rows := readyRow.FindAllStringSubmatch(table, -1)
	require.Len(t, rows, 3, table)
	seen := map[string]bool{}
	for _, r := range rows {
		assert.Equal(t, r[1], r[2], "the server is named after its tenant")
		seen[r[1]] = true
	}
	assert.Len(t, seen, 3, "three different tenants")
	assert.Contains(t, table, "3 of 3 tenants ready.")

	// Not a terminal: plain lines, every tenant through every stage in
	// order, and no escape sequence; while its server boots, a line per
	// change of what the boot does (BootProgress), not one per event.
	assert.NotContains(t, out, "\x1b")
	for id := range seen {
		var stages, boot []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[1] != id {
				continue
			}
			if len(stages) == 0 || stages[len(stages)-1] != f[2] {
				stages = append(stages, f[2])
			}
			if _, what, ok := strings.Cut(line, "  boot: "); ok {
				// While the server boots: events can come before its
				// creator records cloud_init, and after phone_home.
				assert.Contains(t, []string{"creating", "cloud_init", "injecting_secrets"}, f[2], line)
				boot = append(boot, what)
			}
		}
		// The callback's move to injecting_secrets may be reported before
		// its creator reports cloud_init (provision.Config.OnEvent says
		// so): every stage once, pending first, ready last.
		require.Len(t, stages, 5, id)
		assert.Equal(t, "pending", stages[0], id)
		assert.Equal(t, "ready", stages[4], id)
		assert.ElementsMatch(t, []string{"pending", "creating", "cloud_init", "injecting_secrets", "ready"}, stages, id)
		// A boot of 10ms is over before most of its events are posted:
		// what came before phone_home, in order (TestRunBootProgress has
		// them all).
		require.NotEmpty(t, boot, id)
		bootLines(t, id, min(len(boot), len(rachel8Boot)), boot)
	}

	// The demo secrets went to the servers, not to the output.
	for _, v := range demoSecrets().Values() {
		assert.NotContains(t, out, v)
	}
}

// rachel8Boot is what the plain lines say of a simulated server's boot
// with the Rachel8 recipe: a line per phrase change of Config.BootProgress.
// Then "phoning home" only now and then: cloud-init posts the phone-home
// module's start event and the phone_home itself at the same moment (as a
// real server did), and the phone_home, which moves the tenant on, most
// often arrives first.
var rachel8Boot = []string{"writing files", "growing the root file system", "creating users", "setting up SSH",
	"setting the locale", "configuring apt sources", "installing packages", "writing files", "running runcmd"}

// bootLines checks that the boot phrases are those of rachel8Boot, in
// order, n of them, and maybe "phoning home" after the last.
func bootLines(t *testing.T, id string, n int, boot []string) {
	t.Helper()
	if len(boot) > 0 && boot[len(boot)-1] == "phoning home" && len(boot)-1 == n {
		boot = boot[:len(boot)-1]
	}
	require.Len(t, boot, n, "%s: %q", id, boot)
	assert.Equal(t, rachel8Boot[:n], boot, id)
}

// With a boot that takes a second, as the quickstart's default, every
// phrase of the boot is on its own line before phone_home, for every
// tenant, and a line per phrase only: 9 or 10 for Rachel8's 71 events.
func TestRunBootProgress(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	code := run(ctx, []string{"-tenants", "2", "-boot-delay", "1s", "-settle", "100ms"}, &stdout, &stderr)
	out := stdout.String()
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out, stderr.String())
	boots := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if _, what, ok := strings.Cut(line, "  boot: "); ok {
			f := strings.Fields(line)
			assert.Equal(t, "cloud_init", f[2], line)
			boots[f[1]] = append(boots[f[1]], what)
		}
	}
	require.Len(t, boots, 2, out)
	for id, boot := range boots {
		bootLines(t, id, len(rachel8Boot), boot)
	}
}

// -db keeps the database; -v logs to stderr, without a secret.
func TestRunKeepsDatabaseAndLogs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := filepath.Join(t.TempDir(), "kept.db")
	var stdout, stderr syncBuffer
	code := run(ctx, append([]string{"-tenants", "1", "-db", db, "-v"}, fast...), &stdout, &stderr)
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Contains(t, stdout.String(), "The records are kept in "+db)

	logs := stderr.String()
	assert.Contains(t, logs, "level=INFO")
	assert.Contains(t, logs, "to=ready")
	for _, v := range demoSecrets().Values() {
		assert.NotContains(t, logs, v)
	}

	st, err := sqlite.Open(ctx, db)
	require.NoError(t, err)
	defer st.Close()
	recs, err := st.List(ctx)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, store.StatusReady, recs[0].Status)
	assert.NotEmpty(t, recs[0].HostKeys, "the host key posted at phone_home is recorded")
}

// A tenant whose service does not stay up: exit 1, the table says failed
// and why (the unit's journal), the others are ready.
func TestRunFailure(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o, err := parseFlags(append([]string{"-tenants", "2"}, fast...), noEnv, io.Discard)
	require.NoError(t, err)
	o.maxAttempts = 1
	var mu sync.Mutex
	broken := ""
	o.faults = func(name string) fake.Faults {
		mu.Lock()
		defer mu.Unlock()
		if broken == "" {
			broken = name // the first server created
		}
		return fake.Faults{UnitFails: name == broken}
	}
	var stdout, stderr syncBuffer
	code := o.run(ctx, &stdout, &stderr)
	out := stdout.String()
	require.Equal(t, exitFailed, code, out)

	failedRow := regexp.MustCompile(`(?m)^([0-9a-f-]{36})  failed +` + regexp.QuoteMeta(broken) + `  `)
	require.Regexp(t, failedRow, out)
	assert.Len(t, readyRow.FindAllString(out, -1), 1)
	assert.Contains(t, out, "1 of 2 tenants ready.")
	id := failedRow.FindStringSubmatch(out)[1]
	assert.Regexp(t, regexp.MustCompile(`(?m)^`+id+`: .*rachel8\.service`), out, "the reason follows the table")
}

// Interrupted (SIGINT in main) while the servers boot: the table shows
// where each tenant stopped, the exit status is 1, and nothing hangs.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-tenants", "2", "-boot-delay", "1h"}, &stdout, &stderr) }()
	require.Eventually(t, func() bool { return strings.Count(stdout.String(), " cloud_init ") == 2 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, exitFailed, code)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after the interrupt")
	}
	out := stdout.String()
	assert.Regexp(t, `(?m)^[0-9a-f-]{36}  cloud_init  hatchery-`, out)
	assert.Regexp(t, `(?m)^[0-9a-f-]{36}: stopped while cloud_init: context canceled$`, out)
	assert.Contains(t, out, "0 of 2 tenants ready.")
	assert.Contains(t, stderr.String(), "quickstart: stopped: context canceled")
}

// On a terminal: the board, redrawn in place, then the same final table.
func TestRunBoard(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o, err := parseFlags(append([]string{"-tenants", "1"}, fast...), noEnv, io.Discard)
	require.NoError(t, err)
	o.tty, o.color = true, true
	var stdout, stderr syncBuffer
	require.Equal(t, exitOK, o.run(ctx, &stdout, &stderr), stderr.String())
	out := stdout.String()
	assert.Contains(t, out, ansiClear+ansiBold+"  TENANT    STATUS")
	assert.Contains(t, out, "\x1b[3A", "redrawn over itself (header, one tenant, summary)")
	assert.Contains(t, out, "1/1 ready")
	assert.Len(t, readyRow.FindAllString(out, -1), 1)
}

// Only a terminal that can move the cursor gets the board: not a buffer,
// a pipe, a file or /dev/null (a character device, but no terminal),
// nor a terminal whose TERM is dumb (see pty_linux_test.go).
func TestTerminalSize(t *testing.T) {
	t.Parallel()
	term := func(k string) string {
		if k == "TERM" {
			return "xterm-256color"
		}
		return ""
	}
	assert.Nil(t, terminalSize(&bytes.Buffer{}, term))
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.Nil(t, terminalSize(w, term), "a pipe gets plain lines")
	f, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	defer f.Close()
	assert.Nil(t, terminalSize(f, term), "a file gets plain lines")
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	assert.Nil(t, terminalSize(null, term), "/dev/null gets plain lines")
}

// With stdout on /dev/null, the run writes plain lines there and exits 0.
func TestRunDevNull(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	var stderr syncBuffer
	term := func(k string) string {
		if k == "TERM" {
			return "xterm"
		}
		return ""
	}
	assert.Equal(t, exitOK, runEnv(ctx, append([]string{"-tenants", "1"}, fast...), term, null, &stderr))
	assert.Empty(t, stderr.String())
}

func noEnv(string) string { return "" }

const doKey = "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"

func withDOToken(k string) string {
	if k == "DIGITALOCEAN_TOKEN" {
		return "do-token"
	}
	return ""
}

func TestFlags(t *testing.T) {
	t.Parallel()
	withToken := func(k string) string {
		if k == "HCLOUD_TOKEN" {
			return "token"
		}
		return ""
	}
	for _, tc := range []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			assert.Equal(t, 3, o.tenants)
			assert.Equal(t, "fake", o.cloud.Provider)
			assert.Equal(t, "", o.db)
			assert.Equal(t, "127.0.0.1:0", o.listen)
			assert.Equal(t, 2*time.Minute, o.timeout)
		}},
		{name: "tenants", args: []string{"-tenants", "7", "-db", "/tmp/x.db", "-v"}, check: func(t *testing.T, o options) {
			assert.Equal(t, 7, o.tenants)
			assert.Equal(t, "/tmp/x.db", o.db)
			assert.True(t, o.verbose)
		}},
		{name: "zero tenants", args: []string{"-tenants", "0"}, wantErr: "want 1 to 50"},
		{name: "too many tenants", args: []string{"-tenants", "51"}, wantErr: "want 1 to 50"},
		{name: "unknown provider", args: []string{"-provider", "aws"}, wantErr: `-provider "aws"`},
		{name: "argument", args: []string{"extra"}, wantErr: "unexpected argument"},
		{name: "negative duration", args: []string{"-settle", "-1s"}, wantErr: "negative"},
		{name: "bad callback", args: []string{"-callback-base", "cp.example.com"}, wantErr: "absolute http(s) URL"},
		{name: "callback with query", args: []string{"-callback-base", "https://cp.example.com/?a=b"}, wantErr: "absolute http(s) URL"},
		{name: "hetzner without token", args: []string{"-provider", "hetzner", "-callback-base", "https://cp.example.com"}, wantErr: "HCLOUD_TOKEN"},
		{name: "hetzner without callback", args: []string{"-provider", "hetzner"}, getenv: withToken, wantErr: "-callback-base"},
		{name: "hetzner", args: []string{"-provider", "hetzner", "-callback-base", "https://cp.example.com/", "-server-type", "cx32", "-ssh-key", "ops", "-ssh-key", "me"}, getenv: withToken,
			check: func(t *testing.T, o options) {
				assert.Equal(t, "token", o.cloud.Token)
				assert.Equal(t, "https://cp.example.com", o.callback)
				assert.Equal(t, "cx32", o.cloud.ServerType)
				assert.Equal(t, []string{"ops", "me"}, o.cloud.SSHKeys)
				assert.Equal(t, 20*time.Minute, o.timeout)
			}},
		{name: "digitalocean without token", args: []string{"-provider", "digitalocean", "-callback-base", "https://cp.example.com", "-ssh-key", doKey}, wantErr: "DIGITALOCEAN_TOKEN"},
		{name: "digitalocean without key", args: []string{"-provider", "digitalocean", "-callback-base", "https://cp.example.com"}, getenv: withDOToken, wantErr: "root password"},
		{name: "digitalocean without callback", args: []string{"-provider", "digitalocean", "-ssh-key", doKey}, getenv: withDOToken, wantErr: "-callback-base"},
		{name: "digitalocean", args: []string{"-provider", "digitalocean", "-callback-base", "https://cp.example.com", "-ssh-key", doKey, "-location", "ams3"}, getenv: withDOToken,
			check: func(t *testing.T, o options) {
				assert.Equal(t, "do-token", o.cloud.Token)
				assert.Equal(t, "ams3", o.cloud.Location)
				assert.Equal(t, "s-1vcpu-2gb", o.cloud.ServerType)
				assert.Equal(t, 20*time.Minute, o.timeout)
				assert.True(t, o.cloud.Real())
			}},
		{name: "nspawn", args: []string{"-provider", "nspawn"}, check: func(t *testing.T, o options) {
			assert.True(t, o.cloud.Local())
			assert.False(t, o.cloud.Real(), "no cloud bill, no public callback, demo secrets")
			assert.Equal(t, "bookworm", o.cloud.Image)
			assert.Equal(t, 20*time.Minute, o.timeout, "the first run builds the image")
			assert.False(t, o.internet)
		}},
		{name: "nspawn trixie, internet", args: []string{"-provider", "nspawn", "-image", "debian-13", "-internet"}, check: func(t *testing.T, o options) {
			assert.Equal(t, "trixie", o.cloud.Image)
			assert.True(t, o.internet)
		}},
		{name: "nspawn bad image", args: []string{"-provider", "nspawn", "-image", "ubuntu-24.04"}, wantErr: `-image "ubuntu-24.04": want bookworm or trixie`},
		{name: "nspawn location", args: []string{"-provider", "nspawn", "-location", "fsn1"}, wantErr: "do not apply"},
		{name: "internet without nspawn", args: []string{"-internet"}, wantErr: "-internet is for -provider nspawn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			getenv := tc.getenv
			if getenv == nil {
				getenv = noEnv
			}
			o, err := parseFlags(tc.args, getenv, io.Discard)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, o)
		})
	}
}

// Bad usage exits 2 with the reason, -h exits 0 with the usage.
func TestRunUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitUsage, run(context.Background(), []string{"-tenants", "0"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "quickstart: -tenants 0: want 1 to 50")
	assert.Empty(t, stdout.String())

	stderr.Reset()
	assert.Equal(t, exitOK, run(context.Background(), []string{"-h"}, &stdout, &stderr))
	assert.Equal(t, 1, strings.Count(stderr.String(), "Usage: go run ./examples/quickstart"))
	assert.Contains(t, stderr.String(), "-tenants")
	assert.NotContains(t, stderr.String(), "quickstart: ", "-h is no error")
	_, err := parseFlags([]string{"-h"}, noEnv, io.Discard)
	assert.ErrorIs(t, err, flag.ErrHelp)
}

// Every bad usage prints its reason once, on one line of stderr, and
// nothing else: the flag package's own message (and the whole usage)
// used to come first, and the same reason again after it.
func TestRunUsageErrorOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tenants", "abc"}, `quickstart: invalid value "abc" for flag -tenants: parse error (see -h)`},
		{[]string{"-tenants"}, `quickstart: flag needs an argument: -tenants (see -h)`},
		{[]string{"-nope"}, `quickstart: flag provided but not defined: -nope (see -h)`},
		{[]string{"-v=maybe"}, `quickstart: invalid boolean value "maybe" for -v: parse error (see -h)`},
		{[]string{"-settle", "soon"}, `quickstart: invalid value "soon" for flag -settle: parse error (see -h)`},
		{[]string{"-tenants", "0"}, `quickstart: -tenants 0: want 1 to 50`},
		{[]string{"extra"}, `quickstart: unexpected argument "extra" (flags only; see -h)`},
		{[]string{"-timeout", "-1s"}, `quickstart: durations must not be negative`},
		{[]string{"-callback-base", "cp.example.com"}, `quickstart: -callback-base "cp.example.com": want an absolute http(s) URL such as https://cp.example.com`},
		{[]string{"-provider", "aws"}, `quickstart: -provider "aws"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			assert.Equal(t, exitUsage, run(context.Background(), tc.args, &stdout, &stderr))
			assert.Empty(t, stdout.String())
			got := stderr.String()
			assert.True(t, strings.HasPrefix(got, tc.want), "got  %s\nwant %s...", got, tc.want)
			assert.Equal(t, 1, strings.Count(got, "\n"), "one line: %q", got)
			assert.True(t, strings.HasSuffix(got, "\n"), "%q", got)
			assert.NotContains(t, got, "Usage:")
		})
	}
}

// Failures to start say each thing once: the store's and the listener's
// own errors name the path or the address and the operation.
func TestRunStartErrorOnce(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() }) // after the parallel subtests
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name string
		args []string
		want string
		once string
	}{
		{"store", []string{"-db", filepath.Join(missing, "x.db")},
			"quickstart: sqlite: open " + filepath.Join(missing, "x.db") + ": directory " + missing + " does not exist\n", "open"},
		{"listen", []string{"-listen", ln.Addr().String()},
			"quickstart: listen tcp " + ln.Addr().String() + ": bind: address already in use\n", "listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			assert.Equal(t, exitFailed, run(context.Background(), tc.args, &stdout, &stderr))
			assert.Equal(t, tc.want, stderr.String())
			assert.Equal(t, 1, strings.Count(stderr.String(), tc.once), stderr.String())
		})
	}
}

func TestNewUUID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		id := newUUID()
		require.True(t, store.ValidID(id), id)
		require.Equal(t, byte('4'), id[14], "version 4")
		require.False(t, seen[id])
		seen[id] = true
	}
}
