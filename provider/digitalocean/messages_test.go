package digitalocean_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/dotest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
)

// Every error says the driver and the operation once, and names the
// droplet once: "digitalocean: create droplet "t-1": provider: invalid
// request: ...", never "digitalocean: create droplet "t-1": ...
// digitalocean: ...". A caller wraps it with what it knows besides (the
// tenant, the phase), not with the operation or the droplet again.
func TestErrorsSayEachThingOnce(t *testing.T) {
	t.Parallel()
	noImage := defaultOptions()
	noImage.Image = ""
	for _, tc := range []struct {
		name   string
		opts   digitalocean.Options
		faults []dotest.Fault
		setup  func(api *dotest.API)
		call   func(ctx context.Context, p *digitalocean.Provider) error
		want   string
	}{
		{name: "user_data too large", want: `digitalocean: create droplet "t-1": provider: invalid request: user_data is 65537 bytes, over DigitalOcean's limit of 65536`,
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Create(ctx, provider.CreateRequest{Name: "t-1", UserData: make([]byte, 65537)})
				return err
			}},
		{name: "bad size", want: `digitalocean: create droplet "t-1": provider: invalid request: server type "S 1" is not a size slug`,
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Create(ctx, provider.CreateRequest{Name: "t-1", ServerType: "S 1"})
				return err
			}},
		{name: "bad location", want: `digitalocean: create droplet "t-1": provider: invalid request: location "FRA1" is not a region slug`,
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Create(ctx, provider.CreateRequest{Name: "t-1", Location: "FRA1"})
				return err
			}},
		{name: "bad label", want: `digitalocean: create droplet "t-1": provider: invalid request: request labels: empty label key`,
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Create(ctx, provider.CreateRequest{Name: "t-1", Labels: map[string]string{"": "x"}})
				return err
			}},
		{name: "bad options at Create", opts: noImage, want: `digitalocean: create droplet "t-1": options: provider: invalid request: empty Image`,
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Create(ctx, request("t-1"))
				return err
			}},
		{name: "bad options at Init", opts: noImage, want: `digitalocean: options: provider: invalid request: empty Image`,
			call: func(ctx context.Context, p *digitalocean.Provider) error { return p.Init(ctx) }},
		{name: "conflict", want: `digitalocean: create droplet "t-1": provider: server name taken by a server that is not ours (droplet `,
			setup: func(api *dotest.API) { api.AddDroplet("t-1") },
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Create(ctx, request("t-1"))
				return err
			}},
		{name: "duplicate not deleted", want: `digitalocean: create droplet "t-1": kept droplet `,
			setup: func(api *dotest.API) {
				tags := []string{digitalocean.ManagedTag, digitalocean.NameTag("t-1"), digitalocean.LabelTag(tenantLabel, tenantID)}
				api.AddDroplet("t-1", tags...)
				api.AddDroplet("t-1", tags...)
				api.Inject(dotest.Fault{Method: http.MethodDelete, Status: 422, ID: "unprocessable_entity", Message: dotest.MsgPendingEvent})
			},
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Create(ctx, request("t-1"))
				return err
			}},
		{name: "bad ID", want: `digitalocean: get droplet "x": provider: invalid request: not a droplet ID`,
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Get(ctx, "x")
				return err
			}},
		{name: "not found", want: `digitalocean: get droplet 42: provider: server not found`,
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.Get(ctx, "42")
				return err
			}},
		{name: "delete bad ID", want: `digitalocean: delete droplet "07": provider: invalid request: not a droplet ID`,
			call: func(ctx context.Context, p *digitalocean.Provider) error { return p.Delete(ctx, "07") }},
		{name: "delete refused", want: `digitalocean: delete droplet `,
			setup: func(api *dotest.API) {
				api.AddDroplet("t-1")
				api.Inject(dotest.Fault{Method: http.MethodDelete, Status: 422, ID: "unprocessable_entity", Message: dotest.MsgPendingEvent})
			},
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				return p.Delete(ctx, "1")
			}},
		{name: "bad selector", want: `digitalocean: list droplets: provider: invalid request: selector: empty label key`,
			call: func(ctx context.Context, p *digitalocean.Provider) error {
				_, err := p.List(ctx, map[string]string{"": "y"})
				return err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{opts: tc.opts})
			if tc.setup != nil {
				tc.setup(b.api)
			}
			err := tc.call(context.Background(), b.p)
			require.Error(t, err)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, tc.want), "got  %s\nwant %s...", msg, tc.want)
			assert.Equal(t, 1, strings.Count(msg, "digitalocean:"), msg)
			for _, s := range []string{"create droplet", "get droplet", "delete droplet 1", "list droplets", `"t-1"`} {
				assert.LessOrEqual(t, strings.Count(msg, s), 1, "%q more than once in %s", s, msg)
			}
		})
	}
}
