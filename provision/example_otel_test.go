package provision_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// The Provisioner's metrics through an OpenTelemetry SDK (here a reader
// that collects on demand; a program would use a Prometheus or OTLP
// exporter), after one tenant got ready.
func ExampleConfig_metrics() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer meters.Shutdown(ctx)

	cloud := fake.New(fake.Options{BootDelay: 10 * time.Millisecond, PhoneHomeInterval: 50 * time.Millisecond})
	defer cloud.Close()
	mux := http.NewServeMux()
	cp := httptest.NewServer(mux)
	defer cp.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	p, err := provision.New(provision.Config{
		Provider: cloud,
		Store:    memory.New(),
		Secrets:  inject.StaticSecrets{},
		BootstrapFunc: func(context.Context, store.Record) (cloudinit.Config, error) {
			return cloudinit.Config{}, nil
		},
		StepsFunc: func(context.Context, provision.StepsInput) ([]inject.Step, error) {
			return []inject.Step{inject.Command("true")}, nil
		},
		SSHUser:      "hatchery",
		Signer:       signer,
		CallbackBase: cp.URL + "/callback",
		CallbackKey:  []byte("0123456789abcdef0123456789abcdef"),

		MeterProvider: meters, // nil: OpenTelemetry's global one
		// TracerProvider: an sdktrace.TracerProvider, likewise.
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	mux.Handle("POST /callback/{id}", p.Handler())
	id := "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"
	if err := p.Provision(ctx, id); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := p.Wait(ctx, id); err != nil {
		fmt.Println(err)
		return
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		fmt.Println(err)
		return
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			lines = append(lines, m.Name+" "+m.Unit)
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "hatchery.tenants" {
				for _, dp := range g.DataPoints {
					if st, _ := dp.Attributes.Value("hatchery.tenant.status"); st.AsString() == "ready" {
						fmt.Println("ready tenants:", dp.Value)
					}
				}
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// ready tenants: 1
	// hatchery.attempts {attempt}
	// hatchery.callback.requests {request}
	// hatchery.inject.step.duration s
	// hatchery.phase.duration s
	// hatchery.provider.call.duration s
	// hatchery.provider.calls {call}
	// hatchery.provision.duration s
	// hatchery.tenants {tenant}
	// hatchery.transitions {transition}
}

// A readiness endpoint (/readyz) from Check, saying which part failed.
func ExampleProvisioner_Check() {
	readyz := func(p *provision.Provisioner) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			err := p.Check(r.Context())
			switch {
			case err == nil:
				fmt.Fprintln(w, "ready")
				return
			case errors.Is(err, provision.ErrProviderUnhealthy) && !errors.Is(err, provider.ErrUnauthorized) &&
				!errors.Is(err, provision.ErrStoreUnhealthy) && !errors.Is(err, provision.ErrRunStopped):
				// The provider's API is unreachable: callbacks and
				// injections still work, so stay in the load balancer.
				fmt.Fprintln(w, "ready (provider unreachable)")
				return
			}
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		})
	}
	_ = readyz // mux.Handle("GET /readyz", readyz(p))
}
