package digitalocean

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func answer(status, remaining int, reset time.Time) *http.Response {
	h := http.Header{}
	h.Set("RateLimit-Limit", "5000")
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	if !reset.IsZero() {
		h.Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	}
	return &http.Response{StatusCode: status, Header: h}
}

// Concurrent requests are counted in any order: an answer to a request
// sent before the answer that set the estimate may only lower it. With
// "the later sent, the fresher" instead, this overestimated by one and
// the next burst met a 429 (TestPacingSlidingWindow).
func TestPacerConcurrentAnswers(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var p pacer

	_, ok := p.take(at(0), 0, 0)
	require.True(t, ok, "unknown budget: one probe")
	_, ok = p.take(at(1), 0, 0)
	require.False(t, ok, "unknown budget: one request at a time")
	p.observe(answer(200, 10, at(3600_000)), at(0), at(10), time.Second)
	assert.Equal(t, 10, p.remaining)

	// A is sent before B; the API counts B first (9 left), then A (8).
	_, ok = p.take(at(20), 0, 0)
	require.True(t, ok)
	_, ok = p.take(at(21), 0, 0)
	require.True(t, ok)
	p.observe(answer(200, 8, at(3600_000)), at(20), at(30), time.Second) // A
	assert.Equal(t, 7, p.remaining, "8 left, B still in flight")
	p.observe(answer(200, 9, at(3600_000)), at(21), at(31), time.Second) // B
	assert.Equal(t, 7, p.remaining, "B was sent before A's answer: it cannot raise the estimate")

	// A request sent after that knows more, and may raise it (requests of
	// the sliding window expired).
	_, ok = p.take(at(40), 0, 0)
	require.True(t, ok)
	p.observe(answer(200, 20, at(3600_000)), at(40), at(50), time.Second)
	assert.Equal(t, 20, p.remaining)
}

// Spent budget: wait until RateLimit-Reset, then one probe.
func TestPacerWaitsForReset(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	var p pacer
	_, _ = p.take(t0, 0, 0)
	p.observe(answer(200, 0, t0.Add(30*time.Second)), t0, t0, time.Second)
	until, ok := p.take(t0.Add(time.Second), 0, 0)
	require.False(t, ok)
	assert.Equal(t, t0.Add(30*time.Second), until)
	_, ok = p.take(t0.Add(30*time.Second), 0, 0)
	require.True(t, ok, "the oldest request expired: a probe")
	_, ok = p.take(t0.Add(30*time.Second), 0, 0)
	require.False(t, ok, "one at a time until its answer")
}

// The burst limit counts a request until a window after its answer, so
// that latency cannot squeeze more than burst requests into a window at
// the API.
func TestPacerBurst(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	p := pacer{unmetered: true}
	for range 2 {
		_, ok := p.take(t0, 2, time.Second)
		require.True(t, ok)
	}
	until, ok := p.take(t0, 2, time.Second)
	require.False(t, ok)
	assert.True(t, until.IsZero(), "both in flight: wait for an answer")

	p.inflight--
	p.answered = append(p.answered, t0.Add(300*time.Millisecond))
	until, ok = p.take(t0.Add(400*time.Millisecond), 2, time.Second)
	require.False(t, ok)
	assert.Equal(t, t0.Add(1300*time.Millisecond), until)
	_, ok = p.take(until, 2, time.Second)
	assert.True(t, ok)
}

// 429s that no header times pause everyone, longer each time, but the
// 429s of requests sent before a pause began do not lengthen it.
func TestPacerBackoff(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	p := pacer{unmetered: true}
	bare := &http.Response{StatusCode: 429, Header: http.Header{}}
	p.inflight = 3
	p.observe(bare, t0, t0.Add(10*time.Millisecond), 100*time.Millisecond)
	assert.Equal(t, t0.Add(110*time.Millisecond), p.blocked)
	p.observe(bare, t0, t0.Add(20*time.Millisecond), 100*time.Millisecond)
	assert.Equal(t, t0.Add(110*time.Millisecond), p.blocked, "sent before the pause: no escalation")
	p.observe(bare, t0.Add(200*time.Millisecond), t0.Add(210*time.Millisecond), 100*time.Millisecond)
	assert.Equal(t, t0.Add(410*time.Millisecond), p.blocked, "a 429 after the pause: twice as long")
}
