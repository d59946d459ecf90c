package hetzner_test

import (
	"testing"

	"github.com/hatchery-dev/hatchery/provider/providertest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providertest.Driver {
			b := setup(t, config{})
			return providertest.Driver{
				Provider: b.p,
				Calls:    func() int { return len(b.api.Requests()) },
				Foreign: func(_ *testing.T, name string, labels map[string]string) {
					b.api.AddServer(name, labels)
				},
			}
		},
	})
}
