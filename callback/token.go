package callback

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Domain strings of the HMAC input, so that a token is never also a valid
// MAC for another use of the same key, and the attempt-bound form (v2) and
// the per-tenant one (v1) never stand for each other.
const (
	tokenDomain   = "hatchery/callback/v1\x00" // + id
	attemptDomain = "hatchery/callback/v2\x00" // + id + "\x00" + nonce
)

// MaxNonceSize is the longest CallbackNonce a token may carry, in bytes.
const MaxNonceSize = 64

// NewNonce returns a fresh CallbackNonce for a record: 128 random bits as
// 32 lowercase hex digits. Give every server created for a tenant its own,
// stored in store.Record.CallbackNonce before the server's user-data is
// rendered with [Handler.AttemptURL].
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b[:])
}

// ValidNonce reports whether nonce can be bound into a token: 1 to
// MaxNonceSize letters, digits, '-' or '_' (URL-safe, no '$' for
// cloud-init's templater to expand, no '.' which separates it from the
// MAC). A record whose CallbackNonce is not valid refuses every token.
func ValidNonce(nonce string) bool {
	if len(nonce) == 0 || len(nonce) > MaxNonceSize {
		return false
	}
	for i := 0; i < len(nonce); i++ {
		if c := nonce[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// URL returns the phone_home URL for tenant id: base (the URL the handler
// is mounted at, e.g. "https://cp.example.com/api/provision/callback",
// trailing slashes ignored), then "/" + id, then "?token=" and the
// lowercase hex HMAC-SHA256 under Key of "hatchery/callback/v1", a NUL
// byte and id. The URL contains no "$", so cloud-init's template
// substitution leaves it alone. It is only as useful as Key: with a Key
// shorter than MinKeySize the handler refuses every request.
//
// This token is per tenant: it is accepted only for a record without a
// CallbackNonce. For a record with one, use [Handler.AttemptURL].
func (h *Handler) URL(base, id string) string {
	return strings.TrimRight(base, "/") + "/" + id + "?token=" + h.token(id)
}

// AttemptURL returns the phone_home URL for the server of tenant id whose
// record carries CallbackNonce nonce: like URL, but the token is the nonce,
// a dot, and the lowercase hex HMAC-SHA256 under Key of
// "hatchery/callback/v2", a NUL byte, id, a NUL byte and the nonce. The
// handler accepts it only while the record's CallbackNonce is that nonce,
// so the token of an earlier server of the tenant is refused once the
// record carries the next server's nonce. An empty nonce gives URL's
// per-tenant token. A nonce that is not ValidNonce gives a URL that is
// always refused.
//
// The same URL with [EventParam] added (see [Handler.EventsURL]) is the
// endpoint of cloud-init's reporting webhook.
func (h *Handler) AttemptURL(base, id, nonce string) string {
	if nonce == "" {
		return h.URL(base, id)
	}
	return strings.TrimRight(base, "/") + "/" + id + "?token=" + nonce + "." + h.attemptMAC(id, nonce)
}

// EventsURL returns the endpoint for cloud-init's reporting webhook of the
// server of tenant id with CallbackNonce nonce: AttemptURL with
// "&event=1" added, so that the handler mounted at base reads the POST as
// a boot event (see [Handler.OnEvent]).
func (h *Handler) EventsURL(base, id, nonce string) string {
	return h.AttemptURL(base, id, nonce) + "&" + EventParam + "=1"
}

func (h *Handler) token(id string) string {
	m := hmac.New(sha256.New, h.Key)
	m.Write([]byte(tokenDomain))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

func (h *Handler) attemptMAC(id, nonce string) string {
	m := hmac.New(sha256.New, h.Key)
	m.Write([]byte(attemptDomain))
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(nonce))
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks a token for tenant id, in constant time for a MAC of the
// right length, and returns the nonce it is bound to ("" for a per-tenant
// token). It does not look at the record: whether the nonce is the
// record's current one is checked once the record is read.
func (h *Handler) verify(id, tok string) (nonce string, ok bool) {
	nonce, mac, bound := strings.Cut(tok, ".")
	if !bound {
		return "", hmac.Equal([]byte(tok), []byte(h.token(id)))
	}
	if !ValidNonce(nonce) {
		return "", false
	}
	return nonce, hmac.Equal([]byte(mac), []byte(h.attemptMAC(id, nonce)))
}
