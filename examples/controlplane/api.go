package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// CallbackPath is where the phone_home handler is mounted, in the same
// ServeMux as the API.
const CallbackPath = "/api/provision/callback"

// provisioner is what the API needs of *provision.Provisioner.
type provisioner interface {
	Provision(ctx context.Context, id string) error
	Deprovision(ctx context.Context, id string) error
	Replace(ctx context.Context, id string) error
	Sweep(ctx context.Context, dryRun bool) (provision.SweepResult, error)
	Handler() http.Handler
}

// api serves the tenants API, the status page and the callback.
type api struct {
	p     provisioner
	store store.Store
	log   *slog.Logger
	// provisionTimeout bounds the work a POST does before it answers
	// (creating the server); it is detached from the request so a client
	// that hangs up does not leave a half-made server behind.
	provisionTimeout time.Duration
}

// routes returns the service's handler: the API and the page behind
// net/http's cross-origin protection (a page on another site must not
// create servers with the operator's browser), the callback outside it.
func (a *api) routes() http.Handler {
	app := http.NewServeMux()
	app.HandleFunc("GET /{$}", a.page)
	app.HandleFunc("GET /page.js", pageScript)
	app.HandleFunc("GET /tenants", a.list)
	app.HandleFunc("GET /tenants/{id}", a.get)
	app.HandleFunc("POST /tenants/{id}", a.provision)
	app.HandleFunc("DELETE /tenants/{id}", a.deprovision)
	app.HandleFunc("POST /tenants/{id}/replace", a.replace)
	app.HandleFunc("POST /sweep", a.sweep)

	mux := http.NewServeMux()
	mux.Handle("POST "+CallbackPath+"/{id}", a.p.Handler())
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, apiError{Error: "cross-origin request refused"})
	}))
	mux.Handle("/", cop.Handler(app))
	return mux
}

// tenant is a store.Record as the API shows it.
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
	// RetiringServerID is the server that still serves the tenant while
	// a replacement is under way (or failed).
	RetiringServerID string     `json:"retiring_server_id,omitempty"`
	Drift            string     `json:"drift,omitempty"`
	DriftAt          *time.Time `json:"drift_at,omitempty"`
	LeaseOwner       string     `json:"lease_owner,omitempty"`
	LeaseUntil       *time.Time `json:"lease_until,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

func toTenant(r store.Record) tenant {
	t := tenant{
		ID: r.ID, Status: r.Status, ServerID: r.ServerID, ServerName: r.ServerName,
		IPv4: r.IPv4, IPv6: r.IPv6, Hostname: r.Hostname, InstanceID: r.InstanceID,
		HostKeys: r.HostKeys, Error: r.Error, Attempts: r.Attempts, LeaseOwner: r.LeaseOwner,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
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

// tenantList is GET /tenants's answer.
type tenantList struct {
	Tenants []tenant `json:"tenants"`
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

// provision handles POST /tenants/{id}: it creates the tenant's record and
// its server, and answers 202 Accepted with the record; the rest happens
// when the server phones home. Provisioning a tenant again answers its
// record as it is. A create that failed is retried in the background, so
// it is 202 too, with the record saying failed and why.
func (a *api) provision(w http.ResponseWriter, r *http.Request) {
	id, ok := a.id(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.provisionTimeout)
	defer cancel()
	err := a.p.Provision(ctx, id)
	var pe *provision.Error
	switch {
	case err == nil, errors.As(err, &pe):
	case errors.Is(err, provision.ErrDeleted):
		writeJSON(w, http.StatusConflict, apiError{Error: "tenant " + id + " was deprovisioned; tenant IDs are not reused"})
		return
	case errors.Is(err, provision.ErrClosed):
		a.fail(w, http.StatusServiceUnavailable, "shutting down", err)
		return
	default:
		a.fail(w, http.StatusInternalServerError, "cannot provision "+id, err)
		return
	}
	rec, err := a.store.Get(ctx, id)
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
		return
	}
	if rec.Status == store.StatusDeleted {
		writeJSON(w, http.StatusConflict, apiError{Error: "tenant " + id + " was deprovisioned; tenant IDs are not reused"})
		return
	}
	writeJSON(w, http.StatusAccepted, toTenant(rec))
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
		writeJSON(w, http.StatusOK, toTenant(rec))
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
		out.Tenants = append(out.Tenants, toTenant(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

// deprovision handles DELETE /tenants/{id}: the tenant is recorded
// deleted and its server deleted; the answer is the record.
func (a *api) deprovision(w http.ResponseWriter, r *http.Request) {
	id, ok := a.id(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.provisionTimeout)
	defer cancel()
	err := a.p.Deprovision(ctx, id)
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
		a.log.Warn("deprovision", "tenant", id, "err", err)
	}
	rec, gerr := a.store.Get(ctx, id)
	if gerr != nil {
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, gerr)
		return
	}
	if err != nil {
		writeJSON(w, http.StatusAccepted, toTenant(rec))
		return
	}
	writeJSON(w, http.StatusOK, toTenant(rec))
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
	case errors.Is(err, provision.ErrNotReady), errors.Is(err, provision.ErrBusy):
		writeJSON(w, http.StatusConflict, apiError{Error: "tenant " + id + " is being worked on, or deleted: only a ready or failed tenant can be replaced"})
		return
	case errors.Is(err, provision.ErrClosed):
		a.fail(w, http.StatusServiceUnavailable, "shutting down", err)
		return
	default:
		a.fail(w, http.StatusInternalServerError, "cannot replace the server of "+id, err)
		return
	}
	rec, err := a.store.Get(ctx, id)
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "cannot read tenant "+id, err)
		return
	}
	writeJSON(w, http.StatusAccepted, toTenant(rec))
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
		a.log.Error("sweep", "err", err)
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

// id returns the path's tenant ID, or answers 400.
func (a *api) id(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := store.CheckID(id); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "tenant ID must be a lowercase UUID"})
		return "", false
	}
	return id, true
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

//go:embed page.html page.js
var pageFS embed.FS

var pageTemplate = template.Must(template.ParseFS(pageFS, "page.html"))

// pageData is what page.html renders; the script then refreshes the table
// from GET /tenants every two seconds.
type pageData struct {
	Tenants []tenant
	Counts  []statusCount
}

type statusCount struct {
	Status store.Status
	N      int
}

// page handles GET /: the status page.
func (a *api) page(w http.ResponseWriter, r *http.Request) {
	recs, err := a.store.List(r.Context())
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "cannot list tenants", err)
		return
	}
	d := pageData{Tenants: make([]tenant, 0, len(recs))}
	n := map[store.Status]int{}
	for _, rec := range recs {
		d.Tenants = append(d.Tenants, toTenant(rec))
		n[rec.Status]++
	}
	for _, s := range store.Statuses() {
		if n[s] > 0 {
			d.Counts = append(d.Counts, statusCount{s, n[s]})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	setPageHeaders(w.Header())
	if err := pageTemplate.Execute(w, d); err != nil {
		a.log.Error("render status page", "err", err)
	}
}

// pageScript serves page.js, the status page's refresh.
func pageScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	setPageHeaders(w.Header())
	http.ServeFileFS(w, r, pageFS, "page.js")
}

// setPageHeaders keeps the page to its own script and off other sites'
// frames.
func setPageHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
