package hetzner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/hatchery-dev/hatchery/internal/pacing"
	"github.com/hatchery-dev/hatchery/provider"
)

// Defaults of Transport and NewClient.
const (
	DefaultMaxRetries            = 5
	DefaultRetryDelay            = time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
)

// NewClient returns an hcloud client for the API token that sends its
// requests through a new Transport over a clone of http.DefaultTransport
// whose ResponseHeaderTimeout is DefaultResponseHeaderTimeout (so that a
// POST whose answer is lost times out, hcloud-go retries it and Create
// adopts the server the first attempt made). It never enables hcloud-go's
// debug writer, which would print request bodies, user_data included.
//
// opts are applied after these defaults: hcloud.WithEndpoint for another
// endpoint, hcloud.WithRetryOpts for hcloud-go's own retries. Passing
// hcloud.WithHTTPClient replaces the Transport: give it one
// (&http.Client{Transport: &hetzner.Transport{...}}) to keep the pacing.
func NewClient(token string, opts ...hcloud.ClientOption) *hcloud.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	all := []hcloud.ClientOption{
		hcloud.WithToken(token),
		hcloud.WithApplication("hatchery", ""),
		hcloud.WithHTTPClient(&http.Client{Transport: &Transport{Base: base}}),
	}
	return hcloud.NewClient(append(all, opts...)...)
}

// RateLimitError is returned (wrapped) when the next request may only be
// sent after the context's deadline. It matches provider.ErrRateLimited.
type RateLimitError struct {
	Until time.Time // when the budget allows the next request
}

// Error says until when the API is rate limited.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("hetzner: rate limited until %s, after the context deadline",
		e.Until.UTC().Format(time.RFC3339))
}

// Unwrap returns provider.ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return provider.ErrRateLimited }

// Transport is an http.RoundTripper for the Hetzner Cloud API that paces
// requests from the RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset headers of the answers, so that a burst of creates waits
// for budget instead of collecting 429s, and that retries what hcloud-go does
// not: a 429 without an hcloud error body and a 503.
//
// Share one Transport between all clients of one Hetzner project: the
// budget is per project. The zero value is ready to use; a Transport must not
// be copied after first use.
type Transport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// MaxRetries bounds the retries of one request after a 503 or a bare
	// 429. 0 means DefaultMaxRetries; negative means none.
	MaxRetries int
	// RetryDelay is the first pause before retrying a 503 or a bare 429
	// that says neither Retry-After nor RateLimit-Reset; it doubles with
	// every retry, up to 30 s. 0 means DefaultRetryDelay.
	RetryDelay time.Duration
	// WaitForReset makes the pacer assume that an exhausted budget comes
	// back all at once at RateLimit-Reset (fixed windows), and wait for it.
	// By default it assumes what Hetzner documents: the budget refills
	// gradually (one request per second for 3,600 an hour) and
	// RateLimit-Reset is when it is full again, so the next request is due
	// long before that.
	WaitForReset bool
	// Logger gets a debug line for every wait and retry; nil means quiet.
	Logger *slog.Logger

	g pacing.Gate
	p pacer // under g
}

// pacer is the Transport's estimate of the project's request budget. It
// never trusts an answer more than the ones before it: every answer lowers
// the estimate to what it reports minus the requests still in flight, and
// the estimate rises only by the refill it assumes (at most the rate the
// headers prove) or when RateLimit-Reset has passed.
type pacer struct {
	known     bool      // tokens, limit and reset describe the budget
	unmetered bool      // answers carry no RateLimit headers: no pacing
	tokens    float64   // requests that may be sent now
	limit     int       // RateLimit-Limit, 0 if unknown
	rate      float64   // tokens per second the budget provably refills, 0 if unknown
	reset     time.Time // when the budget is full again
	stamp     time.Time // when tokens was computed
	blocked   time.Time // no request before this (Retry-After)
	inflight  int       // requests sent and not answered
}

func (t *Transport) maxRetries() int {
	switch {
	case t.MaxRetries < 0:
		return 0
	case t.MaxRetries == 0:
		return DefaultMaxRetries
	}
	return t.MaxRetries
}

// RoundTrip waits until the budget allows a request, sends req, and retries
// it after a 503 or a 429 that hcloud-go would not retry, waiting as the
// answer says (Retry-After, RateLimit-Reset) but never past the request
// context's deadline: when the wait would end after it, the answer is
// returned as it is.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	trip := pacing.Trip{
		Gate: &t.g, Base: t.Base, Name: "hetzner", Logger: t.Logger, MaxRetries: t.maxRetries(),
		Take: func(now time.Time) (time.Time, bool) { return t.p.take(now, t.WaitForReset) },
		Observe: func(resp *http.Response, sent, now time.Time) {
			t.p.observe(resp, sent, now, t.WaitForReset, t.RetryDelay)
		},
		Retry: func(_ *http.Request, resp *http.Response, err error, attempt int) (time.Duration, bool) {
			if err != nil {
				return 0, false
			}
			return t.retryDelay(resp, attempt)
		},
		Late: func(until time.Time) error { return &RateLimitError{Until: until} },
	}
	return trip.RoundTrip(req)
}

// retryDelay reports whether the Transport retries resp, and how long that
// request waits first on top of what the pacer imposes on every request.
// hcloud-go retries an hcloud error body with code rate_limit_exceeded
// itself (and 502, 504, timeouts), so those are left to it.
func (t *Transport) retryDelay(resp *http.Response, attempt int) (time.Duration, bool) {
	h := resp.Header
	informed := h.Get("Retry-After") != ""
	switch resp.StatusCode {
	case http.StatusServiceUnavailable:
	case http.StatusTooManyRequests:
		if errorCode(resp) == string(hcloud.ErrorCodeRateLimitExceeded) {
			return 0, false
		}
		informed = informed || h.Get("RateLimit-Reset") != ""
	default:
		return 0, false
	}
	if informed {
		return 0, true // the pacer waits as the headers say
	}
	return pacing.Backoff(t.RetryDelay, attempt), true
}

// errorCode returns the hcloud error code of a JSON error body, keeping the
// body readable.
func errorCode(resp *http.Response) string {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return ""
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

// take reserves a request at now, or returns when to look again (zero: when
// an answer arrives).
func (p *pacer) take(now time.Time, fixed bool) (time.Time, bool) {
	if now.Before(p.blocked) {
		return p.blocked, false
	}
	p.refill(now, fixed)
	switch {
	case !p.known:
		// Unknown budget: one request at a time until an answer tells.
		if p.unmetered || p.inflight == 0 {
			p.inflight++
			return time.Time{}, true
		}
		return time.Time{}, false
	case p.tokens >= 1:
		p.tokens--
		p.inflight++
		return time.Time{}, true
	}
	var next time.Time
	if p.rate > 0 && !fixed {
		next = now.Add(time.Duration((1 - p.tokens) / p.rate * float64(time.Second)))
	}
	if !p.reset.IsZero() && (next.IsZero() || p.reset.Before(next)) {
		next = p.reset
	}
	if next.IsZero() && p.inflight == 0 {
		// Nothing will tell more: probe with one request.
		p.known = false
		p.inflight++
		return time.Time{}, true
	}
	return next, false
}

// refill adds what the budget got back since stamp.
func (p *pacer) refill(now time.Time, fixed bool) {
	if !p.known {
		return
	}
	if !p.reset.IsZero() && !now.Before(p.reset) {
		p.reset = time.Time{}
		if p.limit > 0 {
			p.tokens = float64(max(0, p.limit-p.inflight))
		} else {
			p.known = false
		}
	} else if p.rate > 0 && !fixed && now.After(p.stamp) {
		p.tokens += now.Sub(p.stamp).Seconds() * p.rate
		if p.limit > 0 {
			p.tokens = min(p.tokens, float64(p.limit-p.inflight))
		}
	}
	p.stamp = now
}

func (p *pacer) observe(resp *http.Response, sent, now time.Time, fixed bool, fallback time.Duration) {
	p.inflight--
	if resp == nil {
		return
	}
	h := resp.Header
	retryAt, hasRetry := pacing.RetryAfter(h, now)
	if hasRetry {
		p.blocked = pacing.Later(p.blocked, retryAt)
	}
	remaining, hasRemaining := pacing.HeaderInt(h, "RateLimit-Remaining")
	limit, hasLimit := pacing.HeaderInt(h, "RateLimit-Limit")
	reset, hasReset := pacing.HeaderUnix(h, "RateLimit-Reset")
	if resp.StatusCode == http.StatusTooManyRequests && !hasRetry {
		switch {
		case hasReset && !hasRemaining:
			p.blocked = pacing.Later(p.blocked, reset)
		case !hasReset:
			// A 429 that says nothing about when: everyone pauses.
			if fallback <= 0 {
				fallback = DefaultRetryDelay
			}
			p.blocked = pacing.Later(p.blocked, now.Add(fallback))
		}
	}
	if !hasRemaining {
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && !p.known {
			p.unmetered = true
		}
		return
	}
	p.unmetered = false
	p.refill(now, fixed)
	if hasLimit && limit > 0 {
		if limit != p.limit {
			p.rate = 0
		}
		p.limit = limit
	}
	// What the answer proves is left, minus what may not be counted yet.
	est := float64(max(0, remaining-p.inflight))
	if !p.known || est < p.tokens {
		p.tokens = est
	}
	p.known = true
	p.stamp = now
	if hasReset && reset.After(now) {
		if reset.After(p.reset) {
			p.reset = reset
		}
		// The budget is full at reset, deficit requests later; all but the
		// first of them came back at the refill rate after the request was
		// counted, hence after it was sent.
		if deficit := p.limit - remaining; p.limit > 0 && deficit >= 2 {
			if r := float64(deficit-1) / reset.Sub(sent).Seconds(); r > p.rate {
				p.rate = r
			}
		}
	}
}
