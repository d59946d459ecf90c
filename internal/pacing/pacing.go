// Package pacing is the request loop that the provider drivers' HTTP
// transports share: wait until the driver's estimate of the API's request
// budget allows a request, send it, let the estimate learn from the
// answer, and retry what the driver says may be retried, never waiting
// past the request context's deadline. What the budget is (its headers,
// the model of the API's limits) and what is retried stay in each driver.
package pacing

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Backoff bounds.
const (
	// DefaultDelay is the first pause of Backoff when none is given (the
	// drivers' DefaultRetryDelay).
	DefaultDelay = time.Second
	// MaxDelay is the longest pause of Backoff.
	MaxDelay = 30 * time.Second
)

// Gate holds the lock under which a driver's budget estimate is read and
// written, and wakes the requests that wait for an answer when one
// arrives. The zero value is ready to use; a Gate must not be copied after
// first use.
type Gate struct {
	mu   sync.Mutex
	wake chan struct{}
}

// Trip is what one request's trip through a driver's Transport needs from
// the driver. Take and Observe are called with Gate locked.
type Trip struct {
	Gate *Gate
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Name prefixes the log messages ("hetzner").
	Name string
	// Logger gets a debug line for every wait and retry; nil means quiet.
	Logger *slog.Logger
	// MaxRetries bounds the retries of one request; 0 means none.
	MaxRetries int
	// Take reserves a request at now, or returns when to look again (the
	// zero time: when an answer arrives).
	Take func(now time.Time) (until time.Time, ok bool)
	// Observe ends a request sent at sent and learns from its answer at
	// now (resp is nil when there was none).
	Observe func(resp *http.Response, sent, now time.Time)
	// Retry reports whether the request is sent again after resp or err
	// (the outcome of attempt, counted from 0), and how long it waits
	// first on top of what Take imposes on every request.
	Retry func(req *http.Request, resp *http.Response, err error, attempt int) (delay time.Duration, ok bool)
	// Late is the error of a request whose wait for budget would end, at
	// until, after its context's deadline.
	Late func(until time.Time) error
}

// RoundTrip waits until Take allows a request, sends req through Base,
// and sends it again while Retry says so, at most MaxRetries times, when
// its body can be replayed and the wait ends before the context's
// deadline; otherwise it returns the last answer as it is.
func (t *Trip) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
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
		resp, err := base.RoundTrip(out)
		t.observe(resp, sent)

		delay, retry := t.Retry(req, resp, err, attempt)
		replayable := req.Body == nil || req.GetBody != nil
		if !retry || attempt >= t.MaxRetries || !replayable {
			return resp, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return resp, err
		}
		attrs := []slog.Attr{slog.String("method", req.Method), slog.String("path", req.URL.Path)}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
			attrs = append(attrs, slog.Int("status", resp.StatusCode))
		} else {
			attrs = append(attrs, slog.Bool("network_error", true))
		}
		t.logger().LogAttrs(ctx, slog.LevelDebug, t.Name+": retrying",
			append(attrs, slog.Duration("delay", delay), slog.Int("attempt", attempt+1))...)
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

func (t *Trip) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// acquire waits until Take allows one more request. It fails at once with
// Late's error when that would be after ctx's deadline.
func (t *Trip) acquire(ctx context.Context) error {
	g := t.Gate
	for {
		g.mu.Lock()
		now := time.Now()
		until, ok := t.Take(now)
		if ok {
			g.mu.Unlock()
			return nil
		}
		if g.wake == nil {
			g.wake = make(chan struct{})
		}
		wake := g.wake
		g.mu.Unlock()

		if until.IsZero() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-wake:
			}
			continue
		}
		if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
			return t.Late(until)
		}
		t.logger().LogAttrs(ctx, slog.LevelDebug, t.Name+": waiting for rate limit budget", slog.Time("until", until))
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

// observe hands a request's end to Observe and wakes the waiting requests.
func (t *Trip) observe(resp *http.Response, sent time.Time) {
	g := t.Gate
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Observe(resp, sent, time.Now())
	if g.wake != nil {
		close(g.wake)
		g.wake = nil
	}
}

// Backoff is the pause before retry number attempt+1: first (DefaultDelay
// when not positive), doubled with every attempt, at most MaxDelay.
func Backoff(first time.Duration, attempt int) time.Duration {
	d := first
	if d <= 0 {
		d = DefaultDelay
	}
	for range attempt {
		d *= 2
		if d >= MaxDelay {
			return MaxDelay
		}
	}
	return d
}

// Later returns the later of a and b.
func Later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// HeaderInt returns header key as a number that is not negative.
func HeaderInt(h http.Header, key string) (int, bool) {
	v := h.Get(key)
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	return n, err == nil && n >= 0
}

// HeaderUnix returns header key as a time in Unix seconds, after 1970.
func HeaderUnix(h http.Header, key string) (time.Time, bool) {
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

// RetryAfter parses Retry-After: delay seconds from now, or an HTTP date.
func RetryAfter(h http.Header, now time.Time) (time.Time, bool) {
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
