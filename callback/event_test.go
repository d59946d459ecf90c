package callback_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
)

// Boot events as cloud-init 22.4's WebHookHandler posts them: the JSON of
// ReportingEvent.as_dict(), json.dumps' key order and separators.
const (
	startEvent  = `{"name": "modules-final/config-scripts-user", "description": "running config-scripts-user with frequency once-per-instance", "event_type": "start", "origin": "cloudinit", "timestamp": 1733400000.123456}`
	finishEvent = `{"name": "modules-final/config-scripts-user", "description": "running config-scripts-user with frequency once-per-instance", "event_type": "finish", "origin": "cloudinit", "timestamp": 1733400001.5, "result": "FAIL"}`
)

// eventOf builds an event body from members, in order, as raw JSON values.
func eventOf(members ...string) string {
	return "{" + strings.Join(members, ", ") + "}"
}

// eventBundle is setup with OnEvent's calls recorded.
type eventBundle struct {
	*bundle
	mu     sync.Mutex
	events []callback.BootEvent
	recs   []store.Record
}

func setupEvents(t *testing.T, recs ...store.Record) *eventBundle {
	t.Helper()
	eb := &eventBundle{bundle: setup(t, recs...)}
	eb.h.OnEvent = func(_ context.Context, r store.Record, ev callback.BootEvent) {
		eb.mu.Lock()
		defer eb.mu.Unlock()
		eb.events = append(eb.events, ev)
		eb.recs = append(eb.recs, r)
	}
	return eb
}

func (eb *eventBundle) got() []callback.BootEvent {
	eb.mu.Lock()
	defer eb.mu.Unlock()
	return append([]callback.BootEvent(nil), eb.events...)
}

// getFailingStore fails every read, with a cause that must stay in the log.
type getFailingStore struct{ store.Store }

func (getFailingStore) Get(context.Context, string) (store.Record, error) {
	return store.Record{}, errDisk
}

// stuckGetStore blocks every read until its context ends.
type stuckGetStore struct{ store.Store }

func (stuckGetStore) Get(ctx context.Context, _ string) (store.Record, error) {
	<-ctx.Done()
	return store.Record{}, ctx.Err()
}

func TestEvents(t *testing.T) {
	t.Parallel()
	rec := func(status store.Status) store.Record {
		return store.Record{ID: tenant, Status: status, ServerID: "43", IPv4: "203.0.113.7", CallbackNonce: currentNonce}
	}
	member := func(k, v string) string { return `"` + k + `": ` + v }
	var (
		name  = member("name", `"modules-config/config-runcmd"`)
		desc  = member("description", `"running config-runcmd with frequency once-per-instance"`)
		start = member("event_type", `"start"`)
		fin   = member("event_type", `"finish"`)
		orig  = member("origin", `"cloudinit"`)
		ts    = member("timestamp", `1733400000.25`)
		ok    = member("result", `"SUCCESS"`)
	)
	type tc struct {
		name        string
		status      store.Status // "": no record
		target      string       // default: EventsURL with currentNonce
		method      string
		contentType string // default none, as cloud-init; "json" for application/json
		body        string // default startEvent
		source      bool
		remote      string
		store       func(store.Store) store.Store

		code int
		want *callback.BootEvent // what OnEvent gets, for a 200
	}
	cases := []tc{
		{name: "start, as cloud-init posts it", status: store.StatusCloudInit, code: 200, want: &callback.BootEvent{
			Type: callback.EventStart, Name: "modules-final/config-scripts-user", Stage: "modules-final", Module: "scripts-user",
			Description: "running config-scripts-user with frequency once-per-instance", Origin: "cloudinit",
			Time: time.Date(2024, 12, 5, 12, 0, 0, 123456000, time.UTC)}},
		{name: "finish FAIL", status: store.StatusCloudInit, body: finishEvent, code: 200, want: &callback.BootEvent{
			Type: callback.EventFinish, Name: "modules-final/config-scripts-user", Stage: "modules-final", Module: "scripts-user",
			Result: callback.ResultFail, Description: "running config-scripts-user with frequency once-per-instance", Origin: "cloudinit",
			Time: time.Date(2024, 12, 5, 12, 0, 1, 500000000, time.UTC)}},
		{name: "from creating", status: store.StatusCreating, code: 200},
		{name: "stage event", status: store.StatusCloudInit, code: 200,
			body: eventOf(member("name", `"init-network"`), member("description", `"searching for network datasources"`), fin, orig, ts, member("result", `"WARN"`)),
			want: &callback.BootEvent{Type: callback.EventFinish, Name: "init-network", Stage: "init-network", Result: callback.ResultWarn,
				Description: "searching for network datasources", Origin: "cloudinit", Time: time.Date(2024, 12, 5, 12, 0, 0, 250000000, time.UTC)}},
		{name: "datasource step", status: store.StatusCloudInit, code: 200,
			body: eventOf(member("name", `"init-local/search-Hetzner"`), member("description", `"searching for local data from DataSourceHetzner"`), start, orig, ts),
			want: &callback.BootEvent{Type: callback.EventStart, Name: "init-local/search-Hetzner", Stage: "init-local",
				Description: "searching for local data from DataSourceHetzner", Origin: "cloudinit", Time: time.Date(2024, 12, 5, 12, 0, 0, 250000000, time.UTC)}},
		{name: "single module", status: store.StatusCloudInit, code: 200,
			body: eventOf(member("name", `"single/phone_home/config-phone_home"`), desc, start, orig, ts),
			want: &callback.BootEvent{Type: callback.EventStart, Name: "single/phone_home/config-phone_home", Stage: "single", Module: "phone_home",
				Description: "running config-runcmd with frequency once-per-instance", Origin: "cloudinit", Time: time.Date(2024, 12, 5, 12, 0, 0, 250000000, time.UTC)}},
		{name: "application/json", status: store.StatusCloudInit, contentType: "json", code: 200},
		{name: "finish with files", status: store.StatusCloudInit, body: eventOf(name, desc, fin, orig, ts, ok, member("files", `[{"path": "/var/log/x", "content": "aGk=", "encoding": "base64"}]`)), code: 200},
		{name: "finish with files null", status: store.StatusCloudInit, body: eventOf(name, desc, fin, orig, ts, ok, member("files", `null`)), code: 200},
		{name: "description sanitized", status: store.StatusCloudInit, code: 200,
			body: eventOf(name, member("description", `"a\nb\u001b[31mc\u202ed\u0000e \udcff"`), start, orig, ts),
			want: &callback.BootEvent{Type: callback.EventStart, Name: "modules-config/config-runcmd", Stage: "modules-config", Module: "runcmd",
				Description: "a b [31mc d e \uFFFD", Origin: "cloudinit", Time: time.Date(2024, 12, 5, 12, 0, 0, 250000000, time.UTC)}},
		{name: "description cut", status: store.StatusCloudInit, code: 200,
			body: eventOf(name, member("description", `"`+strings.Repeat("é", 300)+`"`), start, orig, ts),
			want: &callback.BootEvent{Type: callback.EventStart, Name: "modules-config/config-runcmd", Stage: "modules-config", Module: "runcmd",
				Description: strings.Repeat("é", 126) + "…", Origin: "cloudinit", Time: time.Date(2024, 12, 5, 12, 0, 0, 250000000, time.UTC)}},
		{name: "empty description", status: store.StatusCloudInit, body: eventOf(name, member("description", `""`), start, orig, ts), code: 200},
		{name: "timestamp zero", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, member("timestamp", "0")), code: 200},

		{name: "after phone_home: injecting_secrets", status: store.StatusInjectingSecrets, code: 200},
		{name: "late: ready", status: store.StatusReady, code: 409},
		{name: "failed", status: store.StatusFailed, code: 409},
		{name: "deleted", status: store.StatusDeleted, code: 409},
		{name: "pending", status: store.StatusPending, code: 409},
		{name: "unknown tenant", code: 404},
		{name: "earlier server's token", status: store.StatusCloudInit, target: "earlier", code: 401},
		{name: "nonce-less token", status: store.StatusCloudInit, target: "v1", code: 401},
		{name: "forged token", status: store.StatusCloudInit, target: "forged", code: 401},
		{name: "no token", status: store.StatusCloudInit, target: "none", code: 401},
		{name: "event=2", status: store.StatusCloudInit, target: "event=2", code: 400},
		{name: "GET", status: store.StatusCloudInit, method: http.MethodGet, code: 405},
		{name: "bad ID", status: store.StatusCloudInit, target: "badid", code: 400},
		{name: "source elsewhere", status: store.StatusCloudInit, source: true, code: 403},
		{name: "source matches", status: store.StatusCloudInit, source: true, remote: "203.0.113.7:1", code: 200},
		{name: "store failure", status: store.StatusCloudInit, store: func(s store.Store) store.Store { return getFailingStore{s} }, code: 500},
		{name: "store stuck", status: store.StatusCloudInit, store: func(s store.Store) store.Store { return stuckGetStore{s} }, code: 500},

		{name: "over MaxEventSize", status: store.StatusCloudInit, body: eventOf(name, member("description", `"`+strings.Repeat("x", callback.MaxEventSize)+`"`), start, orig, ts), code: 413},
		{name: "over MaxEventSize chunked", status: store.StatusCloudInit, body: "chunked:" + eventOf(name, member("description", `"`+strings.Repeat("x", callback.MaxEventSize)+`"`), start, orig, ts), code: 413},
		{name: "text/plain", status: store.StatusCloudInit, contentType: "text/plain", code: 415},
		{name: "form", status: store.StatusCloudInit, contentType: formCT, code: 415},
		{name: "not JSON", status: store.StatusCloudInit, body: "name=x", code: 400},
		{name: "JSON list", status: store.StatusCloudInit, body: "[" + startEvent + "]", code: 400},
		{name: "two events", status: store.StatusCloudInit, body: startEvent + finishEvent, code: 400},
		{name: "member twice", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, ts, member("name", `"init-local"`)), code: 400},
		{name: "member twice, escaped", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, ts, member(`n\u0061me`, `"init-local"`)), code: 400},
		{name: "unknown member", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, ts, member("extra", `1`)), code: 400},
		{name: "name missing", status: store.StatusCloudInit, body: eventOf(desc, start, orig, ts), code: 400},
		{name: "description missing", status: store.StatusCloudInit, body: eventOf(name, start, orig, ts), code: 400},
		{name: "origin missing", status: store.StatusCloudInit, body: eventOf(name, desc, start, ts), code: 400},
		{name: "timestamp missing", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig), code: 400},
		{name: "event_type missing", status: store.StatusCloudInit, body: eventOf(name, desc, orig, ts), code: 400},
		{name: "event_type progress", status: store.StatusCloudInit, body: eventOf(name, desc, member("event_type", `"progress"`), orig, ts), code: 400},
		{name: "start with result", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, ts, ok), code: 400},
		{name: "start with files", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, ts, member("files", "[]")), code: 400},
		{name: "finish without result", status: store.StatusCloudInit, body: eventOf(name, desc, fin, orig, ts), code: 400},
		{name: "finish result OK", status: store.StatusCloudInit, body: eventOf(name, desc, fin, orig, ts, member("result", `"OK"`)), code: 400},
		{name: "finish result lowercase", status: store.StatusCloudInit, body: eventOf(name, desc, fin, orig, ts, member("result", `"fail"`)), code: 400},
		{name: "files not a list", status: store.StatusCloudInit, body: eventOf(name, desc, fin, orig, ts, ok, member("files", `"x"`)), code: 400},
		{name: "name not a string", status: store.StatusCloudInit, body: eventOf(member("name", "1"), desc, start, orig, ts), code: 400},
		{name: "name empty", status: store.StatusCloudInit, body: eventOf(member("name", `""`), desc, start, orig, ts), code: 400},
		{name: "name with space", status: store.StatusCloudInit, body: eventOf(member("name", `"modules final"`), desc, start, orig, ts), code: 400},
		{name: "name with newline", status: store.StatusCloudInit, body: eventOf(member("name", `"a\nb"`), desc, start, orig, ts), code: 400},
		{name: "name empty segment", status: store.StatusCloudInit, body: eventOf(member("name", `"a//b"`), desc, start, orig, ts), code: 400},
		{name: "name trailing slash", status: store.StatusCloudInit, body: eventOf(member("name", `"a/"`), desc, start, orig, ts), code: 400},
		{name: "name 9 segments", status: store.StatusCloudInit, body: eventOf(member("name", `"a/b/c/d/e/f/g/h/i"`), desc, start, orig, ts), code: 400},
		{name: "name too long", status: store.StatusCloudInit, body: eventOf(member("name", `"`+strings.Repeat("a", 257)+`"`), desc, start, orig, ts), code: 400},
		{name: "origin with space", status: store.StatusCloudInit, body: eventOf(name, desc, start, member("origin", `"cloud init"`), ts), code: 400},
		{name: "origin empty", status: store.StatusCloudInit, body: eventOf(name, desc, start, member("origin", `""`), ts), code: 400},
		{name: "description not a string", status: store.StatusCloudInit, body: eventOf(name, member("description", "null"), start, orig, ts), code: 400},
		{name: "timestamp string", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, member("timestamp", `"1733400000"`)), code: 400},
		{name: "timestamp negative", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, member("timestamp", "-1")), code: 400},
		{name: "timestamp far future", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, member("timestamp", "1e10")), code: 400},
		{name: "timestamp overflow", status: store.StatusCloudInit, body: eventOf(name, desc, start, orig, member("timestamp", "1e400")), code: 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var eb *eventBundle
			if c.status != "" {
				eb = setupEvents(t, rec(c.status))
			} else {
				eb = setupEvents(t, store.Record{ID: other, Status: store.StatusCloudInit})
			}
			if c.store != nil {
				eb.h.Store = c.store(eb.st)
				eb.h.StoreTimeout = 20 * time.Millisecond
			}
			eb.h.CheckSource = c.source
			base := "http://cp.test/api/provision/callback"
			target := eb.h.EventsURL(base, tenant, currentNonce)
			switch c.target {
			case "earlier":
				target = eb.h.EventsURL(base, tenant, earlierNonce)
			case "v1":
				target = eb.h.EventsURL(base, tenant, "")
			case "forged":
				target = base + "/" + tenant + "?token=" + currentNonce + "." + strings.Repeat("a", 64) + "&event=1"
			case "none":
				target = base + "/" + tenant + "?event=1"
			case "event=2":
				target = strings.Replace(target, "event=1", "event=2", 1)
			case "badid":
				target = strings.Replace(target, tenant, "x", 1)
			}
			method, body, ct := cmpOr(c.method, http.MethodPost), cmpOr(c.body, startEvent), c.contentType
			if ct == "json" {
				ct = jsonCT
			}
			r := request(method, target, ct, body)
			if b, ok := strings.CutPrefix(body, "chunked:"); ok {
				r = request(method, target, ct, "")
				r.Body, r.ContentLength = readCloser{chunked{strings.NewReader(b)}}, -1
			}
			if c.remote != "" {
				r.RemoteAddr = c.remote
			}
			var before store.Record
			if c.status != "" {
				before = eb.get(t, tenant)
			}

			w := serve(eb.h, r)

			require.Equal(t, c.code, w.Code, w.Body.String())
			if c.status != "" {
				assert.Equal(t, before, eb.get(t, tenant), "an event never changes the record")
			}
			got := eb.got()
			if c.code != 200 {
				assert.Empty(t, got, "a refused event reaches no OnEvent")
				level := `"level":"WARN"`
				if c.code == 500 {
					level = `"level":"ERROR"`
				}
				assert.Contains(t, eb.logs.String(), level)
				assert.NotContains(t, w.Body.String(), "disk on fire")
				return
			}
			require.Len(t, got, 1)
			assert.Equal(t, before, eb.recs[0], "OnEvent gets the record as read")
			if c.want != nil {
				assert.Equal(t, *c.want, got[0])
			}
			assert.NotContains(t, eb.logs.String(), currentNonce+".", "the token is never logged")
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestEventsInOrder: OnEvent runs before the answer, so events posted one
// after another (as cloud-init's single worker thread does) arrive in
// order; a panic in OnEvent is recovered and logged, the event answered.
func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	eb := setupEvents(t, store.Record{ID: tenant, Status: store.StatusCloudInit, CallbackNonce: currentNonce})
	u := eb.h.EventsURL("http://cp.test/cb", tenant, currentNonce)
	for _, b := range []string{startEvent, finishEvent} {
		require.Equal(t, 200, serve(eb.h, request(http.MethodPost, u, "", b)).Code)
	}
	got := eb.got()
	require.Len(t, got, 2)
	assert.Equal(t, callback.EventStart, got[0].Type)
	assert.Equal(t, callback.EventFinish, got[1].Type)

	const secret = "s3cr3t-in-a-panic"
	eb.h.OnEvent = func(context.Context, store.Record, callback.BootEvent) { panic(errors.New(secret)) }
	assert.Equal(t, 200, serve(eb.h, request(http.MethodPost, u, "", startEvent)).Code)
	assert.Contains(t, eb.logs.String(), `"msg":"OnEvent panicked"`)
	assert.Contains(t, eb.logs.String(), `"panic_type":"*errors.errorString"`)
	assert.NotContains(t, eb.logs.String(), secret)

	// Without OnEvent, events are still checked and answered.
	eb.h.OnEvent = nil
	assert.Equal(t, 200, serve(eb.h, request(http.MethodPost, u, "", startEvent)).Code)
	assert.Equal(t, 400, serve(eb.h, request(http.MethodPost, u, "", "{}")).Code)
	assert.Equal(t, store.StatusCloudInit, eb.get(t, tenant).Status)
}

// TestEventsDoNotPhoneHome: a phone_home body posted to the events
// endpoint is not a phone_home, and an event posted to the phone_home
// endpoint is not an event: neither moves the record.
func TestEventsDoNotPhoneHome(t *testing.T) {
	t.Parallel()
	eb := setupEvents(t, store.Record{ID: tenant, Status: store.StatusCloudInit, CallbackNonce: currentNonce})
	assert.Equal(t, 415, serve(eb.h, request(http.MethodPost, eb.h.EventsURL("http://cp.test/cb", tenant, currentNonce), formCT, goodForm)).Code)
	assert.Equal(t, 400, serve(eb.h, request(http.MethodPost, eb.h.EventsURL("http://cp.test/cb", tenant, currentNonce), "", goodForm)).Code)
	assert.Equal(t, 400, serve(eb.h, request(http.MethodPost, eb.h.AttemptURL("http://cp.test/cb", tenant, currentNonce), jsonCT, startEvent)).Code)
	assert.Equal(t, store.StatusCloudInit, eb.get(t, tenant).Status)
	assert.Empty(t, eb.got())
	eb.noReady(t)
}

// TestEventLogLevel: a FAIL is logged at Warn by the handler when nobody
// else reports it; with OnEvent, which reports it, at Debug only, so that
// a failure is not logged twice.
func TestEventLogLevel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		onEvent bool
		level   string
	}{
		{"no OnEvent", false, `"level":"WARN"`},
		{"OnEvent", true, `"level":"DEBUG"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eb := setupEvents(t, store.Record{ID: tenant, Status: store.StatusCloudInit, CallbackNonce: currentNonce})
			if !c.onEvent {
				eb.h.OnEvent = nil
			}
			u := eb.h.EventsURL("http://cp.test/cb", tenant, currentNonce)
			require.Equal(t, 200, serve(eb.h, request(http.MethodPost, u, "", finishEvent)).Code)
			var line string
			for l := range strings.Lines(eb.logs.String()) {
				if strings.Contains(l, `"result":"FAIL"`) {
					line = l
				}
			}
			require.NotEmpty(t, line, eb.logs.String())
			assert.Contains(t, line, c.level)
		})
	}
}
