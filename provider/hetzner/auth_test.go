package hetzner_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/hcloudtest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
)

func TestCheckCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	b := setup(t, config{api: hcloudtest.Options{Token: "secret-token"}})
	require.NoError(t, b.p.CheckCredentials(ctx))
	assert.Equal(t, 1, b.api.Count("", ""), "one request")
	assert.Equal(t, "label_selector=hatchery.dev%2Fmanaged%3Dtrue&per_page=1", b.api.Requests()[0].Query)

	// A revoked token.
	b.api.SetToken("rotated")
	err := b.p.CheckCredentials(ctx)
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeUnauthorized), "cause kept: %v", err)
	assert.Equal(t, 2, b.api.Count("", ""), "not retried")

	// A read-only token passes: only a write tells.
	b.api.SetToken("")
	b.api.SetReadOnly(true)
	require.NoError(t, b.p.CheckCredentials(ctx))
	_, err = b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeForbidden), "cause kept: %v", err)

	// Could not tell: not ErrUnauthorized.
	b2 := setup(t, config{})
	b2.api.Inject(hcloudtest.Fault{Status: 500, Code: "server_error"})
	err = b2.p.CheckCredentials(ctx)
	require.Error(t, err)
	assert.NotErrorIs(t, err, provider.ErrUnauthorized)
}

// TestUnauthorizedIsFinal checks that refused credentials are never retried,
// neither by hcloud-go nor by the Transport, on every call.
func TestUnauthorizedIsFinal(t *testing.T) {
	t.Parallel()
	ops := map[string]func(context.Context, *hetzner.Provider) error{
		"create": func(ctx context.Context, p *hetzner.Provider) error {
			_, err := p.Create(ctx, request("t-1"))
			return err
		},
		"get": func(ctx context.Context, p *hetzner.Provider) error {
			_, err := p.Get(ctx, "42")
			return err
		},
		"delete": func(ctx context.Context, p *hetzner.Provider) error { return p.Delete(ctx, "42") },
		"list": func(ctx context.Context, p *hetzner.Provider) error {
			_, err := p.List(ctx, nil)
			return err
		},
		"check": func(ctx context.Context, p *hetzner.Provider) error { return p.CheckCredentials(ctx) },
	}
	for _, mode := range []struct {
		name  string
		apply func(*hcloudtest.API)
		code  hcloud.ErrorCode
	}{
		{"unauthorized", func(a *hcloudtest.API) { a.SetToken("another") }, hcloud.ErrorCodeUnauthorized},
		{"bare 401", func(a *hcloudtest.API) {
			for range 10 {
				a.Inject(hcloudtest.Fault{Status: http.StatusUnauthorized})
			}
		}, ""},
		{"forbidden", func(a *hcloudtest.API) {
			for range 10 {
				a.Inject(hcloudtest.Fault{Status: http.StatusForbidden, Code: "forbidden"})
			}
		}, hcloud.ErrorCodeForbidden},
	} {
		for name, op := range ops {
			t.Run(mode.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, config{})
				mode.apply(b.api)
				err := op(context.Background(), b.p)
				require.ErrorIs(t, err, provider.ErrUnauthorized)
				if mode.code != "" {
					assert.True(t, hcloud.IsError(err, mode.code), "cause kept: %v", err)
				}
				assert.Equal(t, 1, b.api.Count("", ""), "one request, never retried")
				assert.NotContains(t, err.Error(), "secret-token")
			})
		}
	}

	t.Run("ssh key lookup", func(t *testing.T) {
		t.Parallel()
		opts := defaultOptions()
		opts.SSHKeys = []string{"ops"}
		b := setup(t, config{api: hcloudtest.Options{Token: "other"}, opts: opts})
		require.ErrorIs(t, b.p.Init(context.Background()), provider.ErrUnauthorized)
		_, err := b.p.Create(context.Background(), request("t-1"))
		require.ErrorIs(t, err, provider.ErrUnauthorized)
		assert.Equal(t, 2, b.api.Count(http.MethodGet, "/ssh_keys"))
		assert.Equal(t, 2, b.api.Count("", ""))
	})
}

// TestRateLimitRemaining checks that the Provider reports the budget that
// the API's last answer gave (RateLimit-Remaining), errors included, and
// nothing before an answer said it or when the API sends no such header.
func TestRateLimitRemaining(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	b := setup(t, config{api: hcloudtest.Options{RateLimit: 100, RefillInterval: time.Hour}})
	_, ok := b.p.RateLimitRemaining()
	assert.False(t, ok, "no answer yet")
	_, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	left, ok := b.p.RateLimitRemaining()
	require.True(t, ok)
	assert.Equal(t, 99, left)
	_, err = b.p.Get(ctx, "424242")
	require.ErrorIs(t, err, provider.ErrNotFound)
	left, ok = b.p.RateLimitRemaining()
	require.True(t, ok)
	assert.Equal(t, 98, left, "an error answer counts too")
	require.NoError(t, b.p.CheckCredentials(ctx))
	_, err = b.p.List(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, b.p.Delete(ctx, "424242"))
	left, _ = b.p.RateLimitRemaining()
	assert.Equal(t, 95, left)

	unmetered := setup(t, config{})
	_, err = unmetered.p.Get(ctx, "424242")
	require.ErrorIs(t, err, provider.ErrNotFound)
	_, ok = unmetered.p.RateLimitRemaining()
	assert.False(t, ok, "no RateLimit headers: unknown")
}
