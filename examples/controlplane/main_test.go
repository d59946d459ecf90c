package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func noEnv(string) string { return "" }

// withHome is an environment with HOME set, as a user's has.
func withHome(k string) string {
	if k == "HOME" {
		return "/home/op"
	}
	return ""
}

func TestFlags(t *testing.T) {
	t.Parallel()
	withToken := func(k string) string {
		if k == "HCLOUD_TOKEN" {
			return "token"
		}
		return withHome(k)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			assert.Equal(t, "127.0.0.1:8080", c.addr)
			want, err := stateDir(withHome, runtime.GOOS)
			require.NoError(t, err)
			assert.Equal(t, want, c.dir, "the user's state directory")
			assert.False(t, c.dirSet)
			assert.Equal(t, "fake", c.cloud.Provider)
			assert.Equal(t, "demo", c.secrets)
			assert.Empty(t, c.postgres)
			assert.Equal(t, 30*time.Second, c.shutdown)
		}},
		{name: "postgres", args: []string{"-postgres", "postgres://x@h/db", "-addr", ":9090"}, check: func(t *testing.T, c config) {
			assert.Equal(t, "postgres://x@h/db", c.postgres)
			assert.Equal(t, ":9090", c.addr)
		}},
		{name: "hetzner", args: []string{"-provider", "hetzner", "-callback-base", "https://cp.example.com//", "-location", "hel1"}, getenv: withToken,
			check: func(t *testing.T, c config) {
				assert.Equal(t, "token", c.cloud.Token)
				assert.Equal(t, "https://cp.example.com", c.callback)
				assert.Equal(t, "env", c.secrets, "real servers get real secrets by default")
				assert.Equal(t, "hel1", c.cloud.Location)
			}},
		{name: "hetzner without token", args: []string{"-provider", "hetzner", "-callback-base", "https://cp.example.com"}, wantErr: "HCLOUD_TOKEN"},
		{name: "hetzner without callback", args: []string{"-provider", "hetzner"}, getenv: withToken, wantErr: "-callback-base"},
		{name: "digitalocean", args: []string{"-provider", "digitalocean", "-callback-base", "https://cp.example.com", "-ssh-key", "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"},
			getenv: func(k string) string {
				if k == "DIGITALOCEAN_TOKEN" {
					return "do-token"
				}
				return withHome(k)
			},
			check: func(t *testing.T, c config) {
				assert.Equal(t, "do-token", c.cloud.Token)
				assert.Equal(t, "env", c.secrets)
				assert.Equal(t, "fra1", c.cloud.Location)
			}},
		{name: "digitalocean without token", args: []string{"-provider", "digitalocean", "-callback-base", "https://cp.example.com", "-ssh-key", "1"}, wantErr: "DIGITALOCEAN_TOKEN"},
		{name: "unknown provider", args: []string{"-provider", "gcp"}, wantErr: `-provider "gcp"`},
		{name: "unknown secrets", args: []string{"-secrets", "vault"}, wantErr: `-secrets "vault"`},
		{name: "bad callback", args: []string{"-callback-base", "ftp://x"}, wantErr: "absolute http(s) URL"},
		{name: "negative duration", args: []string{"-shutdown-timeout", "-1s"}, wantErr: "negative"},
		{name: "argument", args: []string{"serve"}, wantErr: "unexpected argument"},
		{name: "dir", args: []string{"-dir", "state"}, getenv: noEnv, check: func(t *testing.T, c config) {
			assert.Equal(t, "state", c.dir)
			assert.True(t, c.dirSet)
		}},
		{name: "no default dir", getenv: noEnv, wantErr: "-dir: no default: neither $XDG_STATE_HOME nor $HOME is set; name a directory"},
		{name: "empty dir", args: []string{"-dir", ""}, wantErr: "-dir: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			getenv := tc.getenv
			if getenv == nil {
				getenv = withHome
			}
			c, err := parseFlags(tc.args, getenv, io.Discard)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, run(context.Background(), []string{"-provider", "gcp"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), `controlplane: -provider "gcp"`)
	stderr.Reset()
	assert.Equal(t, 0, run(context.Background(), []string{"-help"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "POST   /tenants/{id}")
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
		{[]string{"-resume-interval", "abc"}, `controlplane: invalid value "abc" for flag -resume-interval: parse error (see -h)`},
		{[]string{"-addr"}, `controlplane: flag needs an argument: -addr (see -h)`},
		{[]string{"-nope"}, `controlplane: flag provided but not defined: -nope (see -h)`},
		{[]string{"-v=maybe"}, `controlplane: invalid boolean value "maybe" for -v: parse error (see -h)`},
		{[]string{"serve"}, `controlplane: unexpected argument "serve" (flags only; see -h)`},
		{[]string{"-dir", ""}, `controlplane: -dir: empty; name a directory for the keys and the database`},
		{[]string{"-settle", "-1s"}, `controlplane: durations must not be negative`},
		{[]string{"-callback-base", "ftp://x"}, `controlplane: -callback-base "ftp://x": want an absolute http(s) URL such as https://cp.example.com`},
		{[]string{"-provider", "gcp"}, `controlplane: -provider "gcp"`},
		{[]string{"-secrets", "vault"}, `controlplane: -secrets "vault": want demo or env`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			assert.Equal(t, 2, run(context.Background(), tc.args, &stdout, &stderr))
			assert.Empty(t, stdout.String())
			got := stderr.String()
			assert.True(t, strings.HasPrefix(got, tc.want), "got  %s\nwant %s...", got, tc.want)
			assert.Equal(t, 1, strings.Count(got, "\n"), "one line: %q", got)
			assert.True(t, strings.HasSuffix(got, "\n"), "%q", got)
			assert.NotContains(t, got, "Usage:")
		})
	}
}

func TestStateDir(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name    string
		goos    string
		getenv  func(string) string
		want    string
		wantErr string
	}{
		{"linux XDG_STATE_HOME", "linux", env("XDG_STATE_HOME", "/var/lib/op", "HOME", "/home/op"), "/var/lib/op/hatchery/controlplane", ""},
		{"linux HOME", "linux", env("HOME", "/home/op"), "/home/op/.local/state/hatchery/controlplane", ""},
		{"linux relative XDG_STATE_HOME is ignored", "linux", env("XDG_STATE_HOME", "state", "HOME", "/home/op"), "/home/op/.local/state/hatchery/controlplane", ""},
		{"freebsd", "freebsd", env("HOME", "/home/op"), "/home/op/.local/state/hatchery/controlplane", ""},
		{"linux nothing", "linux", env(), "", "neither $XDG_STATE_HOME nor $HOME"},
		{"darwin", "darwin", env("HOME", "/Users/op", "XDG_STATE_HOME", "/x"), "/Users/op/Library/Application Support/hatchery/controlplane", ""},
		{"darwin nothing", "darwin", env(), "", "$HOME is not set"},
		{"windows", "windows", env("LocalAppData", "/c/Users/op/AppData/Local"), filepath.Join("/c/Users/op/AppData/Local", "hatchery", "controlplane"), ""},
		{"windows nothing", "windows", env("HOME", "/home/op"), "", "%LocalAppData% is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := stateDir(tc.getenv, tc.goos)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, filepath.FromSlash(tc.want), got)
		})
	}
}

// By default the keys and the database go to the user's state directory,
// created 0700 (parents too), every file in it 0600; a directory left by
// an earlier version in the working directory is pointed out, not used.
func TestDefaultStateDir(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("XDG_STATE_HOME is the state directory on Linux and other Unix systems")
	}
	state := filepath.Join(t.TempDir(), "state") // missing: created 0700
	t.Setenv("XDG_STATE_HOME", state)
	wd := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(wd, "controlplane-data"), 0o700))
	t.Chdir(wd)

	s := startService(t, fastArgs...)
	var created tenant
	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+newTestID(t), &created))
	require.Equal(t, 0, s.stop(t), s.stderr.String())

	dir := filepath.Join(state, "hatchery", "controlplane")
	for _, d := range []string{state, filepath.Join(state, "hatchery"), dir} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), d)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), e.Name())
	}
	assert.Subset(t, names, []string{"hatchery.db", "id_ed25519", "callback.key"})
	assert.Contains(t, s.stderr.String(), "dir="+dir)
	assert.Contains(t, s.stderr.String(), "pass -dir controlplane-data to go on with them")
	old, err := os.ReadDir(filepath.Join(wd, "controlplane-data"))
	require.NoError(t, err)
	assert.Empty(t, old, "the old directory is left alone")
}

// Keys that other users may read are refused, as ssh refuses such an
// identity file; a state directory open to them is warned about.
func TestKeysOthersCanRead(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	t.Parallel()
	for _, name := range []string{"id_ed25519", "callback.key"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			_, err := loadOrCreateSSHKey(filepath.Join(dir, "id_ed25519"))
			require.NoError(t, err)
			_, err = loadOrCreateCallbackKey(filepath.Join(dir, "callback.key"))
			require.NoError(t, err)
			path := filepath.Join(dir, name)
			require.NoError(t, os.Chmod(path, 0o640))

			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"-dir", dir}, fastArgs...), &stdout, &stderr)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr.String(), path+" is accessible to other users (mode -rw-r-----)")
			assert.Contains(t, stderr.String(), "chmod 600")
			assert.Empty(t, stdout.String(), "it did not start")
		})
	}

	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.Chmod(dir, 0o755))
		var log bytes.Buffer
		require.NoError(t, openDir(dir, slog.New(slog.NewTextHandler(&log, nil))))
		assert.Contains(t, log.String(), "accessible to other users")
		assert.Contains(t, log.String(), "chmod 700")

		log.Reset()
		require.NoError(t, openDir(filepath.Join(t.TempDir(), "new"), slog.New(slog.NewTextHandler(&log, nil))))
		assert.Empty(t, log.String())
	})
}

// A store that cannot be opened: exit 1, the driver's error said once
// ("sqlite: open PATH: ...", "postgres: open: ..."), not wrapped in
// "open sqlite PATH:" or "open postgres:" again.
func TestRunStoreErrorOnce(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name, flag, value, want, driver string
	}{
		{"sqlite", "-db", filepath.Join(missing, "x.db"), "sqlite: open " + filepath.Join(missing, "x.db") + ": directory " + missing + " does not exist", "sqlite:"},
		{"postgres", "-postgres", "postgres://hatchery@127.0.0.1:1/hatchery?connect_timeout=5", "postgres: open: ", "postgres:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"-dir", t.TempDir(), tc.flag, tc.value, "-addr", "127.0.0.1:0"}, &stdout, &stderr)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr.String(), tc.want)
			assert.Equal(t, 1, strings.Count(stderr.String(), tc.driver), stderr.String())
		})
	}
}

// A port already taken: run fails with 1 and says why.
func TestRunListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-addr", ln.Addr().String(), "-dir", t.TempDir()}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "address already in use")
}

func TestKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "id_ed25519")
	s1, err := loadOrCreateSSHKey(path)
	require.NoError(t, err)
	assert.Equal(t, ssh.KeyAlgoED25519, s1.PublicKey().Type())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	s2, err := loadOrCreateSSHKey(path)
	require.NoError(t, err)
	assert.Equal(t, s1.PublicKey().Marshal(), s2.PublicKey().Marshal(), "loaded, not made again")

	kpath := filepath.Join(dir, "callback.key")
	k1, err := loadOrCreateCallbackKey(kpath)
	require.NoError(t, err)
	assert.Len(t, k1, 32)
	k2, err := loadOrCreateCallbackKey(kpath)
	require.NoError(t, err)
	assert.Equal(t, k1, k2)
	fi, err = os.Stat(kpath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	require.NoError(t, os.WriteFile(filepath.Join(dir, "short.key"), []byte("abcd\n"), 0o600))
	_, err = loadOrCreateCallbackKey(filepath.Join(dir, "short.key"))
	assert.ErrorContains(t, err, "at least 16 bytes")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad_key"), []byte("not a key"), 0o600))
	_, err = loadOrCreateSSHKey(filepath.Join(dir, "bad_key"))
	assert.Error(t, err)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 4, "no temp file left behind")
}

// Processes starting together end up with one key, whoever wins.
func TestKeysRace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "callback.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := loadOrCreateCallbackKey(path)
			assert.NoError(t, err)
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		assert.Equal(t, keys[0], k)
	}
}

func TestReachable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9}, "127.0.0.1:9"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 9}, "[::1]:9"},
	} {
		assert.Equal(t, tc.want, reachable(tc.addr))
	}
}
