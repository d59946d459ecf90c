package provision_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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
			h, req := benchCallback(b, m.new, true, memory.New())
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
			h, req := benchCallback(b, m.new, false, memory.New())
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

// benchCallback returns a Provisioner's callback handler on st (nil:
// SQLite) and a function that makes the request: a phone_home repeating what the tenant's record
// holds (answered 200), or, with good false, the same with a forged token
// (401).
func benchCallback(b *testing.B, newP func(*testing.B, provision.Config) (*provision.Provisioner, error), good bool, st store.Store) (http.Handler, func() *http.Request) {
	bd := setup(b, bundleOpts{store: st})
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

// BenchmarkTelemetryOverhead runs the hot paths of BenchmarkTelemetry, on
// the memory store and on SQLite (a store Update there is a disk
// transaction), without telemetry and with the default one (the global no-op
// providers) alternately, in chunks of 20 operations, each first in turn,
// so that both see the same machine (a shared machine's load drifts and
// bursts), and reports both times per operation and noop/off, the median
// of the ratios of adjacent chunks (1.00 is no overhead; a burst of load
// moves a few chunk pairs, not the median).
func BenchmarkTelemetryOverhead(b *testing.B) {
	const chunk = 20
	type path struct {
		name string
		make func(b *testing.B, newP func(*testing.B, provision.Config) (*provision.Provisioner, error)) func()
	}
	callbackPath := func(good bool, want int, sqlite bool) func(*testing.B, func(*testing.B, provision.Config) (*provision.Provisioner, error)) func() {
		return func(b *testing.B, newP func(*testing.B, provision.Config) (*provision.Provisioner, error)) func() {
			var st store.Store
			if !sqlite {
				st = memory.New()
			}
			h, req := benchCallback(b, newP, good, st)
			return func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req())
				if w.Code != want {
					b.Fatalf("answer %d: %s", w.Code, w.Body)
				}
			}
		}
	}
	storePath := func(sqlite bool) func(*testing.B, func(*testing.B, provision.Config) (*provision.Provisioner, error)) func() {
		return func(b *testing.B, newP func(*testing.B, provision.Config) (*provision.Provisioner, error)) func() {
			var st store.Store
			if !sqlite {
				st = memory.New()
			}
			bd := setup(b, bundleOpts{store: st})
			p, err := newP(b, bd.config("r1", nil))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Close() })
			ps := provision.StoreOf(p)
			id := newID()
			if err := ps.Create(context.Background(), store.Record{ID: id, Status: store.StatusReady}); err != nil {
				b.Fatal(err)
			}
			return func() {
				if _, err := ps.Update(context.Background(), id, func(r *store.Record) error { r.Attempts++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	paths := []path{
		{"callback=repeat/store=memory", callbackPath(true, http.StatusOK, false)},
		{"callback=forged/store=memory", callbackPath(false, http.StatusUnauthorized, false)},
		{"callback=repeat/store=sqlite", callbackPath(true, http.StatusOK, true)},
		{"update/store=memory", storePath(false)},
		{"update/store=sqlite", storePath(true)},
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
			var ratios []float64
			run := func(fn func()) time.Duration {
				start := time.Now()
				for range chunk {
					fn()
				}
				return time.Since(start)
			}
			b.ResetTimer()
			for round := 0; round*chunk < b.N; round++ {
				var off1, noop1 time.Duration
				if round%2 == 0 {
					off1 = run(off)
					noop1 = run(noop)
				} else {
					noop1 = run(noop)
					off1 = run(off)
				}
				tOff += off1
				tNoop += noop1
				ratios = append(ratios, float64(noop1)/float64(off1))
			}
			slices.Sort(ratios)
			n := float64(len(ratios) * chunk)
			b.ReportMetric(float64(tOff.Nanoseconds())/n, "off-ns/op")
			b.ReportMetric(float64(tNoop.Nanoseconds())/n, "noop-ns/op")
			b.ReportMetric(ratios[len(ratios)/2], "noop/off")
		})
	}
}
