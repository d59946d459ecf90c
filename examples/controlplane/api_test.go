package main

import (
	"bytes"
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
// tests: it records calls, writes to the store and reports events as the
// real one would, and fails as told.
type stubProvisioner struct {
	st      store.Store
	onEvent func(provision.Event)
	mu      sync.Mutex
	calls   []string

	provisionErr   error
	checkErr       error // what Check says
	deprovisionErr error
	replaceErr     error
	// retryErr and rotateErr are returned before any claim; with noClaim,
	// Retry and Rotate return them (nil too) without claiming.
	retryErr, rotateErr error
	noClaim             bool
	// work, when set, is the work after a claim: Retry and Rotate return
	// workErr once it is closed. before, when set, is work in flight that
	// the claim waits for.
	work     chan struct{}
	before   chan struct{}
	workErr  error
	sweep    provision.SweepResult
	sweepErr error
}

func (s *stubProvisioner) called(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
}

// Provision creates the record in cloud_init, or, when provisionErr is a
// *provision.Error, failed with it, as a create that failed.
func (s *stubProvisioner) Provision(ctx context.Context, id string) error {
	s.called("provision " + id)
	rec := store.Record{ID: id, Status: store.StatusCloudInit, ServerName: "hatchery-" + id}
	var pe *provision.Error
	if errors.As(s.provisionErr, &pe) {
		rec = store.Record{ID: id, Status: store.StatusFailed, Attempts: 1, Error: "create: provider: no capacity"}
		if pe.Final {
			rec.Error = "final: " + rec.Error // as provision records it
		}
	}
	if err := s.st.Create(ctx, rec); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return s.provisionErr
}

func (s *stubProvisioner) Retry(ctx context.Context, id string) error {
	s.called("retry " + id)
	return s.act(ctx, id, s.retryErr, store.StatusFailed, store.StatusCreating)
}

func (s *stubProvisioner) Rotate(ctx context.Context, id string) error {
	s.called("rotate " + id)
	return s.act(ctx, id, s.rotateErr, store.StatusReady, store.StatusInjectingSecrets)
}

// act claims tenant id (from -> to, and its event), then works.
func (s *stubProvisioner) act(ctx context.Context, id string, err error, from, to store.Status) error {
	if err != nil || s.noClaim {
		return err
	}
	if s.before != nil {
		<-s.before
	}
	if _, err := store.Transition(ctx, s.st, id, []store.Status{from}, to, nil); err != nil {
		return fmt.Errorf("stub: claim %s: %w", id, err)
	}
	s.onEvent(provision.Event{Tenant: id, From: from, To: to, Time: time.Now()})
	if s.work != nil {
		<-s.work
	}
	return s.workErr
}

func (s *stubProvisioner) Deprovision(ctx context.Context, id string) error {
	s.called("deprovision " + id)
	if _, err := s.st.Update(ctx, id, func(r *store.Record) error { r.Status = store.StatusDeleted; return nil }); err != nil {
		return err
	}
	return s.deprovisionErr
}

func (s *stubProvisioner) Replace(ctx context.Context, id string) error {
	s.called("replace " + id)
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
	s.called(fmt.Sprintf("sweep dry_run=%v", dryRun))
	return s.sweep, s.sweepErr
}

// put stores tenant id in status st, on server "old"; a failed one has
// failed once, not for good.
func (s *stubProvisioner) put(id string, st store.Status) {
	r := store.Record{ID: id, Status: st, ServerID: "old"}
	if st == store.StatusFailed {
		r.Attempts, r.Error = 1, `inject: step 7 "check active" failed`
	}
	_ = s.st.Create(context.Background(), r)
}

// ready makes tenant id ready on server "old".
func (s *stubProvisioner) ready(id string) { s.put(id, store.StatusReady) }

func (s *stubProvisioner) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.called("callback " + r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *stubProvisioner) Check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkErr
}

func newTestAPI(t *testing.T) (*stubProvisioner, http.Handler) {
	t.Helper()
	p, a := newTestAPIValue(t)
	return p, a.routes()
}

// newTestAPIValue is newTestAPI's api, to be changed before routes.
func newTestAPIValue(t *testing.T) (*stubProvisioner, *api) {
	t.Helper()
	st := memory.New()
	events := newProgress()
	p := &stubProvisioner{st: st, onEvent: events.record}
	a := &api{p: p, store: st, log: slog.New(slog.DiscardHandler), events: events, provisionTimeout: 10 * time.Second, actionWait: 100 * time.Millisecond}
	t.Cleanup(func() {
		for _, c := range []chan struct{}{p.before, p.work} {
			if c != nil {
				close(c)
			}
		}
		a.work.Wait()
	})
	return p, a
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
	bg := context.Background()
	failedForGood := func(p *stubProvisioner) {
		_ = p.st.Create(bg, store.Record{ID: idA, Status: store.StatusFailed, Attempts: 1, Error: `final: create: provider: account limit reached`})
	}
	for _, tc := range []struct {
		name       string
		setup      func(p *stubProvisioner)
		method     string
		target     string
		hdr        []string
		wantCode   int
		wantBody   []string // substrings
		wantCall   string   // the last call to the provisioner; "" means none
		wantAllow  string   // the Allow header
		notJSON    bool     // the answer is the callback's
		wantStatus store.Status
	}{
		{name: "provision", method: "POST", target: "/tenants/" + idA, wantCode: 202,
			wantBody: []string{`"status": "cloud_init"`, `"action": "provision"`, `"result": "created: the server boots and phones home"`}, wantCall: "provision " + idA},
		{name: "provision again: nothing done", setup: func(p *stubProvisioner) { p.Provision(bg, idA) },
			method: "POST", target: "/tenants/" + idA, wantCode: 200, wantBody: []string{`"id": "` + idA + `"`, `"result": "exists: nothing done"`}},
		{name: "provision a pending tenant: its create goes on", setup: func(p *stubProvisioner) { p.put(idA, store.StatusPending) },
			method: "POST", target: "/tenants/" + idA, wantCode: 202, wantCall: "provision " + idA},
		{name: "provision: create failed, retried automatically",
			setup:  func(p *stubProvisioner) { p.provisionErr = &provision.Error{Tenant: idA, Phase: "create"} },
			method: "POST", target: "/tenants/" + idA, wantCode: 202, wantBody: []string{`"status": "failed"`, `"auto_retry": true`, "retried automatically"}, wantCall: "provision " + idA},
		{name: "provision: create failed for good",
			setup:  func(p *stubProvisioner) { p.provisionErr = &provision.Error{Tenant: idA, Phase: "create", Final: true} },
			method: "POST", target: "/tenants/" + idA, wantCode: 200, wantBody: []string{`"status": "failed"`, "for good", "/retry"}, wantCall: "provision " + idA},
		{name: "provision a failed tenant again: 409, no retry", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed) },
			method: "POST", target: "/tenants/" + idA, wantCode: 409,
			wantBody: []string{`"error": "tenant ` + idA + ` failed: POST /tenants/` + idA + `/retry retries it now (it is also retried automatically)"`, `"status": "failed"`}},
		{name: "provision a tenant failed for good again", setup: failedForGood,
			method: "POST", target: "/tenants/" + idA, wantCode: 409, wantBody: []string{`retry retries it now"`}},
		{name: "provision while shutting down", setup: func(p *stubProvisioner) { p.provisionErr = provision.ErrClosed },
			method: "POST", target: "/tenants/" + idA, wantCode: 503, wantBody: []string{`"error": "shutting down"`}, wantCall: "provision " + idA},
		{name: "provision: clock skew", setup: func(p *stubProvisioner) { p.provisionErr = fmt.Errorf("x: %w", provision.ErrClockSkew) },
			method: "POST", target: "/tenants/" + idA, wantCode: 503, wantBody: []string{"clock"}, wantCall: "provision " + idA},
		{name: "provision: store broken", setup: func(p *stubProvisioner) { p.provisionErr = errors.New("disk on fire: /var/lib/secret") },
			method: "POST", target: "/tenants/" + idA, wantCode: 500, wantBody: []string{`"error": "cannot provision ` + idA + `"`}, wantCall: "provision " + idA},
		{name: "provision a deprovisioned tenant", setup: func(p *stubProvisioner) { p.put(idA, store.StatusDeleted) },
			method: "POST", target: "/tenants/" + idA, wantCode: 409, wantBody: []string{"not reused", `"status": "deleted"`}},
		{name: "provision: deleted meanwhile", setup: func(p *stubProvisioner) { p.provisionErr = fmt.Errorf("x: %w", provision.ErrDeleted) },
			method: "POST", target: "/tenants/" + idA, wantCode: 409, wantBody: []string{"not reused"}, wantCall: "provision " + idA},
		{name: "provision: ID not a UUID", method: "POST", target: "/tenants/tenant-1", wantCode: 400, wantBody: []string{"lowercase UUID"}},
		{name: "provision: uppercase UUID", method: "POST", target: "/tenants/" + strings.ToUpper(idA), wantCode: 400},
		{name: "provision: cross-site", method: "POST", target: "/tenants/" + idA, hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403, wantBody: []string{"cross-origin"}},
		{name: "provision: other origin", method: "POST", target: "/tenants/" + idA, hdr: []string{"Origin", "https://evil.example"}, wantCode: 403},
		{name: "provision: same origin", method: "POST", target: "/tenants/" + idA, hdr: []string{"Sec-Fetch-Site", "same-origin"}, wantCode: 202, wantCall: "provision " + idA},

		{name: "get", setup: func(p *stubProvisioner) { p.Provision(bg, idA) },
			method: "GET", target: "/tenants/" + idA, wantCode: 200, wantBody: []string{`"server_name": "hatchery-` + idA + `"`, `"actions": [`, `"deprovision"`}},
		{name: "get unknown", method: "GET", target: "/tenants/" + idA, wantCode: 404, wantBody: []string{`"error": "no tenant ` + idA + `"`}},
		{name: "get bad ID", method: "GET", target: "/tenants/..%2f..%2fetc", wantCode: 400},

		{name: "list empty", method: "GET", target: "/tenants", wantCode: 200, wantBody: []string{`"tenants": []`}},
		{name: "list", setup: func(p *stubProvisioner) {
			p.Provision(bg, idA)
			p.Provision(bg, idB)
		},
			method: "GET", target: "/tenants?status=cloud_init,ready", wantCode: 200, wantBody: []string{idB}},
		{name: "list bad status", method: "GET", target: "/tenants?status=done", wantCode: 400, wantBody: []string{"unknown status"}},

		{name: "retry: claimed, goes on in the background", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed); p.work = make(chan struct{}) },
			method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 202,
			wantBody: []string{`"action": "retry"`, `"result": "retrying"`, `"text": "failed → creating"`}, wantCall: "retry " + idA, wantStatus: store.StatusCreating},
		{name: "retry: over before its claim is seen", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed); p.noClaim = true },
			method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 200, wantBody: []string{`"result": "retried"`}, wantCall: "retry " + idA},
		{name: "retry: the attempt failed again", setup: func(p *stubProvisioner) {
			p.put(idA, store.StatusFailed)
			p.noClaim, p.retryErr = true, &provision.Error{Tenant: idA, Phase: "inject"}
		}, method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 200, wantBody: []string{`"result": "retry failed: see the error"`, `"status": "failed"`}, wantCall: "retry " + idA},
		{name: "retry a tenant failed for good", setup: func(p *stubProvisioner) { failedForGood(p); p.work = make(chan struct{}) },
			method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 202, wantCall: "retry " + idA, wantStatus: store.StatusCreating},
		{name: "retry: waiting for the work in flight", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed); p.before = make(chan struct{}) },
			method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 202,
			wantBody: []string{`"result": "waiting for the work in flight on the tenant; retry follows"`, `"status": "failed"`}, wantCall: "retry " + idA},
		{name: "retry: not failed", setup: func(p *stubProvisioner) { p.ready(idA) },
			method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 409,
			wantBody: []string{`"error": "tenant ` + idA + ` is ready: only a failed tenant can be retried"`, `"tenant": {`, `"status": "ready"`}},
		{name: "retry: no longer failed at the claim", setup: func(p *stubProvisioner) {
			p.put(idA, store.StatusFailed)
			p.retryErr = &store.ConflictError{ID: idA, Status: store.StatusCreating}
		}, method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 409, wantCall: "retry " + idA},
		{name: "retry unknown", method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 404, wantBody: []string{"no tenant"}},
		{name: "retry: deleted meanwhile", setup: func(p *stubProvisioner) {
			p.put(idA, store.StatusFailed)
			p.retryErr = fmt.Errorf("x: %w", store.ErrNotFound)
		}, method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 404, wantCall: "retry " + idA},
		{name: "retry: busy", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed); p.retryErr = provision.ErrBusy },
			method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 409, wantBody: []string{"being worked on"}, wantCall: "retry " + idA},
		{name: "retry while shutting down", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed); p.retryErr = provision.ErrClosed },
			method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 503, wantBody: []string{"shutting down"}, wantCall: "retry " + idA},
		{name: "retry: clock skew", setup: func(p *stubProvisioner) {
			p.put(idA, store.StatusFailed)
			p.retryErr = fmt.Errorf("x: %w", provision.ErrClockSkew)
		}, method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 503, wantCall: "retry " + idA},
		{name: "retry: broken", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed); p.retryErr = errors.New("disk on fire") },
			method: "POST", target: "/tenants/" + idA + "/retry", wantCode: 500, wantBody: []string{`"error": "cannot retry ` + idA + `"`}, wantCall: "retry " + idA},
		{name: "retry cross-site", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed) },
			method: "POST", target: "/tenants/" + idA + "/retry", hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403},
		{name: "retry bad ID", method: "POST", target: "/tenants/x/retry", wantCode: 400},

		{name: "rotate: claimed, goes on in the background", setup: func(p *stubProvisioner) { p.ready(idA); p.work = make(chan struct{}) },
			method: "POST", target: "/tenants/" + idA + "/rotate", wantCode: 202,
			wantBody: []string{`"action": "rotate"`, `"result": "rotating: `, `"status": "injecting_secrets"`}, wantCall: "rotate " + idA, wantStatus: store.StatusInjectingSecrets},
		{name: "rotate: over", setup: func(p *stubProvisioner) { p.ready(idA); p.noClaim = true },
			method: "POST", target: "/tenants/" + idA + "/rotate", wantCode: 200, wantBody: []string{`"result": "rotated"`}, wantCall: "rotate " + idA},
		{name: "rotate: not ready", setup: func(p *stubProvisioner) { p.put(idA, store.StatusFailed) },
			method: "POST", target: "/tenants/" + idA + "/rotate", wantCode: 409, wantBody: []string{"is failed: only a ready tenant"}},
		{name: "rotate: no longer ready at the claim", setup: func(p *stubProvisioner) {
			p.ready(idA)
			p.rotateErr = fmt.Errorf("%w: x", provision.ErrNotReady)
		}, method: "POST", target: "/tenants/" + idA + "/rotate", wantCode: 409, wantCall: "rotate " + idA},
		{name: "rotate unknown", method: "POST", target: "/tenants/" + idA + "/rotate", wantCode: 404},
		{name: "rotate cross-site", setup: func(p *stubProvisioner) { p.ready(idA) },
			method: "POST", target: "/tenants/" + idA + "/rotate", hdr: []string{"Origin", "https://evil.example"}, wantCode: 403},

		{name: "deprovision", setup: func(p *stubProvisioner) { p.Provision(bg, idA) },
			method: "DELETE", target: "/tenants/" + idA, wantCode: 200,
			wantBody: []string{`"status": "deleted"`, `"action": "deprovision"`, `"result": "deprovisioned: the server is deleted"`}, wantCall: "deprovision " + idA},
		{name: "deprovision again", setup: func(p *stubProvisioner) { p.put(idA, store.StatusDeleted) },
			method: "DELETE", target: "/tenants/" + idA, wantCode: 200, wantBody: []string{`"result": "already deprovisioned"`}, wantCall: "deprovision " + idA},
		{name: "deprovision: server deletion failed, left to Resume", setup: func(p *stubProvisioner) {
			p.Provision(bg, idA)
			p.deprovisionErr = errors.New("provider: unavailable")
		}, method: "DELETE", target: "/tenants/" + idA, wantCode: 202, wantBody: []string{`"status": "deleted"`, "retried in the background"}, wantCall: "deprovision " + idA},
		{name: "deprovision unknown", method: "DELETE", target: "/tenants/" + idA, wantCode: 404, wantCall: "deprovision " + idA},
		{name: "deprovision while shutting down", setup: func(p *stubProvisioner) {
			p.ready(idA)
			p.deprovisionErr = provision.ErrClosed
		}, method: "DELETE", target: "/tenants/" + idA, wantCode: 503, wantCall: "deprovision " + idA},
		{name: "deprovision cross-site", method: "DELETE", target: "/tenants/" + idA, hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403},

		{name: "replace", setup: func(p *stubProvisioner) { p.ready(idA) },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 202,
			wantBody: []string{`"retiring_server_id": "old"`, `"action": "replace"`, `"result": "replacing: `}, wantCall: "replace " + idA},
		{name: "replace: not ready", setup: func(p *stubProvisioner) { p.Provision(bg, idA) },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 409,
			wantBody: []string{"is cloud_init: only a ready or failed tenant can be replaced", `"tenant": {`}, wantCall: "replace " + idA},
		{name: "replace: busy", setup: func(p *stubProvisioner) { p.ready(idA); p.replaceErr = provision.ErrBusy },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 409, wantCall: "replace " + idA},
		{name: "replace unknown", setup: func(p *stubProvisioner) { p.replaceErr = store.ErrNotFound },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 404, wantCall: "replace " + idA},
		{name: "replace: create failed, retried in the background",
			setup:  func(p *stubProvisioner) { p.ready(idA); p.replaceErr = &provision.Error{Tenant: idA, Phase: "create"} },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 202, wantCall: "replace " + idA},
		{name: "replace while shutting down", setup: func(p *stubProvisioner) { p.ready(idA); p.replaceErr = provision.ErrClosed },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 503, wantCall: "replace " + idA},
		{name: "replace: broken", setup: func(p *stubProvisioner) { p.replaceErr = errors.New("disk on fire") },
			method: "POST", target: "/tenants/" + idA + "/replace", wantCode: 500, wantCall: "replace " + idA},
		{name: "replace cross-site", method: "POST", target: "/tenants/" + idA + "/replace", hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403},
		{name: "replace bad ID", method: "POST", target: "/tenants/x/replace", wantCode: 400},

		{name: "sweep: a dry run by default", setup: func(p *stubProvisioner) {
			p.sweep = provision.SweepResult{Listed: 3, Orphans: []provision.Orphan{{
				Server: provider.Server{ID: "9", Name: "hatchery-" + idB, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
				Tenant: idB, Reason: "no record", Kept: "dry run",
			}}}
		}, method: "POST", target: "/sweep", wantCode: 200, wantBody: []string{`"kept": "dry run"`}, wantCall: "sweep dry_run=true"},
		{name: "sweep dry_run=1", method: "POST", target: "/sweep?dry_run=1", wantCode: 200, wantBody: []string{`"orphans": []`}, wantCall: "sweep dry_run=true"},
		{name: "sweep for real", method: "POST", target: "/sweep?dry_run=0", wantCode: 200, wantBody: []string{`"dry_run": false`}, wantCall: "sweep dry_run=false"},
		{name: "sweep: bad dry_run", method: "POST", target: "/sweep?dry_run=maybe", wantCode: 400},
		{name: "sweep: provider cannot list", setup: func(p *stubProvisioner) { p.sweepErr = fmt.Errorf("x: %w", errors.ErrUnsupported) },
			method: "POST", target: "/sweep", wantCode: 501, wantCall: "sweep dry_run=true"},
		{name: "sweep: provider down", setup: func(p *stubProvisioner) { p.sweepErr = errors.New("disk on fire") },
			method: "POST", target: "/sweep", wantCode: 502, wantCall: "sweep dry_run=true"},
		{name: "sweep while shutting down", setup: func(p *stubProvisioner) { p.sweepErr = provision.ErrClosed },
			method: "POST", target: "/sweep", wantCode: 503, wantCall: "sweep dry_run=true"},
		{name: "sweep: a deletion failed", setup: func(p *stubProvisioner) {
			p.sweep = provision.SweepResult{Listed: 1, Orphans: []provision.Orphan{{
				Server: provider.Server{ID: "9"}, Reason: "no record", Kept: "delete failed: disk on fire",
			}}}
			p.sweepErr = errors.New("disk on fire")
		}, method: "POST", target: "/sweep?dry_run=0", wantCode: 200, wantBody: []string{"delete failed (see the log)"}, wantCall: "sweep dry_run=false"},
		{name: "sweep cross-site", method: "POST", target: "/sweep", hdr: []string{"Sec-Fetch-Site", "cross-site"}, wantCode: 403},
		{name: "sweep takes POST only", method: "GET", target: "/sweep", wantCode: 405,
			wantBody: []string{`"error": "GET is not allowed on /sweep; allowed: POST"`}, wantAllow: "POST"},

		{name: "healthz", method: "GET", target: "/healthz", wantCode: 200, wantBody: []string{`"status": "ok"`}},
		{name: "readyz: the store answers", method: "GET", target: "/readyz", wantCode: 200, wantBody: []string{`"status": "ready"`}},
		{name: "readyz takes GET", method: "POST", target: "/readyz", wantCode: 405, wantAllow: "GET, HEAD"},
		{name: "no metrics without a handler", method: "GET", target: "/metrics", wantCode: 404},

		{name: "method not allowed", method: "PUT", target: "/tenants/" + idA, wantCode: 405,
			wantBody: []string{`"error": "PUT is not allowed on /tenants/` + idA + `; allowed: DELETE, GET, HEAD, POST"`}, wantAllow: "DELETE, GET, HEAD, POST"},
		{name: "unknown path", method: "GET", target: "/nope", wantCode: 404, wantBody: []string{`"error": "no such resource: /nope"`}},
		{name: "unknown action", method: "POST", target: "/tenants/" + idA + "/reboot", wantCode: 404},

		{name: "callback, outside the cross-origin check", method: "POST", target: CallbackPath + "/" + idA, hdr: []string{"Sec-Fetch-Site", "cross-site"},
			wantCode: 204, wantCall: "callback " + idA, notJSON: true},
		{name: "callback takes POST only", method: "GET", target: CallbackPath + "/" + idA, wantCode: 404},
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
			for _, b := range tc.wantBody {
				assert.Contains(t, w.Body.String(), b)
			}
			if !tc.notJSON {
				assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
				assert.True(t, json.Valid(w.Body.Bytes()), w.Body.String())
				if w.Code >= 400 {
					var e apiError
					require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
					assert.NotEmpty(t, e.Error, "errors say what is wrong")
				}
			}
			assert.Equal(t, tc.wantAllow, w.Header().Get("Allow"))
			assert.NotContains(t, w.Body.String(), "disk on fire", "internal errors are logged, not shown")
			if tc.wantStatus != "" {
				rec, err := p.st.Get(bg, idA)
				require.NoError(t, err)
				assert.Equal(t, tc.wantStatus, rec.Status)
			}

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

// GET /readyz asks the provisioner's Check; the cause of a 503 goes to the
// log only; a provider check that fails alone leaves the service ready.
func TestReadyz(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		check    error
		wantCode int
		wantBody string // the error, or the warning
	}{
		{name: "ready", wantCode: 200},
		{name: "store does not answer", check: fmt.Errorf("%w: postgres: ping: dial tcp 10.1.2.3:5432: refused", provision.ErrStoreUnhealthy), wantCode: 503, wantBody: "not ready: see the log"},
		{name: "run loop stopped", check: fmt.Errorf("%w: no pass for 3m", provision.ErrRunStopped), wantCode: 503, wantBody: "not ready: see the log"},
		{name: "closed", check: fmt.Errorf("x: %w", provision.ErrClosed), wantCode: 503, wantBody: "not ready: shutting down"},
		{name: "provider alone", check: fmt.Errorf("%w: hetzner: dial tcp 10.1.2.3:443: refused", provision.ErrProviderUnhealthy), wantCode: 200, wantBody: "the provider check failed: see the log"},
		{name: "provider and store", check: errors.Join(fmt.Errorf("%w: 10.1.2.3", provision.ErrProviderUnhealthy), provision.ErrStoreUnhealthy), wantCode: 503, wantBody: "not ready: see the log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, a := newTestAPIValue(t)
			var log bytes.Buffer
			a.log = slog.New(slog.NewTextHandler(&log, nil))
			p.checkErr = tc.check
			w := do(t, a.routes(), "GET", "/readyz")
			assert.Equal(t, tc.wantCode, w.Code, w.Body.String())
			assert.NotContains(t, w.Body.String(), "10.1.2.3")
			switch {
			case tc.check == nil:
				assert.JSONEq(t, `{"status":"ready"}`, w.Body.String())
			case tc.wantCode == 200:
				assert.JSONEq(t, `{"status":"ready","warning":"`+tc.wantBody+`"}`, w.Body.String())
				assert.Contains(t, log.String(), "level=WARN")
			default:
				assert.JSONEq(t, `{"error":"`+tc.wantBody+`"}`, w.Body.String())
				assert.Contains(t, log.String(), "level=ERROR msg=\"not ready")
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
		"created_at":"2026-01-02T02:04:05Z","updated_at":"2026-01-02T02:05:05Z","status_since":"2026-01-02T02:05:05Z",
		"actions":["rotate","replace","deprovision"]}`, string(got))

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

// The status page renders the tenants on the server, newest first,
// escaped, with the actions of their status, with a policy that admits
// only its own script and icon.
func TestPage(t *testing.T) {
	t.Parallel()
	p, h := newTestAPI(t)
	w := do(t, h, "GET", "/")
	require.Equal(t, 200, w.Code)
	assert.Contains(t, w.Body.String(), `<p id="empty">No tenants yet.`)
	assert.Contains(t, w.Body.String(), `<code>curl -X POST http://example.com/tenants/$(uuidgen | tr A-Z a-z)</code>`, "the host the page was asked at")
	assert.NotContains(t, w.Body.String(), "HOST")

	ctx := context.Background()
	require.NoError(t, p.Provision(ctx, idA))
	time.Sleep(time.Millisecond) // idB is newer
	require.NoError(t, p.Provision(ctx, idB))
	_, err := p.st.Update(ctx, idB, func(r *store.Record) error {
		r.Status, r.Error = store.StatusFailed, `inject: <script>alert("x")</script>`
		return nil
	})
	require.NoError(t, err)
	p.onEvent(provision.Event{Tenant: idA, Step: "write .env", StepIndex: 2, Time: time.Now()})

	w = do(t, h, "GET", "/")
	require.Equal(t, 200, w.Code)
	body := w.Body.String()
	assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Contains(t, w.Header().Get("Content-Security-Policy"), "script-src 'self'")
	assert.Contains(t, w.Header().Get("Content-Security-Policy"), "img-src 'self'")
	assert.Contains(t, body, `<tr data-id="`+idA+`" data-status="cloud_init">`)
	assert.Contains(t, body, `<tr data-id="`+idB+`" data-status="failed">`)
	assert.Less(t, strings.Index(body, `data-id="`+idB+`"`), strings.Index(body, `data-id="`+idA+`"`), "newest first")
	assert.Contains(t, body, `<span class="status s-cloud_init">1 cloud_init</span><span class="status s-failed">1 failed</span>`)
	assert.NotContains(t, body, "<script>alert")
	assert.Contains(t, body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
	assert.Contains(t, body, `<p id="empty" hidden>`)
	assert.Contains(t, body, `<script src="/page.js" defer></script>`)
	assert.Contains(t, body, `<link rel="icon" href="/favicon.svg" type="image/svg+xml">`)
	assert.Contains(t, body, `<meta http-equiv="refresh" content="2">`, "refreshes without JavaScript too")
	// The short ID, the whole one in its title; the step of the injection.
	assert.Contains(t, body, `<button type="button" class="copy" data-copy="`+idA+`" title="`+idA+` (click to copy)">`+idA[:8]+`</button>`)
	assert.Contains(t, body, `<div class="event">step 3 write .env</div>`)
	// The actions of each status, and no other.
	assert.Regexp(t, `data-id="`+idB+`".*<td class="actions"><button type="button" data-action="retry" [^>]*>Retry</button><button type="button" data-action="replace" [^>]*>Replace</button><button type="button" data-action="deprovision" [^>]*>Deprovision</button></td></tr>`, body)
	assert.Regexp(t, `data-id="`+idA+`".*<td class="actions"><button type="button" data-action="deprovision" [^>]*>Deprovision</button></td></tr>`, body)
	assert.Regexp(t, `<time datetime="\d{4}-\d\d-\d\dT[^"]+Z">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>`, body, "UTC, until the script makes it local")

	w = do(t, h, "GET", "/page.js")
	require.Equal(t, 200, w.Code)
	assert.Contains(t, w.Header().Get("Content-Type"), "javascript")
	assert.Contains(t, w.Body.String(), `fetch("/tenants"`)
	assert.NotContains(t, w.Body.String(), "innerHTML", "values go in as text")

	w = do(t, h, "GET", "/favicon.svg")
	require.Equal(t, 200, w.Code)
	assert.Equal(t, "image/svg+xml", w.Header().Get("Content-Type"))
	assert.True(t, strings.HasPrefix(w.Body.String(), "<svg "), w.Body.String())
}

// The page's buttons and their tooltips are page.js's too.
func TestPageLabels(t *testing.T) {
	t.Parallel()
	script, err := pageFS.ReadFile("page.js")
	require.NoError(t, err)
	for _, s := range []store.Status{store.StatusReady, store.StatusFailed, store.StatusCloudInit} {
		for _, action := range actionsFor(s) {
			l, ok := actionLabels[action]
			require.True(t, ok, action)
			assert.Contains(t, string(script), action+`: ["`+l[0]+`", "`+l[1]+`"]`)
		}
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 999 * time.Millisecond: "0s", 42 * time.Second: "42s",
		3*time.Minute + 7*time.Second: "3m 07s", time.Hour - time.Second: "59m 59s",
		2*time.Hour + 5*time.Minute + 59*time.Second: "2h 05m", 3*24*time.Hour + 4*time.Hour + 59*time.Minute: "3d 4h",
	} {
		assert.Equal(t, want, shortDuration(d), d.String())
	}
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
