package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The access log: one line per request, with the method, path, status,
// bytes and duration; the query's values only for the API's own
// parameters, so the phone_home token is never logged.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	const token = "v1.0123456789abcdef.deadbeefcafef00d"
	for _, tc := range []struct {
		name, method, target string
		want                 []string // substrings of the line
	}{
		{"callback", "POST", CallbackPath + "/" + idA + "?token=" + token,
			[]string{`method=POST path=/api/provision/callback/` + idA + ` query="token=REDACTED" pattern="POST /api/provision/callback/{id}" status=204 bytes=0 duration=`}},
		{"callback, token twice and other parameters", "POST", CallbackPath + "/" + idA + "?a=1&token=" + token + "&token=" + token + "x",
			[]string{`query="a=REDACTED&token=REDACTED&token=REDACTED"`}},
		{"a query that does not parse", "POST", CallbackPath + "/" + idA + "?token=" + token + "%zz",
			[]string{`query=REDACTED `}},
		{"list", "GET", "/tenants?status=ready,failed",
			[]string{`method=GET path=/tenants query="status=ready%2Cfailed" pattern="GET /tenants" status=200 bytes=20 duration=`}},
		{"sweep", "POST", "/sweep?dry_run=0", []string{`query="dry_run=0" `, `status=200`}},
		{"unknown path", "GET", "/nope?token=" + token, []string{`path=/nope query="token=REDACTED" status=404 bytes=`}},
		{"method not allowed", "PATCH", "/tenants/" + idA, []string{`method=PATCH path=/tenants/` + idA + ` status=405`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log syncBuffer
			_, a := newTestAPIValue(t)
			a.log = slog.New(slog.NewTextHandler(&log, nil))
			w := do(t, a.routes(), tc.method, tc.target)
			line := log.String()
			assert.Equal(t, 1, strings.Count(line, "\n"), line)
			assert.Contains(t, line, "level=INFO msg=http ")
			for _, s := range tc.want {
				assert.Contains(t, line, s)
			}
			assert.Contains(t, line, " remote=192.0.2.1:1234") // httptest's
			assert.NotContains(t, line, token[3:])
			if strings.Contains(line, "bytes=") && w.Body.Len() > 0 {
				assert.Contains(t, line, " bytes="+strconv.Itoa(w.Body.Len())+" ")
			}
		})
	}
}

// GET /metrics serves, in Prometheus's format, the HTTP server's request
// durations by route (never by path: no tenant IDs), method and status,
// and the Go runtime's metrics.
func TestMetrics(t *testing.T) {
	t.Parallel()
	mp, handler, err := newMetrics()
	require.NoError(t, err)
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	p, a := newTestAPIValue(t)
	a.meters, a.metrics = mp, handler
	h := a.routes()
	p.ready(idA)
	do(t, h, "GET", "/tenants/"+idA)
	do(t, h, "GET", "/tenants/"+idB)
	do(t, h, "GET", "/nope")

	w := do(t, h, "GET", "/metrics")
	require.Equal(t, 200, w.Code)
	body := w.Body.String()
	assert.Contains(t, body, "# TYPE http_server_request_duration_seconds histogram")
	assert.Contains(t, body, `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/tenants/{id}",otel_scope_name="github.com/hatchery-dev/hatchery/examples/controlplane"`)
	assert.Contains(t, body, `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route="/tenants/{id}",`)
	assert.Contains(t, body, `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",otel_scope_name=`, "no route: none matched")
	assert.NotContains(t, body, idA)
	assert.Contains(t, body, "go_goroutines ")
	assert.Contains(t, body, `target_info{service_name="hatchery-controlplane"`)
}

// A response's status and size as the access log counts them.
func TestRecorder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		h          http.HandlerFunc
		wantStatus int
		wantBytes  int64
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, 0, 0},
		{"body only", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }, 200, 5},
		{"status and body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "hi")
			w.WriteHeader(http.StatusOK) // superfluous: ignored
		}, 418, 2},
		{"an informational status first", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}, 201, 0},
		{"flushed through the ResponseController", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			assert.NoError(t, http.NewResponseController(w).Flush())
		}, 200, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{ResponseWriter: httptest.NewRecorder()}
			tc.h(rec, httptest.NewRequest("GET", "/", nil))
			assert.Equal(t, tc.wantStatus, rec.status)
			assert.Equal(t, tc.wantBytes, rec.bytes)
		})
	}
}

// Errors of the ServeMux itself are JSON, the Allow header kept.
func TestMuxErrorsJSON(t *testing.T) {
	t.Parallel()
	_, h := newTestAPI(t)
	for _, tc := range []struct {
		method, target string
		code           int
		allow, msg     string
	}{
		{"GET", "/tenants/" + idA + "/retry", 405, "POST", "GET is not allowed on /tenants/" + idA + "/retry; allowed: POST"},
		{"DELETE", "/tenants", 405, "GET, HEAD", "DELETE is not allowed on /tenants; allowed: GET, HEAD"},
		{"GET", "/api/provision/callback/" + idA, 404, "", "no such resource: /api/provision/callback/" + idA},
		{"GET", "/favicon.ico", 404, "", "no such resource: /favicon.ico"},
	} {
		w := do(t, h, tc.method, tc.target)
		assert.Equal(t, tc.code, w.Code)
		assert.Equal(t, tc.allow, w.Header().Get("Allow"))
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
		assert.JSONEq(t, `{"error":"`+tc.msg+`"}`, w.Body.String())
	}
	// A redirect of the ServeMux is left as it is.
	w := do(t, h, "GET", "/tenants/../tenants")
	assert.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect}, w.Code)
	assert.Equal(t, "/tenants", w.Header().Get("Location"))
}
