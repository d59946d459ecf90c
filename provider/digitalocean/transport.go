package digitalocean

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/digitalocean/godo"

	"github.com/hatchery-dev/hatchery/internal/pacing"
	"github.com/hatchery-dev/hatchery/provider"
)

// Defaults of Transport and NewClient.
const (
	DefaultMaxRetries            = 5
	DefaultRetryDelay            = time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	// DefaultBurst requests per DefaultBurstWindow is DigitalOcean's
	// second limit, besides 5,000 requests an hour.
	DefaultBurst       = 250
	DefaultBurstWindow = time.Minute
)

// NewClient returns a godo client for the API token that sends its
// requests through a new Transport over a clone of http.DefaultTransport
// whose ResponseHeaderTimeout is DefaultResponseHeaderTimeout, so that a
// create whose answer is lost fails within that time and Create looks the
// name up instead of waiting forever.
//
// opts are applied after these defaults, e.g. godo.SetBaseURL for another
// endpoint. godo.WithRetryAndBackoffs is refused: it replaces the
// Transport with go-retryablehttp, which sends a create again after a 5xx
// and so makes a second droplet whenever the first answer was lost after
// the droplet was made; the Transport retries what is safe to retry.
// Neither NewClient nor the Transport logs a request body (user_data) or
// the token.
func NewClient(token string, opts ...godo.ClientOpt) (*godo.Client, error) {
	probe := godo.NewClient(nil)
	for _, opt := range opts {
		if err := opt(probe); err != nil {
			return nil, fmt.Errorf("digitalocean: client option: %w", err)
		}
	}
	if probe.RetryConfig.RetryMax > 0 {
		return nil, fmt.Errorf("%w: digitalocean: godo.WithRetryAndBackoffs retries creates, which makes duplicate droplets; the Transport retries what is safe",
			provider.ErrInvalid)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	all := []godo.ClientOpt{
		godo.SetUserAgent("hatchery"),
		godo.SetRequestHeaders(map[string]string{"Authorization": "Bearer " + strings.TrimSpace(token)}),
	}
	c, err := godo.New(&http.Client{Transport: &Transport{Base: base}}, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("digitalocean: new client: %w", err)
	}
	return c, nil
}

// RateLimitError is returned (wrapped) when the next request may only be
// sent after the context's deadline. It matches provider.ErrRateLimited.
type RateLimitError struct {
	Until time.Time // when the budget allows the next request
}

// Error says until when the API is rate limited.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("digitalocean: rate limited until %s, after the context deadline",
		e.Until.UTC().Format(time.RFC3339))
}

// Unwrap returns provider.ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return provider.ErrRateLimited }

// Transport is an http.RoundTripper for the DigitalOcean API that paces
// requests within the token's limits and retries what is safe to retry.
//
// DigitalOcean counts requests in a sliding window: 5,000 per hour, each
// request counting for an hour after it was made; RateLimit-Remaining is
// what is left and RateLimit-Reset is when the oldest request of the
// window expires (one request comes back then, not the whole budget). A
// second limit, 250 requests per minute, does not show in the headers.
// The Transport keeps an estimate of the hourly budget from the freshest
// answer (what it reports, minus the requests still in flight), lets
// requests through while budget is left, and makes the rest wait: until
// RateLimit-Reset when it is spent, then one request at a time until an
// answer tells more. It keeps at most Burst requests in any BurstWindow
// itself. Every wait ends at the request context's deadline: a wait that
// would outlast it fails at once with a *RateLimitError.
//
// Retries: a 429 is retried whatever the method (DigitalOcean refuses it
// before doing anything), after Retry-After, RateLimit-Reset or a backoff;
// a 5xx or a network error only for GET, HEAD, PUT and DELETE. A POST that
// failed otherwise is never sent again here: its droplet may exist, and
// Create decides what to do after looking the name up.
//
// Share one Transport between all clients of one token: the budget is per
// token. The zero value is ready to use; a Transport must not be copied
// after first use.
type Transport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// MaxRetries bounds the retries of one request. 0 means
	// DefaultMaxRetries; negative means none.
	MaxRetries int
	// RetryDelay is the first pause before a retry that no header times;
	// it doubles with every retry, up to 30 s. 0 means DefaultRetryDelay.
	RetryDelay time.Duration
	// Burst is how many requests may start in any BurstWindow. 0 means
	// DefaultBurst per DefaultBurstWindow; negative means no such pacing.
	Burst       int
	BurstWindow time.Duration
	// Logger gets a debug line for every wait and retry (method, path,
	// status); nil means quiet.
	Logger *slog.Logger

	g pacing.Gate
	p pacer // under g
}

// pacer is the Transport's view of the token's budget.
type pacer struct {
	known     bool      // remaining and reset describe the budget
	unmetered bool      // answers carry no RateLimit headers: no hourly pacing
	remaining int       // requests that may be sent now
	reset     time.Time // when the oldest counted request expires
	// stamp is when the answer that set remaining arrived: an answer to a
	// request sent after it was counted after that one, and may raise
	// the estimate; an answer to a request sent before may only lower it,
	// since concurrent requests are counted in any order.
	stamp       time.Time
	blocked     time.Time   // no request before this (Retry-After, a 429)
	throttles   int         // 429s in a row that no header timed
	throttledAt time.Time   // when the last of them paused everyone
	inflight    int         // requests sent and not answered
	answered    []time.Time // when the answers of the last burst window arrived
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

func (t *Transport) burst() (int, time.Duration) {
	switch {
	case t.Burst < 0:
		return 0, 0
	case t.Burst == 0:
		return DefaultBurst, DefaultBurstWindow
	}
	if t.BurstWindow <= 0 {
		return t.Burst, DefaultBurstWindow
	}
	return t.Burst, t.BurstWindow
}

// idempotent reports whether sending method twice does what sending it
// once does.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// RoundTrip waits until the budget allows a request, sends req, and
// retries it as the type's documentation says.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	burst, window := t.burst()
	trip := pacing.Trip{
		Gate: &t.g, Base: t.Base, Name: "digitalocean", Logger: t.Logger, MaxRetries: t.maxRetries(),
		Take: func(now time.Time) (time.Time, bool) { return t.p.take(now, burst, window) },
		Observe: func(resp *http.Response, sent, now time.Time) {
			if burst > 0 {
				t.p.answered = append(t.p.answered, now)
			}
			t.p.observe(resp, sent, now, t.RetryDelay)
		},
		Retry: t.retry,
		Late:  func(until time.Time) error { return &RateLimitError{Until: until} },
	}
	return trip.RoundTrip(req)
}

// retry reports whether the Transport retries req after resp or err, and
// how long it waits first on top of what the pacer imposes on every
// request.
func (t *Transport) retry(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	switch {
	case err != nil:
		return pacing.Backoff(t.RetryDelay, attempt), idempotent(req.Method) && req.Context().Err() == nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return 0, true // the pacer waits as the answer says
	case resp.StatusCode >= 500 && idempotent(req.Method):
		if resp.Header.Get("Retry-After") == "" {
			return pacing.Backoff(t.RetryDelay, attempt), true
		}
		return 0, true
	}
	return 0, false
}

// take reserves a request at now, or returns when to look again (zero:
// when an answer arrives).
//
// The burst limit counts a request from when it is sent until burst window
// after its answer arrived: the API counted it somewhere in between, so
// whatever the latencies, no burst window at the API holds more than
// burst requests.
func (p *pacer) take(now time.Time, burst int, window time.Duration) (time.Time, bool) {
	if now.Before(p.blocked) {
		return p.blocked, false
	}
	if burst > 0 {
		i := 0
		for i < len(p.answered) && !p.answered[i].Add(window).After(now) {
			i++
		}
		p.answered = p.answered[i:]
		if over := p.inflight + len(p.answered) - burst; over >= 0 {
			if over < len(p.answered) {
				return p.answered[over].Add(window), false
			}
			return time.Time{}, false
		}
	}
	if p.known && p.remaining < 1 {
		if p.reset.IsZero() || !now.Before(p.reset) {
			// The oldest request expired (or nothing says when): probe
			// with one request, whose answer tells.
			p.known = false
		} else {
			return p.reset, false
		}
	}
	switch {
	case p.known:
		p.remaining--
	case !p.unmetered && p.inflight > 0:
		// Unknown budget: one request at a time until an answer tells.
		return time.Time{}, false
	}
	p.inflight++
	return time.Time{}, true
}

func (p *pacer) observe(resp *http.Response, sent, now time.Time, firstDelay time.Duration) {
	p.inflight--
	if resp == nil {
		return
	}
	h := resp.Header
	remaining, hasRemaining := pacing.HeaderInt(h, "RateLimit-Remaining")
	reset, hasReset := pacing.HeaderUnix(h, "RateLimit-Reset")
	retryAt, hasRetry := pacing.RetryAfter(h, now)
	switch {
	case hasRetry:
		p.blocked = pacing.Later(p.blocked, retryAt)
	case resp.StatusCode != http.StatusTooManyRequests:
		if !sent.Before(p.throttledAt) {
			p.throttles = 0
		}
	case hasRemaining && remaining == 0 && hasReset:
		p.blocked = pacing.Later(p.blocked, reset)
	case sent.Before(p.throttledAt):
		// Sent before the last pause began: that pause covers it.
	default:
		// A 429 that says nothing about when (DigitalOcean's per-minute
		// limit): everyone pauses, longer with every such pause in a row.
		p.blocked = pacing.Later(p.blocked, now.Add(pacing.Backoff(firstDelay, p.throttles)))
		p.throttles++
		p.throttledAt = now
	}
	if !hasRemaining {
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && !p.known {
			p.unmetered = true
		}
		return
	}
	p.unmetered = false
	// What the answer proves is left, minus what may not be counted yet.
	est := max(0, remaining-p.inflight)
	switch {
	case !p.known || sent.After(p.stamp):
		p.known = true
		p.remaining = est
		p.stamp = now
		p.reset = time.Time{}
		if hasReset {
			p.reset = reset
		}
	case est < p.remaining:
		p.remaining = est
		if hasReset && reset.After(p.reset) {
			p.reset = reset
		}
	}
}
