package provision

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// tracedStore is the Store the Provisioner (and its callback handler)
// works through: Config.Store, with a span per call under the caller's
// span. A call without a span in its context (a lease renewal's, Resume's
// reads, the callback's without an SDK) goes straight through, so that no
// driver depends on OpenTelemetry and an idle replica makes no spans.
type tracedStore struct {
	s store.Store
	t *telemetry
}

var (
	_ store.Store      = (*tracedStore)(nil)
	_ store.NowUpdater = (*tracedStore)(nil)
)

// Each method is a check and a call when ctx has no span; what a span
// costs is in a method of its own, so that the check's frame stays small
// (a Record is some 400 bytes: a frame holding several costs more than
// the check).

// start starts the span of store operation op on record id ("" for none).
func (w *tracedStore) start(ctx context.Context, op, id string) (context.Context, trace.Span) {
	ctx, span := w.t.tracer.Start(ctx, "hatchery.store."+op, w.t.kinds[trace.SpanKindClient]...)
	if id != "" && span.IsRecording() {
		span.SetAttributes(attribute.String(attrTenant, id))
	}
	return ctx, span
}

// end ends a store span; fnErr is the error of the caller's fn, if it
// aborted the write: an outcome of the caller's, not a store failure.
func (w *tracedStore) end(span trace.Span, err, fnErr error) {
	if err != nil && span.IsRecording() {
		if fnErr != nil && (err == fnErr || errors.Is(err, fnErr)) {
			span.SetAttributes(attribute.Bool(attrStoreAborted, true))
		} else {
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(attribute.String(attrErrorType, kindStore))
		}
	}
	span.End()
}

func (w *tracedStore) Create(ctx context.Context, r store.Record) error {
	if !w.t.traced(ctx) {
		return w.s.Create(ctx, r)
	}
	return w.createSpan(ctx, r)
}

func (w *tracedStore) createSpan(ctx context.Context, r store.Record) error {
	ctx, span := w.start(ctx, "create", r.ID)
	err := w.s.Create(ctx, r)
	w.end(span, err, nil)
	return err
}

func (w *tracedStore) Get(ctx context.Context, id string) (store.Record, error) {
	if !w.t.traced(ctx) {
		return w.s.Get(ctx, id)
	}
	return w.getSpan(ctx, id)
}

func (w *tracedStore) getSpan(ctx context.Context, id string) (store.Record, error) {
	ctx, span := w.start(ctx, "get", id)
	r, err := w.s.Get(ctx, id)
	w.end(span, err, nil)
	return r, err
}

func (w *tracedStore) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	if !w.t.traced(ctx) {
		return w.s.Update(ctx, id, fn)
	}
	return w.updateSpan(ctx, id, fn)
}

func (w *tracedStore) updateSpan(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	ctx, span := w.start(ctx, "update", id)
	var fnErr error
	r, err := w.s.Update(ctx, id, func(r *store.Record) error {
		fnErr = fn(r)
		return fnErr
	})
	w.end(span, err, fnErr)
	return r, err
}

// UpdateNow is store.UpdateNow on the wrapped store, which may or may
// not be a store.NowUpdater.
func (w *tracedStore) UpdateNow(ctx context.Context, id string, fn func(*store.Record, time.Time) error) (store.Record, error) {
	if !w.t.traced(ctx) {
		return store.UpdateNow(ctx, w.s, id, fn)
	}
	return w.updateNowSpan(ctx, id, fn)
}

func (w *tracedStore) updateNowSpan(ctx context.Context, id string, fn func(*store.Record, time.Time) error) (store.Record, error) {
	ctx, span := w.start(ctx, "update", id)
	var fnErr error
	r, err := store.UpdateNow(ctx, w.s, id, func(r *store.Record, now time.Time) error {
		fnErr = fn(r, now)
		return fnErr
	})
	w.end(span, err, fnErr)
	return r, err
}

func (w *tracedStore) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	if !w.t.traced(ctx) {
		return w.s.List(ctx, statuses...)
	}
	ctx, span := w.start(ctx, "list", "")
	recs, err := w.s.List(ctx, statuses...)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int(attrRecords, len(recs)))
	}
	w.end(span, err, nil)
	return recs, err
}

func (w *tracedStore) Purge(ctx context.Context, before time.Time) (int, error) {
	if !w.t.traced(ctx) {
		return w.s.Purge(ctx, before)
	}
	ctx, span := w.start(ctx, "purge", "")
	n, err := w.s.Purge(ctx, before)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int(attrRecords, n))
	}
	w.end(span, err, nil)
	return n, err
}

// tracedProvider is how the Provisioner calls Config.Provider: every call
// is counted and timed (hatchery.provider.calls, .call.duration) and, under
// a span, gets a span of its own. Its optional abilities are still found
// on Config.Provider (List and CheckCredentials are called only once the
// Provisioner has found them there).
type tracedProvider struct {
	p provider.Provider
	t *telemetry // nil: straight through
}

// call is one provider call being measured.
type call struct {
	t     *telemetry
	op    string
	start time.Time
	span  trace.Span
}

// begin starts measuring operation op; name and id describe the server,
// when known, on the span.
func (w tracedProvider) begin(ctx context.Context, op, name, id string) (context.Context, call) {
	c := call{t: w.t, op: op, start: time.Now(), span: noSpan()}
	if w.t.traced(ctx) {
		ctx, c.span = w.t.tracer.Start(ctx, "hatchery.provider."+op, w.t.kinds[trace.SpanKindClient]...)
		if c.span.IsRecording() {
			attrs := []attribute.KeyValue{attribute.String(attrOperation, op)}
			if name != "" {
				attrs = append(attrs, attribute.String(attrServerName, name))
			}
			if id != "" {
				attrs = append(attrs, attribute.String(attrServerID, id))
			}
			c.span.SetAttributes(attrs...)
		}
	}
	return ctx, c
}

// end records the call's outcome; id is the server's, when the answer
// gave it.
func (c call) end(ctx context.Context, err error, id string) {
	outcome := providerOutcome(err)
	opt := metric.WithAttributeSet(attribute.NewSet(attribute.String(attrOperation, c.op), attribute.String(attrProviderOutcome, outcome)))
	c.t.providerCalls.Add(ctx, 1, opt)
	c.t.providerDuration.Record(ctx, time.Since(c.start).Seconds(), opt)
	if c.span.IsRecording() {
		c.span.SetAttributes(attribute.String(attrProviderOutcome, outcome))
		if id != "" {
			c.span.SetAttributes(attribute.String(attrServerID, id))
		}
		if err != nil && !(c.op == opGet && errors.Is(err, provider.ErrNotFound)) {
			// A driver's errors name the operation and the server, never
			// a secret (the user-data holds none).
			c.span.SetStatus(codes.Error, err.Error())
		}
	}
	c.span.End()
}

func (w tracedProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	if w.t == nil {
		return w.p.Create(ctx, req)
	}
	ctx, c := w.begin(ctx, opCreate, req.Name, "")
	srv, err := w.p.Create(ctx, req)
	c.end(ctx, err, srv.ID)
	return srv, err
}

func (w tracedProvider) Get(ctx context.Context, id string) (provider.Server, error) {
	if w.t == nil {
		return w.p.Get(ctx, id)
	}
	ctx, c := w.begin(ctx, opGet, "", id)
	srv, err := w.p.Get(ctx, id)
	c.end(ctx, err, "")
	return srv, err
}

func (w tracedProvider) Delete(ctx context.Context, id string) error {
	if w.t == nil {
		return w.p.Delete(ctx, id)
	}
	ctx, c := w.begin(ctx, opDelete, "", id)
	err := w.p.Delete(ctx, id)
	c.end(ctx, err, "")
	return err
}

// List calls the wrapped provider's List; it must be a provider.Lister.
func (w tracedProvider) List(ctx context.Context, selector map[string]string) ([]provider.Server, error) {
	l := w.p.(provider.Lister)
	if w.t == nil {
		return l.List(ctx, selector)
	}
	ctx, c := w.begin(ctx, opList, "", "")
	servers, err := l.List(ctx, selector)
	if c.span.IsRecording() {
		c.span.SetAttributes(attribute.Int("hatchery.provider.servers", len(servers)))
	}
	c.end(ctx, err, "")
	return servers, err
}

// CheckCredentials calls the wrapped provider's; it must be a
// provider.CredentialChecker.
func (w tracedProvider) CheckCredentials(ctx context.Context) error {
	cc := w.p.(provider.CredentialChecker)
	if w.t == nil {
		return cc.CheckCredentials(ctx)
	}
	ctx, c := w.begin(ctx, opCheck, "", "")
	err := cc.CheckCredentials(ctx)
	c.end(ctx, err, "")
	return err
}
