package callback_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// Token modes of FuzzHandler.
const (
	tokNone    = iota // no token parameter
	tokJunk           // the fuzzed string as the token
	tokPath           // a valid per-tenant token for whatever ID the path ends in
	tokTenant         // a valid per-tenant token for tenant, whatever the path
	tokAttempt        // a valid token for the path's ID bound to the fuzzed string as nonce
	tokModes
)

// fuzzNonce is the CallbackNonce of FuzzHandler's second record.
const fuzzNonce = "n0nce"

// FuzzHandler throws bodies, content types, paths and tokens at the
// handler, as phone_home or as boot event: it must never panic, answer
// only with the documented codes, never change a record unless the
// request carried a token valid for that record's current server, and
// never change one on an event.
func FuzzHandler(f *testing.F) {
	p := "/api/provision/callback/" + tenant
	po := "/api/provision/callback/" + other
	f.Add(p, formCT, []byte(goodForm), uint8(tokTenant), "", false)
	f.Add(p, formCT, []byte(goodForm), uint8(tokNone), "", false)
	f.Add(p, formCT, []byte(goodForm), uint8(tokJunk), strings.Repeat("0", 64), false)
	f.Add(p+"/", formCT+"; charset=utf-8", []byte(goodForm), uint8(tokPath), "", false)
	f.Add(p, jsonCT, []byte(mustJSON(map[string]string{"pub_key_ed25519": pubED25519, "hostname": "a"})), uint8(tokTenant), "", false)
	f.Add(p, jsonCT, []byte(`{"pub_key_ed25519":1}`), uint8(tokTenant), "", false)
	f.Add(p, jsonCT, []byte(`{`), uint8(tokTenant), "", false)
	f.Add(p, "", []byte(""), uint8(tokTenant), "", false)
	f.Add(p, "text/plain", []byte("hello"), uint8(tokTenant), "", false)
	f.Add(p, formCT, []byte("pub_key_rsa="+pubED25519), uint8(tokTenant), "", false)
	f.Add(p, formCT, []byte("pub_key_ed25519=%zz"), uint8(tokTenant), "", false)
	f.Add(p, formCT, []byte(form(field{"pub_key_ecdsa", pubECDSA3}, field{"hostname", "x-"})), uint8(tokTenant), "", false)
	f.Add("/"+other, formCT, []byte(goodForm), uint8(tokPath), "", false)
	f.Add("/"+strings.ToUpper(tenant), formCT, []byte(goodForm), uint8(tokPath), "", false)
	f.Add("", formCT, []byte(goodForm), uint8(tokPath), "", false)
	f.Add("/../"+tenant+"/..", formCT, []byte(goodForm), uint8(tokPath), "", false)
	f.Add("/x/"+tenant+"\x00", formCT, []byte(goodForm), uint8(tokTenant), "", false)
	f.Add(po, formCT, []byte(goodForm), uint8(tokAttempt), fuzzNonce, false)
	f.Add(po, formCT, []byte(goodForm), uint8(tokAttempt), "earlier", false)
	f.Add(po, formCT, []byte(goodForm), uint8(tokPath), "", false)
	f.Add(p, formCT, []byte(goodForm), uint8(tokAttempt), fuzzNonce, false)
	f.Add(po, "", []byte(startEvent), uint8(tokAttempt), fuzzNonce, true)
	f.Add(p, "", []byte(finishEvent), uint8(tokPath), "", true)
	f.Add(p, jsonCT, []byte(`{"name":"a","name":"b"}`), uint8(tokPath), "", true)
	f.Add(p, "", []byte(goodForm), uint8(tokPath), "", true)

	f.Fuzz(func(t *testing.T, path, contentType string, body []byte, mode uint8, junk string, event bool) {
		st := memory.New()
		ctx := context.Background()
		nonces := map[string]string{tenant: "", other: fuzzNonce}
		for id, n := range nonces {
			if err := st.Create(ctx, store.Record{ID: id, Status: store.StatusCloudInit, CallbackNonce: n}); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := st.List(ctx)
		events := 0
		h := &callback.Handler{Store: st, Key: testKey,
			OnEvent: func(context.Context, store.Record, callback.BootEvent) { events++ }}

		seg := strings.TrimSuffix(path, "/")
		seg = seg[strings.LastIndexByte(seg, '/')+1:]
		r := httptest.NewRequest(http.MethodPost, "http://cp.test/", bytes.NewReader(body))
		r.URL.Path = path
		q := url.Values{}
		switch mode % tokModes {
		case tokJunk:
			q.Set("token", junk)
		case tokPath:
			q.Set("token", tokenFor(testKey, seg))
		case tokTenant:
			q.Set("token", tokenFor(testKey, tenant))
		case tokAttempt:
			q.Set("token", attemptTokenFor(testKey, seg, junk))
		}
		if event {
			q.Set("event", "1")
		}
		r.URL.RawQuery = q.Encode()
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		switch w.Code {
		case 200, 400, 401, 404, 409, 413, 415:
		default:
			t.Fatalf("undocumented answer %d: %s", w.Code, w.Body)
		}
		// Authorized: a genuine token for the path's ID, bound to the
		// record's current nonce ("" for a per-tenant token).
		tok := r.URL.Query().Get("token")
		valid, nonce := false, ""
		if tok == tokenFor(testKey, seg) {
			valid = true
		} else if n, _, ok := strings.Cut(tok, "."); ok && callback.ValidNonce(n) && tok == attemptTokenFor(testKey, seg, n) {
			valid, nonce = true, n
		}
		want, known := nonces[seg]
		authorized := store.ValidID(seg) && valid && (!known || nonce == want)
		after, _ := st.List(ctx)
		for i := range after {
			changed := after[i].Status != before[i].Status
			if changed && (event || !authorized || seg != after[i].ID) {
				t.Fatalf("record %s moved to %s (event %v, authorized %v, path %q, mode %d)", after[i].ID, after[i].Status, event, authorized, path, mode%tokModes)
			}
			if changed != (!event && w.Code == 200 && seg == after[i].ID) {
				t.Fatalf("record %s: changed=%v but answer %d", after[i].ID, changed, w.Code)
			}
			if changed {
				if len(after[i].HostKeys) == 0 {
					t.Fatal("transition without a host key")
				}
				for _, k := range after[i].HostKeys {
					if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil || len(rest) > 0 || strings.Count(k, " ") != 1 {
						t.Fatalf("recorded host key %q is not a normalized key", k)
					}
				}
			}
		}
		if events > 0 && (!event || !authorized || w.Code != 200) {
			t.Fatalf("OnEvent called (event %v, authorized %v, answer %d)", event, authorized, w.Code)
		}
		if !authorized && w.Code == 200 {
			t.Fatalf("answer 200 without a token valid for the record's server")
		}
		if !valid {
			want := http.StatusUnauthorized
			if !store.ValidID(seg) {
				want = http.StatusBadRequest
			}
			if w.Code != want {
				t.Fatalf("answer %d without a valid token, want %d", w.Code, want)
			}
		}
	})
}
