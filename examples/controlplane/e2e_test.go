package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

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

// service is the control plane running in-process, as main runs it.
type service struct {
	URL            string // http://127.0.0.1:PORT
	cancel         context.CancelFunc
	done           chan int
	stdout, stderr syncBuffer
	once           sync.Once
	code           int
}

var listening = regexp.MustCompile(`controlplane: listening on (http://127\.0\.0\.1:\d+) `)

// fastArgs make simulated servers quick; tests add -dir and the rest.
var fastArgs = []string{"-addr", "127.0.0.1:0", "-boot-delay", "20ms", "-settle", "100ms"}

// startService runs the service with args until the test ends (or stop).
func startService(t *testing.T, args ...string) *service {
	t.Helper()
	return startServiceWith(t, nil, args...)
}

// startServiceWith is startService with the parsed flags changed by tweak.
func startServiceWith(t *testing.T, tweak func(*config), args ...string) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- runWith(ctx, args, &s.stdout, &s.stderr, tweak) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.After(30 * time.Second)
	for {
		if m := listening.FindStringSubmatch(s.stdout.String()); m != nil {
			s.URL = m[1]
			return s
		}
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("the service exited with %d before listening:\n%s", code, s.stderr.String())
		case <-deadline:
			t.Fatalf("the service did not listen within 30s:\n%s", s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop sends the shutdown (SIGINT in main) and returns the exit code.
func (s *service) stop(t *testing.T) int {
	t.Helper()
	s.once.Do(func() {
		s.cancel()
		select {
		case s.code = <-s.done:
		case <-time.After(60 * time.Second):
			t.Errorf("the service did not shut down within 60s:\n%s", s.stderr.String())
			s.code = -1
		}
	})
	return s.code
}

// call sends a request and decodes the JSON answer into out (when not nil).
func call(t *testing.T, method, url string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	if out != nil {
		require.NoError(t, json.NewDecoder(res.Body).Decode(out), "%s %s", method, url)
	}
	return res.StatusCode
}

// waitStatus polls GET /tenants/{id} until the tenant has status want.
func waitStatus(t *testing.T, s *service, id string, want store.Status) tenant {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got tenant
	for time.Now().Before(deadline) {
		got = tenant{} // decoding keeps the fields an answer leaves out
		require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/tenants/"+id, &got))
		if got.Status == want {
			return got
		}
		if got.Status == store.StatusFailed && want != store.StatusFailed && got.Attempts >= 3 {
			t.Fatalf("tenant %s failed: %s", id, got.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tenant %s is %s after 60s, want %s (error %q)\n%s", id, got.Status, want, got.Error, s.stderr.String())
	return got
}

// The whole service: two tenants provisioned through the API and ready,
// listed, one deprovisioned; a graceful shutdown; a restart that finds
// the records and keeps its keys.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startService(t, append([]string{"-dir", dir}, fastArgs...)...)

	ids := []string{"3f2a9c1e-2d4b-4c1a-9e8f-0a1b2c3d4e5f", "9d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"}
	for _, id := range ids {
		var rec tenant
		require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+id, &rec))
		assert.Equal(t, id, rec.ID)
		assert.Contains(t, []store.Status{store.StatusCloudInit, store.StatusInjectingSecrets, store.StatusReady}, rec.Status,
			"the server is created when POST answers")
	}
	for _, id := range ids {
		rec := waitStatus(t, s, id, store.StatusReady)
		assert.Equal(t, "hatchery-"+id, rec.ServerName)
		assert.Len(t, rec.HostKeys, 1)
	}

	var list tenantList
	require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/tenants", &list))
	require.Len(t, list.Tenants, 2)
	require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/tenants?status=failed", &list))
	assert.Empty(t, list.Tenants)

	var rec tenant
	require.Equal(t, http.StatusOK, call(t, "DELETE", s.URL+"/tenants/"+ids[1], &rec))
	assert.Equal(t, store.StatusDeleted, rec.Status)
	assert.Empty(t, rec.ServerID, "the server is deleted")
	require.Equal(t, http.StatusConflict, call(t, "POST", s.URL+"/tenants/"+ids[1], nil))

	key1, err := os.ReadFile(filepath.Join(dir, "id_ed25519"))
	require.NoError(t, err)
	require.Equal(t, 0, s.stop(t), s.stderr.String())
	assert.Contains(t, s.stderr.String(), "msg=\"shutting down\"")
	assert.Contains(t, s.stderr.String(), "msg=stopped")
	for _, v := range []string{"demo-claude-access-token-not-a-secret", "demo-telegram-bot-token"} {
		assert.NotContains(t, s.stderr.String(), v)
	}

	// A restart: same store, same keys, Resume finds nothing to do.
	s2 := startService(t, append([]string{"-dir", dir}, fastArgs...)...)
	require.Equal(t, http.StatusOK, call(t, "GET", s2.URL+"/tenants/"+ids[0], &rec))
	assert.Equal(t, store.StatusReady, rec.Status)
	require.Equal(t, http.StatusOK, call(t, "GET", s2.URL+"/tenants/"+ids[1], &rec))
	assert.Equal(t, store.StatusDeleted, rec.Status)
	key2, err := os.ReadFile(filepath.Join(dir, "id_ed25519"))
	require.NoError(t, err)
	assert.Equal(t, key1, key2, "the SSH key is kept across restarts")
	require.Equal(t, 0, s2.stop(t))
}

// Replace through the API: 202 with the old server retiring, then ready on
// a new server with another name. Sweep is a dry run by default and finds
// no orphan among live tenants.
func TestEndToEndReplaceAndSweep(t *testing.T) {
	t.Parallel()
	s := startService(t, append([]string{"-dir", t.TempDir()}, fastArgs...)...)
	id := newTestID(t)
	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+id, nil))
	before := waitStatus(t, s, id, store.StatusReady)

	var rec tenant
	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+id+"/replace", &rec))
	assert.Equal(t, before.ServerID, rec.RetiringServerID)
	after := waitStatus(t, s, id, store.StatusReady)
	assert.NotEqual(t, before.ServerID, after.ServerID)
	assert.NotEqual(t, before.ServerName, after.ServerName)
	assert.Empty(t, after.RetiringServerID)

	var sw sweepAnswer
	require.Equal(t, http.StatusOK, call(t, "POST", s.URL+"/sweep", &sw))
	assert.True(t, sw.DryRun)
	assert.Equal(t, 1, sw.Listed, "the new server; the old one is deleted")
	assert.Empty(t, sw.Orphans)
	require.Equal(t, 0, s.stop(t), s.stderr.String())
}

// The same on PostgreSQL, which replicas share.
func TestEndToEndPostgres(t *testing.T) {
	t.Parallel()
	dsn := testenv.PostgresURL(t)
	s := startService(t, append([]string{"-dir", t.TempDir(), "-postgres", dsn}, fastArgs...)...)
	id := newTestID(t)
	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+id, nil))
	waitStatus(t, s, id, store.StatusReady)
	require.Equal(t, http.StatusOK, call(t, "DELETE", s.URL+"/tenants/"+id, nil))
	require.Equal(t, 0, s.stop(t), s.stderr.String())
}

// newTestID is a random tenant ID, for stores shared between runs.
func newTestID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// The actions and the operator's endpoints against the real provisioner
// and simulated servers. A tenant whose create the provider refused for
// good (its quota) is failed: POSTing it again is 409 and retries
// nothing; POST /retry retries it, to ready. POST /rotate injects it
// again, the record showing the injection's steps. /healthz, /readyz and
// /metrics answer; the access log never shows the phone_home token.
func TestEndToEndActions(t *testing.T) {
	t.Parallel()
	id := newTestID(t)
	var refusedOnce atomic.Bool
	quota := func(name string) fake.Faults {
		if name == provision.DefaultServerName(id) && refusedOnce.CompareAndSwap(false, true) {
			return fake.Faults{CreateErr: fmt.Errorf("fake: %w", provider.ErrQuota)}
		}
		return fake.Faults{}
	}
	s := startServiceWith(t, func(c *config) { c.faults = quota }, "-dir", t.TempDir(), "-addr", "127.0.0.1:0", "-boot-delay", "20ms", "-settle", "1s")

	var a answer
	require.Equal(t, http.StatusOK, call(t, "POST", s.URL+"/tenants/"+id, &a))
	assert.Equal(t, store.StatusFailed, a.Status)
	assert.Equal(t, "provision", a.Action)
	assert.Contains(t, a.Result, "create failed for good")
	assert.Equal(t, "final: create: fake: provider: account limit reached", a.Error)
	assert.False(t, a.AutoRetry)
	assert.Equal(t, []string{"retry", "replace", "deprovision"}, a.Actions)

	var e apiError
	require.Equal(t, http.StatusConflict, call(t, "POST", s.URL+"/tenants/"+id, &e))
	assert.Equal(t, "tenant "+id+" failed: POST /tenants/"+id+"/retry retries it now", e.Error)
	require.NotNil(t, e.Tenant)
	assert.Equal(t, store.StatusFailed, e.Tenant.Status, "nothing retried")
	require.Equal(t, http.StatusConflict, call(t, "POST", s.URL+"/tenants/"+id+"/rotate", &e))
	assert.Equal(t, "tenant "+id+" is failed: only a ready tenant's secrets can be rotated", e.Error)

	a = answer{}
	code := call(t, "POST", s.URL+"/tenants/"+id+"/retry", &a)
	// Answered at the claim (202), or once the create is over, when it
	// was quicker than the answer (200).
	require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, code)
	assert.Equal(t, "retry", a.Action)
	assert.Contains(t, []string{"retrying", "retried"}, a.Result)
	assert.NotEqual(t, store.StatusFailed, a.Status)
	ready := waitStatus(t, s, id, store.StatusReady)
	require.NotNil(t, ready.LastEvent)
	assert.Equal(t, "injecting_secrets → ready", ready.LastEvent.Text)
	assert.Equal(t, []string{"rotate", "replace", "deprovision"}, ready.Actions)

	// A rotation: the injection's steps show in the record while it runs
	// (the last one checks the service for -settle, 1 s).
	a = answer{}
	code = call(t, "POST", s.URL+"/tenants/"+id+"/rotate", &a)
	require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, code)
	assert.Equal(t, "rotate", a.Action)
	var steps []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var rec tenant
		require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/tenants/"+id, &rec))
		if rec.LastEvent != nil && rec.LastEvent.Step > 0 {
			steps = append(steps, rec.LastEvent.Text)
		}
		if rec.Status == store.StatusReady && rec.UpdatedAt.After(ready.UpdatedAt) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NotEmpty(t, steps, "the rotation's steps")
	assert.Regexp(t, `^step \d+/10 `, steps[0])
	waitStatus(t, s, id, store.StatusReady)

	var status map[string]string
	require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/healthz", &status))
	assert.Equal(t, "ok", status["status"])
	require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/readyz", &status))
	assert.Equal(t, "ready", status["status"])
	res, err := http.Get(s.URL + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, string(metrics), `http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="409",http_route="/tenants/{id}",`)
	assert.Contains(t, string(metrics), `http_route="/api/provision/callback/{id}"`)
	assert.NotContains(t, string(metrics), id)

	require.Equal(t, 0, s.stop(t), s.stderr.String())
	log := s.stderr.String()
	assert.Regexp(t, `msg=http method=POST path=/api/provision/callback/`+id+` query="token=REDACTED" pattern="POST /api/provision/callback/{id}" status=200 bytes=\d+ duration=`, log)
	assert.Regexp(t, `msg=http method=POST path=/tenants/`+id+`/retry pattern="POST /tenants/{id}/retry" status=20[02] `, log)
	assert.NotRegexp(t, `token=[^R]`, log, "no token in the log")
}
