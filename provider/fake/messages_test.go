package fake_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

// Every error says the driver and the operation once, and names the
// server once, as the real drivers' do: "fake: create server "t-1":
// provider: ...". A caller wraps it with what it knows besides (the
// tenant, the phase), not with the operation or the server again.
func TestErrorsSayEachThingOnce(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	create := func(req provider.CreateRequest) func(context.Context, *fake.Provider) error {
		return func(ctx context.Context, p *fake.Provider) error {
			_, err := p.Create(ctx, req)
			return err
		}
	}
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		setup func(p *fake.Provider)
		call  func(context.Context, *fake.Provider) error
		want  string
	}{
		{name: "user-data too large", call: create(provider.CreateRequest{Name: "t-1", UserData: make([]byte, 32769)}),
			want: `fake: create server "t-1": provider: invalid request: user-data is 32769 bytes, over the limit of 32768`},
		{name: "bad name", call: create(provider.CreateRequest{Name: "T_1"}),
			want: `fake: create server: provider: invalid request: server name "T_1" is not a lowercase hostname label`},
		{name: "bad location", call: create(provider.CreateRequest{Name: "t-1", Location: "a b"}),
			want: `fake: create server "t-1": provider: invalid request: Location "a b" is not a name`},
		{name: "not cloud-config", call: create(provider.CreateRequest{Name: "t-1", UserData: []byte("#!/bin/sh\n")}),
			want: `fake: create server "t-1": provider: invalid request: user-data`},
		{name: "canceled", ctx: canceled, call: create(provider.CreateRequest{Name: "t-1"}),
			want: `fake: create server "t-1": context canceled`},
		{name: "unauthorized", setup: func(p *fake.Provider) { p.SetUnauthorized(true) }, call: create(provider.CreateRequest{Name: "t-1"}),
			want: `fake: create server "t-1": provider: credentials refused: revoked by SetUnauthorized`},
		{name: "unavailable", setup: func(p *fake.Provider) { p.SetUnavailable("loc1", true) },
			call: create(provider.CreateRequest{Name: "t-1", Location: "loc1", UserData: []byte("#cloud-config\n")}),
			want: `fake: create server "t-1": provider: no capacity`},
		{name: "conflict", setup: func(p *fake.Provider) { p.AddForeign("t-1", nil) }, call: create(provider.CreateRequest{Name: "t-1"}),
			want: `fake: create server "t-1": provider: server name taken by a server that is not ours (server `},
		{name: "closed", setup: func(p *fake.Provider) { _ = p.Close() }, call: create(provider.CreateRequest{Name: "t-1"}),
			want: `fake: create server "t-1": the provider is closed`},
		{name: "not found", call: func(ctx context.Context, p *fake.Provider) error {
			_, err := p.Get(ctx, "42")
			return err
		}, want: `fake: get server "42": provider: server not found`},
		{name: "delete unauthorized", setup: func(p *fake.Provider) { p.SetUnauthorized(true) },
			call: func(ctx context.Context, p *fake.Provider) error { return p.Delete(ctx, "42") },
			want: `fake: delete server "42": provider: credentials refused`},
		{name: "list canceled", ctx: canceled, call: func(ctx context.Context, p *fake.Provider) error {
			_, err := p.List(ctx, nil)
			return err
		}, want: `fake: list servers: context canceled`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := fake.New(fake.Options{Dir: t.TempDir()})
			t.Cleanup(func() { _ = p.Close() })
			if tc.setup != nil {
				tc.setup(p)
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := tc.call(ctx, p)
			require.Error(t, err)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, tc.want), "got  %s\nwant %s...", msg, tc.want)
			assert.Equal(t, 1, strings.Count(msg, "fake"), msg)
			assert.NotContains(t, msg, "loc1", "the caller chose the location and says it")
			for _, s := range []string{"create server", "get server", "delete server", "list servers", `"t-1"`} {
				assert.LessOrEqual(t, strings.Count(msg, s), 1, "%q more than once in %s", s, msg)
			}
		})
	}
}
