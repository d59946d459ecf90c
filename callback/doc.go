// Package callback implements the HTTP endpoint that cloud-init's
// phone_home module calls when a tenant's server has finished booting:
// [Handler] authenticates the call, validates what the server reports
// (host name, instance ID, SSH host keys) and moves the tenant from
// cloud_init to injecting_secrets in the [store.Store], exactly once.
// The same Handler, with "event=1" in the query, receives the boot events
// of cloud-init's reporting webhook: each stage and module starting and
// finishing, handed to [Handler.OnEvent] as a [BootEvent] while the
// server boots.
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
// [Handler.AttemptURL] builds the phone_home URL to put into a server's
// cloud-config: the mounted prefix, the tenant ID, and a token bound to
// that server; [Handler.EventsURL] the reporting webhook's endpoint, the
// same URL with "&event=1". Both are served by the same mount, so a
// router that passes the query on needs nothing more for events.
// [Handler.URL] builds the older per-tenant URL, for records without a
// CallbackNonce.
//
// # Authentication
//
// A token binds the tenant ID to one server of the tenant: the record's
// [store.Record.CallbackNonce], a value that is new for every server
// created for the tenant ([NewNonce] makes one). It is the nonce, a dot,
// and the lowercase hex HMAC-SHA256, under [Handler.Key], of a domain
// string, the tenant ID and the nonce, NUL-separated:
//
//	token = nonce + "." + hex(HMAC-SHA256(Key, "hatchery/callback/v2\x00" + id + "\x00" + nonce))
//
// passed as the "token" query parameter. A record without a nonce (written
// before nonces existed) takes the per-tenant token of earlier versions
// instead:
//
//	token = hex(HMAC-SHA256(Key, "hatchery/callback/v1\x00" + id))
//
// The domain strings keep a token from ever being a valid MAC for another
// use of the same key, and the two forms from standing for each other.
// The MAC is checked in constant time before the body is read or the store
// is touched, so knowing a tenant ID (and a nonce, which is no secret) is
// not enough to move its status. Then, once the record is read, the
// token's nonce must be the record's CallbackNonce: the token of an
// earlier server of the tenant, a per-tenant token for a record with a
// nonce and a bound token for a record without one are all answered 401,
// like a forged token (the log tells them apart as "stale_token"), and
// change nothing. A Handler whose Key is shorter than [MinKeySize] (16
// bytes), or empty, answers every request with 500 and logs the
// misconfiguration once. The token is never logged. Optionally
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
// Debian 12's images still have a DSA host key, and post it
// (pub_key_dsa=ssh-dss ... root@HOST); newer ones post "N/A" there.
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
//   - With a CallbackNonce on the record, a token of any other server
//     of the tenant, earlier or later: 401, phone_home and events alike.
//
// What it does not cover:
//
//   - The token does not expire while its server is the record's: the
//     caller rotates CallbackNonce when it creates the next server, and
//     then every earlier token is void. A record without a nonce keeps
//     the per-tenant token, which every server the tenant ever had was
//     given. Changing Key voids every token at once, the ones in flight
//     included. The token travels in the URL: serve the handler over
//     HTTPS, and keep proxies from logging query strings. On the server
//     it is in the user-data (readable through the metadata service) and
//     in cloud-init's log.
//   - Instance IDs are not secrets (Hetzner's is the server ID). Whoever
//     holds the current server's token (whoever can read that server's
//     user-data or cloud-init log: the server's root, the provider) and
//     knows the instance ID can phone home before the real server does,
//     and the SSH injection is then pinned to their host keys. InstanceIDFunc does not stop that; CheckSource narrows it to
//     the server's address, and only the first callback wins: the real
//     server's then gets 409 and a warning, which is the signal to act on.
//   - A record without a ServerID (a server that phoned home before its
//     create call was recorded) is checked by neither InstanceIDFunc nor
//     CheckSource.
//   - A replay of the exact recorded data after the transition is
//     answered 200, like cloud-init's own retries: it changes nothing and
//     is logged as a repeat, but is not told apart from one.
//
// # Boot events
//
// cloud-init's reporting webhook (cloud-config "reporting: {NAME: {type:
// webhook, endpoint: URL}}", cloudinit.Reporter) posts one JSON event per
// stage and step starting and finishing: name
// ("modules-final/config-scripts-user"), description, event_type (start
// or finish), origin ("cloudinit"), timestamp (seconds, a float) and, on
// a finish, result (SUCCESS, WARN or FAIL). cloud-init 22.4 queues them
// and posts them one at a time from a worker thread, waiting for each
// answer, without a Content-Type, and waits for the queue at the end of
// every stage; it logs a failed post and drops the rest of a stage's
// queue after three failures in a row. No module of 22.4 attaches files
// to an event.
//
// With "event=1" in the query the handler reads a POST as such an event.
// It authenticates it exactly as a phone_home (same token, same nonce
// check), reads at most [MaxEventSize] bytes, parses it strictly (a member
// given twice, an unknown member, a missing one or one of the wrong type
// is a 400; names are letters, digits and ._-/; the timestamp is a number
// of seconds before 2286), sanitizes the description (no control or
// format characters, at most [MaxDescription] bytes), reads the record
// without writing it, and calls [Handler.OnEvent] with the record and the
// [BootEvent], before answering 200, so that a server's events arrive in
// order. A module that fails shows as a finish event with [ResultFail] at
// once, before phone_home.
//
// Events are accepted while the record is creating, cloud_init or
// injecting_secrets: cloud-init posts the end of its final stage
// (config-phone-home's finish, config-final-message, the stage's finish)
// right after phone_home, on every boot, and refusing them would fill
// cloud-init's log with "Failed posting event" after every successful
// boot. Events are progress only: they never change the record. A bad,
// forged, oversized or stale one, one for a ready record (a late event:
// a rebooted server, or a replay), or for a failed, deleted or pending
// one, is answered like a bad phone_home (400, 401, 413, 415, 409) and
// reaches no OnEvent. What they do not cover: whoever holds the token
// (root on the tenant's current server) can post any number of
// well-formed events with any names, results and times until the tenant
// is ready; the handler bounds each, not their number. They come from the
// tenant's server: show them as what that server says.
//
// # Answers
//
// See [Handler.ServeHTTP] for the full list, in the order the checks run,
// and [Handler.OnEvent] for events.
//
// # Logs and metrics
//
// Every request is logged once, with its outcome (the "outcome"
// attribute: one of the Outcome constants, [Outcomes] lists them), the
// tenant, the client address and, for a phone_home, the posted hostname;
// never the token nor a host key. Logs are written with the request's
// context, so a trace-aware slog handler adds the request's trace and
// span IDs. [Handler.OnOutcome] receives the same outcome for each
// request, with the tenant and, on a transition, the status left and the
// time spent in it: provision counts requests by outcome from it (the
// hatchery.callback.requests metric) and links the phone_home's span to
// the span of the create. The package itself depends on no telemetry
// library.
package callback
