package callback_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/store"
)

const python = "/usr/bin/python3"

// needCloudInit skips (or, in CI, fails) unless Debian's cloud-init can be
// imported by the system python.
func needCloudInit(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		testenv.Missing(t, python+" is not installed")
	}
	out, err := exec.Command(python, "-c", "import cloudinit.config.cc_phone_home").CombinedOutput()
	if err != nil {
		testenv.Missing(t, "cloud-init's python module cannot be imported by "+python+": "+strings.TrimSpace(string(out)))
	}
}

// phoneHome runs cloud-init's own cc_phone_home.handle() (through
// testdata/phone_home.py) against url and returns its exit status and output.
func phoneHome(t *testing.T, url, instanceID, hostname, keyDir, post string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/phone_home.py", url, instanceID, hostname, keyDir, "--post", post, "--tries", "1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("running cloud-init: %v\n%s", err, out)
	}
	return 0, string(out)
}

// seen is what the server received, recorded without changing anything
// on the way to the handler.
type seen struct {
	mu      sync.Mutex
	method  []string
	agent   []string
	ctype   []string
	bodies  []string
	answers []int
}

type recordingWriter struct {
	http.ResponseWriter
	code int
}

func (w *recordingWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		rw := &recordingWriter{ResponseWriter: w, code: 200}
		h.ServeHTTP(rw, r)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.method = append(s.method, r.Method)
		s.agent = append(s.agent, r.UserAgent())
		s.ctype = append(s.ctype, r.Header.Get("Content-Type"))
		s.bodies = append(s.bodies, string(body))
		s.answers = append(s.answers, rw.code)
	})
}

// TestCloudInitPhoneHome drives the real cloud-init phone_home module
// against the handler over HTTP on 127.0.0.1.
func TestCloudInitPhoneHome(t *testing.T) {
	t.Parallel()
	needCloudInit(t)

	// Host keys as sshd's keygen leaves them: .pub files with a comment and
	// a trailing newline; no DSA key, so cloud-init posts pub_key_dsa=N/A.
	keyDir := t.TempDir()
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sshPub, err := ssh.NewPublicKey(edPub)
	require.NoError(t, err)
	edLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) // "ssh-ed25519 AAAA..."
	for name, content := range map[string]string{
		"ssh_host_rsa_key.pub":     pubRSA,
		"ssh_host_ecdsa_key.pub":   pubECDSA,
		"ssh_host_ed25519_key.pub": edLine + " root@tenant-a\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(keyDir, name), []byte(content), 0o644))
	}

	b := setup(t,
		store.Record{ID: tenant, Status: store.StatusCloudInit},
		store.Record{ID: other, Status: store.StatusCloudInit})
	var s seen
	srv := httptest.NewServer(s.wrap(b.h))
	t.Cleanup(srv.Close)
	base := srv.URL + "/api/provision/callback"

	rc, out := phoneHome(t, b.h.URL(base, tenant), "12345678", "tenant-a", keyDir, "all")
	require.Equal(t, 0, rc, "cloud-init did not post successfully:\n%s", out)

	got := b.get(t, tenant)
	assert.Equal(t, store.StatusInjectingSecrets, got.Status)
	assert.Equal(t, "tenant-a", got.Hostname)
	assert.Equal(t, "12345678", got.InstanceID)
	assert.Equal(t, []string{norm(pubRSA), norm(pubECDSA), edLine}, got.HostKeys)
	assert.Contains(t, got.HostKeys, edLine, "the ed25519 key is stored")
	ready := b.waitReady(t)
	assert.Equal(t, got, ready)

	s.mu.Lock()
	require.Len(t, s.bodies, 1)
	assert.Equal(t, "POST", s.method[0])
	assert.True(t, strings.HasPrefix(s.agent[0], "Cloud-Init/"), s.agent[0])
	assert.Equal(t, "application/x-www-form-urlencoded", s.ctype[0])
	assert.True(t, strings.HasPrefix(s.bodies[0], "pub_key_dsa=N%2FA&pub_key_rsa=ssh-rsa+"), s.bodies[0])
	assert.Contains(t, s.bodies[0], "+root%40tenant-a%0A&pub_key_ecdsa=", "keys posted with their trailing newline")
	assert.True(t, strings.HasSuffix(s.bodies[0], "&instance_id=12345678&hostname=tenant-a&fqdn=tenant-a"), s.bodies[0])
	s.mu.Unlock()

	// Module rerun (cloud-init single --name phone_home, a reboot with a
	// new instance cache): the same data again is a 200 and nothing else.
	rc, out = phoneHome(t, b.h.URL(base, tenant), "12345678", "tenant-a", keyDir, "all")
	require.Equal(t, 0, rc, out)
	assert.Equal(t, got, b.get(t, tenant))
	b.noReady(t)

	// A wrong token: cloud-init gives up after its tries, nothing changes.
	rc, out = phoneHome(t, strings.Replace(b.h.URL(base, other), "?token=", "?token=00", 1), "1", "tenant-b", keyDir, "all")
	assert.Equal(t, 1, rc, out)
	// An empty post list makes cloud-init GET: 405, nothing changes.
	rc, out = phoneHome(t, b.h.URL(base, other), "1", "tenant-b", keyDir, "none")
	assert.Equal(t, 1, rc, out)
	// Only instance_id and hostname: no host key to pin, 400.
	rc, out = phoneHome(t, b.h.URL(base, other), "1", "tenant-b", keyDir, "instance_id,hostname")
	assert.Equal(t, 1, rc, out)
	assert.Equal(t, store.StatusCloudInit, b.get(t, other).Status)
	b.noReady(t)

	// An image that still has a DSA host key (here not even a valid one):
	// the field is ignored, the rest recorded.
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "ssh_host_dsa_key.pub"), []byte("ssh-dss AAAAB3NzaC1kc3MAAACBAPfake root@tenant-b\n"), 0o644))
	rc, out = phoneHome(t, b.h.URL(base, other), "1", "tenant-b", keyDir, "all")
	assert.Equal(t, 0, rc, out)
	got = b.get(t, other)
	assert.Equal(t, store.StatusInjectingSecrets, got.Status)
	assert.Equal(t, []string{norm(pubRSA), norm(pubECDSA), edLine}, got.HostKeys)
	assert.Equal(t, other, b.waitReady(t).ID)

	s.mu.Lock()
	assert.Equal(t, []int{200, 200, 401, 405, 400, 200}, s.answers)
	assert.Equal(t, "GET", s.method[3])
	assert.Contains(t, s.bodies[5], "pub_key_dsa=ssh-dss+")
	s.mu.Unlock()
}
