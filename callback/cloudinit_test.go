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

	"github.com/hatchery-dev/hatchery/callback"
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

// reportEvents runs cloud-init's own reporting code (through
// testdata/report_events.py) against url and returns its output.
func reportEvents(t *testing.T, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, append([]string{"testdata/report_events.py", url}, args...)...).CombinedOutput()
	require.NoError(t, err, "running cloud-init's reporting:\n%s", out)
	return string(out)
}

// TestCloudInitReporting drives cloud-init's own reporting webhook
// (WebHookHandler, ReportEventStack, flush) against the handler over HTTP
// on 127.0.0.1: every event of the boot reaches OnEvent in order, typed,
// a failing module's FAIL included; an earlier server's token and events
// after phone_home are refused and reach nothing.
func TestCloudInitReporting(t *testing.T) {
	t.Parallel()
	needCloudInit(t)

	eb := setupEvents(t, store.Record{ID: tenant, Status: store.StatusCloudInit, CallbackNonce: currentNonce})
	var s seen
	srv := httptest.NewServer(s.wrap(eb.h))
	t.Cleanup(srv.Close)
	base := srv.URL + "/api/provision/callback"
	before := eb.get(t, tenant)
	start := time.Now()

	out := reportEvents(t, eb.h.EventsURL(base, tenant, currentNonce), "--fail", "scripts-user")
	assert.NotContains(t, out, "Failed posting event", out)

	type step struct {
		name, module string
		typ          callback.EventType
		result       callback.Result
		desc         string
	}
	want := []step{
		{"modules-config", "", callback.EventStart, "", "running modules for config"},
		{"modules-config/config-runcmd", "runcmd", callback.EventStart, "", "running config-runcmd with frequency once-per-instance"},
		{"modules-config/config-runcmd", "runcmd", callback.EventFinish, callback.ResultSuccess, "config-runcmd ran successfully"},
		{"modules-config", "", callback.EventFinish, callback.ResultSuccess, "running modules for config"},
		{"modules-final", "", callback.EventStart, "", "running modules for final"},
		{"modules-final/config-scripts-user", "scripts-user", callback.EventStart, "", "running config-scripts-user with frequency once-per-instance"},
		{"modules-final/config-scripts-user", "scripts-user", callback.EventFinish, callback.ResultFail, "running config-scripts-user with frequency once-per-instance"},
		{"modules-final/config-phone-home", "phone-home", callback.EventStart, "", "running config-phone-home with frequency once-per-instance"},
		{"modules-final/config-phone-home", "phone-home", callback.EventFinish, callback.ResultSuccess, "config-phone-home ran successfully"},
		{"modules-final", "", callback.EventFinish, callback.ResultFail, "running modules for final"},
	}
	got := eb.got()
	require.Len(t, got, len(want), out)
	var last time.Time
	for i, ev := range got {
		assert.Equal(t, want[i], step{ev.Name, ev.Module, ev.Type, ev.Result, ev.Description}, "event %d", i)
		assert.Equal(t, strings.SplitN(ev.Name, "/", 2)[0], ev.Stage)
		assert.Equal(t, "cloudinit", ev.Origin)
		assert.WithinDuration(t, start, ev.Time, time.Minute, "the server's clock is this machine's")
		assert.False(t, ev.Time.Before(last), "in order")
		last = ev.Time
	}
	for _, r := range eb.recs {
		assert.Equal(t, before, r)
	}
	assert.Equal(t, before, eb.get(t, tenant), "events never change the record")

	s.mu.Lock()
	require.Len(t, s.bodies, len(want))
	for i := range s.bodies {
		assert.Equal(t, "POST", s.method[i])
		assert.Equal(t, "", s.ctype[i], "cloud-init 22.4 posts events without a Content-Type")
		assert.True(t, strings.HasPrefix(s.agent[i], "Cloud-Init/"), s.agent[i])
		assert.Equal(t, 200, s.answers[i])
		assert.Less(t, len(s.bodies[i]), callback.MaxEventSize)
	}
	s.mu.Unlock()

	// The token of an earlier server of the tenant: every event 401,
	// cloud-init logs the failures and gives up on the rest at the flush.
	eb.mu.Lock()
	eb.events, eb.recs = nil, nil
	eb.mu.Unlock()
	out = reportEvents(t, eb.h.EventsURL(base, tenant, earlierNonce), "--timeout", "2")
	assert.Contains(t, out, "Failed posting event", out)
	assert.Contains(t, out, "401", out)
	assert.NotContains(t, out, currentNonce)

	// After phone_home, while the secrets are injected: the end of the
	// final stage still arrives, as progress, and changes nothing.
	_, err := eb.st.Update(context.Background(), tenant, func(r *store.Record) error { r.Status = store.StatusInjectingSecrets; return nil })
	require.NoError(t, err)
	after := eb.get(t, tenant)
	out = reportEvents(t, eb.h.EventsURL(base, tenant, currentNonce), "--timeout", "2")
	assert.NotContains(t, out, "Failed posting event", out)
	assert.Len(t, eb.got(), len(want))
	assert.Equal(t, after, eb.get(t, tenant))
	eb.mu.Lock()
	eb.events, eb.recs = nil, nil
	eb.mu.Unlock()

	// Once ready: late events (a rebooted server, a replay) are 409.
	_, err = eb.st.Update(context.Background(), tenant, func(r *store.Record) error { r.Status = store.StatusReady; return nil })
	require.NoError(t, err)
	after = eb.get(t, tenant)
	s.mu.Lock()
	before409 := len(s.answers)
	s.mu.Unlock()
	out = reportEvents(t, eb.h.EventsURL(base, tenant, currentNonce), "--timeout", "2")
	assert.Contains(t, out, "409", out)
	assert.Empty(t, eb.got(), "refused events reach no OnEvent")
	assert.Equal(t, after, eb.get(t, tenant))
	s.mu.Lock()
	require.Greater(t, len(s.answers), before409)
	for _, code := range s.answers[before409:] {
		assert.Equal(t, 409, code)
	}
	s.mu.Unlock()
}
