package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

const (
	idA = "0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c"
	idB = "7d2f4c1e-9a8b-4c3d-8e7f-1a2b3c4d5e6f"
)

// stubProvisioner stands in for *provision.Provisioner in the API's unit
// tests: it records calls, writes to the store as the real one would,
// and fails as told.
type stubProvisioner struct {
	st             store.Store
	mu             sync.Mutex
	calls          []string
	provisionErr   error
	deprovisionErr error
	replaceErr     error
	sweep          provision.SweepResult
	sweepErr       error
}

func (s *stubProvisioner) Provision(ctx context.Context, id string) error {
	s.mu.Lock()
	s.calls = append(s.calls, "provision "+id)
	s.mu.Unlock()
	if err := s.st.Create(ctx, store.Record{ID: id, Status: store.StatusCloudInit, ServerName: "hatchery-" + id}); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return s.provisionErr
}

func (s *stubProvisioner) Deprovision(ctx context.Context, id string) error {
	s.mu.Lock()
	s.calls = append(s.calls, "deprovision "+id)
	s.mu.Unlock()
	if _, err := s.st.Update(ctx, id, func(r *store.Record) error { r.Status = store.StatusDeleted; return nil }); err != nil {
		return err
	}
	return s.deprovisionErr
}

func (s *stubProvisioner) Replace(ctx context.Context, id string) error {
	s.mu.Lock()
	s.calls = append(s.calls, "replace "+id)
	s.mu.Unlock()
	if s.replaceErr != nil {
		return s.replaceErr
	}
	_, err := store.Transition(ctx, s.st, id, []store.Status{store.StatusReady, store.StatusFailed}, store.StatusCloudInit,
		func(r *store.Record) error {
			r.RetiringServerID, r.ServerID = r.ServerID, "new"
			return nil
		})
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %s is %s", provision.ErrNotReady, id, ce.Status)
	}
	return err
}

func (s *stubProvisioner) Sweep(ctx context.Context, dryRun bool) (provision.SweepResult, error) {
	s.mu.Lock()
	s.calls = append(s.calls, fmt.Sprintf("sweep dry_run=%v", dryRun))
	s.mu.Unlock()
	return s.sweep, s.sweepErr
}

// ready makes tenant id ready on server "old".
func (s *stubProvisioner) ready(id string) {
	_ = s.st.Create(context.Background(), store.Record{ID: id, Status: store.StatusReady, ServerID: "old"})
}

func (s *stubProvisioner) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, "callback "+r.PathValue("id"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
}

func newTestAPI(t *testing.T) (*stubProvisioner, http.Handler) {
	t.Helper()
	st := memory.New()
	p := &stubProvisioner{st: st}
	a := &api{p: p, store: st, log: slog.New(slog.DiscardHandler), provisionTimeout: 10 * time.Second}
	return p, a.routes()
}

func do(t *testing.T, h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestAPI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		setup    func(p *stubProvisioner)
		method   string
		target   string
		hdr      []string
		wantCode int
		wantBody string // a substring
		wantCall string // the last call to the provisioner; "" means none
		notJSON  bool   // the answer is the ServeMux's or the callback's
	}{
		{name: "provision", method: "POST", target: "/tenants/" + idA, wantCode: 202, wantBody: `"status": "cloud_init"`, wantCall: "provision " + idA},
		{name: "provision again", setup: func(p *stubProvisioner) { p.Provision(context.Background(), idA) },
			method: "POST", target: "/tenants/" + idA, wantCode: 202, wantBody: `"id": "` + idA + `"`, wantCall: "provision " + idA},
		{name: "provision: create failed, retried in the background",
			setup:  func(p *stubProvisioner) { p.provisionErr = &provision.Error{Tenant: idA, Phase: "create"} },
			method: "POST", target: "/tenants/" + idA, wantCode: 202, wantCall: "provision " + idA},
		{name: "provision while shutting down", setup: func(p *stubProvisioner) { p.provisionErr = provision.ErrClosed },
			method: "POST", target: "/tenants/" + idA, wantCode: 503, wantBody: `"error": "shutting down"`, wantCall: "provision " + idA},
		{name: "provision: store broken", setup: func(p *stubProvisioner) { p.provisionErr = errors.New("disk on fire: /var/lib/secret") },
			method: "POST", target: "/tenants/" + idA, wantCode: 500, wantBody: `"error": "cannot provision ` + idA + `"`, wantCall: "provision " + idA},
		{name: "provision a deprovisioned tenant", setup: func(p *stubProvisioner) {
			p.Provision(context.Background(), idA)
			p.Deprovision(context.Background(), idA)
		}, method: "POST", target: "/tenants/" + idA, wantCode: 409, wantBody: "not reused", wantCall: "provision " + idA},
		{name: "provision: ID not a UUID", method: "POST", target: "/tenants/tenant-1", wantCode: 400, wantBody: "lowercase UUID"},
		{name: "provision: uppercase UUID", method: "POST", target: "/tenants/" + strings.ToUpper(idA), wantCode: 400},
		{name: "provision: cross-site", method: "POST", target: "/tenants/" + idA, hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403, wantBody: "cross-origin"},
		{name: "provision: other origin", method: "POST", target: "/tenants/" + idA, hdr: []string{"Origin", "https://evil.example"}, wantCode: 403},
		{name: "provision: same origin", method: "POST", target: "/tenants/" + idA, hdr: []string{"Sec-Fetch-Site", "same-origin"}, wantCode: 202, wantCall: "provision " + idA},

		{name: "get", setup: func(p *stubProvisioner) { p.Provision(context.Background(), idA) },
			method: "GET", target: "/tenants/" + idA, wantCode: 200, wantBody: `"server_name": "hatchery-` + idA + `"`},
		{name: "get unknown", method: "GET", target: "/tenants/" + idA, wantCode: 404, wantBody: `"error": "no tenant ` + idA + `"`},
		{name: "get bad ID", method: "GET", target: "/tenants/..%2f..%2fetc", wantCode: 400},

		{name: "list empty", method: "GET", target: "/tenants", wantCode: 200, wantBody: `"tenants": []`},
		{name: "list", setup: func(p *stubProvisioner) {
			p.Provision(context.Background(), idA)
			p.Provision(context.Background(), idB)
		},
			method: "GET", target: "/tenants?status=cloud_init,ready", wantCode: 200, wantBody: idB},
		{name: "list bad status", method: "GET", target: "/tenants?status=done", wantCode: 400, wantBody: "unknown status"},

		{name: "deprovision", setup: func(p *stubProvisioner) { p.Provision(context.Background(), idA) },
			method: "DELETE", target: "/tenants/" + idA, wantCode: 200, wantBody: `"status": "deleted"`, wantCall: "deprovision " + idA},
		{name: "deprovision: server deletion failed, left to Resume", setup: func(p *stubProvisioner) {
			p.Provision(context.Background(), idA)
			p.deprovisionErr = errors.New("provider: unavailable")
		}, method: "DELETE", target: "/tenants/" + idA, wantCode: 202, wantBody: `"status": "deleted"`, wantCall: "deprovision " + idA},
		{name: "deprovision unknown", method: "DELETE", target: "/tenants/" + idA, wantCode: 404, wantCall: "deprovision " + idA},
		{name: "deprovision cross-site", method: "DELETE", target: "/tenants/" + idA, hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403},

		{name: "replace", setup: func(p *stubProvisioner) { p.ready(idA) },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 202, wantBody: `"retiring_server_id": "old"`, wantCall: "replace " + idA},
		{name: "replace: not ready", setup: func(p *stubProvisioner) { p.Provision(context.Background(), idA) },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 409, wantBody: "ready or failed", wantCall: "replace " + idA},
		{name: "replace: busy", setup: func(p *stubProvisioner) { p.ready(idA); p.replaceErr = provision.ErrBusy },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 409, wantCall: "replace " + idA},
		{name: "replace unknown", setup: func(p *stubProvisioner) { p.replaceErr = store.ErrNotFound },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 404, wantCall: "replace " + idA},
		{name: "replace: create failed, retried in the background",
			setup:  func(p *stubProvisioner) { p.ready(idA); p.replaceErr = &provision.Error{Tenant: idA, Phase: "create"} },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 202, wantCall: "replace " + idA},
		{name: "replace: broken", setup: func(p *stubProvisioner) { p.replaceErr = errors.New("disk on fire") },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 500, wantCall: "replace " + idA},
		{name: "replace cross-site", method: "POST", target: "/tenants/" + idA + "/replace", hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403},
		{name: "replace bad ID", method: "POST", target: "/tenants/x/replace", wantCode: 400},

		{name: "sweep: a dry run by default", setup: func(p *stubProvisioner) {
			p.sweep = provision.SweepResult{Listed: 3, Orphans: []provision.Orphan{{
				Server: provider.Server{ID: "9", Name: "hatchery-" + idB, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
				Tenant: idB, Reason: "no record", Kept: "dry run",
			}}}
		}, method: "POST", target: "/sweep", wantCode: 200, wantBody: `"kept": "dry run"`, wantCall: "sweep dry_run=true"},
		{name: "sweep dry_run=1", method: "POST", target: "/sweep?dry_run=1", wantCode: 200, wantBody: `"orphans": []`, wantCall: "sweep dry_run=true"},
		{name: "sweep for real", method: "POST", target: "/sweep?dry_run=0", wantCode: 200, wantBody: `"dry_run": false`, wantCall: "sweep dry_run=false"},
		{name: "sweep: bad dry_run", method: "POST", target: "/sweep?dry_run=maybe", wantCode: 400},
		{name: "sweep: provider cannot list", setup: func(p *stubProvisioner) { p.sweepErr = fmt.Errorf("x: %w", errors.ErrUnsupported) },
			method: "POST", target: "/sweep", wantCode: 501, wantCall: "sweep dry_run=true"},
		{name: "sweep: provider down", setup: func(p *stubProvisioner) { p.sweepErr = errors.New("disk on fire") },
			method: "POST", target: "/sweep", wantCode: 502, wantCall: "sweep dry_run=true"},
		{name: "sweep: a deletion failed", setup: func(p *stubProvisioner) {
			p.sweep = provision.SweepResult{Listed: 1, Orphans: []provision.Orphan{{
				Server: provider.Server{ID: "9"}, Reason: "no record", Kept: "delete failed: disk on fire",
			}}}
			p.sweepErr = errors.New("disk on fire")
		}, method: "POST", target: "/sweep?dry_run=0", wantCode: 200, wantBody: "delete failed (see the log)", wantCall: "sweep dry_run=false"},
		{name: "sweep cross-site", method: "POST", target: "/sweep", hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403},
		{name: "sweep takes POST only", method: "GET", target: "/sweep", wantCode: 405, notJSON: true},

		{name: "method not allowed", method: "PUT", target: "/tenants/" + idA, wantCode: 405, notJSON: true},
		{name: "unknown path", method: "GET", target: "/nope", wantCode: 404, notJSON: true},

		{name: "callback, outside the cross-origin check", method: "POST", target: CallbackPath + "/" + idA, hdr: []string{"Sec-Fetch-Site", "cross-site"},
			wantCode: 204, wantCall: "callback " + idA, notJSON: true},
		{name: "callback takes POST only", method: "GET", target: CallbackPath + "/" + idA, wantCode: 404, notJSON: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, h := newTestAPI(t)
			if tc.setup != nil {
				tc.setup(p)
			}
			p.mu.Lock()
			before := len(p.calls)
			p.mu.Unlock()

			w := do(t, h, tc.method, tc.target, tc.hdr...)
			assert.Equal(t, tc.wantCode, w.Code, w.Body.String())
			if tc.wantBody != "" {
				assert.Contains(t, w.Body.String(), tc.wantBody)
			}
			if !tc.notJSON {
				assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
				assert.True(t, json.Valid(w.Body.Bytes()), w.Body.String())
			}
			assert.NotContains(t, w.Body.String(), "disk on fire", "internal errors are logged, not shown")

			p.mu.Lock()
			defer p.mu.Unlock()
			if tc.wantCall == "" {
				assert.Len(t, p.calls, before, "no call to the provisioner")
			} else {
				require.Greater(t, len(p.calls), before)
				assert.Equal(t, tc.wantCall, p.calls[len(p.calls)-1])
			}
		})
	}
}

// The record as the API shows it: every field, times in UTC, no lease
// when there is none.
func TestTenantJSON(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	got, err := json.Marshal(toTenant(store.Record{
		ID: idA, Status: store.StatusReady, ServerID: "42", ServerName: "hatchery-" + idA,
		IPv4: "203.0.113.7", IPv6: "2001:db8::1", Hostname: "h", InstanceID: "i-42",
		HostKeys: []string{"ssh-ed25519 AAAA"}, Attempts: 1, CreatedAt: created, UpdatedAt: created.Add(time.Minute),
	}))
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"`+idA+`","status":"ready","server_id":"42","server_name":"hatchery-`+idA+`",
		"ipv4":"203.0.113.7","ipv6":"2001:db8::1","hostname":"h","instance_id":"i-42",
		"host_keys":["ssh-ed25519 AAAA"],"attempts":1,
		"created_at":"2026-01-02T02:04:05Z","updated_at":"2026-01-02T02:05:05Z"}`, string(got))

	until := created.Add(time.Hour)
	got, err = json.Marshal(toTenant(store.Record{ID: idA, Status: store.StatusInjectingSecrets, LeaseOwner: "r1", LeaseUntil: until, Error: "x"}))
	require.NoError(t, err)
	assert.Contains(t, string(got), `"lease_owner":"r1","lease_until":"2026-01-02T03:04:05Z"`)
	assert.Contains(t, string(got), `"error":"x"`)

	got, err = json.Marshal(toTenant(store.Record{ID: idA, Status: store.StatusReady, RetiringServerID: "41",
		Drift: "server gone: the provider has no server 41", DriftAt: until}))
	require.NoError(t, err)
	assert.Contains(t, string(got), `"retiring_server_id":"41","drift":"server gone: the provider has no server 41","drift_at":"2026-01-02T03:04:05Z"`)
}

// The status page renders the tenants on the server, escaped, with a
// policy that admits only its own script.
func TestPage(t *testing.T) {
	t.Parallel()
	p, h := newTestAPI(t)
	w := do(t, h, "GET", "/")
	require.Equal(t, 200, w.Code)
	assert.Contains(t, w.Body.String(), `<p id="empty">No tenants yet.`)

	ctx := context.Background()
	require.NoError(t, p.Provision(ctx, idA))
	require.NoError(t, p.Provision(ctx, idB))
	_, err := p.st.Update(ctx, idB, func(r *store.Record) error {
		r.Status, r.Error = store.StatusFailed, `inject: <script>alert("x")</script>`
		return nil
	})
	require.NoError(t, err)

	w = do(t, h, "GET", "/")
	require.Equal(t, 200, w.Code)
	body := w.Body.String()
	assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Contains(t, w.Header().Get("Content-Security-Policy"), "script-src 'self'")
	assert.Contains(t, body, `<tr data-id="`+idA+`" data-status="cloud_init">`)
	assert.Contains(t, body, `<tr data-id="`+idB+`" data-status="failed">`)
	assert.Contains(t, body, `<span class="status s-cloud_init">1 cloud_init</span><span class="status s-failed">1 failed</span>`)
	assert.NotContains(t, body, "<script>alert")
	assert.Contains(t, body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
	assert.Contains(t, body, `<p id="empty" hidden>`)
	assert.Contains(t, body, `<script src="/page.js" defer></script>`)
	assert.Contains(t, body, `<meta http-equiv="refresh" content="2">`, "refreshes without JavaScript too")

	w = do(t, h, "GET", "/page.js")
	require.Equal(t, 200, w.Code)
	assert.Contains(t, w.Header().Get("Content-Type"), "javascript")
	assert.Contains(t, w.Body.String(), `fetch("/tenants"`)
	assert.NotContains(t, w.Body.String(), "innerHTML", "values go in as text")
}

func TestWriteJSONError(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	writeJSON(w, 418, apiError{Error: "teapot"})
	assert.Equal(t, 418, w.Code)
	body, _ := io.ReadAll(w.Body)
	assert.JSONEq(t, `{"error":"teapot"}`, string(body))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
}
