package callback_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// Token modes of FuzzHandler.
const (
	tokNone   = iota // no token parameter
	tokJunk          // the fuzzed bytes as the token
	tokPath          // a valid token for whatever ID the path ends in
	tokTenant        // a valid token for tenant, whatever the path
)

// FuzzHandler throws bodies, content types and paths at the handler: it
// must never panic, answer only with the documented codes, and never change
// a record unless the request carried that record's valid token.
func FuzzHandler(f *testing.F) {
	p := "/api/provision/callback/" + tenant
	f.Add(p, formCT, []byte(goodForm), uint8(tokTenant), "")
	f.Add(p, formCT, []byte(goodForm), uint8(tokNone), "")
	f.Add(p, formCT, []byte(goodForm), uint8(tokJunk), strings.Repeat("0", 64))
	f.Add(p+"/", formCT+"; charset=utf-8", []byte(goodForm), uint8(tokPath), "")
	f.Add(p, jsonCT, []byte(mustJSON(map[string]string{"pub_key_ed25519": pubED25519, "hostname": "a"})), uint8(tokTenant), "")
	f.Add(p, jsonCT, []byte(`{"pub_key_ed25519":1}`), uint8(tokTenant), "")
	f.Add(p, jsonCT, []byte(`{`), uint8(tokTenant), "")
	f.Add(p, "", []byte(""), uint8(tokTenant), "")
	f.Add(p, "text/plain", []byte("hello"), uint8(tokTenant), "")
	f.Add(p, formCT, []byte("pub_key_rsa="+pubED25519), uint8(tokTenant), "")
	f.Add(p, formCT, []byte("pub_key_ed25519=%zz"), uint8(tokTenant), "")
	f.Add(p, formCT, []byte(form(field{"pub_key_ecdsa", pubECDSA3}, field{"hostname", "x-"})), uint8(tokTenant), "")
	f.Add("/"+other, formCT, []byte(goodForm), uint8(tokPath), "")
	f.Add("/"+strings.ToUpper(tenant), formCT, []byte(goodForm), uint8(tokPath), "")
	f.Add("", formCT, []byte(goodForm), uint8(tokPath), "")
	f.Add("/../"+tenant+"/..", formCT, []byte(goodForm), uint8(tokPath), "")
	f.Add("/x/"+tenant+"\x00", formCT, []byte(goodForm), uint8(tokTenant), "")

	f.Fuzz(func(t *testing.T, path, contentType string, body []byte, mode uint8, junk string) {
		st := memory.New()
		ctx := context.Background()
		for _, id := range []string{tenant, other} {
			if err := st.Create(ctx, store.Record{ID: id, Status: store.StatusCloudInit}); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := st.List(ctx)
		h := &callback.Handler{Store: st, Key: testKey}

		seg := strings.TrimSuffix(path, "/")
		seg = seg[strings.LastIndexByte(seg, '/')+1:]
		r := httptest.NewRequest(http.MethodPost, "http://cp.test/", bytes.NewReader(body))
		r.URL.Path = path
		switch mode % 4 {
		case tokJunk:
			r.URL.RawQuery = "token=" + junk
		case tokPath:
			r.URL.RawQuery = "token=" + tokenFor(testKey, seg)
		case tokTenant:
			r.URL.RawQuery = "token=" + tokenFor(testKey, tenant)
		}
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
		after, _ := st.List(ctx)
		authorized := store.ValidID(seg) && r.URL.Query().Get("token") == tokenFor(testKey, seg)
		for i := range after {
			changed := after[i].Status != before[i].Status
			if changed && (!authorized || seg != after[i].ID) {
				t.Fatalf("record %s moved to %s without its token (path %q, mode %d)", after[i].ID, after[i].Status, path, mode%4)
			}
			if changed != (w.Code == 200 && seg == after[i].ID) {
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
		if !authorized {
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
