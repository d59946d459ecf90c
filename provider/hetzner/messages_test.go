package hetzner_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
)

// Every error says the driver and the operation once, and names the
// server once: "hetzner: create server "t-1": provider: invalid request:
// ...", never "hetzner: create server "t-1": ... hetzner: ...". A caller
// wraps it with what it knows besides (the tenant, the phase), not with
// the operation or the server again.
func TestErrorsSayEachThingOnce(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	withKey := defaultOptions()
	withKey.SSHKeys = []string{"ops"}
	noType := defaultOptions()
	noType.ServerType = ""
	for _, tc := range []struct {
		name string
		opts hetzner.Options
		call func(ctx context.Context, p *hetzner.Provider) error
		ctx  context.Context
		want string
	}{
		{name: "user_data too large", want: `hetzner: create server "t-1": provider: invalid request: user_data is 32769 bytes, over Hetzner's limit of 32768`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Create(ctx, provider.CreateRequest{Name: "t-1", UserData: make([]byte, 32769)})
				return err
			}},
		{name: "bad label", want: `hetzner: create server "t-1": provider: invalid request: request labels: label value`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Create(ctx, provider.CreateRequest{Name: "t-1", Labels: map[string]string{"x": "a b"}})
				return err
			}},
		{name: "bad location", want: `hetzner: create server "t-1": provider: invalid request: request Location "a b" is not a Hetzner name`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Create(ctx, provider.CreateRequest{Name: "t-1", Location: "a b"})
				return err
			}},
		{name: "bad name", want: `hetzner: create server: provider: invalid request: server name "T_1" is not a lowercase hostname label`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Create(ctx, provider.CreateRequest{Name: "T_1"})
				return err
			}},
		{name: "ssh key missing", opts: withKey, want: `hetzner: create server "t-1": provider: invalid request: ssh key "ops" not found in the project`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Create(ctx, request("t-1"))
				return err
			}},
		{name: "ssh key missing at Init", opts: withKey, want: `hetzner: provider: invalid request: ssh key "ops" not found in the project`,
			call: func(ctx context.Context, p *hetzner.Provider) error { return p.Init(ctx) }},
		{name: "bad options at Create", opts: noType, want: `hetzner: create server "t-1": options: provider: invalid request: empty ServerType`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Create(ctx, request("t-1"))
				return err
			}},
		{name: "bad options at Init", opts: noType, want: `hetzner: options: provider: invalid request: empty ServerType`,
			call: func(ctx context.Context, p *hetzner.Provider) error { return p.Init(ctx) }},
		{name: "canceled create", ctx: canceled, want: `hetzner: create server "t-1": context canceled`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Create(ctx, request("t-1"))
				return err
			}},
		{name: "bad ID", want: `hetzner: get server "x": provider: invalid request: not a Hetzner server ID`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Get(ctx, "x")
				return err
			}},
		{name: "not found", want: `hetzner: get server 42: provider: server not found`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.Get(ctx, "42")
				return err
			}},
		{name: "delete bad ID", want: `hetzner: delete server "0": provider: invalid request: not a Hetzner server ID`,
			call: func(ctx context.Context, p *hetzner.Provider) error { return p.Delete(ctx, "0") }},
		{name: "bad selector", want: `hetzner: list servers: provider: invalid request: selector: label`,
			call: func(ctx context.Context, p *hetzner.Provider) error {
				_, err := p.List(ctx, map[string]string{"-x": "y"})
				return err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			if opts.ServerType == "" && opts.Image == "" {
				opts = defaultOptions()
			}
			b := setup(t, config{opts: opts})
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := tc.call(ctx, b.p)
			require.Error(t, err)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, tc.want), "got  %s\nwant %s...", msg, tc.want)
			assert.Equal(t, 1, strings.Count(msg, "hetzner"), msg)
			for _, op := range []string{"create server", "get server", "delete server", "list servers", "t-1"} {
				assert.LessOrEqual(t, strings.Count(msg, op), 1, "%q more than once in %s", op, msg)
			}
		})
	}
}

// An API error reached through a create names the server once, with the
// API's own message after the provider error it maps to.
func TestAPIErrorSaysEachThingOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	b.api.SetUnavailable("fsn1", "", string(hcloud.ErrorCodeResourceUnavailable))
	_, err := b.p.Create(context.Background(), request("t-1"))
	require.ErrorIs(t, err, provider.ErrUnavailable)
	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, `hetzner: create server "t-1": provider: no capacity`), msg)
	assert.Equal(t, 1, strings.Count(msg, "hetzner"), msg)
	assert.Equal(t, 1, strings.Count(msg, "t-1"), msg)
}
