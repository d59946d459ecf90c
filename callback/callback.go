package callback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hatchery-dev/hatchery/store"
)

// Handler is the http.Handler for cloud-init's phone_home callback. Mount
// it at a prefix and give each server the URL that [Handler.URL] returns
// for its tenant. Set the fields before the first request and leave them
// alone afterwards; a Handler must not be copied after first use.
type Handler struct {
	// Store holds the tenants' records. Required: with a nil Store every
	// request is answered 500.
	Store store.Store
	// Key is the HMAC-SHA256 key for the per-tenant URL token. Required,
	// at least MinKeySize bytes: with a shorter (or empty) Key every
	// request is answered 500. Use 32 random bytes and keep them as secret
	// as any other credential.
	Key []byte
	// OnReady, when set, is called once for every cloud_init (or creating)
	// -> injecting_secrets transition the handler makes, with the record as
	// written. It runs on its own goroutine, after the answer is decided,
	// with a context that is not cancelled when the request ends; the
	// handler never waits for it ([Handler.Wait] does).
	//
	// A panic in OnReady is recovered: it would otherwise kill the process,
	// triggered by a network request. It is logged at Error level as
	// "OnReady panicked" with the tenant, the panic value's type
	// (panic_type) and the function and line that panicked (site), never
	// the value itself nor a stack trace, which could hold a secret. The
	// record stays where OnReady left it (usually injecting_secrets): the
	// caller's own recovery (provision's Resume) must pick it up.
	OnReady func(ctx context.Context, r store.Record)
	// OnEvent, when set, is called for every boot event that cloud-init's
	// reporting webhook posts to [Handler.EventsURL] and that the handler
	// accepts, with the record as read (never changed: events are
	// progress only) and the validated event. It runs inside the request,
	// before the answer is sent: cloud-init posts one event at a time and
	// waits for each answer, so a server's events reach OnEvent in the
	// order they happened. It must be quick (hand the event on, do not
	// provision from it); a panic in it is recovered and logged like
	// OnReady's, and the event still answered 200.
	//
	// An event is accepted (200) only with the token of the record's
	// current server, for a record in creating, cloud_init or
	// injecting_secrets (cloud-init posts the end of its final stage after
	// phone_home, while the secrets are injected); the answers
	// are those of phone_home, in the same order: 500 misconfigured, 405
	// not a POST, 400 malformed ID, 401 bad token (before the store is
	// read), 400 EventParam is not "1", 413 over MaxEventSize, 415 a
	// Content-Type that is not JSON (cloud-init sends none), 400 a body
	// that is not one event (see BootEvent), 404 no such tenant, 401 a
	// token of another server of the tenant, 403 CheckSource is on and the
	// client is not the server, 409 the record is ready (a late event: a
	// rebooted server, or a replay), failed, deleted or pending, 500 the
	// store failed. A refused event changes nothing and reaches
	// no OnEvent. Accepted events are logged at Debug; with a nil OnEvent,
	// WARN and FAIL results at Warn (with OnEvent, reporting them is its
	// job, and the handler does not say it twice). nil: events are
	// validated, answered and logged, nothing else.
	OnEvent func(ctx context.Context, r store.Record, ev BootEvent)
	// OnOutcome, when set, is called once for every request, phone_home
	// or boot event, with what the handler did with it, for metrics and
	// traces (provision counts requests by outcome and links the
	// phone_home's span to the create's). It runs inside the request,
	// after the answer is written, with the request's context; it must be
	// quick. The Outcome holds no secret: no token, no body.
	OnOutcome func(ctx context.Context, o Outcome)
	// IDFunc returns the tenant ID of a request, e.g. r.PathValue("id")
	// under a "POST /callback/{id}" ServeMux pattern, or chi.URLParam.
	// nil: the last segment of r.URL.Path (one trailing slash ignored).
	IDFunc func(r *http.Request) string
	// Logger receives one line per request (tenant, hostname, outcome);
	// nil: quiet. The token is never logged.
	Logger *slog.Logger

	// CheckSource, when true, refuses (403) a callback whose client address
	// is not the server's: the record's IPv4, or the /64 of its IPv6. A
	// record with neither (the server phoned home before its addresses
	// were recorded) is not checked. Off by default, since a load balancer
	// hides client addresses; see TrustedProxies.
	CheckSource bool
	// TrustedProxies are the networks of reverse proxies in front of the
	// handler. When the peer is in one of them, the client address is
	// taken from X-Forwarded-For: the rightmost hop that is not a trusted
	// proxy. Used only with CheckSource.
	TrustedProxies []netip.Prefix
	// InstanceIDFunc, when set, returns the instance ID that the server of
	// record r posts at phone_home, e.g. r.ServerID on Hetzner (its
	// cloud-init instance ID is the numeric server ID) or "i-" + r.ServerID
	// for provider/fake; "" when it cannot tell. A callback that would
	// move a record with a ServerID out of creating or cloud_init must
	// then post exactly that instance_id (posting none is a mismatch too),
	// or it is answered 409 with a warning: it comes from another server
	// of the tenant (an earlier attempt's) or replays one's callback. nil:
	// no such check. It is called only for a record with a ServerID,
	// inside the store's update (the record as stored, except that Status
	// already reads injecting_secrets): it must be quick, safe for
	// concurrent use, and must not use the Store.
	InstanceIDFunc func(r store.Record) string
	// StoreTimeout bounds the store work of one request; 0 means
	// DefaultStoreTimeout. cloud-init waits for an answer without a timeout
	// of its own, so a stuck store must end in a 500 (which cloud-init
	// retries), not in a hung boot. Reading the body is bounded by the
	// http.Server's ReadTimeout, which is the embedding server's to set.
	StoreTimeout time.Duration

	misconfigOnce sync.Once // logs a short Key or a nil Store once

	readyMu sync.Mutex
	running int           // OnReady calls not yet returned
	idle    chan struct{} // closed when running drops to 0
}

// DefaultStoreTimeout is the StoreTimeout of a Handler that sets none.
const DefaultStoreTimeout = 10 * time.Second

// MinKeySize is the shortest Key a Handler accepts, in bytes. A shorter
// Key is a misconfiguration, handled like an empty one.
const MinKeySize = 16

// Outcomes of a request, as the handler logs them (the "outcome"
// attribute) and reports them to OnOutcome (Outcome.Result): a small fixed
// set, fit for a metric attribute. Outcomes lists them.
const (
	// OutcomeTransitioned: a phone_home moved the record from cloud_init
	// (or creating) to injecting_secrets.
	OutcomeTransitioned = "transitioned"
	// OutcomeRepeat: the same phone_home data again after the transition.
	OutcomeRepeat = "repeat"
	// OutcomeMisconfigured: the Handler has a short Key or no Store (500).
	OutcomeMisconfigured = "misconfigured"
	// OutcomeBadMethod: not a POST (405).
	OutcomeBadMethod = "bad_method"
	// OutcomeBadID: the tenant ID is not a canonical UUID (400).
	OutcomeBadID = "bad_id"
	// OutcomeBadToken: the token is missing or wrong (401): a forged or
	// mistyped URL.
	OutcomeBadToken = "bad_token"
	// OutcomeStaleToken: a genuine token of another server of the tenant
	// (401): an earlier server's, or a replay.
	OutcomeStaleToken = "stale_token"
	// OutcomeTooLarge: the body is over its limit (413).
	OutcomeTooLarge = "too_large"
	// OutcomeBadContentType: neither a form nor JSON (415).
	OutcomeBadContentType = "bad_content_type"
	// OutcomeBadBody: the body does not parse or breaks a rule (400).
	OutcomeBadBody = "bad_body"
	// OutcomeBadSource: CheckSource is on and the client is not the
	// server (403).
	OutcomeBadSource = "bad_source"
	// OutcomeNotFound: no such tenant (404).
	OutcomeNotFound = "not_found"
	// OutcomeConflict: the tenant is not expecting a phone_home (409).
	OutcomeConflict = "conflict"
	// OutcomeDifferentData: a phone_home after the transition with other
	// data (409): a rebuilt server or a replay.
	OutcomeDifferentData = "different_data"
	// OutcomeWrongInstance: instance_id is not the tenant's server's (409).
	OutcomeWrongInstance = "wrong_instance"
	// OutcomeStoreError: the store failed or took over StoreTimeout (500).
	OutcomeStoreError = "store_error"
	// OutcomeEvent: a boot event accepted (and passed to OnEvent).
	OutcomeEvent = "event"
	// OutcomeLateEvent: a boot event for a record past cloud_init (409).
	OutcomeLateEvent = "late_event"
)

// Outcomes returns every Outcome constant, for a metric's attribute values
// known in advance.
func Outcomes() []string {
	return []string{OutcomeTransitioned, OutcomeRepeat, OutcomeMisconfigured, OutcomeBadMethod,
		OutcomeBadID, OutcomeBadToken, OutcomeStaleToken, OutcomeTooLarge, OutcomeBadContentType,
		OutcomeBadBody, OutcomeBadSource, OutcomeNotFound, OutcomeConflict, OutcomeDifferentData,
		OutcomeWrongInstance, OutcomeStoreError, OutcomeEvent, OutcomeLateEvent}
}

// Outcomes logged after the answer, by the OnReady and OnEvent goroutines;
// never a request's Outcome.Result.
const (
	outcomePanic      = "on_ready_panicked"
	outcomeEventPanic = "on_event_panicked"
)

// Outcome is what the handler did with one request, reported to
// [Handler.OnOutcome].
type Outcome struct {
	// Event is true for a boot event ([Handler.EventsURL]), false for a
	// phone_home.
	Event bool
	// Result is one of the Outcome constants ([OutcomeTransitioned], ...),
	// as logged.
	Result string
	// Tenant is the request's tenant ID, "" when it is not a canonical
	// UUID. It is not authenticated unless Result says the token was
	// good (any Result but the misconfigured, bad method, bad ID and bad
	// token ones).
	Tenant string
	// From and Waited are set on OutcomeTransitioned: the status the
	// transition moved the record from (cloud_init, or creating when the
	// server phoned home before its creation was recorded), and how long
	// the record had been in it, by the store's clock (from the write
	// that entered it to the transition): for cloud_init, the time the
	// server took to boot and phone home.
	From   store.Status
	Waited time.Duration
}

// reply is one request's logger, context (for trace-aware log handlers)
// and Outcome.
type reply struct {
	ctx context.Context
	log *slog.Logger
	out Outcome
}

// note records the request's outcome and logs msg with it at level.
func (q *reply) note(level slog.Level, outcome, msg string, args ...any) {
	q.out.Result = outcome
	if !q.log.Enabled(q.ctx, level) {
		return
	}
	q.log.Log(q.ctx, level, msg, append([]any{"outcome", outcome}, args...)...)
}

// errStale aborts the transition when the token's nonce is not the
// record's CallbackNonce.
var errStale = errors.New("callback: token is bound to another server of the tenant")

// errSource aborts the transition when the source address is wrong.
var errSource = errors.New("callback: request does not come from the server's address")

// instanceError aborts the transition when the posted instance ID is not
// the one expected for the record.
type instanceError struct {
	want, from string // the expected instance ID, and where it came from
	server     string // the record's ServerID
}

func (e *instanceError) Error() string {
	return fmt.Sprintf("callback: instance_id is not %q (from %s)", e.want, e.from)
}

// checkInstance returns an *instanceError when posted is not the instance
// ID expected for rec, a record still in creating or cloud_init: the one
// already recorded, if any, else the one InstanceIDFunc gives.
func (h *Handler) checkInstance(rec store.Record, posted string) error {
	if rec.InstanceID != "" {
		if posted != rec.InstanceID {
			return &instanceError{want: rec.InstanceID, from: "record", server: rec.ServerID}
		}
		return nil
	}
	if h.InstanceIDFunc == nil || rec.ServerID == "" {
		return nil
	}
	if want := h.InstanceIDFunc(rec); want != "" && posted != want {
		return &instanceError{want: want, from: "InstanceIDFunc", server: rec.ServerID}
	}
	return nil
}

// ServeHTTP answers one phone_home callback, or, with EventParam in the
// query, one boot event of cloud-init's reporting webhook (see
// [Handler.OnEvent] for its answers). The checks run in this order and
// the first that fails decides the answer:
//
//	500 the Key is shorter than MinKeySize or there is no Store (a
//	    misconfiguration; logged once)
//	405 not a POST (Allow: POST); cloud-init sends a GET only when its
//	    post list is empty, which leaves no host key to pin
//	400 the ID is not a canonical UUID
//	401 the token is missing or wrong (before the store is touched)
//	413 the body is over MaxBodySize
//	415 the Content-Type is neither a form nor JSON
//	400 the body does not parse, a value is invalid, a field is given
//	    twice, or no host key is given
//	404 no such tenant
//	401 the token is bound to another server of the tenant: its nonce is
//	    not the record's CallbackNonce (an earlier server's token), or it
//	    has none while the record has one, or the reverse
//	403 CheckSource is on and the client is not the server
//	409 the tenant is failed, deleted or not yet creating, or it has
//	    already phoned home with different data, or instance_id is not
//	    the one recorded or given by InstanceIDFunc
//	500 the store failed or took over StoreTimeout (generic body; the
//	    cause is logged)
//	200 the transition happened, or the same data was posted again
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	query := r.URL.Query()
	_, event := query[EventParam]
	q := &reply{ctx: r.Context(), log: log.With("remote", r.RemoteAddr), out: Outcome{Event: event}}
	if h.OnOutcome != nil {
		defer func() { h.OnOutcome(q.ctx, q.out) }()
	}
	what := "callback"
	if event {
		what = "boot event"
		q.log = q.log.With("endpoint", "events")
	}

	if len(h.Key) < MinKeySize || h.Store == nil {
		q.out.Result = OutcomeMisconfigured
		h.misconfigOnce.Do(func() {
			var what string
			switch {
			case len(h.Key) == 0:
				what = "Handler.Key is empty"
			case len(h.Key) < MinKeySize:
				what = fmt.Sprintf("Handler.Key is %d bytes, want at least %d", len(h.Key), MinKeySize)
			default:
				what = "Handler.Store is nil"
			}
			q.log.ErrorContext(q.ctx, "callback: "+what+": refusing every phone_home callback and boot event with 500 until it is set",
				"outcome", OutcomeMisconfigured)
		})
		http.Error(w, "callback handler is not configured", http.StatusInternalServerError)
		return
	}
	var id string
	if h.IDFunc != nil {
		id = h.IDFunc(r)
	} else {
		p := strings.TrimSuffix(r.URL.Path, "/")
		id = p[strings.LastIndexByte(p, '/')+1:]
	}
	idErr := store.CheckID(id)
	if idErr == nil {
		q.log = q.log.With("tenant", id)
		q.out.Tenant = id
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		msg := "phone_home must POST its data (is the post list empty?)"
		if event {
			msg = "boot events must be POSTed"
		}
		http.Error(w, msg, http.StatusMethodNotAllowed)
		q.note(slog.LevelWarn, OutcomeBadMethod, what+" refused", "method", truncate(r.Method))
		return
	}
	if idErr != nil {
		http.Error(w, "malformed tenant ID", http.StatusBadRequest)
		q.note(slog.LevelWarn, OutcomeBadID, what+" refused", "reason", idErr.Error())
		return
	}
	nonce, ok := h.verify(id, query.Get("token"))
	if !ok {
		http.Error(w, "missing or invalid token", http.StatusUnauthorized)
		q.note(slog.LevelWarn, OutcomeBadToken, what+" refused")
		return
	}
	if event {
		h.serveEvent(w, r, q, id, nonce, query.Get(EventParam))
		return
	}

	if r.ContentLength > MaxBodySize {
		h.tooLarge(w, q, what, MaxBodySize)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.tooLarge(w, q, what, MaxBodySize)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		q.note(slog.LevelWarn, OutcomeBadBody, "callback refused", "reason", "reading body: "+err.Error())
		return
	}
	p, err := parseBody(r.Header.Get("Content-Type"), body)
	if err != nil {
		code, outcome := http.StatusBadRequest, OutcomeBadBody
		if errors.Is(err, errMediaType) {
			code, outcome = http.StatusUnsupportedMediaType, OutcomeBadContentType
		}
		http.Error(w, err.Error(), code)
		q.note(slog.LevelWarn, outcome, "callback refused", "reason", err.Error())
		return
	}
	q.log = q.log.With("hostname", p.Hostname)

	var client netip.Addr
	if h.CheckSource {
		var ok bool
		if client, ok = h.ClientAddr(r); !ok {
			http.Error(w, "cannot tell the client address", http.StatusForbidden)
			q.note(slog.LevelWarn, OutcomeBadSource, "callback refused", "reason", "unparsable client address")
			return
		}
	}
	checkSource := func(rec store.Record) error {
		if h.CheckSource && !FromServer(rec.IPv4, rec.IPv6, client) {
			return errSource
		}
		return nil
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.storeTimeout())
	defer cancel()
	st := h.Store
	var fr *fromRecorder
	var entered time.Time
	if h.OnOutcome != nil {
		fr = &fromRecorder{Store: st} // for Outcome.From only
		st = fr
	}
	rec, err := store.Transition(ctx, st, id,
		[]store.Status{store.StatusCloudInit, store.StatusCreating}, store.StatusInjectingSecrets,
		func(rec *store.Record) error {
			if rec.CallbackNonce != nonce {
				return errStale
			}
			if err := checkSource(*rec); err != nil {
				return err
			}
			if err := h.checkInstance(*rec, p.InstanceID); err != nil {
				return err
			}
			entered = rec.UpdatedAt // the store sets the new one after fn
			rec.Hostname = p.Hostname
			rec.InstanceID = p.InstanceID
			rec.HostKeys = slices.Clone(p.HostKeys)
			return nil
		})
	var conflict *store.ConflictError
	var wrongInstance *instanceError
	switch {
	case err == nil:
		writeOK(w)
		if fr != nil {
			q.out.From, q.out.Waited = fr.from, max(rec.UpdatedAt.Sub(entered), 0)
		}
		q.note(slog.LevelInfo, OutcomeTransitioned, "phone_home accepted", "instance_id", rec.InstanceID)
		if h.OnReady != nil {
			h.goReady(context.WithoutCancel(r.Context()), rec.Clone(), q.log)
		}
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "unknown tenant", http.StatusNotFound)
		q.note(slog.LevelWarn, OutcomeNotFound, "callback refused")
	case errors.Is(err, errStale):
		// rec is the zero Record here: Transition returns the record only
		// on a conflict. What the record holds is not needed to answer.
		h.stale(w, q, what, nonce)
	case errors.Is(err, errSource):
		h.badSource(w, q, what, client)
	case errors.As(err, &wrongInstance):
		http.Error(w, "instance_id is not the tenant's server's", http.StatusConflict)
		q.note(slog.LevelWarn, OutcomeWrongInstance, "phone_home from another instance than the tenant's server: a stray server or a replay",
			"instance_id", p.InstanceID,
			"expected_instance_id", wrongInstance.want, "expected_from", wrongInstance.from,
			"server_id", wrongInstance.server)
	case errors.As(err, &conflict) && rec.ID == id:
		h.repeat(w, q, rec, p, nonce, checkSource, client)
	default:
		http.Error(w, "internal error", http.StatusInternalServerError)
		q.note(slog.LevelError, OutcomeStoreError, what+" failed", "err", err)
	}
}

// fromRecorder is a Store whose Update notes the status of the record
// before fn changes it (store.Transition's fn sees the new one).
type fromRecorder struct {
	store.Store
	from store.Status
}

func (f *fromRecorder) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	return f.Store.Update(ctx, id, func(r *store.Record) error {
		f.from = r.Status
		return fn(r)
	})
}

func (h *Handler) storeTimeout() time.Duration {
	if h.StoreTimeout <= 0 {
		return DefaultStoreTimeout
	}
	return h.StoreTimeout
}

// repeat answers a callback for a record that the transition did not
// apply to. After the transition, the same data again is a retry (a lost
// answer, a rerun of the module) and gets 200; anything else is a 409.
// A token bound to another server than the record's is a 401 whatever
// the status.
func (h *Handler) repeat(w http.ResponseWriter, q *reply, rec store.Record, p payload, nonce string, checkSource func(store.Record) error, client netip.Addr) {
	q.log = q.log.With("status", string(rec.Status))
	if rec.CallbackNonce != nonce {
		h.stale(w, q, "callback", nonce)
		return
	}
	if rec.Status != store.StatusInjectingSecrets && rec.Status != store.StatusReady {
		http.Error(w, fmt.Sprintf("tenant is %s: not expecting a phone_home", rec.Status), http.StatusConflict)
		q.note(slog.LevelWarn, OutcomeConflict, "callback refused")
		return
	}
	if err := checkSource(rec); err != nil {
		h.badSource(w, q, "callback", client)
		return
	}
	var differs []string
	if !sameKeys(rec.HostKeys, p.HostKeys) {
		differs = append(differs, "host keys")
	}
	if rec.Hostname != p.Hostname {
		differs = append(differs, "hostname")
	}
	if rec.InstanceID != p.InstanceID {
		differs = append(differs, "instance ID")
	}
	if len(differs) > 0 {
		http.Error(w, "tenant has already phoned home with different data", http.StatusConflict)
		q.note(slog.LevelWarn, OutcomeDifferentData, "phone_home with different data after the transition: a rebuilt server or a replay",
			"differs", strings.Join(differs, ", "),
			"recorded_hostname", rec.Hostname, "recorded_instance_id", rec.InstanceID,
			"instance_id", p.InstanceID)
		return
	}
	writeOK(w)
	q.note(slog.LevelInfo, OutcomeRepeat, "phone_home repeated")
}

// goReady runs OnReady on its own goroutine, counted for Wait, with a
// panic recovered and logged (see Handler.OnReady).
func (h *Handler) goReady(ctx context.Context, rec store.Record, log *slog.Logger) {
	h.readyMu.Lock()
	if h.running == 0 {
		h.idle = make(chan struct{})
	}
	h.running++
	h.readyMu.Unlock()
	go func() {
		defer h.readyDone()
		defer func() {
			if v := recover(); v != nil {
				log.ErrorContext(ctx, "OnReady panicked", "outcome", outcomePanic,
					"panic_type", fmt.Sprintf("%T", v), "site", panicSite())
			}
		}()
		h.OnReady(ctx, rec)
	}()
}

func (h *Handler) readyDone() {
	h.readyMu.Lock()
	defer h.readyMu.Unlock()
	h.running--
	if h.running == 0 {
		close(h.idle)
	}
}

// Wait blocks until no OnReady call is running (those started before and
// while it waits, which includes ones that panicked), or until ctx ends,
// returning ctx.Err() then. Use it on shutdown, after the http.Server
// has stopped taking requests, so that no injection is cut off halfway;
// a Handler with no OnReady running returns nil at once.
func (h *Handler) Wait(ctx context.Context) error {
	h.readyMu.Lock()
	if h.running == 0 {
		h.readyMu.Unlock()
		return nil
	}
	idle := h.idle
	h.readyMu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// panicSite returns the function and file:line that panicked, called from
// the deferred function that recovered: the first frame past
// runtime.gopanic that is not in the runtime. "" when it cannot tell.
func panicSite() string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	past := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			past = true
		case past && !strings.HasPrefix(f.Function, "runtime."):
			return fmt.Sprintf("%s (%s:%d)", f.Function, filepath.Base(f.File), f.Line)
		}
		if !more {
			return ""
		}
	}
}

func (h *Handler) tooLarge(w http.ResponseWriter, q *reply, what string, limit int) {
	http.Error(w, fmt.Sprintf("body over %d bytes", limit), http.StatusRequestEntityTooLarge)
	q.note(slog.LevelWarn, OutcomeTooLarge, what+" refused")
}

func (h *Handler) badSource(w http.ResponseWriter, q *reply, what string, client netip.Addr) {
	http.Error(w, what+" does not come from the server", http.StatusForbidden)
	q.note(slog.LevelWarn, OutcomeBadSource, what+" refused", "client", client.String())
}

// stale answers a request whose token is genuine but bound to another
// server of the tenant than the record's current one: 401, as a bad token,
// since it no longer authenticates anything. The log says which case it
// is, never the token.
func (h *Handler) stale(w http.ResponseWriter, q *reply, what, nonce string) {
	http.Error(w, "missing or invalid token", http.StatusUnauthorized)
	kind := "token of another server of the tenant (an earlier server's, or a replay)"
	if nonce == "" {
		kind = "per-tenant token, but the record is bound to one server"
	}
	q.note(slog.LevelWarn, OutcomeStaleToken, what+" refused", "reason", kind)
}

func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "ok\n")
}

// sameKeys compares two sets of normalized authorized_keys lines.
func sameKeys(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
