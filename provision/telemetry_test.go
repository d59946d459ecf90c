package provision_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// otelBundle is an in-memory OpenTelemetry SDK: a manual metric reader
// and a span recorder.
type otelBundle struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	mp     *sdkmetric.MeterProvider
	tp     *sdktrace.TracerProvider
}

func newOtel(t testing.TB) *otelBundle {
	o := &otelBundle{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	o.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() {
		_ = o.mp.Shutdown(context.Background())
		_ = o.tp.Shutdown(context.Background())
	})
	return o
}

// use sets cfg's providers to the bundle's.
func (o *otelBundle) use(cfg *provision.Config) {
	cfg.MeterProvider, cfg.TracerProvider = o.mp, o.tp
}

// collect returns the metrics of the Provisioner's scope, by name.
func (o *otelBundle) collect(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, o.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, "github.com/hatchery-dev/hatchery/provision", sm.Scope.Name, "the scope is the package's import path")
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// attrs is an attribute set written as "k=v,k=v", keys sorted.
func attrs(kv ...attribute.KeyValue) string {
	s := attribute.NewSet(kv...)
	return setString(s)
}

func setString(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(parts, ",")
}

// counts returns an int64 sum's or gauge's values by attribute set.
func counts(t testing.TB, m metricdata.Metrics) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[setString(p.Attributes)] = p.Value
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out[setString(p.Attributes)] = p.Value
		}
	default:
		t.Fatalf("%s: not an int64 sum or gauge: %T", m.Name, m.Data)
	}
	return out
}

// histogram returns a float64 histogram's points (count, sum) by
// attribute set.
func histogram(t testing.TB, m metricdata.Metrics) map[string]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	d, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s: not a float64 histogram: %T", m.Name, m.Data)
	out := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, p := range d.DataPoints {
		out[setString(p.Attributes)] = p
	}
	return out
}

// everyMetricAttr calls fn with every attribute of every data point.
func everyMetricAttr(ms map[string]metricdata.Metrics, fn func(metric string, kv attribute.KeyValue)) {
	each := func(name string, s attribute.Set) {
		for _, kv := range s.ToSlice() {
			fn(name, kv)
		}
	}
	for name, m := range ms {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				each(name, p.Attributes)
			}
		case metricdata.Gauge[int64]:
			for _, p := range d.DataPoints {
				each(name, p.Attributes)
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				each(name, p.Attributes)
			}
		}
	}
}

// spanTexts returns every text a span carries: its name, status,
// attributes, events and links' attributes.
func spanTexts(s sdktrace.ReadOnlySpan) []string {
	out := []string{s.Name(), s.Status().Description}
	add := func(kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			out = append(out, string(kv.Key)+"="+kv.Value.String())
		}
	}
	add(s.Attributes())
	for _, e := range s.Events() {
		out = append(out, e.Name)
		add(e.Attributes)
	}
	for _, l := range s.Links() {
		add(l.Attributes)
	}
	return out
}

// spanAttr returns a span's attribute, "" when absent.
func spanAttr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// rateLimited is a provider that reports a rate-limit budget, as the
// Hetzner and DigitalOcean drivers do.
type rateLimited struct {
	*countingProvider
	left int
}

func (r rateLimited) RateLimitRemaining() (int, bool) { return r.left, true }

// TestTelemetry provisions one tenant end to end with an in-memory
// OpenTelemetry SDK installed and checks the metrics (names, units,
// attributes, values) and the spans (names, kinds, parents, the link from
// the phone_home's span to the create's), and that no metric attribute is
// a tenant's or server's ID and no span or metric holds the secret.
func TestTelemetry(t *testing.T) {
	t.Parallel()
	// A boot long enough that the create is recorded (cloud_init) before
	// the server phones home.
	b := setup(t, bundleOpts{bootDelay: 300 * time.Millisecond})
	o := newOtel(t)
	cfg := b.config("r1", nil)
	cfg.Provider = rateLimited{b.cloud, 3542}
	o.use(&cfg)
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	rec := waitReady(t, p, id)
	secret := b.secrets.token(id)

	// Metrics.
	ms := o.collect(t)
	units := map[string]string{
		"hatchery.tenants":                       "{tenant}",
		"hatchery.transitions":                   "{transition}",
		"hatchery.provision.duration":            "s",
		"hatchery.phase.duration":                "s",
		"hatchery.attempts":                      "{attempt}",
		"hatchery.inject.step.duration":          "s",
		"hatchery.callback.requests":             "{request}",
		"hatchery.provider.calls":                "{call}",
		"hatchery.provider.call.duration":        "s",
		"hatchery.provider.rate_limit.remaining": "{request}",
	}
	for name, unit := range units {
		m, ok := ms[name]
		if assert.True(t, ok, "metric %s", name) {
			assert.Equal(t, unit, m.Unit, "unit of %s", name)
			assert.NotEmpty(t, m.Description, "description of %s", name)
		}
	}
	assert.NotContains(t, ms, "hatchery.failures", "no failure, no failure counted")

	assert.Equal(t, map[string]int64{
		"hatchery.transition.from=none,hatchery.transition.to=pending":                 1,
		"hatchery.transition.from=pending,hatchery.transition.to=creating":             1,
		"hatchery.transition.from=creating,hatchery.transition.to=cloud_init":          1,
		"hatchery.transition.from=cloud_init,hatchery.transition.to=injecting_secrets": 1,
		"hatchery.transition.from=injecting_secrets,hatchery.transition.to=ready":      1,
	}, counts(t, ms["hatchery.transitions"]))

	tenants := counts(t, ms["hatchery.tenants"])
	assert.Len(t, tenants, len(store.Statuses()), "a point for every status")
	assert.Equal(t, int64(1), tenants[attrs(attribute.String("hatchery.tenant.status", "ready"))])
	assert.Equal(t, int64(0), tenants[attrs(attribute.String("hatchery.tenant.status", "failed"))])

	assert.Equal(t, map[string]int64{"": 3542}, counts(t, ms["hatchery.provider.rate_limit.remaining"]))

	assert.Equal(t, map[string]int64{"hatchery.phase=create": 1, "hatchery.phase=inject": 1},
		counts(t, ms["hatchery.attempts"]))

	pd := histogram(t, ms["hatchery.provision.duration"])
	require.Len(t, pd, 1)
	assert.Equal(t, uint64(1), pd[""].Count)
	assert.InDelta(t, rec.UpdatedAt.Sub(rec.CreatedAt).Seconds(), pd[""].Sum, 1e-6, "from the record's creation to ready, by the store's times")

	phases := histogram(t, ms["hatchery.phase.duration"])
	for _, ph := range []string{"create", "phone_home", "inject"} {
		pt, ok := phases[attrs(attribute.String("hatchery.phase", ph), attribute.String("hatchery.outcome", "ok"))]
		if assert.True(t, ok, "phase %s: %v", ph, phases) {
			assert.Equal(t, uint64(1), pt.Count)
			assert.Positive(t, pt.Sum)
		}
	}
	assert.GreaterOrEqual(t, phases["hatchery.outcome=ok,hatchery.phase=phone_home"].Sum, 0.25, "the boot took 300ms")

	steps := histogram(t, ms["hatchery.inject.step.duration"])
	want, err := appSteps(provision.StepsInput{Secrets: map[string]string{"API_TOKEN": "x"}}, 0)
	require.NoError(t, err)
	require.Len(t, steps, 1+len(want), "the cloud-init wait and every step: %v", steps)
	for i := range 1 + len(want) {
		pt := steps[attrs(attribute.String("hatchery.phase", "inject"), attribute.Int("hatchery.step.index", i),
			attribute.String("hatchery.outcome", "ok"))]
		assert.Equal(t, uint64(1), pt.Count, "step %d", i)
	}

	requests := counts(t, ms["hatchery.callback.requests"])
	assert.Equal(t, int64(1), requests["hatchery.callback.endpoint=phone_home,hatchery.callback.outcome=transitioned"])
	for set := range requests {
		assert.Contains(t, []string{
			"hatchery.callback.endpoint=phone_home,hatchery.callback.outcome=transitioned",
			"hatchery.callback.endpoint=phone_home,hatchery.callback.outcome=repeat",
		}, set)
	}

	calls := counts(t, ms["hatchery.provider.calls"])
	assert.Equal(t, int64(1), calls["hatchery.provider.operation=create,hatchery.provider.outcome=ok"])
	assert.Equal(t, uint64(1), histogram(t, ms["hatchery.provider.call.duration"])["hatchery.provider.operation=create,hatchery.provider.outcome=ok"].Count)

	// Bounded attributes: never a tenant's or server's ID, name or the
	// secret.
	everyMetricAttr(ms, func(metric string, kv attribute.KeyValue) {
		v := kv.Value.String()
		for _, bad := range []string{id, rec.ServerName, secret} {
			assert.NotContains(t, v, bad, "%s: attribute %s", metric, kv.Key)
		}
		if kv.Key != "hatchery.step.index" { // fake's server IDs are small numbers too
			assert.NotEqual(t, rec.ServerID, v, "%s: attribute %s", metric, kv.Key)
		}
		assert.NotEqual(t, "hatchery.server.id", string(kv.Key), metric)
		assert.NotEqual(t, "hatchery.tenant.id", string(kv.Key), metric)
	})

	// Spans.
	spans := o.spans.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
		assert.Equal(t, "github.com/hatchery-dev/hatchery/provision", s.InstrumentationScope().Name)
		for _, text := range spanTexts(s) {
			assert.NotContains(t, text, secret, "span %s", s.Name())
		}
	}
	one := func(name string) sdktrace.ReadOnlySpan {
		t.Helper()
		require.Len(t, byName[name], 1, "spans named %s", name)
		return byName[name][0]
	}
	parentOf := func(s sdktrace.ReadOnlySpan) trace.SpanID { return s.Parent().SpanID() }
	childrenOf := func(parent sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range byName[name] {
			if parentOf(s) == parent.SpanContext().SpanID() {
				out = append(out, s)
			}
		}
		return out
	}

	prov := one("hatchery.Provision")
	assert.False(t, prov.Parent().IsValid(), "the caller had no span")
	assert.Equal(t, id, spanAttr(prov, "hatchery.tenant.id"))
	create := one("hatchery.create")
	assert.Equal(t, prov.SpanContext().SpanID(), parentOf(create), "create is a child of Provision")
	assert.Equal(t, id, spanAttr(create, "hatchery.tenant.id"))
	assert.Equal(t, "ok", spanAttr(create, "hatchery.outcome"))
	provCreate := one("hatchery.provider.create")
	assert.Equal(t, create.SpanContext().SpanID(), parentOf(provCreate), "the provider call is a child of create")
	assert.Equal(t, trace.SpanKindClient, provCreate.SpanKind())
	assert.Equal(t, rec.ServerID, spanAttr(provCreate, "hatchery.server.id"))
	assert.NotEmpty(t, childrenOf(prov, "hatchery.store.create"), "the record's creation")
	assert.NotEmpty(t, childrenOf(prov, "hatchery.store.update"), "the claim")
	assert.NotEmpty(t, childrenOf(create, "hatchery.store.update"), "the cloud_init transition")

	phoneHome := one("hatchery.phone_home")
	assert.Equal(t, trace.SpanKindServer, phoneHome.SpanKind(), "no HTTP instrumentation in front: a server span")
	assert.Equal(t, "transitioned", spanAttr(phoneHome, "hatchery.callback.outcome"))
	assert.Equal(t, id, spanAttr(phoneHome, "hatchery.tenant.id"))
	require.Len(t, phoneHome.Links(), 1, "linked to the create")
	assert.Equal(t, create.SpanContext().TraceID(), phoneHome.Links()[0].SpanContext.TraceID())
	assert.Equal(t, create.SpanContext().SpanID(), phoneHome.Links()[0].SpanContext.SpanID())
	assert.NotEmpty(t, childrenOf(phoneHome, "hatchery.store.update"), "the callback's transition")

	inj := one("hatchery.inject")
	assert.Equal(t, phoneHome.SpanContext().SpanID(), parentOf(inj), "the injection is a child of the phone_home")
	assert.Equal(t, phoneHome.SpanContext().TraceID(), inj.SpanContext().TraceID())
	assert.Equal(t, "ok", spanAttr(inj, "hatchery.outcome"))
	assert.Equal(t, codes.Unset, inj.Status().Code)
	require.Len(t, childrenOf(inj, "hatchery.ssh.connect"), 1)
	sessions := childrenOf(inj, "hatchery.ssh.session")
	require.Len(t, sessions, 2, "the cloud-init wait, then the steps")
	slices.SortFunc(sessions, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	require.Len(t, childrenOf(sessions[0], "hatchery.inject.step"), 1)
	assert.Equal(t, "0", spanAttr(childrenOf(sessions[0], "hatchery.inject.step")[0], "hatchery.step.index"))
	assert.Len(t, childrenOf(sessions[1], "hatchery.inject.step"), len(want))
	assert.Len(t, byName["hatchery.inject.step"], 1+len(want))
	assert.NotEmpty(t, childrenOf(inj, "hatchery.store.update"), "the ready transition")
}

// TestTelemetryFailure: a failed injection is counted by phase and error
// kind, its phase and step spans say so, and the secret that the failing
// step printed is in none of them.
func TestTelemetryFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{bootDelay: 300 * time.Millisecond})
	o := newOtel(t)
	cfg := b.config("r1", nil)
	cfg.MaxAttempts = 1
	cfg.StepsFunc = func(_ context.Context, in provision.StepsInput) ([]inject.Step, error) {
		// A step that prints the secret it gets on stdin and fails.
		return []inject.Step{{Name: "leak and fail", Cmd: "cat >&2; exit 3", Stdin: []byte(in.Secrets["API_TOKEN"])}}, nil
	}
	o.use(&cfg)
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r, err := p.Wait(ctxTimeout(t, 30*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	secret := b.secrets.token(id)

	ms := o.collect(t)
	assert.Equal(t, map[string]int64{
		attrs(attribute.String("hatchery.phase", "inject"), attribute.String("error.type", "step"), attribute.Bool("hatchery.failure.final", false)): 1,
	}, counts(t, ms["hatchery.failures"]))
	assert.Equal(t, "{failure}", ms["hatchery.failures"].Unit)
	phases := histogram(t, ms["hatchery.phase.duration"])
	assert.Equal(t, uint64(1), phases[attrs(attribute.String("hatchery.phase", "inject"), attribute.String("hatchery.outcome", "failed"),
		attribute.String("error.type", "step"))].Count, "%v", phases)
	steps := histogram(t, ms["hatchery.inject.step.duration"])
	assert.Equal(t, uint64(1), steps[attrs(attribute.String("hatchery.phase", "inject"), attribute.Int("hatchery.step.index", 1),
		attribute.String("hatchery.outcome", "failed"))].Count, "%v", steps)
	tenants := counts(t, ms["hatchery.tenants"])
	assert.Equal(t, int64(1), tenants[attrs(attribute.String("hatchery.tenant.status", "failed"))])
	assert.NotContains(t, ms, "hatchery.provision.duration", "never ready")
	everyMetricAttr(ms, func(metric string, kv attribute.KeyValue) {
		assert.NotContains(t, kv.Value.String(), id, metric)
		assert.NotContains(t, kv.Value.String(), secret, metric)
	})

	var inj, step sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		for _, text := range spanTexts(s) {
			assert.NotContains(t, text, secret, "span %s", s.Name())
		}
		switch {
		case s.Name() == "hatchery.inject":
			inj = s
		case s.Name() == "hatchery.inject.step" && spanAttr(s, "hatchery.step.index") == "1":
			step = s
		}
	}
	require.NotNil(t, inj)
	assert.Equal(t, codes.Error, inj.Status().Code)
	assert.Contains(t, inj.Status().Description, "step 2")
	assert.Contains(t, inj.Status().Description, "[REDACTED]", "the step's stderr, redacted")
	assert.Equal(t, "failed", spanAttr(inj, "hatchery.outcome"))
	assert.Equal(t, "step", spanAttr(inj, "error.type"))
	require.NotNil(t, step)
	assert.Equal(t, codes.Error, step.Status().Code)
	assert.Equal(t, "leak and fail", spanAttr(step, "hatchery.step.name"))
}

// TestTelemetryCreateFailure: a provider that refuses the create is
// counted as a provider call's outcome and as a final create failure of
// its kind.
func TestTelemetryCreateFailure(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err   error
		kind  string
		final bool
	}{
		{provider.ErrQuota, "provider_quota", true},
		{provider.ErrUnauthorized, "unauthorized", true},
		{fmt.Errorf("wrapped: %w", provider.ErrRateLimited), "provider_rate_limited", false},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{})
			o := newOtel(t)
			cfg := b.config("r1", nil)
			cfg.MaxAttempts = 1
			cfg.Provider = failingCreate{b.cloud, tt.err}
			o.use(&cfg)
			p := b.replica(cfg)
			id := newID()
			require.Error(t, p.Provision(context.Background(), id))
			ms := o.collect(t)
			assert.Equal(t, map[string]int64{
				attrs(attribute.String("hatchery.phase", "create"), attribute.String("error.type", tt.kind), attribute.Bool("hatchery.failure.final", tt.final)): 1,
			}, counts(t, ms["hatchery.failures"]))
			assert.Equal(t, int64(1), counts(t, ms["hatchery.provider.calls"])[attrs(
				attribute.String("hatchery.provider.operation", "create"), attribute.String("hatchery.provider.outcome", tt.kind))])
		})
	}
}

// failingCreate is a provider whose Create fails with err.
type failingCreate struct {
	*countingProvider
	err error
}

func (f failingCreate) Create(context.Context, provider.CreateRequest) (provider.Server, error) {
	return provider.Server{}, f.err
}

// TestTelemetryDefaults: without providers in Config, the Provisioner uses
// the global ones, which are no-ops by default: it works, and records
// nothing anywhere.
func TestTelemetryDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	p := b.replica(b.config("r1", nil))
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	waitReady(t, p, id)
}

// TestTelemetryParentSpan: a caller's span is the parent of Provision's,
// and an HTTP instrumentation's span that of the phone_home's, which is
// then internal.
func TestTelemetryParentSpan(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{bootDelay: 300 * time.Millisecond})
	o := newOtel(t)
	cfg := b.config("r1", nil)
	o.use(&cfg)
	p, err := provision.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	tracer := o.tp.Tracer("test")
	// The front starts a span per request, as otelhttp would.
	b.front.add("r1", httpSpan{tracer, p.Handler()})
	t.Cleanup(func() { b.front.remove("r1") })

	ctx, caller := tracer.Start(context.Background(), "caller")
	id := newID()
	require.NoError(t, p.Provision(ctx, id))
	caller.End()
	waitReady(t, p, id)
	var prov, phoneHome sdktrace.ReadOnlySpan
	httpSpans := map[trace.SpanID]bool{}
	for _, s := range o.spans.Ended() {
		switch s.Name() {
		case "hatchery.Provision":
			prov = s
		case "hatchery.phone_home":
			phoneHome = s
		case "http":
			httpSpans[s.SpanContext().SpanID()] = true
		}
	}
	require.NotNil(t, prov)
	assert.Equal(t, caller.SpanContext().SpanID(), prov.Parent().SpanID())
	require.NotNil(t, phoneHome)
	assert.Equal(t, trace.SpanKindInternal, phoneHome.SpanKind())
	assert.True(t, httpSpans[phoneHome.Parent().SpanID()], "a child of the HTTP span")
}

// httpSpan starts a server span per request, as otelhttp does.
type httpSpan struct {
	tracer trace.Tracer
	h      http.Handler
}

func (h httpSpan) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, span := h.tracer.Start(r.Context(), "http", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	h.h.ServeHTTP(w, r.WithContext(ctx))
}

// countedStore counts its Count and List calls; with counter false it is
// no store.Counter.
type countedStore struct {
	store.Store
	counts, lists atomic.Int32
}

func (c *countedStore) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	if len(statuses) == 0 {
		c.lists.Add(1)
	}
	return c.Store.List(ctx, statuses...)
}

type counterStore struct{ *countedStore }

func (c counterStore) Count(ctx context.Context) (map[store.Status]int, error) {
	c.counts.Add(1)
	return c.Store.(store.Counter).Count(ctx)
}

// TestTenantsGauge: the tenants by status come from the store's Count
// when it has one, else from a List of every record, and either is reused
// across collections for a while: a metric reader that collects often
// does not load the store.
func TestTenantsGauge(t *testing.T) {
	t.Parallel()
	for _, counter := range []bool{true, false} {
		t.Run(fmt.Sprintf("counter=%v", counter), func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{store: memory.New()})
			cs := &countedStore{Store: b.store}
			var st store.Store = cs
			if counter {
				st = counterStore{cs}
			}
			ctx := context.Background()
			for _, s := range []store.Status{store.StatusReady, store.StatusReady, store.StatusFailed, store.StatusPending} {
				require.NoError(t, b.store.Create(ctx, store.Record{ID: newID(), Status: s}))
			}
			o := newOtel(t)
			cfg := b.config("r1", st)
			o.use(&cfg)
			b.replica(cfg)
			for range 3 {
				tenants := counts(t, o.collect(t)["hatchery.tenants"])
				assert.Equal(t, int64(2), tenants["hatchery.tenant.status=ready"])
				assert.Equal(t, int64(1), tenants["hatchery.tenant.status=failed"])
				assert.Equal(t, int64(1), tenants["hatchery.tenant.status=pending"])
				assert.Equal(t, int64(0), tenants["hatchery.tenant.status=deleted"])
			}
			if counter {
				assert.Equal(t, int32(1), cs.counts.Load(), "one Count for three collections")
				assert.Zero(t, cs.lists.Load(), "no List")
			} else {
				assert.Equal(t, int32(1), cs.lists.Load(), "one List for three collections")
			}
		})
	}
}

// spanLogs is a slog.Handler that keeps each record's message with the
// span context of the context it was logged with, as a trace-aware
// handler (otelslog) reads it.
type spanLogs struct {
	mu   *sync.Mutex
	recs *[]spanLog
}

type spanLog struct {
	msg string
	sc  trace.SpanContext
}

func newSpanLogs() spanLogs { return spanLogs{mu: &sync.Mutex{}, recs: &[]spanLog{}} }

func (h spanLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h spanLogs) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, spanLog{r.Message, trace.SpanContextFromContext(ctx)})
	return nil
}
func (h spanLogs) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h spanLogs) WithGroup(string) slog.Handler      { return h }

// find returns the span context of the first record with msg.
func (h spanLogs) find(t testing.TB, msg string) trace.SpanContext {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.recs {
		if r.msg == msg {
			return r.sc
		}
	}
	t.Fatalf("no log record %q", msg)
	return trace.SpanContext{}
}

// TestTelemetryLogs: the Provisioner's log records, the callback
// handler's and inject's carry the context of the span of the work they
// describe, so that a trace-aware handler adds its IDs.
func TestTelemetryLogs(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{bootDelay: 300 * time.Millisecond})
	o := newOtel(t)
	logs := newSpanLogs()
	cfg := b.config("r1", nil)
	cfg.Logger = slog.New(logs)
	o.use(&cfg)
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	waitReady(t, p, id)
	byName := map[string]trace.SpanID{}
	for _, s := range o.spans.Ended() {
		byName[s.Name()] = s.SpanContext().SpanID()
	}
	assert.Equal(t, byName["hatchery.create"], logs.find(t, "server created").SpanID(), "provision's log, in the create")
	assert.Equal(t, byName["hatchery.phone_home"], logs.find(t, "phone_home accepted").SpanID(), "the callback's log, in the request")
	sc := logs.find(t, "inject: step done")
	assert.True(t, sc.IsValid(), "inject's log, in a session")
	assert.NotEqual(t, byName["hatchery.inject"], sc.SpanID(), "in the session's span, below the injection's")
}
