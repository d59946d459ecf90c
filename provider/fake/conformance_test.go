package fake_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provider/providertest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	cb := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(cb.Close)
	k := newKey(t)
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providertest.Driver {
			p := fake.New(fake.Options{Dir: t.TempDir()})
			t.Cleanup(func() { p.Close() })
			return providertest.Driver{Provider: p}
		},
		UserData: func(_ *testing.T, _ string) []byte { return userData(doc{URL: cb.URL, Key: k.line}) },
	})
}
