package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// instrumentationScope names the Provisioner's tracer and meter: the
// package's import path, as OpenTelemetry recommends.
const instrumentationScope = "github.com/hatchery-dev/hatchery/provision"

// Attribute keys. Those marked "spans only" may have one value per tenant
// or server and never go on a metric.
const (
	attrTenant          = "hatchery.tenant.id"   // spans only
	attrServerID        = "hatchery.server.id"   // spans only
	attrServerName      = "hatchery.server.name" // spans only
	attrStepName        = "hatchery.step.name"   // spans only
	attrAttempt         = "hatchery.attempt"     // spans only
	attrReplacement     = "hatchery.replacement" // spans only
	attrStatus          = "hatchery.tenant.status"
	attrFrom            = "hatchery.transition.from"
	attrTo              = "hatchery.transition.to"
	attrPhase           = "hatchery.phase"
	attrOutcome         = "hatchery.outcome"
	attrErrorType       = "error.type" // OpenTelemetry's own: the class of a failure
	attrFinal           = "hatchery.failure.final"
	attrStepIndex       = "hatchery.step.index"
	attrEndpoint        = "hatchery.callback.endpoint"
	attrCallbackOutcome = "hatchery.callback.outcome"
	attrOperation       = "hatchery.provider.operation"
	attrProviderOutcome = "hatchery.provider.outcome"
	attrStoreAborted    = "hatchery.store.aborted" // spans only
	attrRecords         = "hatchery.store.records" // spans only
	attrSSHSteps        = "hatchery.ssh.steps"     // spans only
	attrSSHJump         = "hatchery.ssh.jump"      // spans only
	attrServerAddress   = "server.address"         // spans only
)

// Outcomes of a phase and of an injection step (attrOutcome).
const (
	outcomeOK      = "ok"      // the phase did its work
	outcomeFailed  = "failed"  // it failed: recorded (the tenant is failed), or not (the store failed: the lease expires)
	outcomeStopped = "stopped" // the lease was lost, the tenant moved on, or the work was cancelled
)

// Provider operations (attrOperation).
const (
	opCreate = "create"
	opGet    = "get"
	opDelete = "delete"
	opList   = "list"
	opCheck  = "check_credentials"
)

// Error kinds (error.type): a small fixed set, derived from an error by
// errorKind.
const (
	kindTimeout             = "timeout"
	kindCanceled            = "canceled"
	kindHostKey             = "host_key"
	kindAuth                = "auth"
	kindJump                = "jump_host"
	kindSecretInCommand     = "secret_in_command"
	kindCloudInit           = "cloud_init"
	kindStep                = "step"
	kindNetwork             = "network"
	kindConfig              = "config"
	kindCloudConfig         = "cloud_config"
	kindSecrets             = "secrets"
	kindProviderQuota       = "provider_quota"
	kindProviderUnavailable = "provider_unavailable"
	kindProviderRateLimited = "provider_rate_limited"
	kindProviderConflict    = "provider_conflict"
	kindProviderInvalid     = "provider_invalid"
	kindProviderNotFound    = "provider_not_found"
	kindUnauthorized        = "unauthorized"
	kindStore               = "store"
	kindLeaseLost           = "lease_lost"
	kindOther               = "other"
)

// errorKind classifies err into one of the error kinds: the attribute
// error.type of the failures counter, the phase durations and the spans.
// The order matters: a timeout is a timeout whatever timed out, a host key
// refused by the bastion is the bastion's.
func errorKind(err error) string {
	var se *inject.StepError
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return kindTimeout
	case errors.Is(err, errLeaseLost):
		return kindLeaseLost
	case errors.Is(err, context.Canceled), errors.Is(err, ErrClosed):
		return kindCanceled
	case errors.Is(err, errJump):
		return kindJump
	case errors.Is(err, inject.ErrHostKey), errors.Is(err, errWrongSource), errors.Is(err, errNoHostKeys):
		return kindHostKey
	case errors.Is(err, inject.ErrAuth), errors.Is(err, inject.ErrPassphrase):
		return kindAuth
	case errors.Is(err, inject.ErrSecretInCommand):
		return kindSecretInCommand
	case errors.As(err, &se) && se.Index == 0:
		return kindCloudInit // step 0 is the cloud-init wait (see injectSteps)
	case errors.As(err, &se), errors.Is(err, inject.ErrProtocol):
		return kindStep
	case errors.Is(err, provider.ErrUnauthorized):
		return kindUnauthorized
	case errors.Is(err, provider.ErrQuota):
		return kindProviderQuota
	case errors.Is(err, provider.ErrUnavailable):
		return kindProviderUnavailable
	case errors.Is(err, provider.ErrRateLimited):
		return kindProviderRateLimited
	case errors.Is(err, provider.ErrConflict):
		return kindProviderConflict
	case errors.Is(err, provider.ErrInvalid):
		return kindProviderInvalid
	case errors.Is(err, provider.ErrNotFound):
		return kindProviderNotFound
	case errors.Is(err, cloudinit.ErrInvalid), errors.Is(err, cloudinit.ErrSecret), errors.Is(err, cloudinit.ErrTooLarge):
		return kindCloudConfig
	case errors.Is(err, ErrConfig), errors.Is(err, inject.ErrInvalid):
		return kindConfig
	case errors.As(err, new(*secretsError)):
		return kindSecrets
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrCorrupt), errors.Is(err, store.ErrInvalid),
		errors.Is(err, store.ErrExists), errors.Is(err, ErrClockSkew):
		return kindStore
	case errors.As(err, &ne):
		if ne.Timeout() {
			return kindTimeout
		}
		return kindNetwork
	}
	return kindOther
}

// providerOutcome is the outcome of a provider call: "ok", or the kind of
// its error.
func providerOutcome(err error) string {
	if err == nil {
		return outcomeOK
	}
	return errorKind(err)
}

// secretsError marks the failure of Config.Secrets (kind "secrets"); its
// message is the cause's, prefixed as before.
type secretsError struct{ err error }

func (e *secretsError) Error() string { return "secrets: " + e.err.Error() }
func (e *secretsError) Unwrap() error { return e.err }

// telemetry holds the Provisioner's tracer and instruments. A nil
// *telemetry records nothing (see newProvisioner); with the global no-op
// providers every method costs an atomic load or two and no allocation
// beyond the spans' own (see BenchmarkTelemetry).
type telemetry struct {
	tracer trace.Tracer

	tenants           metric.Int64ObservableGauge
	rateLeft          metric.Int64ObservableGauge
	transitions       metric.Int64Counter
	provisionDuration metric.Float64Histogram
	phaseDuration     metric.Float64Histogram
	attempts          metric.Int64Counter
	failures          metric.Int64Counter
	stepDuration      metric.Float64Histogram
	callbackRequests  metric.Int64Counter
	providerCalls     metric.Int64Counter
	providerDuration  metric.Float64Histogram

	// Attribute options built once: the ones on the paths that must cost
	// nothing (the callback, transitions, the gauge).
	statusObs   map[store.Status]metric.ObserveOption
	phaseOpts   map[string][]metric.AddOption
	transOpts   map[[2]store.Status][]metric.AddOption
	requestOpts map[requestKey][]metric.AddOption
	phoneHomeOK []metric.RecordOption

	kinds        map[trace.SpanKind][]trace.SpanStartOption // built once: no allocation per span
	none         trace.Span                                 // what SpanFromContext gives for a context without a span
	meter        metric.Meter
	observed     []metric.Observable // the gauges
	registration metric.Registration // their callback
}

// newTelemetry makes the tracer and instruments from c's providers (the
// global ones when nil).
func newTelemetry(c Config) (*telemetry, error) {
	tp, mp := c.TracerProvider, c.MeterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationScope)
	t := &telemetry{tracer: tp.Tracer(instrumentationScope), meter: m, none: noSpan()}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		check(err)
		return c
	}
	seconds := func(name, desc string, bounds ...float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(bounds...))
		check(err)
		return h
	}
	var err error
	t.tenants, err = m.Int64ObservableGauge("hatchery.tenants", metric.WithUnit("{tenant}"),
		metric.WithDescription("Tenants in the store by lifecycle status (every replica reports the whole store)."))
	check(err)
	t.transitions = counter("hatchery.transitions", "{transition}",
		"Status changes made by this process (the callback's included).")
	t.provisionDuration = seconds("hatchery.provision.duration",
		"Time from a tenant's record creation (pending) to ready, retries included.",
		10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 3600)
	t.phaseDuration = seconds("hatchery.phase.duration",
		"Duration of one run of a phase: create, phone_home (boot to phone_home), inject, rotate, retire.",
		0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 900)
	t.attempts = counter("hatchery.attempts", "{attempt}",
		"Attempts started, by phase (create, inject, rotate).")
	t.failures = counter("hatchery.failures", "{failure}",
		"Failures recorded (the tenant moved to failed), by phase and error kind.")
	t.stepDuration = seconds("hatchery.inject.step.duration",
		"Duration of one injection step (index 0 is the cloud-init wait).",
		0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
	t.callbackRequests = counter("hatchery.callback.requests", "{request}",
		"Requests to the callback handler, by endpoint (phone_home, event) and outcome.")
	t.providerCalls = counter("hatchery.provider.calls", "{call}",
		"Calls to the provider driver, by operation and outcome.")
	t.providerDuration = seconds("hatchery.provider.call.duration",
		"Duration of a call to the provider driver, by operation and outcome.",
		0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60)
	observed := []metric.Observable{t.tenants}
	if _, ok := c.Provider.(rateLimiter); ok {
		t.rateLeft, err = m.Int64ObservableGauge("hatchery.provider.rate_limit.remaining", metric.WithUnit("{request}"),
			metric.WithDescription("API requests left in the provider's rate-limit budget, by its last answer."))
		check(err)
		observed = append(observed, t.rateLeft)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: telemetry: %w", ErrConfig, errors.Join(errs...))
	}
	t.kinds = make(map[trace.SpanKind][]trace.SpanStartOption)
	for _, k := range []trace.SpanKind{trace.SpanKindInternal, trace.SpanKindServer, trace.SpanKindClient} {
		t.kinds[k] = []trace.SpanStartOption{trace.WithSpanKind(k)}
	}
	t.statusObs = make(map[store.Status]metric.ObserveOption)
	for _, s := range store.Statuses() {
		t.statusObs[s] = metric.WithAttributeSet(attribute.NewSet(attribute.String(attrStatus, string(s))))
	}
	t.phaseOpts = make(map[string][]metric.AddOption)
	for _, ph := range []string{phaseCreate, phaseInject, phaseRotate} {
		t.phaseOpts[ph] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(attrPhase, ph)))}
	}
	t.transOpts = make(map[[2]store.Status][]metric.AddOption)
	for _, from := range append([]store.Status{""}, store.Statuses()...) {
		for _, to := range store.Statuses() {
			name := string(from)
			if from == "" {
				name = "none" // the record's creation
			}
			t.transOpts[[2]store.Status{from, to}] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String(attrFrom, name), attribute.String(attrTo, string(to))))}
		}
	}
	t.requestOpts = make(map[requestKey][]metric.AddOption)
	for _, ev := range []bool{false, true} {
		for _, o := range callback.Outcomes() {
			t.requestOpts[requestKey{ev, o}] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String(attrEndpoint, endpointName(ev)), attribute.String(attrCallbackOutcome, o)))}
		}
	}
	t.phoneHomeOK = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
		attribute.String(attrPhase, phasePhoneHome), attribute.String(attrOutcome, outcomeOK)))}
	t.observed = observed
	return t, nil
}

// requestKey is the attributes of hatchery.callback.requests: the
// endpoint (event or not) and the outcome.
type requestKey struct {
	event  bool
	result string
}

// endpointName is the hatchery.callback.endpoint of a request.
func endpointName(event bool) string {
	if event {
		return "event"
	}
	return "phone_home"
}

// rateLimiter is implemented by providers that know how many API requests
// their rate-limit budget has left (provider/hetzner,
// provider/digitalocean): the hatchery.provider.rate_limit.remaining
// gauge. ok is false while the provider cannot tell (no answer yet).
type rateLimiter interface {
	RateLimitRemaining() (n int, ok bool)
}

// noSpan returns the span of what is not traced: a no-op.
func noSpan() trace.Span { return trace.SpanFromContext(context.Background()) }

// startSpan starts a span named name, of kind, with the tenant ID as an
// attribute when id is a valid one (not whatever a caller passed) and the
// span records.
func (t *telemetry) startSpan(ctx context.Context, name, id string, kind trace.SpanKind) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noSpan()
	}
	ctx, span := t.tracer.Start(ctx, name, t.kinds[kind]...)
	if id != "" && span.IsRecording() && store.ValidID(id) {
		span.SetAttributes(attribute.String(attrTenant, id))
	}
	return ctx, span
}

// endSpan ends span, with an error status saying err when it is not nil.
// err must hold no secret: the Provisioner's errors never do (failures
// are redacted, see Error).
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
		if k := errorKind(err); k != "" {
			span.SetAttributes(attribute.String(attrErrorType, k))
		}
	}
	span.End()
}

// endSpanRedacted is endSpan for an error that may hold a secret value
// of secrets (one that inject did not redact, see checkedSecrets).
func endSpanRedacted(span trace.Span, err error, secrets []string) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, redact(err.Error(), secrets))
		span.SetAttributes(attribute.String(attrErrorType, errorKind(err)))
	}
	span.End()
}

// traced reports whether ctx carries a span to hang child spans on: the
// store and provider wrappers make spans only under one, so that the
// lease renewals and Resume's reads of an idle replica make none.
func (t *telemetry) traced(ctx context.Context) bool {
	s := trace.SpanFromContext(ctx)
	// No span at all (the no-op span) is the common case without an SDK,
	// told without copying a SpanContext.
	return s != t.none && s.SpanContext().IsValid()
}

// detach returns a background context that carries ctx's span context
// only: for work that outlives the request or call that started it, as a
// child of its span.
func detach(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return context.Background()
	}
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// phaseKey is the context key of the phase being run (phaseRun).
type phaseKey struct{}

// phaseRun is one run of a phase (create, inject, rotate, retire): its
// span, its start, and whether it ended because the tenant moved on.
type phaseRun struct {
	t       *telemetry
	phase   string
	start   time.Time
	span    trace.Span
	mu      sync.Mutex
	movedOn bool
}

// startPhase starts a run of phase on r: its span (a child of ctx's),
// and, for create, inject and rotate, an attempt. The returned context
// carries the span and the run (phaseOf). It returns a nil run without
// telemetry; every method of phaseRun accepts one.
func (p *Provisioner) startPhase(ctx context.Context, phase string, r store.Record) (context.Context, *phaseRun) {
	t := p.tel
	if t == nil {
		return ctx, nil
	}
	ctx, span := t.tracer.Start(ctx, "hatchery."+phase)
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			attribute.String(attrTenant, r.ID),
			attribute.String(attrPhase, phase),
			attribute.Int(attrAttempt, r.Attempts+1),
		}
		if r.RetiringServerID != "" {
			attrs = append(attrs, attribute.Bool(attrReplacement, true))
		}
		if r.ServerID != "" {
			attrs = append(attrs, attribute.String(attrServerID, r.ServerID))
		}
		span.SetAttributes(attrs...)
	}
	if opts, ok := t.phaseOpts[phase]; ok {
		t.attempts.Add(ctx, 1, opts...)
	}
	pr := &phaseRun{t: t, phase: phase, start: time.Now(), span: span}
	return context.WithValue(ctx, phaseKey{}, pr), pr
}

// phaseOf returns the phase run of ctx, nil when there is none.
func phaseOf(ctx context.Context) *phaseRun {
	pr, _ := ctx.Value(phaseKey{}).(*phaseRun)
	return pr
}

// name returns the run's phase, def without one.
func (pr *phaseRun) name(def string) string {
	if pr == nil {
		return def
	}
	return pr.phase
}

// stoppedBy notes that the run ended because the tenant moved on (stopped).
func (pr *phaseRun) stoppedBy() {
	if pr == nil {
		return
	}
	pr.mu.Lock()
	pr.movedOn = true
	pr.mu.Unlock()
}

// end ends the run with the phase's result: its duration by outcome (and
// error kind), and its span.
func (pr *phaseRun) end(ctx context.Context, err error) {
	if pr == nil {
		return
	}
	pr.mu.Lock()
	movedOn := pr.movedOn
	pr.mu.Unlock()
	outcome, kind := outcomeOK, ""
	var fe *Error
	switch {
	case err == nil && movedOn:
		outcome = outcomeStopped
	case err == nil:
	case errors.As(err, &fe):
		outcome, kind = outcomeFailed, errorKind(fe)
	case ctx.Err() != nil:
		outcome, kind = outcomeStopped, errorKind(context.Cause(ctx))
	default:
		outcome, kind = outcomeFailed, errorKind(err)
	}
	attrs := []attribute.KeyValue{attribute.String(attrPhase, pr.phase), attribute.String(attrOutcome, outcome)}
	if kind != "" {
		attrs = append(attrs, attribute.String(attrErrorType, kind))
	}
	pr.t.phaseDuration.Record(ctx, time.Since(pr.start).Seconds(), metric.WithAttributes(attrs...))
	if pr.span.IsRecording() {
		pr.span.SetAttributes(attrs[1:]...)
		if err != nil && outcome != outcomeStopped {
			pr.span.SetStatus(codes.Error, err.Error())
		}
	}
	pr.span.End()
}

// failure counts a failure recorded in phase, of the kind of cause.
func (t *telemetry) failure(ctx context.Context, phase string, cause error, final bool) {
	if t == nil {
		return
	}
	t.failures.Add(ctx, 1, metric.WithAttributes(
		attribute.String(attrPhase, phase),
		attribute.String(attrErrorType, errorKind(cause)),
		attribute.Bool(attrFinal, final)))
}

// transition counts a status change.
func (t *telemetry) transition(ctx context.Context, from, to store.Status) {
	if t == nil {
		return
	}
	opts, ok := t.transOpts[[2]store.Status{from, to}]
	if !ok {
		opts = []metric.AddOption{metric.WithAttributes(attribute.String(attrFrom, string(from)), attribute.String(attrTo, string(to)))}
	}
	t.transitions.Add(ctx, 1, opts...)
}

// provisioned records the time a tenant took from its record's creation
// to ready, as the ready write r says (both times are the store's).
func (t *telemetry) provisioned(ctx context.Context, r store.Record) {
	if t == nil || r.CreatedAt.IsZero() || r.UpdatedAt.Before(r.CreatedAt) {
		return
	}
	t.provisionDuration.Record(ctx, r.UpdatedAt.Sub(r.CreatedAt).Seconds())
}

// steps returns the inject.WithEvents function that times the steps of
// one inject.Run (a session, whose span ctx carries) and gives each a
// span; secrets are redacted from a failed step's message (inject has
// redacted what it knows already). next is called with every event.
// finish ends the spans of steps that started and never finished, once
// Run has returned.
func (t *telemetry) steps(ctx context.Context, phase string, secrets []string, next func(inject.Event)) (events func(inject.Event), finish func()) {
	if t == nil {
		return next, func() {}
	}
	type started struct {
		at   time.Time
		span trace.Span
	}
	var mu sync.Mutex
	running := map[int]started{}
	finish = func() {
		mu.Lock()
		defer mu.Unlock()
		for i, s := range running {
			s.span.SetStatus(codes.Error, "unfinished")
			s.span.End()
			delete(running, i)
		}
	}
	return func(e inject.Event) {
		mu.Lock()
		if !e.Done {
			_, span := t.tracer.Start(ctx, "hatchery.inject.step")
			if span.IsRecording() {
				span.SetAttributes(attribute.Int(attrStepIndex, e.Index), attribute.String(attrStepName, e.Step))
			}
			running[e.Index] = started{at: time.Now(), span: span}
			mu.Unlock()
			next(e)
			return
		}
		s, ok := running[e.Index]
		delete(running, e.Index)
		mu.Unlock()
		if ok {
			outcome := outcomeOK
			if e.Err != nil {
				outcome = outcomeFailed
			}
			t.stepDuration.Record(ctx, time.Since(s.at).Seconds(), metric.WithAttributes(
				attribute.String(attrPhase, phase), attribute.Int(attrStepIndex, e.Index), attribute.String(attrOutcome, outcome)))
			if e.Err != nil && s.span.IsRecording() {
				s.span.SetStatus(codes.Error, redact(e.Err.Error(), secrets))
				s.span.SetAttributes(attribute.String(attrErrorType, errorKind(e.Err)))
			}
			s.span.End()
		}
		next(e)
	}, finish
}

// callbackOutcome is the callback handler's OnOutcome: the request
// counter, the phone_home duration, the request span's attributes and
// its link to the create's span.
func (p *Provisioner) callbackOutcome(ctx context.Context, o callback.Outcome) {
	t := p.tel
	opts, ok := t.requestOpts[requestKey{o.Event, o.Result}]
	if !ok {
		opts = []metric.AddOption{metric.WithAttributes(
			attribute.String(attrEndpoint, endpointName(o.Event)), attribute.String(attrCallbackOutcome, o.Result))}
	}
	t.callbackRequests.Add(ctx, 1, opts...)
	span := trace.SpanFromContext(ctx)
	if o.Result == callback.OutcomeTransitioned {
		// The callback's transition, with the status it left (the event
		// that onReady emits does not know it).
		t.transition(ctx, o.From, store.StatusInjectingSecrets)
		if o.From == store.StatusCloudInit {
			t.phaseDuration.Record(ctx, o.Waited.Seconds(), t.phoneHomeOK...)
		}
		if sc, ok := p.takeCreateSpan(o.Tenant); ok && span.IsRecording() {
			span.AddLink(trace.Link{SpanContext: sc})
		}
	}
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.String(attrCallbackOutcome, o.Result)}
	if o.Tenant != "" {
		attrs = append(attrs, attribute.String(attrTenant, o.Tenant))
	}
	span.SetAttributes(attrs...)
	switch o.Result {
	case callback.OutcomeStoreError, callback.OutcomeMisconfigured:
		span.SetStatus(codes.Error, o.Result)
	}
}

// maxCreateSpans bounds the create spans kept for the callback's links.
const maxCreateSpans = 100_000

// rememberCreateSpan keeps the span context of the create of tenant id's
// server, for the link from its phone_home's span (callbackOutcome): best
// effort, in this process only (see Observability in the package
// documentation). Only sampled spans are kept.
func (p *Provisioner) rememberCreateSpan(ctx context.Context, id string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.createSpans) < maxCreateSpans {
		p.createSpans[id] = sc
	}
}

// takeCreateSpan returns, once, the span context kept for tenant id.
func (p *Provisioner) takeCreateSpan(id string) (trace.SpanContext, bool) {
	if id == "" {
		return trace.SpanContext{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	sc, ok := p.createSpans[id]
	delete(p.createSpans, id)
	return sc, ok
}
