package digitalocean_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/dotest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
)

// A 429 is retried, even for a create (DigitalOcean refused it before
// doing anything), not before the answer allows it.
func TestRetryAfter429(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault dotest.Fault
	}{
		{"budget spent, RateLimit-Reset", dotest.Fault{Status: 429, ID: "too_many_requests", Reset: time.Second}},
		{"Retry-After", dotest.Fault{Status: 429, ID: "too_many_requests", RetryAfter: time.Second}},
		{"bare 429 (the minute limit)", dotest.Fault{Status: 429, ID: "too_many_requests"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{tr: func(tr *digitalocean.Transport) { tr.RetryDelay = 300 * time.Millisecond }})
			tc.fault.Method = http.MethodPost
			b.api.Inject(tc.fault)
			_, err := b.p.Create(context.Background(), request("t-1"))
			require.NoError(t, err)
			reqs := b.api.Requests()
			require.Len(t, reqs, 3)
			assert.Equal(t, []string{lookup, post, post}, calls(b.api))
			assert.Equal(t, http.StatusTooManyRequests, reqs[1].Status)
			assert.Equal(t, http.StatusAccepted, reqs[2].Status)
			notBefore := reqs[1].Time.Add(300 * time.Millisecond)
			switch {
			case tc.fault.Reset > 0:
				// RateLimit-Reset is the Unix second, rounded up.
				notBefore = reqs[1].Time.Add(tc.fault.Reset).Truncate(time.Second)
			case tc.fault.RetryAfter > 0:
				notBefore = reqs[1].Time.Add(tc.fault.RetryAfter)
			}
			assert.False(t, reqs[2].Time.Before(notBefore), "retried at %v, before %v", reqs[2].Time, notBefore)
			assert.Len(t, b.api.Droplets(), 1)
		})
	}
}

// A GET or DELETE is retried after a 5xx or a lost answer; a POST never is
// (TestCreateAdoptsAfterLostResponse).
func TestIdempotentRequestsRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault dotest.Fault
	}{
		{"500", dotest.Fault{Status: 500, ID: "server_error"}},
		{"502", dotest.Fault{Status: 502}},
		{"503 with Retry-After", dotest.Fault{Status: 503, RetryAfter: time.Second}},
		{"504", dotest.Fault{Status: 504}},
		{"connection closed", dotest.Fault{Lost: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{})
			id := strconv.Itoa(b.api.AddDroplet("x"))
			get, del := tc.fault, tc.fault
			get.Method, del.Method = http.MethodGet, http.MethodDelete
			b.api.Inject(get, del)
			_, err := b.p.Get(context.Background(), id)
			require.NoError(t, err)
			require.NoError(t, b.p.Delete(context.Background(), id))
			assert.Equal(t, 2, b.api.Count(http.MethodGet, "/v2/droplets/"+id))
			assert.Equal(t, 2, b.api.Count(http.MethodDelete, "/v2/droplets/"+id))
			assert.Empty(t, b.api.Droplets())
		})
	}
}

// The sliding window: a burst of creates stays within the budget the
// headers report, waiting for the oldest requests to expire instead of
// collecting 429s.
func TestPacingSlidingWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, config{api: dotest.Options{RateLimit: 8, Window: time.Second}})
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() { _, errs[i] = b.p.Create(context.Background(), request("t-"+strconv.Itoa(i))) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 0, b.api.Throttled(), "429s seen by the API")
	assert.Equal(t, 2*n, b.api.Count("", ""))
	assert.Len(t, b.api.Droplets(), n)
	t.Logf("%d creates (%d requests, 8 a second) in %v", n, 2*n, time.Since(start))
}

// The per-minute limit, which no header shows: the Transport keeps to it
// itself; without that, the 429s are retried after a backoff.
func TestPacingBurst(t *testing.T) {
	t.Parallel()
	api := dotest.Options{Burst: 6, BurstWindow: 500 * time.Millisecond}
	for _, tc := range []struct {
		name      string
		burst     int
		throttled bool
	}{
		{"paced", 6, false},
		{"unpaced, retried", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{api: api, tr: func(tr *digitalocean.Transport) {
				tr.Burst, tr.BurstWindow = tc.burst, 500*time.Millisecond
				tr.RetryDelay = 100 * time.Millisecond
				tr.MaxRetries = 20
			}})
			var ids []string
			for i := range 15 {
				ids = append(ids, strconv.Itoa(b.api.AddDroplet("x-"+strconv.Itoa(i))))
			}
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Go(func() {
					_, err := b.p.Get(context.Background(), id)
					assert.NoError(t, err)
				})
			}
			wg.Wait()
			assert.Equal(t, tc.throttled, b.api.Throttled() > 0, "throttled %d", b.api.Throttled())
		})
	}
}

// A wait that would outlast the context's deadline fails at once.
func TestRateLimitedWithinDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	b.api.Inject(dotest.Fault{Method: http.MethodPost, Status: 429, ID: "too_many_requests", Reset: 60 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, provider.ErrRateLimited)
	var rl *digitalocean.RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.WithinDuration(t, start.Add(60*time.Second), rl.Until, 2*time.Second)
	assert.Less(t, time.Since(start), 10*time.Second, "fails at once instead of waiting for the deadline")
	assert.Equal(t, []string{lookup, post}, calls(b.api))
	assert.NotContains(t, err.Error(), "outcome unknown", "a 429 made nothing")

	// A GET whose 5xx retry would outlast the deadline returns the 5xx.
	b2 := setup(t, config{tr: func(tr *digitalocean.Transport) { tr.RetryDelay = time.Minute }})
	b2.api.Inject(dotest.Fault{Method: http.MethodGet, Status: 503})
	_, err = b2.p.Get(ctx, "42")
	require.Error(t, err)
	assert.ErrorContains(t, err, "503")
	assert.Equal(t, 1, b2.api.Count("", ""))
}

func TestCanceledWhileWaiting(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	b.api.Inject(dotest.Fault{Method: http.MethodPost, Status: 429, Reset: 30 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// Neither the user-data nor the token reaches the logs or the errors, even
// with debug logging, retries and failures.
func TestNoSecretsLogged(t *testing.T) {
	t.Parallel()
	b := setup(t, config{headerTimeout: 300 * time.Millisecond})
	b.api.Inject(
		dotest.Fault{Method: http.MethodGet, Status: 503},
		dotest.Fault{Method: http.MethodPost, Status: 429},
		dotest.Fault{Method: http.MethodPost, Status: 500},
	)
	req := request("t-1")
	req.UserData = []byte("#cloud-config\nhostname: very-distinctive-user-data\n")
	_, err := b.p.Create(context.Background(), req)
	require.NoError(t, err)
	b.api.Inject(dotest.Fault{Method: http.MethodPost, Status: 422, ID: "unprocessable_entity", Message: dotest.MsgDropletLimit})
	req.Name = "t-2"
	_, err = b.p.Create(context.Background(), req)
	require.ErrorIs(t, err, provider.ErrQuota)

	log := b.log.String()
	assert.Contains(t, log, "digitalocean: retrying")
	for _, secret := range []string{"very-distinctive-user-data", token, "cloud-config"} {
		assert.NotContains(t, log, secret)
		assert.NotContains(t, err.Error(), secret)
	}
	assert.False(t, strings.Contains(log, "Bearer"))
}
