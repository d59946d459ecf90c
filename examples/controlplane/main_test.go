package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func noEnv(string) string { return "" }

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
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			assert.Equal(t, "127.0.0.1:8080", c.addr)
			assert.Equal(t, "controlplane-data", c.dir)
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
				return ""
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			getenv := tc.getenv
			if getenv == nil {
				getenv = noEnv
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
