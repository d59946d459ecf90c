package provision_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// telemetryModes are the instrumentations BenchmarkTelemetry compares:
// none compiled in the path (the baseline), the default (OpenTelemetry's
// global providers, no-ops since no SDK is installed), and an SDK that
// records everything (for scale).
var telemetryModes = []struct {
	name string
	new  func(b *testing.B, cfg provision.Config) (*provision.Provisioner, error)
}{
	{"telemetry=off", func(_ *testing.B, cfg provision.Config) (*provision.Provisioner, error) {
		return provision.NewWithoutTelemetry(cfg)
	}},
	{"telemetry=noop", func(_ *testing.B, cfg provision.Config) (*provision.Provisioner, error) {
		return provision.New(cfg)
	}},
	{"telemetry=sdk", func(b *testing.B, cfg provision.Config) (*provision.Provisioner, error) {
		newOtel(b).use(&cfg)
		return provision.New(cfg)
	}},
}

// BenchmarkTelemetry measures what the instrumentation costs on the hot
// paths, on the memory store (the fastest, so that the overhead shows the
// most): the callback handler answering a repeated phone_home (token,
// body, one store transaction) and a forged one (no store), and a store
// Update through the Provisioner's store, in each mode of telemetryModes.
// Compare telemetry=noop with telemetry=off: run with -count 6 (the modes
// alternate) and take the ratio of the medians.
func BenchmarkTelemetry(b *testing.B) {
	for _, m := range telemetryModes {
		b.Run("callback=repeat/"+m.name, func(b *testing.B) {
			h, req := benchCallback(b, m.new, true)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req())
				if w.Code != http.StatusOK {
					b.Fatalf("answer %d: %s", w.Code, w.Body)
				}
			}
		})
	}
	for _, m := range telemetryModes {
		b.Run("callback=forged/"+m.name, func(b *testing.B) {
			h, req := benchCallback(b, m.new, false)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req())
				if w.Code != http.StatusUnauthorized {
					b.Fatalf("answer %d: %s", w.Code, w.Body)
				}
			}
		})
	}
	for _, m := range telemetryModes {
		b.Run("store=update/"+m.name, func(b *testing.B) {
			bd := setup(b, bundleOpts{store: memory.New()})
			p, err := m.new(b, bd.config("r1", nil))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Close() })
			st := provision.StoreOf(p)
			ctx := context.Background()
			id := newID()
			if err := st.Create(ctx, store.Record{ID: id, Status: store.StatusReady}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := st.Update(ctx, id, func(r *store.Record) error { r.Attempts++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchCallback returns a Provisioner's callback handler and a function
// that makes the request: a phone_home repeating what the tenant's record
// holds (answered 200), or, with good false, the same with a forged token
// (401).
func benchCallback(b *testing.B, newP func(*testing.B, provision.Config) (*provision.Provisioner, error), good bool) (http.Handler, func() *http.Request) {
	bd := setup(b, bundleOpts{store: memory.New()})
	p, err := newP(b, bd.config("r1", nil))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newSigner(b).PublicKey())))
	rec := store.Record{ID: newID(), Status: store.StatusInjectingSecrets, ServerID: "7", CallbackNonce: callback.NewNonce(),
		Hostname: "tenant-7", InstanceID: "i-7", HostKeys: []string{hostKey}}
	if err := bd.store.Create(context.Background(), rec); err != nil {
		b.Fatal(err)
	}
	target := p.CallbackURL(rec)
	if !good {
		target = target[:strings.Index(target, "token=")] + "token=forged"
	}
	body := url.Values{"pub_key_ed25519": {hostKey}, "instance_id": {"i-7"}, "hostname": {"tenant-7"}}.Encode()
	return p.Handler(), func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
}

// BenchmarkTelemetryOverhead runs each hot path of BenchmarkTelemetry
// without telemetry and with the default one (the global no-op
// providers) alternately, in chunks of 100 operations, so that both see
// the same machine (a shared machine's load drifts), and reports both
// times per operation and their ratio (noop/off; 1.00 is no overhead).
func BenchmarkTelemetryOverhead(b *testing.B) {
	const chunk = 100
	type path struct {
		name string
		make func(b *testing.B, newP func(*testing.B, provision.Config) (*provision.Provisioner, error)) func()
	}
	callbackPath := func(good bool, want int) func(*testing.B, func(*testing.B, provision.Config) (*provision.Provisioner, error)) func() {
		return func(b *testing.B, newP func(*testing.B, provision.Config) (*provision.Provisioner, error)) func() {
			h, req := benchCallback(b, newP, good)
			return func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req())
				if w.Code != want {
					b.Fatalf("answer %d: %s", w.Code, w.Body)
				}
			}
		}
	}
	paths := []path{
		{"callback=repeat", callbackPath(true, http.StatusOK)},
		{"callback=forged", callbackPath(false, http.StatusUnauthorized)},
		{"store=update", func(b *testing.B, newP func(*testing.B, provision.Config) (*provision.Provisioner, error)) func() {
			bd := setup(b, bundleOpts{store: memory.New()})
			p, err := newP(b, bd.config("r1", nil))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Close() })
			st := provision.StoreOf(p)
			id := newID()
			if err := st.Create(context.Background(), store.Record{ID: id, Status: store.StatusReady}); err != nil {
				b.Fatal(err)
			}
			return func() {
				if _, err := st.Update(context.Background(), id, func(r *store.Record) error { r.Attempts++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
		}},
	}
	for _, pt := range paths {
		b.Run(pt.name, func(b *testing.B) {
			off := pt.make(b, telemetryModes[0].new)
			noop := pt.make(b, telemetryModes[1].new)
			for range chunk { // warm both up
				off()
				noop()
			}
			var tOff, tNoop time.Duration
			b.ResetTimer()
			run := func(fn func()) time.Duration {
				start := time.Now()
				for range chunk {
					fn()
				}
				return time.Since(start)
			}
			for round := 0; round*chunk < b.N; round++ {
				// Either goes first in turn: neither always pays for the
				// other's garbage.
				if round%2 == 0 {
					tOff += run(off)
					tNoop += run(noop)
				} else {
					tNoop += run(noop)
					tOff += run(off)
				}
			}
			n := float64((b.N + chunk - 1) / chunk * chunk)
			b.ReportMetric(float64(tOff.Nanoseconds())/n, "off-ns/op")
			b.ReportMetric(float64(tNoop.Nanoseconds())/n, "noop-ns/op")
			b.ReportMetric(float64(tNoop)/float64(tOff), "noop/off")
		})
	}
}
