package main

import (
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hatchery-dev/hatchery/store"
)

//go:embed page.html page.js favicon.svg
var pageFS embed.FS

var pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"short":    shortID,
	"duration": shortDuration,
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"utc":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" },
	"label":    func(action string) string { return actionLabels[action][0] },
	"explain":  func(action string) string { return actionLabels[action][1] },
}).ParseFS(pageFS, "page.html"))

// actionLabels are the page's buttons: label and tooltip. page.js has the
// same.
var actionLabels = map[string][2]string{
	"retry":       {"Retry", "Retry now: a new attempt, whatever the attempts so far"},
	"rotate":      {"Rotate", "Inject the current secrets again and restart the service"},
	"replace":     {"Replace", "Give the tenant a new server; the old one serves until the new one is ready"},
	"deprovision": {"Deprovision", "Delete the tenant's server and record it deleted"},
}

// pageData is what page.html renders; the script then redraws the table
// from GET /tenants every two seconds, in the browser's local time.
type pageData struct {
	Tenants []tenant
	Counts  []statusCount
	Now     time.Time
	// Base is the URL the page was requested at, for the curl example.
	Base string
}

type statusCount struct {
	Status store.Status
	N      int
}

// page handles GET /: the status page, newest tenants first.
func (a *api) page(w http.ResponseWriter, r *http.Request) {
	recs, err := a.store.List(r.Context())
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "cannot list tenants", err)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	d := pageData{Tenants: make([]tenant, 0, len(recs)), Now: time.Now(), Base: scheme + "://" + r.Host}
	n := map[store.Status]int{}
	for _, rec := range recs {
		d.Tenants = append(d.Tenants, a.tenant(rec))
		n[rec.Status]++
	}
	slices.SortStableFunc(d.Tenants, newestFirst)
	for _, s := range store.Statuses() {
		if n[s] > 0 {
			d.Counts = append(d.Counts, statusCount{s, n[s]})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	setPageHeaders(w.Header())
	if err := pageTemplate.Execute(w, d); err != nil {
		a.log.ErrorContext(r.Context(), "render status page", "err", err)
	}
}

// newestFirst orders tenants by creation, newest first, then by ID.
func newestFirst(a, b tenant) int {
	return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(a.ID, b.ID))
}

// shortID is the first block of a tenant's UUID, as the page shows it
// (the whole ID is in its title, and copied by a click).
func shortID(id string) string {
	if len(id) < 8 {
		return id
	}
	return id[:8]
}

// shortDuration renders d as the page does: "42s", "3m 07s", "2h 05m",
// "3d 4h". page.js's duration() is the same.
func shortDuration(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd %dh", s/86400, s%86400/3600)
}

// pageScript serves page.js, the status page's refresh and actions.
func pageScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	setPageHeaders(w.Header())
	http.ServeFileFS(w, r, pageFS, "page.js")
}

// favicon serves the page's icon: an egg, hatching.
func favicon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "max-age=86400")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeFileFS(w, r, pageFS, "favicon.svg")
}

// setPageHeaders keeps the page to its own script and icon, and off other
// sites' frames.
func setPageHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
