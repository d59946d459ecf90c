// Package callback implements the HTTP endpoint that cloud-init's
// phone_home module calls when a tenant's server has finished booting:
// [Handler] authenticates the call, validates what the server reports
// (host name, instance ID, SSH host keys) and moves the tenant from
// cloud_init to injecting_secrets in the [store.Store], exactly once.
//
// # Mounting
//
// Handler is an http.Handler and makes no assumption about the router. The
// tenant ID comes from [Handler.IDFunc] or, when it is nil, from the last
// segment of the URL path, so all of these work:
//
//	mux.Handle("POST /api/provision/callback/{id}", &callback.Handler{
//		Store: st, Key: key,
//		IDFunc: func(r *http.Request) string { return r.PathValue("id") },
//	})
//	mux.Handle("/api/provision/callback/", http.StripPrefix("/api/provision/callback", h))
//	r.Post("/api/provision/callback/{id}", h.ServeHTTP) // chi, with IDFunc = chi.URLParam(r, "id")
//
// [Handler.URL] builds the phone_home URL to put into the server's
// cloud-config: the mounted prefix, the tenant ID, and a token.
//
// # Authentication
//
// The token is the lowercase hex HMAC-SHA256, under [Handler.Key], of the
// domain string "hatchery/callback/v1", a NUL byte and the tenant ID:
//
//	token = hex(HMAC-SHA256(Key, "hatchery/callback/v1\x00" + id))
//
// passed as the "token" query parameter. The domain string keeps a token
// from ever being a valid MAC for any other use of the same key (and a
// future v2 from accepting v1 tokens). It is checked in constant time
// before the body is read or the store is touched, so knowing a tenant ID
// is not enough to move its status. A Handler whose Key is shorter than
// [MinKeySize] (16 bytes), or empty, answers every request with 500 and
// logs the misconfiguration once. The token is never logged. Optionally
// ([Handler.CheckSource]) a callback must also come from the server's
// recorded address.
//
// # What cloud-init sends
//
// Debian's cloud-init 22.4 POSTs an application/x-www-form-urlencoded body
// (User-Agent Cloud-Init/<version>) with the fields of its post list, in
// this order: pub_key_dsa pub_key_rsa pub_key_ecdsa pub_key_ed25519
// instance_id hostname fqdn. A key is the .pub file's content with its
// trailing newline; a key file that does not exist is posted as "N/A".
// Non-2xx answers are retried (tries, 3 s apart) and then only logged.
//
// The handler accepts that form, and a JSON object with the same field
// names (what the original plan described). A field given twice is
// refused (400), in a form and in JSON alike, also when one of the two
// spells its name with escapes ("host\u006eame"): encoding/json alone
// would keep the last. Unknown fields are ignored, and so is pub_key_dsa
// (a DSA host key cannot be pinned: OpenSSH and golang.org/x/crypto/ssh
// no longer speak ssh-dss); "N/A" and empty values count as absent;
// trailing newlines are trimmed. A key must parse as an SSH public key of
// the field's type (no options, no certificate); it is recorded as "type
// base64" without its comment, in the order above, so that records
// compare stably. hostname must be an RFC 1123 host name (fqdn is used
// when hostname is absent); instance_id is 1
// to 128 characters of letters, digits and ._:-.
//
// # Empty callbacks
//
// The host keys are what the SSH connection that injects the secrets is
// pinned to, so a callback must carry at least one of them: a POST without
// a host key (an empty body, only "N/A" keys, or a post list of only
// instance_id and hostname) is answered 400. cloud-init sends a GET with
// no body when its post list is empty; that is the same misconfiguration
// and is answered 405 (Allow: POST). Both show up in cloud-init's log on
// the server and in the handler's log.
//
// # Idempotence
//
// The transition goes through [store.Transition], a compare-and-set, from
// cloud_init (or creating: a fast server can phone home before the create
// call has been recorded) to injecting_secrets. Of any number of
// concurrent or repeated callbacks exactly one makes the transition, and
// [Handler.OnReady] runs once for it, on its own goroutine, after the
// answer is decided. A panic in OnReady is recovered and logged (the
// tenant and the panic value's type, never the value), so a request
// cannot crash the process through it; [Handler.Wait] waits for the
// OnReady calls in flight, e.g. on shutdown. A callback that repeats the recorded data after the
// transition gets 200 and changes nothing, so cloud-init stops retrying; a
// callback with different data (a rebuilt server, a replay) gets 409 and
// a warning in the log, as does a callback for a failed or deleted tenant.
//
// # Replays and stray servers
//
// What the handler refuses:
//
//   - Anything without the tenant's token: 401, before the store is read.
//   - After the transition (injecting_secrets, ready), a callback whose
//     host keys, hostname or instance_id differ from the recorded ones,
//     including one that posts no instance_id when one is recorded: 409
//     and a warning. A failed or deleted tenant: 409.
//   - Before the transition (creating, cloud_init), an instance_id other
//     than the one already on the record, when it has one: 409.
//   - With [Handler.InstanceIDFunc], before the transition, an instance_id
//     other than the one expected for the record's ServerID (posting none
//     counts as other): 409 and a warning. This turns away a server of an
//     earlier attempt of the same tenant that phones home late, and the
//     replay of such a server's captured callback.
//   - With [Handler.CheckSource], a callback that does not come from the
//     recorded address of the server: 403.
//
// What it does not cover:
//
//   - The token is per tenant, not per server or attempt, and does not
//     expire: every server the tenant ever had was given the same URL.
//     Changing Key is the only revocation, and it invalidates every URL
//     in flight. The token travels in the URL: serve the handler over
//     HTTPS, and keep proxies from logging query strings. On the server
//     it is in the user-data (readable through the metadata service) and
//     in cloud-init's log.
//   - Instance IDs are not secrets (Hetzner's is the server ID). Whoever
//     holds the token and knows the instance ID can phone home before the
//     real server does, and the SSH injection is then pinned to their host
//     keys. InstanceIDFunc does not stop that; CheckSource narrows it to
//     the server's address, and only the first callback wins: the real
//     server's then gets 409 and a warning, which is the signal to act on.
//   - A record without a ServerID (a server that phoned home before its
//     create call was recorded) is checked by neither InstanceIDFunc nor
//     CheckSource.
//   - A replay of the exact recorded data after the transition is
//     answered 200, like cloud-init's own retries: it changes nothing and
//     is logged as a repeat, but is not told apart from one.
//
// # Answers
//
// See [Handler.ServeHTTP] for the full list, in the order the checks run.
package callback
