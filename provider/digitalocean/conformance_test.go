package digitalocean_test

import (
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/internal/dotest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
	"github.com/hatchery-dev/hatchery/provider/providertest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providertest.Driver {
			// Droplets get their addresses a moment after Create, as on
			// DigitalOcean.
			b := setup(t, config{api: dotest.Options{ActiveAfter: 200 * time.Millisecond}})
			return providertest.Driver{
				Provider: b.p,
				Calls:    func() int { return len(b.api.Requests()) },
				Foreign: func(_ *testing.T, name string, labels map[string]string) {
					// Someone else's droplet of that name: none of our tags.
					b.api.AddDroplet(name, "team:web")
				},
				Unauthorized: func(t *testing.T) provider.Provider {
					// An API that knows another token than the client's.
					api := dotest.New(dotest.Options{Token: "not-" + token})
					t.Cleanup(api.Close)
					_, client := newClient(t, api, config{}, &lockedBuffer{})
					return digitalocean.New(client, defaultOptions())
				},
			}
		},
	})
}
