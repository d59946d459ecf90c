package pacing

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		first   time.Duration
		attempt int
		want    time.Duration
	}{
		{0, 0, DefaultDelay},
		{-time.Second, 1, 2 * DefaultDelay},
		{100 * time.Millisecond, 0, 100 * time.Millisecond},
		{100 * time.Millisecond, 3, 800 * time.Millisecond},
		{time.Second, 5, MaxDelay}, // 32 s
		{time.Second, 1000, MaxDelay},
		{time.Minute, 0, time.Minute}, // the first pause is the caller's
	} {
		assert.Equal(t, tc.want, Backoff(tc.first, tc.attempt), "%v %d", tc.first, tc.attempt)
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		value      string
		n          int
		nOK        bool
		unix       time.Time
		unixOK     bool
		retryAfter time.Time
		retryOK    bool
	}{
		{value: ""},
		{value: "0", nOK: true, retryAfter: now, retryOK: true},
		{value: " 42 ", n: 42, nOK: true, unix: time.Unix(42, 0), unixOK: true, retryAfter: now.Add(42 * time.Second), retryOK: true},
		{value: "-1"},
		{value: "1.5"},
		{value: "soon"},
		{value: "Wed, 15 Nov 2023 00:00:00 GMT", retryAfter: time.Date(2023, 11, 15, 0, 0, 0, 0, time.UTC), retryOK: true},
	} {
		h := http.Header{}
		if tc.value != "" {
			h.Set("X", tc.value)
			h.Set("Retry-After", tc.value)
		}
		n, ok := HeaderInt(h, "X")
		assert.Equal(t, tc.nOK, ok, "int %q", tc.value)
		if ok {
			assert.Equal(t, tc.n, n, "int %q", tc.value)
		}
		u, ok := HeaderUnix(h, "X")
		assert.Equal(t, tc.unixOK, ok, "unix %q", tc.value)
		assert.True(t, tc.unix.Equal(u), "unix %q: %v", tc.value, u)
		r, ok := RetryAfter(h, now)
		assert.Equal(t, tc.retryOK, ok, "Retry-After %q", tc.value)
		assert.True(t, tc.retryAfter.Equal(r), "Retry-After %q: %v", tc.value, r)
	}
}

func TestLater(t *testing.T) {
	t.Parallel()
	a, b := time.Unix(1, 0), time.Unix(2, 0)
	assert.Equal(t, b, Later(a, b))
	assert.Equal(t, b, Later(b, a))
	assert.Equal(t, a, Later(time.Time{}, a))
}
