package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

func TestStorableText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		max      int
	}{
		{"plain", "inject: step 3 failed", 100},
		{"nul", "a\x00b", 100},
		{"invalid utf-8", "a\xffb\xc3", 100},
		{"long", strings.Repeat("é", 5000) + "journal tail", 4096},
		{"long invalid", strings.Repeat("x\xff", 5000) + "end", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := storableText(tt.in, tt.max)
			assert.True(t, utf8.ValidString(got))
			assert.NotContains(t, got, "\x00")
			assert.LessOrEqual(t, len(got), tt.max)
			if len(tt.in) > tt.max {
				assert.True(t, strings.HasSuffix(got, tt.in[len(tt.in)-3:]), "the end is kept: %q", got[len(got)-10:])
			}
		})
	}
	assert.Equal(t, "inject: step 3 failed", storableText("inject: step 3 failed", 100))
}

func TestRedact(t *testing.T) {
	t.Parallel()
	vs := secretValues(map[string]string{"a": "token-1", "b": "token-12", "c": "", "d": "token-1"})
	assert.Equal(t, []string{"token-12", "token-1"}, vs, "longest first, distinct, no empty")
	assert.Equal(t, "x [REDACTED] y [REDACTED]", redact("x token-12 y token-1", vs))
	assert.Equal(t, "exit 1", redact("exit 1", []string{"1"}), "too short to redact")
}

// An *Error's whole Unwrap chain is redacted; errors.Is and errors.As
// still reach the original errors.
func TestErrorUnwrapIsRedacted(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-token-value"
	se := &inject.StepError{Step: "write", Index: 2, ExitCode: 1, Err: fmt.Errorf("token %s refused: %w", secret, inject.ErrAuth)}
	cause := fmt.Errorf("ssh with %s: %w", secret, errors.Join(se, fmt.Errorf("also %s: %w", secret, context.DeadlineExceeded)))
	e := newError("t", phaseInject, isFinal(cause), "inject: [REDACTED]", cause, []string{secret})

	var walk func(err error, depth int)
	seen := 0
	walk = func(err error, depth int) {
		if err == nil {
			return
		}
		seen++
		assert.NotContains(t, err.Error(), secret, "depth %d", depth)
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap(), depth+1)
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x, depth+1)
			}
		}
	}
	walk(e, 0)
	assert.GreaterOrEqual(t, seen, 5, "the chain was walked")

	assert.ErrorIs(t, e, inject.ErrAuth)
	assert.ErrorIs(t, e, context.DeadlineExceeded)
	var got *inject.StepError
	require.ErrorAs(t, e, &got)
	assert.Equal(t, 2, got.Index)
	assert.True(t, e.Final, "an authentication failure is final")
}

func TestIsFinal(t *testing.T) {
	t.Parallel()
	for _, err := range []error{inject.ErrHostKey, inject.ErrAuth, inject.ErrSecretInCommand, cloudinit.ErrSecret,
		provider.ErrQuota, provider.ErrConflict, ErrConfig} {
		assert.True(t, isFinal(fmt.Errorf("x: %w", err)), "%v", err)
	}
	for _, err := range []error{provider.ErrUnavailable, provider.ErrRateLimited, context.DeadlineExceeded, errors.New("exit 1")} {
		assert.False(t, isFinal(fmt.Errorf("x: %w", err)), "%v", err)
	}
}

// Another replica takes a lease over only MaxClockSkew after it ended.
func TestLeaseFreeAllowsForSkew(t *testing.T) {
	t.Parallel()
	p := &Provisioner{cfg: Config{MaxClockSkew: time.Second}}
	until := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	held := store.Record{LeaseOwner: "a", LeaseUntil: until}
	assert.False(t, p.leaseFree(held, until.Add(-time.Second)))
	assert.False(t, p.leaseFree(held, until))
	assert.False(t, p.leaseFree(held, until.Add(time.Second)), "within the skew")
	assert.True(t, p.leaseFree(held, until.Add(time.Second+time.Nanosecond)))
	assert.True(t, p.leaseFree(store.Record{}, until), "no owner")
}

// Backoffs are jittered: tenants that failed together (same attempt
// count) retry apart, each within [half, all] of the doubled backoff, and
// the same for every replica (a function of the tenant and the attempt
// count only, so Resume's due check and the retry timers agree).
func TestBackoffJitter(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.RetryBackoff, cfg.MaxBackoff = 10*time.Second, 80*time.Second
	p, err := New(cfg)
	require.NoError(t, err)
	other, err := New(cfg) // another replica
	require.NoError(t, err)
	for attempts, full := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 4: 80 * time.Second, 9: 80 * time.Second} {
		seen := map[time.Duration]bool{}
		var lowHalf, highHalf int
		for i := range 200 {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			d := p.backoff(id, attempts)
			assert.GreaterOrEqual(t, d, full/2, "attempts %d", attempts)
			assert.LessOrEqual(t, d, full, "attempts %d", attempts)
			assert.Equal(t, d, other.backoff(id, attempts), "every replica agrees")
			assert.Equal(t, d, p.backoff(id, attempts), "deterministic")
			seen[d] = true
			if d < full*3/4 {
				lowHalf++
			} else {
				highHalf++
			}
		}
		assert.Greater(t, len(seen), 190, "attempts %d: tenants that failed together retry apart", attempts)
		assert.Greater(t, lowHalf, 60, "spread over the range")
		assert.Greater(t, highHalf, 60, "spread over the range")
	}
	id := "00000000-0000-4000-8000-000000000001"
	assert.NotEqual(t, p.backoff(id, 1)*2, p.backoff(id, 2), "the jitter is drawn again per attempt")

	r := store.Record{ID: id, Attempts: 2, UpdatedAt: time.Unix(1000, 0)}
	assert.Equal(t, r.UpdatedAt.Add(p.backoff(id, 2)), p.retryDueAt(r))
}
