package callback_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
)

// Nonces of two servers of one tenant: the earlier one and the current one.
const (
	earlierNonce = "0123456789abcdef0123456789abcdef"
	currentNonce = "fedcba9876543210fedcba9876543210"
)

// attemptTokenFor computes an attempt-bound token independently of the
// handler: the nonce, a dot, and hex HMAC-SHA256 of the v2 domain, the ID
// and the nonce, NUL-separated.
func attemptTokenFor(key []byte, id, nonce string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hatchery/callback/v2\x00" + id + "\x00" + nonce))
	return nonce + "." + hex.EncodeToString(m.Sum(nil))
}

// countingStore counts the store calls, to show that a forged token is
// refused before the store is touched.
type countingStore struct {
	store.Store
	calls atomic.Int32
}

func (c *countingStore) Get(ctx context.Context, id string) (store.Record, error) {
	c.calls.Add(1)
	return c.Store.Get(ctx, id)
}

func (c *countingStore) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	c.calls.Add(1)
	return c.Store.Update(ctx, id, fn)
}

func TestAttemptURL(t *testing.T) {
	t.Parallel()
	h := &callback.Handler{Key: []byte("0123456789abcdef")}
	// Computed independently with
	//   printf 'hatchery/callback/v2\0%s\0%s' "$id" "$nonce" | openssl dgst -sha256 -hmac 0123456789abcdef
	const mac = "a2f7e584bc61a48a77cbf03370935da4903e659888aae6ed520c52a4fc56c392"
	got := h.AttemptURL("http://127.0.0.1:8080/api/provision/callback/", tenant, currentNonce)
	want := "http://127.0.0.1:8080/api/provision/callback/" + tenant + "?token=" + currentNonce + "." + mac
	assert.Equal(t, want, got)
	assert.Equal(t, currentNonce+"."+mac, attemptTokenFor(h.Key, tenant, currentNonce))
	assert.Equal(t, h.URL("http://x/cb", tenant), h.AttemptURL("http://x/cb", tenant, ""), "no nonce: the per-tenant URL")
	assert.Equal(t, got+"&event=1", h.EventsURL("http://127.0.0.1:8080/api/provision/callback", tenant, currentNonce))
	assert.Equal(t, h.URL("http://x/cb", tenant)+"&event=1", h.EventsURL("http://x/cb", tenant, ""))
	assert.NotContains(t, got, "$", "cloud-init's templater must leave the URL alone")

	seen := map[string]bool{}
	for range 100 {
		n := callback.NewNonce()
		assert.Len(t, n, 32)
		assert.True(t, callback.ValidNonce(n), n)
		assert.Equal(t, strings.ToLower(n), n)
		assert.False(t, seen[n], "NewNonce repeated itself")
		seen[n] = true
	}
	for n, ok := range map[string]bool{
		"a": true, "A-b_9": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a.b": false, "a$b": false, "a b": false, "é": false, "a/b": false,
	} {
		assert.Equal(t, ok, callback.ValidNonce(n), "%q", n)
	}
}

// TestAttemptToken checks the token bound to one server of the tenant: the
// right one moves the record; a forged one is refused before the store is
// touched; a genuine one of an earlier server, or the per-tenant one, is
// refused once the record carries the current server's nonce, with the
// answer of a bad token (401) and nothing changed.
func TestAttemptToken(t *testing.T) {
	t.Parallel()
	withNonce := func(status store.Status) store.Record {
		r := store.Record{ID: tenant, Status: status, ServerID: "43", CallbackNonce: currentNonce}
		if status == store.StatusInjectingSecrets || status == store.StatusReady {
			goodFinal(&r)
			r.Status = status
		}
		return r
	}
	legacy := store.Record{ID: tenant, Status: store.StatusCloudInit, ServerID: "42"}
	v1 := tokenFor(testKey, tenant)
	cases := []struct {
		name    string
		rec     store.Record
		token   string
		code    int
		touched bool   // the store was read
		outcome string // in the log
		moves   bool   // the transition happens
	}{
		{"right", withNonce(store.StatusCloudInit), attemptTokenFor(testKey, tenant, currentNonce), 200, true, "transitioned", true},
		{"right, from creating", withNonce(store.StatusCreating), attemptTokenFor(testKey, tenant, currentNonce), 200, true, "transitioned", true},
		{"right, repeated after the transition", withNonce(store.StatusReady), attemptTokenFor(testKey, tenant, currentNonce), 200, true, "repeat", false},
		{"right, failed tenant", withNonce(store.StatusFailed), attemptTokenFor(testKey, tenant, currentNonce), 409, true, "conflict", false},

		{"earlier server", withNonce(store.StatusCloudInit), attemptTokenFor(testKey, tenant, earlierNonce), 401, true, "stale_token", false},
		{"earlier server after the transition", withNonce(store.StatusInjectingSecrets), attemptTokenFor(testKey, tenant, earlierNonce), 401, true, "stale_token", false},
		{"earlier server, failed tenant", withNonce(store.StatusFailed), attemptTokenFor(testKey, tenant, earlierNonce), 401, true, "stale_token", false},
		{"nonce-less token, record with a nonce", withNonce(store.StatusCloudInit), v1, 401, true, "stale_token", false},
		{"nonce-less token after the transition", withNonce(store.StatusReady), v1, 401, true, "stale_token", false},
		{"token with a nonce, record without", legacy, attemptTokenFor(testKey, tenant, currentNonce), 401, true, "stale_token", false},
		{"nonce-less token, record without: the per-tenant URL still works", legacy, v1, 200, true, "transitioned", true},

		{"forged MAC", withNonce(store.StatusCloudInit), currentNonce + "." + strings.Repeat("0", 64), 401, false, "bad_token", false},
		{"per-tenant MAC under a nonce", withNonce(store.StatusCloudInit), currentNonce + "." + v1, 401, false, "bad_token", false},
		{"MAC under another key", withNonce(store.StatusCloudInit), attemptTokenFor([]byte("another key, 16+"), tenant, currentNonce), 401, false, "bad_token", false},
		{"MAC of another tenant", withNonce(store.StatusCloudInit), attemptTokenFor(testKey, other, currentNonce), 401, false, "bad_token", false},
		{"MAC of another nonce", withNonce(store.StatusCloudInit), currentNonce + "." + strings.SplitN(attemptTokenFor(testKey, tenant, earlierNonce), ".", 2)[1], 401, false, "bad_token", false},
		{"nonce swapped into the MAC", withNonce(store.StatusCloudInit), strings.SplitN(attemptTokenFor(testKey, tenant, currentNonce), ".", 2)[1] + "." + currentNonce, 401, false, "bad_token", false},
		{"nonce not URL-safe", withNonce(store.StatusCloudInit), attemptTokenFor(testKey, tenant, "a$b"), 401, false, "bad_token", false},
		{"nonce too long", withNonce(store.StatusCloudInit), attemptTokenFor(testKey, tenant, strings.Repeat("a", 65)), 401, false, "bad_token", false},
		{"empty nonce", withNonce(store.StatusCloudInit), attemptTokenFor(testKey, tenant, ""), 401, false, "bad_token", false},
		{"uppercase MAC", withNonce(store.StatusCloudInit), strings.ToUpper(attemptTokenFor(testKey, tenant, currentNonce)), 401, false, "bad_token", false},
		{"two dots", withNonce(store.StatusCloudInit), attemptTokenFor(testKey, tenant, currentNonce) + ".x", 401, false, "bad_token", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, c.rec)
			cs := &countingStore{Store: b.st}
			b.h.Store = cs
			before := b.get(t, tenant)

			w := serve(b.h, request(http.MethodPost, "http://cp.test/callback/"+tenant+"?token="+c.token, formCT, goodForm))

			assert.Equal(t, c.code, w.Code, w.Body.String())
			assert.Equal(t, c.touched, cs.calls.Load() > 0, "store touched")
			assert.Contains(t, b.logs.String(), `"outcome":"`+c.outcome+`"`)
			after := b.get(t, tenant)
			if c.moves {
				assert.Equal(t, store.StatusInjectingSecrets, after.Status)
				assert.Equal(t, c.rec.CallbackNonce, after.CallbackNonce, "the nonce stays")
				assert.Equal(t, tenant, b.waitReady(t).ID)
				return
			}
			assert.Equal(t, before, after, "a refused callback changes nothing")
			b.noReady(t)
			if c.code == 401 {
				assert.Equal(t, "missing or invalid token\n", w.Body.String(), "a stale token is answered as a bad one")
			}
			assert.NotContains(t, b.logs.String(), c.token, "the token is never logged")
		})
	}
}

// TestAttemptTokenChecksOrder: a stale token is refused before the source
// address and the instance ID are looked at.
func TestAttemptTokenChecksOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit, ServerID: "43", IPv4: "203.0.113.7", CallbackNonce: currentNonce})
	b.h.CheckSource = true
	b.h.InstanceIDFunc = func(r store.Record) string { return r.ServerID }
	w := serve(b.h, request(http.MethodPost, b.h.AttemptURL("http://cp.test/cb", tenant, earlierNonce), formCT, goodForm))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Contains(t, b.logs.String(), `"outcome":"stale_token"`)
	r := request(http.MethodPost, b.h.AttemptURL("http://cp.test/cb", tenant, currentNonce), formCT, cloudInitForm("tenant-a", "43"))
	r.RemoteAddr = "203.0.113.7:4000"
	require.Equal(t, http.StatusOK, serve(b.h, r).Code)
	assert.Equal(t, tenant, b.waitReady(t).ID)
}
