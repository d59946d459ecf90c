package callback_test

import (
	"context"
	"encoding/json"
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

// outcomes records a handler's OnOutcome calls.
type outcomes struct {
	mu  sync.Mutex
	all []callback.Outcome
	ctx []context.Context
}

func (o *outcomes) add(ctx context.Context, out callback.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.all = append(o.all, out)
	o.ctx = append(o.ctx, ctx)
}

// TestOnOutcome sends a request for every outcome and checks that
// OnOutcome gets exactly one call for it, with the outcome that the log
// line says, the tenant and the endpoint; and that every Outcome constant
// is reached.
func TestOnOutcome(t *testing.T) {
	t.Parallel()
	base := "http://cp.test/cb"
	cloudInit := store.Record{ID: tenant, Status: store.StatusCloudInit, ServerID: "43", IPv4: "203.0.113.7", CallbackNonce: currentNonce}
	after := cloudInit
	goodFinal(&after)
	failed := cloudInit
	failed.Status = store.StatusFailed
	ready := after
	ready.Status = store.StatusReady
	post := func(target, ct, body string) *http.Request { return request(http.MethodPost, target, ct, body) }
	phoneHome := func(h *callback.Handler) string { return h.AttemptURL(base, tenant, currentNonce) }
	events := func(h *callback.Handler) string { return h.EventsURL(base, tenant, currentNonce) }
	cases := []struct {
		name   string
		rec    *store.Record
		setup  func(h *callback.Handler)
		req    func(h *callback.Handler) *http.Request
		result string
		event  bool
		tenant string
	}{
		{name: "transitioned", rec: &cloudInit, result: callback.OutcomeTransitioned, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, goodForm) }},
		{name: "repeat", rec: &after, result: callback.OutcomeRepeat, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, goodForm) }},
		{name: "misconfigured", rec: &cloudInit, result: callback.OutcomeMisconfigured,
			setup: func(h *callback.Handler) { h.Key = []byte("short") },
			req:   func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, goodForm) }},
		{name: "bad method", rec: &cloudInit, result: callback.OutcomeBadMethod, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return request(http.MethodGet, phoneHome(h), "", "") }},
		{name: "bad ID", rec: &cloudInit, result: callback.OutcomeBadID,
			req: func(h *callback.Handler) *http.Request { return post(base+"/NOT-A-UUID?token=x", formCT, goodForm) }},
		{name: "bad token", rec: &cloudInit, result: callback.OutcomeBadToken, tenant: tenant,
			req: func(h *callback.Handler) *http.Request {
				return post(base+"/"+tenant+"?token=forged", formCT, goodForm)
			}},
		{name: "stale token", rec: &cloudInit, result: callback.OutcomeStaleToken, tenant: tenant,
			req: func(h *callback.Handler) *http.Request {
				return post(h.AttemptURL(base, tenant, earlierNonce), formCT, goodForm)
			}},
		{name: "too large", rec: &cloudInit, result: callback.OutcomeTooLarge, tenant: tenant,
			req: func(h *callback.Handler) *http.Request {
				return post(phoneHome(h), formCT, strings.Repeat("a", callback.MaxBodySize+1))
			}},
		{name: "bad content type", rec: &cloudInit, result: callback.OutcomeBadContentType, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return post(phoneHome(h), "text/plain", goodForm) }},
		{name: "bad body", rec: &cloudInit, result: callback.OutcomeBadBody, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, "hostname=x") }},
		{name: "bad source", rec: &cloudInit, result: callback.OutcomeBadSource, tenant: tenant,
			setup: func(h *callback.Handler) { h.CheckSource = true },
			req:   func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, goodForm) }},
		{name: "not found", result: callback.OutcomeNotFound, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, goodForm) }},
		{name: "conflict", rec: &failed, result: callback.OutcomeConflict, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, goodForm) }},
		{name: "different data", rec: &after, result: callback.OutcomeDifferentData, tenant: tenant,
			req: func(h *callback.Handler) *http.Request {
				return post(phoneHome(h), formCT, cloudInitForm("another-host", "12345678"))
			}},
		{name: "wrong instance", rec: &cloudInit, result: callback.OutcomeWrongInstance, tenant: tenant,
			setup: func(h *callback.Handler) { h.InstanceIDFunc = func(r store.Record) string { return r.ServerID } },
			req:   func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, goodForm) }},
		{name: "store error", rec: &cloudInit, result: callback.OutcomeStoreError, tenant: tenant,
			setup: func(h *callback.Handler) { h.Store = failingStore{h.Store} },
			req:   func(h *callback.Handler) *http.Request { return post(phoneHome(h), formCT, goodForm) }},
		{name: "event", rec: &cloudInit, result: callback.OutcomeEvent, event: true, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return post(events(h), "", startEvent) }},
		{name: "late event", rec: &ready, result: callback.OutcomeLateEvent, event: true, tenant: tenant,
			req: func(h *callback.Handler) *http.Request { return post(events(h), "", startEvent) }},
		{name: "event with a bad token", rec: &cloudInit, result: callback.OutcomeBadToken, event: true, tenant: tenant,
			req: func(h *callback.Handler) *http.Request {
				return post(base+"/"+tenant+"?"+callback.EventParam+"=1&token=forged", "", startEvent)
			}},
	}
	reached := map[string]bool{}
	for _, c := range cases {
		reached[c.result] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var b *bundle
			if c.rec != nil {
				b = setup(t, *c.rec)
			} else {
				b = setup(t)
			}
			var got outcomes
			b.h.OnOutcome = got.add
			if c.setup != nil {
				c.setup(b.h)
			}
			type key struct{}
			req := c.req(b.h)
			req = req.WithContext(context.WithValue(req.Context(), key{}, "request"))
			serve(b.h, req)

			got.mu.Lock()
			defer got.mu.Unlock()
			require.Len(t, got.all, 1, "one OnOutcome call per request")
			o := got.all[0]
			assert.Equal(t, c.result, o.Result)
			assert.Equal(t, c.event, o.Event)
			assert.Equal(t, c.tenant, o.Tenant)
			assert.Equal(t, "request", got.ctx[0].Value(key{}), "OnOutcome gets the request's context")
			assert.Contains(t, b.logs.String(), `"outcome":"`+c.result+`"`, "the log says the same")
			if c.result != callback.OutcomeTransitioned {
				assert.Zero(t, o.From)
				assert.Zero(t, o.Waited)
			}
		})
	}
	for _, o := range callback.Outcomes() {
		assert.True(t, reached[o], "no case for outcome %s", o)
	}
}

// TestOnOutcomeTransition checks From and Waited of a transition: the
// status the record left and how long it was in it, by the store's
// UpdatedAt.
func TestOnOutcomeTransition(t *testing.T) {
	t.Parallel()
	for _, from := range []store.Status{store.StatusCloudInit, store.StatusCreating} {
		t.Run(string(from), func(t *testing.T) {
			t.Parallel()
			b := setup(t, store.Record{ID: tenant, Status: from, CallbackNonce: currentNonce})
			entered := b.get(t, tenant).UpdatedAt
			var got outcomes
			b.h.OnOutcome = got.add
			time.Sleep(30 * time.Millisecond)
			w := serve(b.h, request(http.MethodPost, b.h.AttemptURL("http://cp.test/cb", tenant, currentNonce), formCT, goodForm))
			require.Equal(t, http.StatusOK, w.Code)
			rec := b.get(t, tenant)
			got.mu.Lock()
			defer got.mu.Unlock()
			require.Len(t, got.all, 1)
			o := got.all[0]
			assert.Equal(t, callback.OutcomeTransitioned, o.Result)
			assert.Equal(t, from, o.From)
			assert.Equal(t, rec.UpdatedAt.Sub(entered), o.Waited)
			assert.GreaterOrEqual(t, o.Waited, 30*time.Millisecond)
		})
	}
}

// TestOutcomeNoSecret: what OnOutcome gets holds neither the token nor
// anything of the body.
func TestOutcomeNoSecret(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit, CallbackNonce: currentNonce})
	var got outcomes
	b.h.OnOutcome = got.add
	target := b.h.AttemptURL("http://cp.test/cb", tenant, currentNonce)
	serve(b.h, request(http.MethodPost, target, formCT, goodForm))
	got.mu.Lock()
	defer got.mu.Unlock()
	require.Len(t, got.all, 1)
	raw, err := json.Marshal(got.all[0])
	require.NoError(t, err)
	token := target[strings.Index(target, "token=")+len("token="):]
	assert.NotContains(t, string(raw), token)
	assert.NotContains(t, string(raw), norm(pubED25519)[12:40])
	assert.NotContains(t, string(raw), "tenant-a", "nor the posted hostname")
}
