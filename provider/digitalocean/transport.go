package digitalocean

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/godo"

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
	maxRetryDelay      = 30 * time.Second
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

	mu sync.Mutex
	p  pacer
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
	wake        chan struct{}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
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

// backoff is the pause before retry number attempt+1.
func backoff(first time.Duration, attempt int) time.Duration {
	d := first
	if d <= 0 {
		d = DefaultRetryDelay
	}
	for range attempt {
		d *= 2
		if d >= maxRetryDelay {
			return maxRetryDelay
		}
	}
	return d
}

func (t *Transport) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
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
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if err := t.acquire(ctx); err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, err
		}
		out := req
		if attempt > 0 {
			out = req.Clone(ctx)
			if req.Body != nil {
				body, err := req.GetBody()
				if err != nil {
					t.observe(nil, time.Time{})
					return nil, err
				}
				out.Body = body
			}
		}
		sent := time.Now()
		resp, err := t.base().RoundTrip(out)
		t.observe(resp, sent)

		var delay time.Duration
		retry := false
		status := 0
		switch {
		case err != nil:
			retry = idempotent(req.Method) && ctx.Err() == nil
			delay = backoff(t.RetryDelay, attempt)
		case resp.StatusCode == http.StatusTooManyRequests:
			retry = true // the pacer waits as the answer says
			status = resp.StatusCode
		case resp.StatusCode >= 500 && idempotent(req.Method):
			retry = true
			status = resp.StatusCode
			if resp.Header.Get("Retry-After") == "" {
				delay = backoff(t.RetryDelay, attempt)
			}
		}
		replayable := req.Body == nil || req.GetBody != nil
		if !retry || attempt >= t.maxRetries() || !replayable {
			return resp, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
		}
		t.logger().LogAttrs(ctx, slog.LevelDebug, "digitalocean: retrying",
			slog.String("method", req.Method), slog.String("path", req.URL.Path),
			slog.Int("status", status), slog.Bool("network_error", err != nil),
			slog.Duration("delay", delay), slog.Int("attempt", attempt+1))
		if delay > 0 {
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
			}
		}
	}
}

// acquire waits until the budget allows one more request and counts it in
// flight. It fails at once with a *RateLimitError when that would be after
// ctx's deadline.
func (t *Transport) acquire(ctx context.Context) error {
	burst, window := t.burst()
	for {
		t.mu.Lock()
		now := time.Now()
		until, ok := t.p.take(now, burst, window)
		if ok {
			t.mu.Unlock()
			return nil
		}
		if t.p.wake == nil {
			t.p.wake = make(chan struct{})
		}
		wake := t.p.wake
		t.mu.Unlock()

		if until.IsZero() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-wake:
			}
			continue
		}
		if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
			return &RateLimitError{Until: until}
		}
		t.logger().LogAttrs(ctx, slog.LevelDebug, "digitalocean: waiting for rate limit budget", slog.Time("until", until))
		timer := time.NewTimer(until.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// observe ends a request sent at sent and learns from its answer (nil if
// there was none).
func (t *Transport) observe(resp *http.Response, sent time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if burst, _ := t.burst(); burst > 0 {
		t.p.answered = append(t.p.answered, now)
	}
	t.p.observe(resp, sent, now, t.RetryDelay)
	if t.p.wake != nil {
		close(t.p.wake)
		t.p.wake = nil
	}
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
	remaining, hasRemaining := headerInt(h, "RateLimit-Remaining")
	reset, hasReset := headerUnix(h, "RateLimit-Reset")
	retryAt, hasRetry := retryAfter(h, now)
	switch {
	case hasRetry:
		p.blocked = later(p.blocked, retryAt)
	case resp.StatusCode != http.StatusTooManyRequests:
		if !sent.Before(p.throttledAt) {
			p.throttles = 0
		}
	case hasRemaining && remaining == 0 && hasReset:
		p.blocked = later(p.blocked, reset)
	case sent.Before(p.throttledAt):
		// Sent before the last pause began: that pause covers it.
	default:
		// A 429 that says nothing about when (DigitalOcean's per-minute
		// limit): everyone pauses, longer with every such pause in a row.
		p.blocked = later(p.blocked, now.Add(backoff(firstDelay, p.throttles)))
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

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func headerInt(h http.Header, key string) (int, bool) {
	v := h.Get(key)
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	return n, err == nil && n >= 0
}

func headerUnix(h http.Header, key string) (time.Time, bool) {
	v := h.Get(key)
	if v == "" {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// retryAfter parses Retry-After: delay seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Time, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return time.Time{}, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return now.Add(time.Duration(n) * time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t, true
	}
	return time.Time{}, false
}
