package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// CallbackPath is where the phone_home handler is mounted, in the same
// ServeMux as the API.
const CallbackPath = "/api/provision/callback"

// provisioner is what the API needs of *provision.Provisioner.
type provisioner interface {
	Provision(ctx context.Context, id string) error
	Retry(ctx context.Context, id string) error
	Rotate(ctx context.Context, id string) error
	Deprovision(ctx context.Context, id string) error
	Replace(ctx context.Context, id string) error
	Sweep(ctx context.Context, dryRun bool) (provision.SweepResult, error)
	Check(ctx context.Context) error
	Handler() http.Handler
}

// api serves the tenants API, the status page, the callback and the
// service's health and metrics.
type api struct {
	p      provisioner
	store  store.Store
	log    *slog.Logger
	events *progress // what this process saw of the tenants
	// maxAttempts is provision.Config.MaxAttempts with its default: a
	// failed tenant with fewer attempts, and no final error, is retried
	// automatically.
	maxAttempts int
	// provisionTimeout bounds the work a request does before it answers
	// (creating a server, deleting one); it is detached from the request
	// so a client that hangs up does not leave a half-made server behind.
	provisionTimeout time.Duration
	// actionWait bounds how long a retry's or rotation's request waits
	// for its claim, which waits for the work this process may have in
	// flight on the tenant; the action goes on if it is not claimed by
	// then. 0 means defaultActionWait.
	actionWait time.Duration
	// meters makes the HTTP metrics (nil: none); metrics serves GET
	// /metrics (nil: 404).
	meters  metric.MeterProvider
	metrics http.Handler
	// loopbackOnly refuses API and page requests whose Host is not a
	// loopback name (DNS rebinding; see hostGuard). Set when the service
	// listens on loopback.
	loopbackOnly bool

	work sync.WaitGroup // actions that go on after their request answered
}

// routes returns the service's handler: the API and the page behind
// net/http's cross-origin protection (a page on another site must not
// create servers with the operator's browser), the callback outside it;
// the ServeMux's own 404 and 405 answered in JSON; every request logged
// and measured.
func (a *api) routes() http.Handler {
	app := http.NewServeMux()
	app.HandleFunc("GET /{$}", a.page)
	app.HandleFunc("GET /page.js", pageScript)
	app.HandleFunc("GET /favicon.svg", favicon)
	app.HandleFunc("GET /tenants", a.list)
	app.HandleFunc("GET /tenants/{id}", a.get)
	app.HandleFunc("POST /tenants/{id}", a.provision)
	app.HandleFunc("DELETE /tenants/{id}", a.deprovision)
	app.HandleFunc("POST /tenants/{id}/retry", a.retry)
	app.HandleFunc("POST /tenants/{id}/rotate", a.rotate)
	app.HandleFunc("POST /tenants/{id}/replace", a.replace)
	app.HandleFunc("POST /sweep", a.sweep)
	app.HandleFunc("GET /healthz", healthz)
	app.HandleFunc("GET /readyz", a.readyz)
	if a.metrics != nil {
		app.Handle("GET /metrics", a.metrics)
	}

	mux := http.NewServeMux()
	mux.Handle("POST "+CallbackPath+"/{id}", a.p.Handler())
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, apiError{Error: "cross-origin request refused"})
	}))
	var api http.Handler = cop.Handler(jsonMuxErrors(app))
	if a.loopbackOnly {
		api = hostGuard(api)
	}
	mux.Handle("/", api)
	return accessLog(mux, a.log, a.meters)
}

// hostGuard refuses (421) a request whose Host is not a loopback name:
// on a service that listens on loopback, any other Host comes from a
// DNS-rebinding page in the operator's browser (its name rebound to
// 127.0.0.1), which CrossOriginProtection takes for the same origin. The
// callback is not behind it: servers reach it under the public name of
// -callback-base, with a token.
func hostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if a, err := netip.ParseAddr(host); (err == nil && a.Unmap().IsLoopback()) || strings.EqualFold(host, "localhost") {
			next.ServeHTTP(w, r)
			return
		}
		writeJSON(w, http.StatusMisdirectedRequest, apiError{Error: "this service answers loopback names only (127.0.0.1, localhost)"})
	})
}

// tenant is a store.Record as the API shows it, with what this process
// saw of it.
type tenant struct {
	ID         string       `json:"id"`
	Status     store.Status `json:"status"`
	ServerID   string       `json:"server_id,omitempty"`
	ServerName string       `json:"server_name,omitempty"`
	IPv4       string       `json:"ipv4,omitempty"`
	IPv6       string       `json:"ipv6,omitempty"`
	Hostname   string       `json:"hostname,omitempty"`
	InstanceID string       `json:"instance_id,omitempty"`
	HostKeys   []string     `json:"host_keys,omitempty"`
	Error      string       `json:"error,omitempty"` // redacted by provision
	Attempts   int          `json:"attempts"`
	// AutoRetry says that a failed tenant is retried automatically: it
	// has attempts left and its failure is not final.
	AutoRetry bool `json:"auto_retry,omitempty"`
	// RetiringServerID is the server that still serves the tenant while
	// a replacement is under way (or failed).
	RetiringServerID string     `json:"retiring_server_id,omitempty"`
	Drift            string     `json:"drift,omitempty"`
	DriftAt          *time.Time `json:"drift_at,omitempty"`
	LeaseOwner       string     `json:"lease_owner,omitempty"`
	LeaseUntil       *time.Time `json:"lease_until,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
	// StatusSince is when the tenant entered its status, as this process
	// saw it happen; else the record's last write (every write counts, a
	// lease renewal too), which is no earlier.
	StatusSince time.Time `json:"status_since"`
	// LastEvent is the tenant's last event that this process saw: a
	// status change, an injection step ("step 3/7 write .env"), a drift
	// report.
	LastEvent *lastEvent `json:"last_event,omitempty"`
	// Actions are the actions that apply to the tenant's status: retry,
	// rotate, replace, deprovision.
	Actions []string `json:"actions,omitempty"`
}

// toTenant is the record alone, as stored.
func toTenant(r store.Record) tenant {
	t := tenant{
		ID: r.ID, Status: r.Status, ServerID: r.ServerID, ServerName: r.ServerName,
		IPv4: r.IPv4, IPv6: r.IPv6, Hostname: r.Hostname, InstanceID: r.InstanceID,
		HostKeys: r.HostKeys, Error: r.Error, Attempts: r.Attempts, LeaseOwner: r.LeaseOwner,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), StatusSince: r.UpdatedAt.UTC(),
		Actions: actionsFor(r.Status),
	}
	if !r.LeaseUntil.IsZero() {
		u := r.LeaseUntil.UTC()
		t.LeaseUntil = &u
	}
	t.RetiringServerID, t.Drift = r.RetiringServerID, r.Drift
	if !r.DriftAt.IsZero() {
		d := r.DriftAt.UTC()
		t.DriftAt = &d
	}
	return t
}

// tenant is the record with what this process knows besides: whether a
// retry is coming, when the status was entered, the last event.
func (a *api) tenant(r store.Record) tenant {
	t := toTenant(r)
	t.AutoRetry = a.autoRetry(r)
	var since time.Time
	t.LastEvent, since = a.events.of(r.ID, r.Status)
	if !since.IsZero() {
		t.StatusSince = since
	}
	return t
}

// autoRetry reports whether failed r is retried without anyone asking:
// attempts left and a failure that is not final (provision's "final: ").
func (a *api) autoRetry(r store.Record) bool {
	return r.Status == store.StatusFailed && !strings.HasPrefix(r.Error, "final: ") &&
		r.Attempts < cmp.Or(a.maxAttempts, provision.DefaultMaxAttempts)
}

// actionsFor lists the actions that apply to a tenant in status s, as
// the page shows them.
func actionsFor(s store.Status) []string {
	switch s {
	case store.StatusReady:
		return []string{"rotate", "replace", "deprovision"}
	case store.StatusFailed:
		return []string{"retry", "replace", "deprovision"}
	case store.StatusDeleted:
		return nil
	}
	return []string{"deprovision"} // work under way
}

// tenantList is GET /tenants's answer.
type tenantList struct {
	Tenants []tenant `json:"tenants"`
}

// answer is what an action answers: the record after the action, and
// what the action did.
type answer struct {
	tenant
	Action string `json:"action"` // provision, retry, rotate, replace, deprovision
	Result string `json:"result"` // what happened, in a few words
}

// apiError is the body of every error answer; Tenant is the record when
// the error is about its status (409).
type apiError struct {
	Error  string  `json:"error"`
	Tenant *tenant `json:"tenant,omitempty"`
}

// provision handles POST /tenants/{id}: it creates the tenant's record and
// its server, and answers 202 Accepted with the record once the server is
// created; the rest happens when the server phones home. A create that
// failed is 202 too when it is retried automatically, 200 when it failed
// for good (the record says why). A tenant that exists is answered as it
// is (200), except a failed one (409: retry it with POST
// /tenants/{id}/retry; a second POST is no retry, so that a client that
// repeats its request does not spend attempts) and a deleted one (409).
func (a *api) provision(w http.ResponseWriter, r *http.Request) {
	id, ok := a.id(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.provisionTimeout)
	defer cancel()
	before, err := a.store.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
		return
	case before.Status == store.StatusDeleted:
		a.conflict(w, before, "tenant "+id+" was deprovisioned; tenant IDs are not reused")
		return
	case before.Status == store.StatusFailed:
		msg := "tenant " + id + " failed: POST /tenants/" + id + "/retry retries it now"
		if a.autoRetry(before) {
			msg += " (it is also retried automatically)"
		}
		a.conflict(w, before, msg)
		return
	case before.Status != store.StatusPending:
		a.answer(w, http.StatusOK, before, "provision", "exists: nothing done")
		return
	}

	err = a.p.Provision(ctx, id)
	var pe *provision.Error
	switch {
	case err == nil, errors.As(err, &pe):
	case errors.Is(err, provision.ErrDeleted):
		writeJSON(w, http.StatusConflict, apiError{Error: "tenant " + id + " was deprovisioned; tenant IDs are not reused"})
		return
	default:
		a.refused(w, "cannot provision "+id, err)
		return
	}
	rec, err := a.store.Get(ctx, id)
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
		return
	}
	switch {
	case rec.Status == store.StatusDeleted: // deprovisioned meanwhile
		a.conflict(w, rec, "tenant "+id+" was deprovisioned; tenant IDs are not reused")
	case rec.Status == store.StatusFailed && a.autoRetry(rec):
		a.answer(w, http.StatusAccepted, rec, "provision", "create failed: it is retried automatically")
	case rec.Status == store.StatusFailed:
		a.answer(w, http.StatusOK, rec, "provision", "create failed for good: fix the cause, then POST /tenants/"+id+"/retry")
	default:
		a.answer(w, http.StatusAccepted, rec, "provision", "created: the server boots and phones home")
	}
}

// get handles GET /tenants/{id}.
func (a *api) get(w http.ResponseWriter, r *http.Request) {
	id, ok := a.id(w, r)
	if !ok {
		return
	}
	rec, err := a.store.Get(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: "no tenant " + id})
	case err != nil:
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
	default:
		writeJSON(w, http.StatusOK, a.tenant(rec))
	}
}

// list handles GET /tenants, optionally ?status=ready,failed.
func (a *api) list(w http.ResponseWriter, r *http.Request) {
	var statuses []store.Status
	if s := r.URL.Query().Get("status"); s != "" {
		for _, v := range strings.Split(s, ",") {
			statuses = append(statuses, store.Status(v))
		}
		if err := store.CheckStatuses(statuses...); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
			return
		}
	}
	recs, err := a.store.List(r.Context(), statuses...)
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "cannot list tenants", err)
		return
	}
	out := tenantList{Tenants: make([]tenant, 0, len(recs))}
	for _, rec := range recs {
		out.Tenants = append(out.Tenants, a.tenant(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

// deprovision handles DELETE /tenants/{id}: the tenant is recorded
// deleted and its server deleted; the answer is the record, 200 once the
// server is deleted, 202 when its deletion failed and is left to Resume.
func (a *api) deprovision(w http.ResponseWriter, r *http.Request) {
	id, ok := a.id(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.provisionTimeout)
	defer cancel()
	before, err := a.store.Get(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
		return
	}
	err = a.p.Deprovision(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: "no tenant " + id})
		return
	case errors.Is(err, provision.ErrClosed):
		a.fail(w, http.StatusServiceUnavailable, "shutting down", err)
		return
	case err != nil:
		// Recorded deleted, but the server's deletion failed: Resume
		// tries again. Say so rather than pretend.
		a.log.WarnContext(ctx, "deprovision", "tenant", id, "err", err)
	}
	rec, gerr := a.store.Get(ctx, id)
	switch {
	case gerr != nil:
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, gerr)
	case rec.Status != store.StatusDeleted:
		a.fail(w, http.StatusInternalServerError, "cannot deprovision "+id, err)
	case err != nil:
		a.answer(w, http.StatusAccepted, rec, "deprovision", "recorded deleted; deleting the server failed and is retried in the background")
	case before.Status == store.StatusDeleted:
		a.answer(w, http.StatusOK, rec, "deprovision", "already deprovisioned")
	default:
		a.answer(w, http.StatusOK, rec, "deprovision", "deprovisioned: the server is deleted")
	}
}

// retry handles POST /tenants/{id}/retry: a failed tenant is retried now
// (provision.Retry), whatever its attempts and even after a final error.
// See act for the answers.
func (a *api) retry(w http.ResponseWriter, r *http.Request) {
	a.act(w, r, action{
		name: "retry", from: store.StatusFailed,
		to:       []store.Status{store.StatusCreating, store.StatusInjectingSecrets},
		run:      a.p.Retry,
		wrong:    "only a failed tenant can be retried",
		started:  "retrying",
		finished: "retried",
	})
}

// rotate handles POST /tenants/{id}/rotate: a ready tenant's current
// secrets are injected again and its service restarted (provision.Rotate).
// See act for the answers.
func (a *api) rotate(w http.ResponseWriter, r *http.Request) {
	a.act(w, r, action{
		name: "rotate", from: store.StatusReady,
		to:       []store.Status{store.StatusInjectingSecrets},
		run:      a.p.Rotate,
		wrong:    "only a ready tenant's secrets can be rotated",
		started:  "rotating: injecting the current secrets, then restarting the service",
		finished: "rotated",
	})
}

// action is an action that runs as long as an injection: Retry, Rotate.
type action struct {
	name     string
	from     store.Status   // the status it applies to
	to       []store.Status // the statuses its claim moves the tenant to
	run      func(ctx context.Context, id string) error
	wrong    string // why a tenant in another status is refused
	started  string // the result once claimed
	finished string // the result once over
}

// defaultActionWait is api.actionWait's default.
const defaultActionWait = 30 * time.Second

// act runs an action on the tenant of the request, in the background,
// and answers once it has claimed the tenant (202 Accepted: the work goes
// on; GET the tenant or watch the page) or is over, whichever comes first
// (200: the record says how it went, failed with the error if the attempt
// failed). A tenant in another status than the action's is 409, an
// unknown one 404; another replica holding the tenant is 409; a
// provisioner shutting down, or whose clock is off, 503.
func (a *api) act(w http.ResponseWriter, r *http.Request, act action) {
	id, ok := a.id(w, r)
	if !ok {
		return
	}
	rec, err := a.store.Get(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: "no tenant " + id})
		return
	case err != nil:
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
		return
	case rec.Status != act.from:
		a.conflict(w, rec, fmt.Sprintf("tenant %s is %s: %s", id, rec.Status, act.wrong))
		return
	}

	claimed, stop := a.events.await(id, func(e provision.Event) bool {
		return e.Step == "" && e.From == act.from && slices.Contains(act.to, e.To)
	})
	defer stop()
	done := make(chan error)
	answered := make(chan struct{})
	// The work outlives the request; Shutdown ends it (see serve).
	ctx := context.WithoutCancel(r.Context())
	a.work.Go(func() {
		err := act.run(ctx, id)
		select {
		case done <- err:
		case <-answered:
			var pe *provision.Error
			if err != nil && !errors.As(err, &pe) { // provision logs and records the failures of the work
				a.log.WarnContext(ctx, act.name, "tenant", id, "err", err)
			}
		}
	})
	timer := time.NewTimer(cmp.Or(a.actionWait, defaultActionWait))
	defer timer.Stop()
	select {
	case err = <-done:
	case <-claimed:
		close(answered)
		a.answerNow(w, r, id, http.StatusAccepted, act.name, act.started)
		return
	case <-timer.C:
		close(answered)
		a.answerNow(w, r, id, http.StatusAccepted, act.name, "waiting for the work in flight on the tenant; "+act.name+" follows")
		return
	case <-r.Context().Done():
		close(answered)
		return
	}

	var pe *provision.Error
	var ce *store.ConflictError
	switch {
	case err == nil:
		a.answerNow(w, r, id, http.StatusOK, act.name, act.finished)
	case errors.As(err, &pe):
		a.answerNow(w, r, id, http.StatusOK, act.name, act.name+" failed: see the error")
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: "no tenant " + id})
	case errors.As(err, &ce), errors.Is(err, provision.ErrNotReady):
		// The status changed between the check and the claim.
		rec, gerr := a.store.Get(r.Context(), id)
		if gerr != nil {
			a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, gerr)
			return
		}
		a.conflict(w, rec, fmt.Sprintf("tenant %s is %s: %s", id, rec.Status, act.wrong))
	default:
		a.refused(w, "cannot "+act.name+" "+id, err)
	}
}

// replace handles POST /tenants/{id}/replace: a ready or failed tenant
// gets a new server (provision.Replace); the answer, 202 Accepted, comes
// once the new server is created, with the record (the old server is
// RetiringServerID until the new one is ready, and keeps serving until
// then). A tenant in another status is 409, an unknown one 404.
func (a *api) replace(w http.ResponseWriter, r *http.Request) {
	id, ok := a.id(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.provisionTimeout)
	defer cancel()
	err := a.p.Replace(ctx, id)
	var pe *provision.Error
	switch {
	case err == nil, errors.As(err, &pe):
		// A create that failed is retried in the background: the record
		// says so.
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: "no tenant " + id})
		return
	case errors.Is(err, provision.ErrNotReady):
		rec, gerr := a.store.Get(ctx, id)
		if gerr != nil {
			a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, gerr)
			return
		}
		a.conflict(w, rec, fmt.Sprintf("tenant %s is %s: only a ready or failed tenant can be replaced", id, rec.Status))
		return
	default:
		a.refused(w, "cannot replace the server of "+id, err)
		return
	}
	rec, err := a.store.Get(ctx, id)
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
		return
	}
	result := "replacing: the new server boots; the old one serves until the new one is ready"
	if rec.Status == store.StatusFailed {
		result = "creating the new server failed: see the error; the old server keeps serving"
	}
	a.answer(w, http.StatusAccepted, rec, "replace", result)
}

// sweepAnswer is POST /sweep's answer.
type sweepAnswer struct {
	DryRun  bool     `json:"dry_run"`
	Listed  int      `json:"listed"`
	Orphans []orphan `json:"orphans"`
}

// orphan is a provision.Orphan as the API shows it.
type orphan struct {
	ServerID string     `json:"server_id"`
	Name     string     `json:"name"`
	Tenant   string     `json:"tenant,omitempty"`
	Created  *time.Time `json:"created,omitempty"`
	Reason   string     `json:"reason"`
	Deleted  bool       `json:"deleted"`
	Kept     string     `json:"kept,omitempty"`
}

// sweep handles POST /sweep: the servers of this control plane that no
// live tenant owns (provision.Sweep). It is a dry run, which deletes
// nothing, unless the query says dry_run=0 (or false).
func (a *api) sweep(w http.ResponseWriter, r *http.Request) {
	dryRun := true
	if v := r.URL.Query().Get("dry_run"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "dry_run must be 1 or 0"})
			return
		}
		dryRun = b
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.provisionTimeout)
	defer cancel()
	res, err := a.p.Sweep(ctx, dryRun)
	switch {
	case err == nil:
	case errors.Is(err, errors.ErrUnsupported):
		writeJSON(w, http.StatusNotImplemented, apiError{Error: "the provider cannot list its servers"})
		return
	case errors.Is(err, provision.ErrClosed):
		a.fail(w, http.StatusServiceUnavailable, "shutting down", err)
		return
	case len(res.Orphans) == 0:
		a.fail(w, http.StatusBadGateway, "cannot sweep", err)
		return
	default:
		// Some deletions failed: what was done, and which failed (Kept).
		a.log.ErrorContext(ctx, "sweep", "err", err)
	}
	out := sweepAnswer{DryRun: dryRun, Listed: res.Listed, Orphans: make([]orphan, 0, len(res.Orphans))}
	for _, o := range res.Orphans {
		j := orphan{ServerID: o.Server.ID, Name: o.Server.Name, Tenant: o.Tenant, Reason: o.Reason, Deleted: o.Deleted, Kept: o.Kept}
		if strings.HasPrefix(j.Kept, "delete failed") {
			j.Kept = "delete failed (see the log)" // the provider's own words stay in the log
		}
		if !o.Server.Created.IsZero() {
			c := o.Server.Created.UTC()
			j.Created = &c
		}
		out.Orphans = append(out.Orphans, j)
	}
	writeJSON(w, http.StatusOK, out)
}

// healthz handles GET /healthz: the process is alive and serving.
func healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds GET /readyz's checks.
const readyTimeout = 5 * time.Second

// readyz handles GET /readyz: 200 when the service can do its work (the
// provisioner's Check: its store answers, its Run loop is alive), 503
// when not, with the cause in the log. A provider whose check fails (its
// API unreachable for a while, or credentials refused) is reported but
// keeps the service ready: taking every replica out of the load balancer
// would also cut the servers' callbacks, and the provider's trouble is
// not this replica's.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	err := a.p.Check(ctx)
	providerOnly := err != nil && errors.Is(err, provision.ErrProviderUnhealthy) &&
		!errors.Is(err, provision.ErrStoreUnhealthy) && !errors.Is(err, provision.ErrRunStopped) &&
		!errors.Is(err, provision.ErrClosed)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	case providerOnly:
		a.log.WarnContext(ctx, "ready, but the provider check failed", "err", err)
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "warning": "the provider check failed: see the log"})
	case errors.Is(err, provision.ErrClosed):
		a.fail(w, http.StatusServiceUnavailable, "not ready: shutting down", err)
	default:
		a.fail(w, http.StatusServiceUnavailable, "not ready: see the log", err)
	}
}

// id returns the path's tenant ID, or answers 400.
func (a *api) id(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := store.CheckID(id); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "tenant ID must be a lowercase UUID"})
		return "", false
	}
	return id, true
}

// answer answers an action: the record and what happened.
func (a *api) answer(w http.ResponseWriter, code int, rec store.Record, action, result string) {
	writeJSON(w, code, answer{tenant: a.tenant(rec), Action: action, Result: result})
}

// answerNow answers an action with the record as it is now.
func (a *api) answerNow(w http.ResponseWriter, r *http.Request, id string, code int, action, result string) {
	rec, err := a.store.Get(context.WithoutCancel(r.Context()), id)
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
		return
	}
	a.answer(w, code, rec, action, result)
}

// conflict answers 409: the tenant's status does not allow the request.
func (a *api) conflict(w http.ResponseWriter, rec store.Record, msg string) {
	t := a.tenant(rec)
	writeJSON(w, http.StatusConflict, apiError{Error: msg, Tenant: &t})
}

// refused answers an error of the provisioner that is not about the
// tenant's status: 503 when this replica cannot work now (shutting down,
// its clock off), 409 when another replica works on the tenant, else 500.
func (a *api) refused(w http.ResponseWriter, msg string, err error) {
	switch {
	case errors.Is(err, provision.ErrClosed):
		a.fail(w, http.StatusServiceUnavailable, "shutting down", err)
	case errors.Is(err, provision.ErrClockSkew):
		a.fail(w, http.StatusServiceUnavailable, msg+": this replica's clock and the store's disagree (see the log)", err)
	case errors.Is(err, provision.ErrBusy):
		writeJSON(w, http.StatusConflict, apiError{Error: msg + ": the tenant is being worked on; try again later"})
	default:
		a.fail(w, http.StatusInternalServerError, msg, err)
	}
}

// fail logs err and answers code with msg. Errors from provision are
// redacted, but the answer says no more than msg anyway.
func (a *api) fail(w http.ResponseWriter, code int, msg string, err error) {
	a.log.Error(msg, "err", err)
	writeJSON(w, code, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
