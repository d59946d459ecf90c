package callback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hatchery-dev/hatchery/store"
)

// EventParam is the query parameter that makes the handler read a POST as
// a boot event of cloud-init's reporting webhook instead of a phone_home:
// [Handler.EventsURL] adds "event=1". Its value must be "1".
const EventParam = "event"

// MaxEventSize is the largest boot event body the handler reads, in bytes.
// cloud-init 22.4's events are about 250 bytes; one carrying files (no
// module of 22.4 attaches any) is refused with 413.
const MaxEventSize = 8 << 10

// MaxDescription is the longest BootEvent.Description, in bytes: a longer
// description is cut at a character boundary and ends in "…".
const MaxDescription = 256

// Limits on the names a boot event carries.
const (
	maxEventName = 256 // "modules-final/config-scripts-user"
	maxSegments  = 8   // of the name, separated by '/'
	maxOrigin    = 64  // "cloudinit"
	// maxTimestamp bounds an event's timestamp, in seconds since the epoch
	// (the year 2286): beyond, a float64 no longer has microseconds.
	maxTimestamp = 1e10
)

// EventType says whether a boot event starts or finishes a step.
type EventType string

// The event types cloud-init sends.
const (
	EventStart  EventType = "start"
	EventFinish EventType = "finish"
)

// Result is how a step finished.
type Result string

// The results cloud-init reports on a finish event.
const (
	ResultSuccess Result = "SUCCESS"
	ResultWarn    Result = "WARN"
	ResultFail    Result = "FAIL"
)

// BootEvent is one event of cloud-init's reporting webhook: a stage or a
// step of one (a config module, a datasource search, ...) starting or
// finishing. Every field is validated; Description is sanitized.
type BootEvent struct {
	// Type is EventStart or EventFinish.
	Type EventType
	// Name is cloud-init's event name: the stage, then the steps below
	// it, separated by '/': "init-network", "init-local/search-Hetzner",
	// "modules-config/config-runcmd", "modules-final/config-phone-home".
	// 1 to 256 bytes of letters, digits, '.', '_', '-' and '/', at most 8
	// non-empty segments.
	Name string
	// Stage is Name's first segment: "init-local", "init-network",
	// "modules-config", "modules-final" (or "single" for `cloud-init
	// single`).
	Stage string
	// Module is the cloud-config module the event is about, when Name's
	// last segment below the stage is "config-<module>" (cloud-init's
	// name for a module run): "runcmd", "scripts-user", "phone-home";
	// empty for a stage's own events and other steps.
	Module string
	// Result is how the step finished (ResultSuccess, ResultWarn,
	// ResultFail) on a finish event; empty on a start event.
	Result Result
	// Description is cloud-init's text ("running config-runcmd with
	// frequency once-per-instance"), sanitized: invalid UTF-8 becomes
	// U+FFFD, control and format characters (line breaks, escapes,
	// bidirectional overrides) a space, and it is cut to MaxDescription
	// bytes. It comes from the server: show it as text, never as markup.
	Description string
	// Origin is the event's origin, "cloudinit" for cloud-init's own:
	// 1 to 64 letters, digits, '.', '_' or '-'.
	Origin string
	// Time is when the server says the event happened (its own clock),
	// in UTC, to the microsecond.
	Time time.Time
}

// errEvent marks an event body that does not parse or breaks a rule: 400.
var errEvent = errors.New("invalid boot event")

// parseEvent reads one event as cloud-init's WebHookHandler posts it: the
// JSON of ReportingEvent.as_dict() (name, description, event_type,
// origin, timestamp; result on a finish event; files when a finish event
// carries post_files, ignored). Strict: a member given twice, an unknown
// member, a missing one or one of the wrong type is an error.
func parseEvent(body []byte) (BootEvent, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return BootEvent{}, fmt.Errorf("%w: JSON: %w", errEvent, err)
	}
	str := func(name string) (string, error) {
		v, ok := obj[name]
		if !ok {
			return "", fmt.Errorf("%w: %s is missing", errEvent, name)
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%w: %s is not a string", errEvent, name)
		}
		return s, nil
	}
	var ev BootEvent
	for name := range obj {
		switch name {
		case "name", "description", "event_type", "origin", "timestamp", "result", "files":
		default:
			return BootEvent{}, fmt.Errorf("%w: unknown member %q", errEvent, truncate(name))
		}
	}
	typ, err := str("event_type")
	if err != nil {
		return BootEvent{}, err
	}
	ev.Type = EventType(typ)
	switch ev.Type {
	case EventStart:
		if _, ok := obj["result"]; ok {
			return BootEvent{}, fmt.Errorf("%w: a start event has no result", errEvent)
		}
		if _, ok := obj["files"]; ok {
			return BootEvent{}, fmt.Errorf("%w: a start event has no files", errEvent)
		}
	case EventFinish:
		res, err := str("result")
		if err != nil {
			return BootEvent{}, err
		}
		ev.Result = Result(res)
		if ev.Result != ResultSuccess && ev.Result != ResultWarn && ev.Result != ResultFail {
			return BootEvent{}, fmt.Errorf("%w: result is not SUCCESS, WARN or FAIL", errEvent)
		}
		if f, ok := obj["files"]; ok {
			if _, list := f.([]any); f != nil && !list {
				return BootEvent{}, fmt.Errorf("%w: files is not a list", errEvent)
			}
		}
	default:
		return BootEvent{}, fmt.Errorf("%w: event_type is not start or finish", errEvent)
	}
	if ev.Name, err = str("name"); err != nil {
		return BootEvent{}, err
	}
	if !validEventName(ev.Name) {
		return BootEvent{}, fmt.Errorf("%w: name is not 1 to %d segments of [A-Za-z0-9._-] separated by '/' (%d bytes at most)", errEvent, maxSegments, maxEventName)
	}
	ev.Stage, ev.Module = splitEventName(ev.Name)
	if ev.Origin, err = str("origin"); err != nil {
		return BootEvent{}, err
	}
	if len(ev.Origin) == 0 || len(ev.Origin) > maxOrigin || !validWord(ev.Origin) {
		return BootEvent{}, fmt.Errorf("%w: origin is not 1 to %d characters of [A-Za-z0-9._-]", errEvent, maxOrigin)
	}
	desc, err := str("description")
	if err != nil {
		return BootEvent{}, err
	}
	ev.Description = sanitize(desc, MaxDescription)
	ts, ok := obj["timestamp"].(json.Number)
	if !ok {
		return BootEvent{}, fmt.Errorf("%w: timestamp is missing or not a number", errEvent)
	}
	sec, err := ts.Float64()
	if err != nil || math.IsNaN(sec) || sec < 0 || sec >= maxTimestamp {
		return BootEvent{}, fmt.Errorf("%w: timestamp is not seconds since 1970 before 2286", errEvent)
	}
	whole, frac := math.Modf(sec)
	ev.Time = time.Unix(int64(whole), int64(math.Round(frac*1e6))*1e3).UTC()
	return ev, nil
}

// validEventName reports whether s is 1 to maxSegments non-empty segments
// of [A-Za-z0-9._-] separated by '/', maxEventName bytes at most.
func validEventName(s string) bool {
	if len(s) == 0 || len(s) > maxEventName {
		return false
	}
	n := 0
	for seg := range strings.SplitSeq(s, "/") {
		n++
		if seg == "" || n > maxSegments || !validWord(seg) {
			return false
		}
	}
	return true
}

func validWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// splitEventName returns an event name's stage (its first segment) and
// the config module it is about ("runcmd" for
// "modules-config/config-runcmd"), if any.
func splitEventName(name string) (stage, module string) {
	stage, rest, _ := strings.Cut(name, "/")
	if rest == "" {
		return stage, ""
	}
	last := rest[strings.LastIndexByte(rest, '/')+1:]
	module, _ = strings.CutPrefix(last, "config-")
	if module == last {
		module = ""
	}
	return stage, module
}

// sanitize makes text from a server safe to log and show: invalid UTF-8
// becomes U+FFFD, control and format characters (Unicode categories Cc
// and Cf: line breaks, escapes, zero-width and bidirectional controls) and
// the line and paragraph separators a space, and it is cut to at most max
// bytes at a character boundary, ending in "…" when cut.
func sanitize(s string, max int) string {
	const ellipsis = "…"
	var b strings.Builder
	b.Grow(min(len(s), max))
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > max {
			out := b.String()
			for len(out)+len(ellipsis) > max {
				_, size := utf8.DecodeLastRuneInString(out)
				out = out[:len(out)-size]
			}
			return out + ellipsis
		}
		b.WriteRune(r)
	}
	return b.String()
}

// serveEvent answers one boot event, after the token has been checked.
// See Handler.OnEvent for the answers.
func (h *Handler) serveEvent(w http.ResponseWriter, r *http.Request, q *reply, id, nonce, param string) {
	const what = "boot event"
	if param != "1" {
		http.Error(w, EventParam+" must be 1", http.StatusBadRequest)
		q.note(slog.LevelWarn, OutcomeBadBody, what+" refused", "reason", EventParam+" parameter is not 1")
		return
	}
	if r.ContentLength > MaxEventSize {
		h.tooLarge(w, q, what, MaxEventSize)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEventSize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.tooLarge(w, q, what, MaxEventSize)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		q.note(slog.LevelWarn, OutcomeBadBody, what+" refused", "reason", "reading body: "+err.Error())
		return
	}
	// cloud-init posts the JSON without a Content-Type (python-requests
	// sets none for a str body).
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			http.Error(w, "send a boot event as application/json", http.StatusUnsupportedMediaType)
			q.note(slog.LevelWarn, OutcomeBadContentType, what+" refused", "content_type", truncate(ct))
			return
		}
	}
	ev, err := parseEvent(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		q.note(slog.LevelWarn, OutcomeBadBody, what+" refused", "reason", err.Error())
		return
	}
	q.log = q.log.With("event", ev.Name, "event_type", string(ev.Type))

	ctx, cancel := context.WithTimeout(r.Context(), h.storeTimeout())
	rec, err := h.Store.Get(ctx, id)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "unknown tenant", http.StatusNotFound)
		q.note(slog.LevelWarn, OutcomeNotFound, what+" refused")
		return
	case err != nil:
		http.Error(w, "internal error", http.StatusInternalServerError)
		q.note(slog.LevelError, OutcomeStoreError, what+" failed", "err", err)
		return
	}
	q.log = q.log.With("status", string(rec.Status))
	if rec.CallbackNonce != nonce {
		h.stale(w, q, what, nonce)
		return
	}
	if h.CheckSource {
		client, ok := h.ClientAddr(r)
		if !ok {
			http.Error(w, "cannot tell the client address", http.StatusForbidden)
			q.note(slog.LevelWarn, OutcomeBadSource, what+" refused", "reason", "unparsable client address")
			return
		}
		if !FromServer(rec.IPv4, rec.IPv6, client) {
			h.badSource(w, q, what, client)
			return
		}
	}
	if !acceptsEvents(rec.Status) {
		http.Error(w, fmt.Sprintf("tenant is %s: not expecting boot events", rec.Status), http.StatusConflict)
		q.note(slog.LevelWarn, OutcomeLateEvent, what+" refused")
		return
	}
	if h.OnEvent != nil {
		h.callOnEvent(r.Context(), rec, ev, q.log)
	}
	writeOK(w)
	level := slog.LevelDebug
	if (ev.Result == ResultFail || ev.Result == ResultWarn) && h.OnEvent == nil {
		level = slog.LevelWarn // with OnEvent, reporting it is OnEvent's
	}
	q.note(level, OutcomeEvent, what+" received", "result", string(ev.Result))
}

// acceptsEvents reports whether a record in status s takes boot events:
// while its server boots (creating, cloud_init) and while the secrets are
// injected. cloud-init posts the rest of its final stage after phone_home
// (config-phone-home's finish, config-final-message, the stage's finish),
// on every boot, while the Provisioner connects: refusing them would make
// cloud-init log "Failed posting event" after every successful boot. They
// are progress only, like the others. A ready, failed, deleted or pending
// record takes none: a ready server posts events again only when it
// reboots, or when something on it replays them.
func acceptsEvents(s store.Status) bool {
	switch s {
	case store.StatusCreating, store.StatusCloudInit, store.StatusInjectingSecrets:
		return true
	}
	return false
}

// callOnEvent runs OnEvent with a panic recovered and logged like
// OnReady's.
func (h *Handler) callOnEvent(ctx context.Context, rec store.Record, ev BootEvent, log *slog.Logger) {
	defer func() {
		if v := recover(); v != nil {
			log.ErrorContext(ctx, "OnEvent panicked", "outcome", outcomeEventPanic,
				"panic_type", fmt.Sprintf("%T", v), "site", panicSite())
		}
	}()
	h.OnEvent(ctx, rec.Clone(), ev)
}
