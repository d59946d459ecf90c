package main

import (
	"cmp"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// accessLog wraps h: it logs one line per request, at info level (method,
// path, the query with its values redacted but for loggedParams, the
// ServeMux pattern that matched, status, bytes, duration, client address),
// and records the request's duration in the histogram
// http.server.request.duration of OpenTelemetry's HTTP conventions, by
// method, route (the pattern, never the path: no tenant ID) and status.
//
// The phone_home URL carries its token in the query (?token=...): it is
// never logged, nor any value of a parameter the service does not know.
func accessLog(h http.Handler, log *slog.Logger, mp metric.MeterProvider) http.Handler {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	duration, err := mp.Meter("github.com/hatchery-dev/hatchery/examples/controlplane").Float64Histogram(
		"http.server.request.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10),
	)
	if err != nil {
		// Only an invalid name or unit fails, and these are constants;
		// the SDK returns a working instrument even then.
		log.Warn("http metrics", "err", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		took := time.Since(start)
		status := cmp.Or(rec.status, http.StatusOK)

		// The ServeMuxes set the request's Pattern as they route it: the
		// innermost one's is the route ("" when none matched).
		route := r.Pattern
		if _, path, ok := strings.Cut(route, " "); ok {
			route = path // "POST /tenants/{id}" -> "/tenants/{id}"
		}
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", metricMethod(r.Method)),
			attribute.Int("http.response.status_code", status),
		}
		if route != "" {
			attrs = append(attrs, attribute.String("http.route", route))
		}
		duration.Record(r.Context(), took.Seconds(), metric.WithAttributes(attrs...))

		la := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
		}
		if q := loggedQuery(r.URL.RawQuery); q != "" {
			la = append(la, slog.String("query", q))
		}
		if r.Pattern != "" {
			la = append(la, slog.String("pattern", r.Pattern))
		}
		la = append(la,
			slog.Int("status", status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", took),
			slog.String("remote", r.RemoteAddr),
		)
		log.LogAttrs(r.Context(), slog.LevelInfo, "http", la...)
	})
}

// metricMethod bounds the method attribute: the methods HTTP defines, or
// _OTHER, as OpenTelemetry's conventions say.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// loggedParams are the query parameters of the API, whose values are
// logged as they are. Any other parameter's value is logged as REDACTED:
// the phone_home URL's token is one.
var loggedParams = []string{"status", "dry_run"}

// loggedQuery returns the query as the access log shows it: the values of
// loggedParams, and every other parameter with its value redacted. A query
// that does not parse is not shown at all.
func loggedQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "REDACTED"
	}
	for k, vs := range q {
		if !slices.Contains(loggedParams, k) {
			for i := range vs {
				vs[i] = "REDACTED"
			}
		}
	}
	return q.Encode()
}

// recorder is a ResponseWriter that notes the status and counts the body's
// bytes for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// jsonMuxErrors serves mux, answering its own 404 (no pattern matches)
// and 405 (a pattern matches the path, not the method) in JSON like the
// API's errors, with the Allow header the ServeMux set on a 405.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// No pattern: the ServeMux answers itself, a 404 or a 405 (or a
		// redirect, left as it is).
		mux.ServeHTTP(&muxError{ResponseWriter: w, r: r}, r)
	})
}

// muxError replaces the ServeMux's plain-text 404 and 405 with JSON.
type muxError struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (m *muxError) WriteHeader(code int) {
	var msg string
	switch code {
	case http.StatusNotFound:
		msg = "no such resource: " + m.r.URL.Path
	case http.StatusMethodNotAllowed:
		msg = m.r.Method + " is not allowed on " + m.r.URL.Path + "; allowed: " + m.Header().Get("Allow")
	default:
		m.ResponseWriter.WriteHeader(code)
		return
	}
	m.replaced = true
	writeJSON(m.ResponseWriter, code, apiError{Error: msg})
}

func (m *muxError) Write(p []byte) (int, error) {
	if m.replaced {
		return len(p), nil // the ServeMux's text, replaced
	}
	return m.ResponseWriter.Write(p)
}
