package callback_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

func TestURL(t *testing.T) {
	t.Parallel()
	h := &callback.Handler{Key: []byte("0123456789abcdef")}
	// HMAC-SHA256 under the key of the domain string, a NUL and the tenant
	// ID, computed independently with
	//   printf 'hatchery/callback/v1\0%s' "$id" | openssl dgst -sha256 -hmac 0123456789abcdef
	const tok = "fffdc7906c68de14b4faf6f48f7de9818a4576512ae27e2acbffb80fb44ad39c"
	// The same without the domain string: what the token must not be.
	//   printf %s "$id" | openssl dgst -sha256 -hmac 0123456789abcdef
	const plain = "cc8b0f88bd2c5326231c307d71b1b4808372e94f1898cb388ed9442e6dde4916"
	want := "http://127.0.0.1:8080/api/provision/callback/" + tenant + "?token=" + tok
	assert.Equal(t, want, h.URL("http://127.0.0.1:8080/api/provision/callback", tenant))
	assert.Equal(t, want, h.URL("http://127.0.0.1:8080/api/provision/callback//", tenant), "trailing slashes ignored")
	assert.Equal(t, "/"+tenant+"?token="+tok, h.URL("", tenant))
	assert.Equal(t, tokenFor(testKey, other), tokenOf(t, (&callback.Handler{Key: testKey}).URL("http://x", other)))

	// A bare HMAC of the ID (the pre-v1 token) is refused.
	b := setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit})
	b.h.Key = []byte("0123456789abcdef")
	require.NotEqual(t, plain, tok)
	w := serve(b.h, request(http.MethodPost, "http://cp.test/cb/"+tenant+"?token="+plain, formCT, goodForm))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	w = serve(b.h, request(http.MethodPost, "http://cp.test/cb/"+tenant+"?token="+tok, formCT, goodForm))
	assert.Equal(t, http.StatusOK, w.Code)
	b.waitReady(t)
}

// tokenFor computes a URL token independently of the handler.
func tokenFor(key []byte, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hatchery/callback/v1\x00" + id))
	return hex.EncodeToString(m.Sum(nil))
}

// tokenOf returns the token parameter of a callback URL.
func tokenOf(t testing.TB, u string) string {
	t.Helper()
	_, tok, ok := strings.Cut(u, "?token=")
	require.True(t, ok, u)
	return tok
}

func TestServeHTTP(t *testing.T) {
	t.Parallel()
	base := func(status store.Status) store.Record {
		return store.Record{ID: tenant, Status: status, ServerID: "42", ServerName: "tenant-a"}
	}
	withIPs := func(status store.Status) store.Record {
		r := base(status)
		r.IPv4, r.IPv6 = "203.0.113.7", "2001:db8:1:2::1"
		return r
	}
	done := func(status store.Status) store.Record { // already phoned home
		r := base(status)
		goodFinal(&r)
		r.Status = status
		return r
	}
	doneIPs := func(status store.Status) store.Record {
		r := withIPs(status)
		goodFinal(&r)
		r.Status = status
		return r
	}
	type tc struct {
		name        string
		rec         *store.Record // nil: no record
		method      string        // default POST
		target      string        // default h.URL for tenant
		contentType string        // default form
		body        string        // default goodForm
		key         []byte        // nil: testKey
		store       func(store.Store) store.Store
		source      bool   // CheckSource
		remote      string // default 192.0.2.1:1234 (httptest)
		xff         string

		code       int
		bodyHas    string
		transition bool // the record must end as goodFinal, with one OnReady
	}
	rec := func(r store.Record) *store.Record { return &r }
	url := func(id, token string) string { return "http://cp.test/callback/" + id + token }
	validTok := "?token=" + tokenFor(testKey, tenant)
	cases := []tc{
		{name: "form from cloud_init", rec: rec(base(store.StatusCloudInit)), code: 200, transition: true},
		{name: "form from creating", rec: rec(base(store.StatusCreating)), code: 200, transition: true},
		{name: "form with charset", rec: rec(base(store.StatusCloudInit)), contentType: formCT + "; charset=utf-8", code: 200, transition: true},
		{name: "no content type is a form", rec: rec(base(store.StatusCloudInit)), contentType: "-", code: 200, transition: true},
		{name: "json", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, code: 200, transition: true,
			body: mustJSON(map[string]any{"pub_key_dsa": "N/A", "pub_key_rsa": pubRSA, "pub_key_ecdsa": pubECDSA,
				"pub_key_ed25519": pubED25519, "instance_id": "12345678", "hostname": "tenant-a", "extra": "ignored"})},
		{name: "json numeric instance id", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, code: 200, transition: true,
			body: `{"pub_key_rsa":` + mustJSON(pubRSA) + `,"pub_key_ecdsa":` + mustJSON(pubECDSA) +
				`,"pub_key_ed25519":` + mustJSON(pubED25519) + `,"instance_id":12345678,"hostname":"tenant-a","fqdn":null}`},
		{name: "DSA field ignored", rec: rec(base(store.StatusCloudInit)), code: 200, transition: true,
			body: strings.Replace(goodForm, "pub_key_dsa=N%2FA", "pub_key_dsa=ssh-dsa+AAAAFAKEDSAKEY+root%40tenant-a%0A", 1)},
		{name: "Debian 12's real DSA key ignored", rec: rec(base(store.StatusCloudInit)), code: 200, transition: true,
			body: strings.Replace(goodForm, "pub_key_dsa=N%2FA", form(field{"pub_key_dsa", bookwormDSA}), 1)},
		{name: "trailing slash", rec: rec(base(store.StatusCloudInit)), target: url(tenant+"/", validTok), code: 200, transition: true},

		{name: "empty key", rec: rec(base(store.StatusCloudInit)), key: []byte{}, code: 500, bodyHas: "not configured"},
		{name: "1-byte key", rec: rec(base(store.StatusCloudInit)), key: []byte("k"), code: 500, bodyHas: "not configured"},
		{name: "15-byte key", rec: rec(base(store.StatusCloudInit)), key: []byte("0123456789abcde"), code: 500, bodyHas: "not configured"},
		{name: "16-byte key", rec: rec(base(store.StatusCloudInit)), key: []byte("0123456789abcdef"), code: 200, transition: true},
		{name: "GET", rec: rec(base(store.StatusCloudInit)), method: "GET", body: "-", code: 405},
		{name: "PUT", rec: rec(base(store.StatusCloudInit)), method: "PUT", code: 405},
		{name: "HEAD", rec: rec(base(store.StatusCloudInit)), method: "HEAD", code: 405},
		{name: "ID not a UUID", target: url("tenant-a", "?token=x"), code: 400},
		{name: "ID uppercase", target: url(strings.ToUpper(tenant), validTok), code: 400},
		{name: "ID missing", target: "http://cp.test/", code: 400},
		{name: "token missing", rec: rec(base(store.StatusCloudInit)), target: url(tenant, ""), code: 401},
		{name: "token empty", rec: rec(base(store.StatusCloudInit)), target: url(tenant, "?token="), code: 401},
		{name: "token wrong", rec: rec(base(store.StatusCloudInit)), target: url(tenant, "?token="+strings.Repeat("0", 64)), code: 401},
		{name: "token of another tenant", rec: rec(base(store.StatusCloudInit)), target: url(tenant, "?token="+tokenFor(testKey, other)), code: 401},
		{name: "token under another key", rec: rec(base(store.StatusCloudInit)), target: url(tenant, "?token="+tokenFor([]byte("other key"), tenant)), code: 401},
		{name: "token given twice, bad first", rec: rec(base(store.StatusCloudInit)), target: url(tenant, "?token=00&token="+tokenFor(testKey, tenant)), code: 401},
		{name: "token uppercase", rec: rec(base(store.StatusCloudInit)), target: url(tenant, strings.ToUpper(validTok)), code: 401},
		{name: "token truncated", rec: rec(base(store.StatusCloudInit)), target: url(tenant, validTok[:len(validTok)-2]), code: 401},
		{name: "body over 64 KiB", rec: rec(base(store.StatusCloudInit)), body: goodForm + "&pad=" + strings.Repeat("a", 64<<10), code: 413},
		{name: "body over 64 KiB chunked", rec: rec(base(store.StatusCloudInit)), body: "chunked:" + goodForm + "&pad=" + strings.Repeat("a", 64<<10), code: 413},
		{name: "body at 64 KiB", rec: rec(base(store.StatusCloudInit)), body: goodForm + "&pad=" + strings.Repeat("a", 64<<10-len(goodForm)-5), code: 200, transition: true},
		{name: "text/plain", rec: rec(base(store.StatusCloudInit)), contentType: "text/plain", code: 415},
		{name: "multipart", rec: rec(base(store.StatusCloudInit)), contentType: "multipart/form-data; boundary=x", code: 415},
		{name: "bad content type", rec: rec(base(store.StatusCloudInit)), contentType: "/;;", code: 415},
		{name: "form bad escape", rec: rec(base(store.StatusCloudInit)), body: goodForm + "&x=%zz", code: 400},
		{name: "form semicolon", rec: rec(base(store.StatusCloudInit)), body: goodForm + ";x=1", code: 400},
		{name: "form field twice", rec: rec(base(store.StatusCloudInit)), body: goodForm + "&hostname=b", code: 400, bodyHas: "hostname"},
		{name: "json not an object", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, body: `["a"]`, code: 400},
		{name: "json null", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, body: `null`, code: 400},
		{name: "json broken", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, body: `{"hostname":`, code: 400},
		{name: "json trailing data", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, body: `{"pub_key_ed25519":` + mustJSON(pubED25519) + `} {}`, code: 400},
		{name: "json field twice", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, code: 400, bodyHas: "hostname",
			body: `{"pub_key_ed25519":` + mustJSON(pubED25519) + `,"hostname":"tenant-a","hostname":"tenant-b"}`},
		{name: "json field twice, once escaped", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, code: 400, bodyHas: "hostname",
			body: `{"pub_key_ed25519":` + mustJSON(pubED25519) + `,"hostname":"tenant-a","host\u006eame":"tenant-b"}`},
		{name: "json key field twice", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, code: 400, bodyHas: "pub_key_ed25519",
			body: `{"pub_key_ed25519":` + mustJSON(pubOther) + `,"pub_key_ed25519":` + mustJSON(pubED25519) + `}`},
		{name: "json trailing bracket", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, body: `{"pub_key_ed25519":` + mustJSON(pubED25519) + `}]`, code: 400},
		{name: "json non-string", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, body: `{"pub_key_ed25519":` + mustJSON(pubED25519) + `,"hostname":["a"]}`, code: 400},
		{name: "json form body", rec: rec(base(store.StatusCloudInit)), contentType: jsonCT, code: 400},
		{name: "form json body", rec: rec(base(store.StatusCloudInit)), body: `{"pub_key_ed25519":` + mustJSON(pubED25519) + `}`, code: 400},
		{name: "hostname not RFC 1123", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", pubED25519}, field{"hostname", "tenant_a"}), code: 400, bodyHas: "hostname"},
		{name: "hostname leading hyphen", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", pubED25519}, field{"hostname", "-a"}), code: 400},
		{name: "hostname with newline inside", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", pubED25519}, field{"hostname", "a\nb"}), code: 400},
		{name: "hostname label too long", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", pubED25519}, field{"hostname", strings.Repeat("a", 64)}), code: 400},
		{name: "fqdn not RFC 1123", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", pubED25519}, field{"fqdn", "a..b"}), code: 400, bodyHas: "fqdn"},
		{name: "instance id with slash", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", pubED25519}, field{"instance_id", "../etc"}), code: 400, bodyHas: "instance_id"},
		{name: "instance id too long", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", pubED25519}, field{"instance_id", strings.Repeat("1", 129)}), code: 400},
		{name: "key not a key", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", "ssh-ed25519 AAAAnotbase64!! x\n"}), code: 400, bodyHas: "pub_key_ed25519"},
		{name: "key of the wrong type", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_rsa", pubED25519}), code: 400, bodyHas: "pub_key_rsa"},
		{name: "DSA key as the RSA key", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_rsa", bookwormDSA}), code: 400, bodyHas: "pub_key_rsa"},
		{name: "DSA key as the only key", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_dsa", bookwormDSA}, field{"instance_id", "12345678"}, field{"hostname", "tenant-a"}), code: 400, bodyHas: "no host key"},
		{name: "key with options", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", `command="sh" ` + pubED25519}), code: 400},
		{name: "two keys in a field", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_ed25519", pubED25519 + pubOther}), code: 400},
		{name: "no keys, all N/A", rec: rec(base(store.StatusCloudInit)), body: form(field{"pub_key_dsa", "N/A"}, field{"pub_key_rsa", "N/A"},
			field{"pub_key_ecdsa", "N/A"}, field{"pub_key_ed25519", "N/A"}, field{"instance_id", "1"}, field{"hostname", "a"}), code: 400, bodyHas: "no host key"},
		{name: "empty POST", rec: rec(base(store.StatusCloudInit)), body: "-", code: 400, bodyHas: "no host key"},

		{name: "unknown tenant", rec: rec(store.Record{ID: other, Status: store.StatusCloudInit}), target: url(tenant, validTok), code: 404},
		{name: "repeat after transition", rec: rec(done(store.StatusInjectingSecrets)), code: 200},
		{name: "repeat when ready", rec: rec(done(store.StatusReady)), code: 200},
		{name: "repeat, keys in another order", rec: rec(done(store.StatusReady)), code: 200,
			body: form(field{"pub_key_ed25519", pubED25519}, field{"pub_key_ecdsa", pubECDSA}, field{"pub_key_rsa", pubRSA},
				field{"hostname", "tenant-a"}, field{"instance_id", "12345678"})},
		{name: "repeat with other host keys", rec: rec(done(store.StatusInjectingSecrets)), code: 409,
			body: form(field{"pub_key_ed25519", pubOther}, field{"hostname", "tenant-a"}, field{"instance_id", "12345678"})},
		{name: "repeat with a key missing", rec: rec(done(store.StatusReady)), code: 409,
			body: form(field{"pub_key_ed25519", pubED25519}, field{"hostname", "tenant-a"}, field{"instance_id", "12345678"})},
		{name: "repeat with another hostname", rec: rec(done(store.StatusInjectingSecrets)), code: 409, body: cloudInitForm("tenant-b", "12345678")},
		{name: "repeat with another instance", rec: rec(done(store.StatusInjectingSecrets)), code: 409, body: cloudInitForm("tenant-a", "87654321")},
		{name: "repeat with another instance when ready", rec: rec(done(store.StatusReady)), code: 409, body: cloudInitForm("tenant-a", "87654321")},
		{name: "repeat without the instance", rec: rec(done(store.StatusReady)), code: 409,
			body: form(field{"pub_key_rsa", pubRSA}, field{"pub_key_ecdsa", pubECDSA}, field{"pub_key_ed25519", pubED25519}, field{"hostname", "tenant-a"})},
		{name: "failed", rec: rec(base(store.StatusFailed)), code: 409},
		{name: "deleted", rec: rec(base(store.StatusDeleted)), code: 409},
		{name: "pending", rec: rec(base(store.StatusPending)), code: 409},
		{name: "store failure", rec: rec(base(store.StatusCloudInit)), code: 500, bodyHas: "internal error",
			store: func(s store.Store) store.Store { return failingStore{s} }},
		{name: "store stuck", rec: rec(base(store.StatusCloudInit)), code: 500, bodyHas: "internal error",
			store: func(s store.Store) store.Store { return stuckStore{s} }},

		{name: "source unchecked by default", rec: rec(withIPs(store.StatusCloudInit)), code: 200, transition: true},
		{name: "source matches IPv4", rec: rec(withIPs(store.StatusCloudInit)), source: true, remote: "203.0.113.7:40000", code: 200, transition: true},
		{name: "source matches IPv4-mapped", rec: rec(withIPs(store.StatusCloudInit)), source: true, remote: "[::ffff:203.0.113.7]:40000", code: 200, transition: true},
		{name: "source in the IPv6 /64", rec: rec(withIPs(store.StatusCloudInit)), source: true, remote: "[2001:db8:1:2::abcd]:40000", code: 200, transition: true},
		{name: "source outside the IPv6 /64", rec: rec(withIPs(store.StatusCloudInit)), source: true, remote: "[2001:db8:1:3::1]:40000", code: 403},
		{name: "source elsewhere", rec: rec(withIPs(store.StatusCloudInit)), source: true, code: 403},
		{name: "source unknown yet", rec: rec(base(store.StatusCreating)), source: true, code: 200, transition: true},
		{name: "source spoofed XFF from untrusted peer", rec: rec(withIPs(store.StatusCloudInit)), source: true, xff: "203.0.113.7", code: 403},
		{name: "source via trusted proxy", rec: rec(withIPs(store.StatusCloudInit)), source: true, remote: "10.0.0.5:5555", xff: "198.51.100.9, 203.0.113.7, 10.0.0.4", code: 200, transition: true},
		{name: "source via trusted proxy, spoofed left hop", rec: rec(withIPs(store.StatusCloudInit)), source: true, remote: "10.0.0.5:5555", xff: "203.0.113.7, 198.51.100.9", code: 403},
		{name: "source via trusted proxy, garbage hop", rec: rec(withIPs(store.StatusCloudInit)), source: true, remote: "10.0.0.5:5555", xff: "nonsense", code: 403},
		{name: "source repeat from elsewhere", rec: rec(doneIPs(store.StatusReady)), source: true, code: 403},
		{name: "source repeat from the server", rec: rec(doneIPs(store.StatusReady)), source: true, remote: "203.0.113.7:1", code: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var b *bundle
			if c.rec != nil {
				b = setup(t, *c.rec)
			} else {
				b = setup(t)
			}
			if c.key != nil {
				b.h.Key = c.key
			}
			if c.store != nil {
				b.h.Store = c.store(b.st)
			}
			b.h.StoreTimeout = 5 * time.Second // a stuck store answers 500 after this
			if c.name == "store stuck" {
				b.h.StoreTimeout = 20 * time.Millisecond
			}
			b.h.CheckSource = c.source
			b.h.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			method, target, ct, body := c.method, c.target, c.contentType, c.body
			if method == "" {
				method = http.MethodPost
			}
			if target == "" {
				target = b.h.URL("http://cp.test/api/provision/callback", tenant)
			}
			switch ct {
			case "":
				ct = formCT
			case "-":
				ct = ""
			}
			switch body {
			case "":
				body = goodForm
			case "-":
				body = ""
			}
			r := request(method, target, ct, body)
			if b, ok := strings.CutPrefix(body, "chunked:"); ok {
				r = request(method, target, ct, "")
				r.Body, r.ContentLength = http.NoBody, -1
				r.Body = readCloser{chunked{strings.NewReader(b)}}
			}
			if c.remote != "" {
				r.RemoteAddr = c.remote
			}
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			var before store.Record
			if c.rec != nil {
				before = b.get(t, c.rec.ID)
			}

			w := serve(b.h, r)

			assert.Equal(t, c.code, w.Code, "body: %s", w.Body.String())
			if c.bodyHas != "" {
				assert.Contains(t, w.Body.String(), c.bodyHas)
			}
			if c.code == http.StatusMethodNotAllowed {
				assert.Equal(t, "POST", w.Header().Get("Allow"))
			}
			assert.NotContains(t, w.Body.String(), "disk on fire", "store errors stay in the log")
			if c.rec == nil {
				return
			}
			after := b.get(t, c.rec.ID)
			if c.transition {
				want := before
				goodFinal(&want)
				want.UpdatedAt = after.UpdatedAt
				assert.Equal(t, want, after)
				got := b.waitReady(t)
				assert.Equal(t, after, got, "OnReady gets the record as written")
			} else {
				assert.Equal(t, before, after, "a refused or repeated callback changes nothing")
				b.noReady(t)
			}
			logs := b.logs.String()
			assert.NotContains(t, logs, tokenFor(b.h.Key, tenant), "token logged")
			if c.code != 500 || len(b.h.Key) >= callback.MinKeySize {
				assert.Contains(t, logs, `"tenant":"`+tenant+`"`)
			}
		})
	}
}

type readCloser struct{ chunked }

func (readCloser) Close() error { return nil }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestInstanceID checks the instance ID a callback may post before the
// transition: the one already on the record, if any, else the one
// InstanceIDFunc gives for a record with a ServerID.
func TestInstanceID(t *testing.T) {
	t.Parallel()
	hetzner := func(r store.Record) string { return r.ServerID } // the numeric server ID
	fake := func(r store.Record) string { return "i-" + r.ServerID }
	cases := []struct {
		name     string
		status   store.Status
		serverID string
		recorded string // InstanceID already on the record
		fn       func(store.Record) string
		posted   string // "-": not posted

		code   int
		expect string // expected_instance_id in the warning
	}{
		{name: "no func, any instance", status: store.StatusCloudInit, serverID: "42", posted: "99", code: 200},
		{name: "hetzner match", status: store.StatusCloudInit, serverID: "12345678", fn: hetzner, posted: "12345678", code: 200},
		{name: "hetzner match from creating", status: store.StatusCreating, serverID: "12345678", fn: hetzner, posted: "12345678", code: 200},
		{name: "hetzner mismatch", status: store.StatusCloudInit, serverID: "42", fn: hetzner, posted: "12345678", code: 409, expect: "42"},
		{name: "hetzner mismatch from creating", status: store.StatusCreating, serverID: "42", fn: hetzner, posted: "43", code: 409, expect: "42"},
		{name: "hetzner, instance_id not posted", status: store.StatusCloudInit, serverID: "42", fn: hetzner, posted: "-", code: 409, expect: "42"},
		{name: "fake match", status: store.StatusCloudInit, serverID: "7", fn: fake, posted: "i-7", code: 200},
		{name: "fake given the bare server ID", status: store.StatusCloudInit, serverID: "7", fn: fake, posted: "7", code: 409, expect: "i-7"},
		{name: "no server ID yet: not checked", status: store.StatusCreating, fn: fake, posted: "i-999", code: 200},
		{name: "func cannot tell", status: store.StatusCloudInit, serverID: "42", fn: func(store.Record) string { return "" }, posted: "99", code: 200},
		{name: "recorded instance, same", status: store.StatusCloudInit, serverID: "42", recorded: "42", posted: "42", code: 200},
		{name: "recorded instance, other", status: store.StatusCloudInit, serverID: "42", recorded: "42", posted: "43", code: 409, expect: "42"},
		{name: "recorded instance, not posted", status: store.StatusCreating, recorded: "42", posted: "-", code: 409, expect: "42"},
		{name: "recorded instance wins over func", status: store.StatusCloudInit, serverID: "42", recorded: "i-42", fn: hetzner, posted: "i-42", code: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, store.Record{ID: tenant, Status: c.status, ServerID: c.serverID, InstanceID: c.recorded})
			var calls []store.Record
			if c.fn != nil {
				b.h.InstanceIDFunc = func(r store.Record) string { calls = append(calls, r); return c.fn(r) }
			}
			fields := []field{{"pub_key_ed25519", pubED25519}, {"hostname", "tenant-a"}}
			if c.posted != "-" {
				fields = append(fields, field{"instance_id", c.posted})
			}
			before := b.get(t, tenant)

			w := b.post(t, tenant, formCT, form(fields...))

			require.Equal(t, c.code, w.Code, w.Body.String())
			after := b.get(t, tenant)
			if c.code == 200 {
				assert.Equal(t, store.StatusInjectingSecrets, after.Status)
				assert.Equal(t, c.posted, after.InstanceID)
				assert.Equal(t, tenant, b.waitReady(t).ID)
			} else {
				assert.Equal(t, before, after, "a refused callback changes nothing")
				b.noReady(t)
				logs := b.logs.String()
				assert.Contains(t, logs, `"level":"WARN"`)
				assert.Contains(t, logs, `"outcome":"wrong_instance"`)
				assert.Contains(t, logs, `"expected_instance_id":"`+c.expect+`"`)
			}
			for _, r := range calls {
				assert.Equal(t, c.serverID, r.ServerID, "InstanceIDFunc gets the stored record")
				assert.NotEmpty(t, r.ServerID, "InstanceIDFunc is only called with a ServerID")
			}
			if c.fn != nil && c.serverID != "" && c.recorded == "" {
				assert.NotEmpty(t, calls, "InstanceIDFunc consulted")
			}
		})
	}
}

// TestLogs checks the structured log: tenant, hostname, outcome on every
// line, a warning for a replay, one line for an empty Key however many
// requests, and never the token.
func TestLogs(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit})
	require.Equal(t, 200, b.post(t, tenant, formCT, goodForm).Code)
	b.waitReady(t)
	require.Equal(t, 200, b.post(t, tenant, formCT, goodForm).Code)
	require.Equal(t, 409, b.post(t, tenant, formCT, cloudInitForm("tenant-a", "999")).Code)

	type line struct {
		Level, Msg, Tenant, Hostname, Outcome string
	}
	var lines []line
	for _, l := range strings.Split(strings.TrimSpace(b.logs.String()), "\n") {
		var v line
		require.NoError(t, json.Unmarshal([]byte(l), &v), l)
		lines = append(lines, v)
	}
	require.Len(t, lines, 3)
	assert.Equal(t, line{"INFO", "phone_home accepted", tenant, "tenant-a", "transitioned"}, lines[0])
	assert.Equal(t, line{"INFO", "phone_home repeated", tenant, "tenant-a", "repeat"}, lines[1])
	assert.Equal(t, "WARN", lines[2].Level)
	assert.Equal(t, "different_data", lines[2].Outcome)
	assert.Contains(t, b.logs.String(), `"differs":"instance ID"`)
	assert.NotContains(t, b.logs.String(), tokenFor(testKey, tenant))

	// Empty key: every request 500, one log line.
	nb := setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit})
	nb.h.Key = nil
	for range 5 {
		assert.Equal(t, 500, nb.post(t, tenant, formCT, goodForm).Code)
	}
	assert.Equal(t, 1, strings.Count(nb.logs.String(), "\n"), nb.logs.String())
	assert.Contains(t, nb.logs.String(), "Handler.Key is empty")
	assert.Equal(t, store.StatusCloudInit, nb.get(t, tenant).Status)

	// A key under MinKeySize: the same, and the line says why.
	kb := setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit})
	kb.h.Key = []byte("0123456789abcde")
	for range 5 {
		assert.Equal(t, 500, kb.post(t, tenant, formCT, goodForm).Code)
	}
	assert.Equal(t, 1, strings.Count(kb.logs.String(), "\n"), kb.logs.String())
	assert.Contains(t, kb.logs.String(), `"level":"ERROR"`)
	assert.Contains(t, kb.logs.String(), "Handler.Key is 15 bytes, want at least 16")
	assert.NotContains(t, kb.logs.String(), "0123456789abcde", "the key is never logged")
	assert.Equal(t, store.StatusCloudInit, kb.get(t, tenant).Status)
	kb.noReady(t)

	// A nil Store: the same.
	sb := setup(t)
	sb.h.Store = nil
	for range 3 {
		assert.Equal(t, 500, sb.post(t, tenant, formCT, goodForm).Code)
	}
	assert.Equal(t, 1, strings.Count(sb.logs.String(), "\n"), sb.logs.String())
	assert.Contains(t, sb.logs.String(), "Handler.Store is nil")

	// A nil Logger is quiet and works.
	qb := setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit})
	qb.h.Logger = nil
	assert.Equal(t, 200, qb.post(t, tenant, formCT, goodForm).Code)
	qb.waitReady(t)
	assert.Empty(t, qb.logs.String())
}

// TestOnReady checks that OnReady runs after the answer, on its own
// goroutine, with a context that outlives the request, and that the
// handler does not wait for it.
func TestOnReady(t *testing.T) {
	t.Parallel()
	st := memory.New()
	require.NoError(t, st.Create(context.Background(), store.Record{ID: tenant, Status: store.StatusCloudInit}))
	release := make(chan struct{})
	result := make(chan error, 1)
	h := &callback.Handler{Store: st, Key: testKey, OnReady: func(ctx context.Context, r store.Record) {
		<-release
		if r.Status != store.StatusInjectingSecrets {
			result <- assert.AnError
			return
		}
		result <- ctx.Err()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	r := request(http.MethodPost, h.URL("http://cp.test/cb", tenant), formCT, goodForm).WithContext(ctx)
	w := httptest.NewRecorder()
	returned := make(chan struct{})
	go func() { h.ServeHTTP(w, r); close(returned) }()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("ServeHTTP waits for OnReady")
	}
	assert.Equal(t, 200, w.Code)
	cancel() // the request is over
	close(release)
	select {
	case err := <-result:
		assert.NoError(t, err, "OnReady's context must not end with the request")
	case <-time.After(10 * time.Second):
		t.Fatal("OnReady not called")
	}
}

// TestOnReadyPanic checks that a panicking OnReady does not take the
// process down: the answer stays 200, the panic is logged with the tenant
// and the value's type but not the value, and the handler keeps working.
func TestOnReadyPanic(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-from-the-vault"
	b := setup(t,
		store.Record{ID: tenant, Status: store.StatusCloudInit},
		store.Record{ID: other, Status: store.StatusCloudInit})
	b.h.OnReady = func(_ context.Context, r store.Record) {
		if r.ID == tenant {
			panic(errors.New("injecting " + secret))
		}
		b.ready <- r
	}
	assert.Equal(t, 200, b.post(t, tenant, formCT, goodForm).Code)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.h.Wait(ctx), "a panicked OnReady counts as returned")

	type line struct {
		Level, Msg, Tenant, Outcome string
		PanicType                   string `json:"panic_type"`
		Site                        string
	}
	var got []line
	for _, l := range strings.Split(strings.TrimSpace(b.logs.String()), "\n") {
		var v line
		require.NoError(t, json.Unmarshal([]byte(l), &v), l)
		if v.Msg == "OnReady panicked" {
			got = append(got, v)
		}
	}
	require.Len(t, got, 1, b.logs.String())
	assert.Equal(t, "ERROR", got[0].Level)
	assert.Equal(t, tenant, got[0].Tenant)
	assert.Equal(t, "on_ready_panicked", got[0].Outcome)
	assert.Equal(t, "*errors.errorString", got[0].PanicType)
	assert.Contains(t, got[0].Site, "TestOnReadyPanic.func1 (handler_test.go:")
	assert.NotContains(t, b.logs.String(), secret, "the panic value is never logged")
	assert.Equal(t, store.StatusInjectingSecrets, b.get(t, tenant).Status)

	// A runtime panic (nil map write) is recovered the same way.
	b.h.OnReady = func(_ context.Context, r store.Record) {
		counts := map[string]map[string]int{}
		counts[r.ID][secret]++ // the inner map is nil
	}
	assert.Equal(t, 200, b.post(t, other, formCT, goodForm).Code)
	require.NoError(t, b.h.Wait(ctx))
	assert.Contains(t, b.logs.String(), `"panic_type":"runtime.`)
	assert.NotContains(t, b.logs.String(), secret)

	// The handler still works, and repeats stay repeats.
	assert.Equal(t, 200, b.post(t, tenant, formCT, goodForm).Code)
	b.noReady(t)
}

// TestWait checks that Wait returns at once with nothing running, waits
// for the OnReady calls in flight, and gives up when its context ends.
func TestWait(t *testing.T) {
	t.Parallel()
	b := setup(t,
		store.Record{ID: tenant, Status: store.StatusCloudInit},
		store.Record{ID: other, Status: store.StatusCloudInit})
	require.NoError(t, b.h.Wait(context.Background()), "nothing running")

	release := make(chan struct{})
	started := make(chan string, 2)
	b.h.OnReady = func(_ context.Context, r store.Record) {
		started <- r.ID
		<-release
	}
	require.Equal(t, 200, b.post(t, tenant, formCT, goodForm).Code)
	require.Equal(t, 200, b.post(t, other, formCT, goodForm).Code)
	for range 2 {
		<-started
	}

	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, b.h.Wait(short), context.DeadlineExceeded)

	waited := make(chan error, 1)
	go func() { waited <- b.h.Wait(context.Background()) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v with OnReady still running", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-waited:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after OnReady did")
	}
	require.NoError(t, b.h.Wait(context.Background()), "idle again")
}

// TestConcurrent sends 100 identical callbacks at once: all 2xx, one
// transition, one OnReady.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		testConcurrent(t, setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit}))
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hatchery.db"))
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		require.NoError(t, st.Create(context.Background(), store.Record{ID: tenant, Status: store.StatusCloudInit}))
		b := setup(t)
		b.h.Store = st
		testConcurrent(t, b)
		r, err := st.Get(context.Background(), tenant)
		require.NoError(t, err)
		assert.Equal(t, goodKeys, r.HostKeys)
	})
}

func testConcurrent(t *testing.T, b *bundle) {
	srv := httptest.NewServer(b.h)
	t.Cleanup(srv.Close)
	u := b.h.URL(srv.URL+"/cb", tenant)
	const n = 100
	start := make(chan struct{})
	codes := make(chan int, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			<-start
			resp, err := srv.Client().Post(u, formCT, strings.NewReader(goodForm))
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	close(start)
	for range n {
		select {
		case err := <-errs:
			t.Fatal(err)
		case code := <-codes:
			assert.Equal(t, 200, code)
		}
	}
	b.waitReady(t)
	b.noReady(t)
	assert.Equal(t, 1, strings.Count(b.logs.String(), `"outcome":"transitioned"`))
	assert.Equal(t, n-1, strings.Count(b.logs.String(), `"outcome":"repeat"`))
	r, err := b.h.Store.Get(context.Background(), tenant)
	require.NoError(t, err)
	assert.Equal(t, store.StatusInjectingSecrets, r.Status)
}
