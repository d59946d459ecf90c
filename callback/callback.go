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

// Outcomes, as logged in the "outcome" attribute.
const (
	outcomeReady      = "transitioned" // cloud_init/creating -> injecting_secrets
	outcomeRepeat     = "repeat"       // same data again after the transition
	outcomeMisconfig  = "misconfigured"
	outcomeMethod     = "bad_method"
	outcomeID         = "bad_id"
	outcomeToken      = "bad_token"
	outcomeTooLarge   = "too_large"
	outcomeMediaType  = "bad_content_type"
	outcomeBody       = "bad_body"
	outcomeSource     = "bad_source"
	outcomeNotFound   = "not_found"
	outcomeConflict   = "conflict"
	outcomeDifferent  = "different_data"
	outcomeStoreError = "store_error"
	outcomePanic      = "on_ready_panicked"
	outcomeInstance   = "wrong_instance"
	outcomeStale      = "stale_token" // a genuine token of another server of the tenant
	outcomeEvent      = "event"       // a boot event passed to OnEvent
	outcomeLate       = "late_event"  // a boot event for a record that takes none (ready, failed, ...)
	outcomeEventPanic = "on_event_panicked"
)

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
	log = log.With("remote", r.RemoteAddr)
	query := r.URL.Query()
	_, event := query[EventParam]
	what := "callback"
	if event {
		what = "boot event"
		log = log.With("endpoint", "events")
	}

	if len(h.Key) < MinKeySize || h.Store == nil {
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
			log.Error("callback: " + what + ": refusing every phone_home callback and boot event with 500 until it is set")
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
		log = log.With("tenant", id)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		msg := "phone_home must POST its data (is the post list empty?)"
		if event {
			msg = "boot events must be POSTed"
		}
		http.Error(w, msg, http.StatusMethodNotAllowed)
		log.Warn(what+" refused", "outcome", outcomeMethod, "method", truncate(r.Method))
		return
	}
	if idErr != nil {
		http.Error(w, "malformed tenant ID", http.StatusBadRequest)
		log.Warn(what+" refused", "outcome", outcomeID, "reason", idErr.Error())
		return
	}
	nonce, ok := h.verify(id, query.Get("token"))
	if !ok {
		http.Error(w, "missing or invalid token", http.StatusUnauthorized)
		log.Warn(what+" refused", "outcome", outcomeToken)
		return
	}
	if event {
		h.serveEvent(w, r, log, id, nonce, query.Get(EventParam))
		return
	}

	if r.ContentLength > MaxBodySize {
		h.tooLarge(w, log, what, MaxBodySize)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.tooLarge(w, log, what, MaxBodySize)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		log.Warn("callback refused", "outcome", outcomeBody, "reason", "reading body: "+err.Error())
		return
	}
	p, err := parseBody(r.Header.Get("Content-Type"), body)
	if err != nil {
		code, outcome := http.StatusBadRequest, outcomeBody
		if errors.Is(err, errMediaType) {
			code, outcome = http.StatusUnsupportedMediaType, outcomeMediaType
		}
		http.Error(w, err.Error(), code)
		log.Warn("callback refused", "outcome", outcome, "reason", err.Error())
		return
	}
	log = log.With("hostname", p.Hostname)

	var client netip.Addr
	if h.CheckSource {
		var ok bool
		if client, ok = h.clientAddr(r); !ok {
			http.Error(w, "cannot tell the client address", http.StatusForbidden)
			log.Warn("callback refused", "outcome", outcomeSource, "reason", "unparsable client address")
			return
		}
	}
	checkSource := func(rec store.Record) error {
		if h.CheckSource && !fromServer(rec, client) {
			return errSource
		}
		return nil
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.storeTimeout())
	defer cancel()
	rec, err := store.Transition(ctx, h.Store, id,
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
		log.Info("phone_home accepted", "outcome", outcomeReady, "instance_id", rec.InstanceID)
		if h.OnReady != nil {
			h.goReady(context.WithoutCancel(r.Context()), rec.Clone(), log)
		}
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "unknown tenant", http.StatusNotFound)
		log.Warn("callback refused", "outcome", outcomeNotFound)
	case errors.Is(err, errStale):
		// rec is the zero Record here: Transition returns the record only
		// on a conflict. What the record holds is not needed to answer.
		h.stale(w, log, what, nonce)
	case errors.Is(err, errSource):
		h.badSource(w, log, what, client)
	case errors.As(err, &wrongInstance):
		http.Error(w, "instance_id is not the tenant's server's", http.StatusConflict)
		log.Warn("phone_home from another instance than the tenant's server: a stray server or a replay",
			"outcome", outcomeInstance, "instance_id", p.InstanceID,
			"expected_instance_id", wrongInstance.want, "expected_from", wrongInstance.from,
			"server_id", wrongInstance.server)
	case errors.As(err, &conflict) && rec.ID == id:
		h.repeat(w, log, rec, p, nonce, checkSource, client)
	default:
		http.Error(w, "internal error", http.StatusInternalServerError)
		log.Error(what+" failed", "outcome", outcomeStoreError, "err", err)
	}
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
func (h *Handler) repeat(w http.ResponseWriter, log *slog.Logger, rec store.Record, p payload, nonce string, checkSource func(store.Record) error, client netip.Addr) {
	log = log.With("status", string(rec.Status))
	if rec.CallbackNonce != nonce {
		h.stale(w, log, "callback", nonce)
		return
	}
	if rec.Status != store.StatusInjectingSecrets && rec.Status != store.StatusReady {
		http.Error(w, fmt.Sprintf("tenant is %s: not expecting a phone_home", rec.Status), http.StatusConflict)
		log.Warn("callback refused", "outcome", outcomeConflict)
		return
	}
	if err := checkSource(rec); err != nil {
		h.badSource(w, log, "callback", client)
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
		log.Warn("phone_home with different data after the transition: a rebuilt server or a replay",
			"outcome", outcomeDifferent, "differs", strings.Join(differs, ", "),
			"recorded_hostname", rec.Hostname, "recorded_instance_id", rec.InstanceID,
			"instance_id", p.InstanceID)
		return
	}
	writeOK(w)
	log.Info("phone_home repeated", "outcome", outcomeRepeat)
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
				log.Error("OnReady panicked", "outcome", outcomePanic,
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

func (h *Handler) tooLarge(w http.ResponseWriter, log *slog.Logger, what string, limit int) {
	http.Error(w, fmt.Sprintf("body over %d bytes", limit), http.StatusRequestEntityTooLarge)
	log.Warn(what+" refused", "outcome", outcomeTooLarge)
}

func (h *Handler) badSource(w http.ResponseWriter, log *slog.Logger, what string, client netip.Addr) {
	http.Error(w, what+" does not come from the server", http.StatusForbidden)
	log.Warn(what+" refused", "outcome", outcomeSource, "client", client.String())
}

// stale answers a request whose token is genuine but bound to another
// server of the tenant than the record's current one: 401, as a bad token,
// since it no longer authenticates anything. The log says which case it
// is, never the token.
func (h *Handler) stale(w http.ResponseWriter, log *slog.Logger, what, nonce string) {
	http.Error(w, "missing or invalid token", http.StatusUnauthorized)
	kind := "token of another server of the tenant (an earlier server's, or a replay)"
	if nonce == "" {
		kind = "per-tenant token, but the record is bound to one server"
	}
	log.Warn(what+" refused", "outcome", outcomeStale, "reason", kind)
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
