package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// Errors the Provisioner returns; test with errors.Is.
var (
	// ErrClosed is returned once Close or Shutdown has been called.
	ErrClosed = errors.New("provision: provisioner closed")
	// ErrNotReady is returned by Rotate for a tenant that is not ready.
	ErrNotReady = errors.New("provision: tenant is not ready")
	// ErrBusy is returned by Rotate and Retry when another replica holds
	// the tenant's lease, or when ctx ends while this process finishes
	// other work on it.
	ErrBusy = errors.New("provision: tenant is being worked on")
	// ErrDeleted is returned by Provision for a tenant that has been
	// deprovisioned: its ID cannot be provisioned again while its deleted
	// record exists.
	ErrDeleted = errors.New("provision: tenant is deleted")
)

// Internal outcomes: never returned to callers as such.
var (
	errLeaseHeld = errors.New("provision: lease held by another replica")
	errLeaseLost = errors.New("provision: lease lost")
	errBusy      = errors.New("provision: work already in flight in this process")
	errNotDue    = errors.New("provision: retry not due")
)

// Provisioner drives tenants through the lifecycle. It is safe for
// concurrent use, and several Provisioners (replicas) may share one Store.
type Provisioner struct {
	cfg     Config
	log     *slog.Logger
	handler *callback.Handler
	pubKey  string // the Signer's public key, authorized_keys format without comment

	// The store and provider as the Provisioner calls them: Config's,
	// traced (see instrument.go). Optional interfaces are looked for on
	// Config's own.
	store store.Store
	prov  tracedProvider
	tel   *telemetry // nil only without telemetry (a benchmark's baseline)

	// resumeSlots holds a token for every piece of work that Resume
	// started and that is still running (Config.ResumeConcurrency).
	resumeSlots chan struct{}

	mu      sync.Mutex
	closed  bool
	closing chan struct{} // closed when Shutdown or Close begins
	// The work in flight is cancelled when Close begins, or when
	// Shutdown's context ends: stop is closed then, and every work
	// context registered in cancels is cancelled (see workContext). No
	// context is kept in the struct.
	stop    chan struct{}
	cancels map[uint64]context.CancelCauseFunc
	nextKey uint64
	wg      sync.WaitGroup
	busy    map[string]struct{}   // tenants with work in flight in this process
	again   map[string]bool       // tenants that phoned home while busy here
	addrs   map[string]string     // SSH addresses learned from Create, by tenant
	sources map[string]netip.Addr // phone_home client addresses to verify (see keepSource)
	watches map[string]*watch     // Wait calls, by tenant
	swept   atomic.Bool           // a Resume has swept the deleted records
	// deadlines are the local deadlines of the leases just claimed, until
	// leased takes them (see claimFrom).
	deadlines map[string]time.Time
	warned    sync.Map // secret warnings already logged (warnOnce)
	vocab     []byte   // see newVocabulary

	// Clock skew (checkSkew): since when the store's clock has been
	// found skewed, and when that was last logged.
	skewMu     sync.Mutex
	skewSince  time.Time
	skewLogged time.Time

	checks checks // drift checks, probes and purges (see drift.go)

	health health // what Check reports (see health.go)
	// createSpans are the span contexts of the creates whose phone_home
	// is awaited, for the callback's span links (rememberCreateSpan).
	createSpans map[string]trace.SpanContext

	now func() time.Time
}

// New validates cfg and returns a Provisioner. It starts nothing: mount
// Handler, call Provision for new tenants, and Run (or Resume
// periodically) so that crashed work, phone_home deadlines and retries are
// picked up.
func New(cfg Config) (*Provisioner, error) {
	return newProvisioner(cfg, true)
}

// newProvisioner is New; without telemetry the Provisioner records no
// metric and no span, whatever the providers, and calls Config's store and
// provider directly: the baseline of BenchmarkTelemetry.
func newProvisioner(cfg Config, telemetry bool) (*Provisioner, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Provisioner{
		cfg:     c,
		log:     c.Logger.With("replica", c.Replica),
		pubKey:  authorizedKey(c.Signer.PublicKey()),
		closing: make(chan struct{}),
		stop:    make(chan struct{}),
		cancels: make(map[uint64]context.CancelCauseFunc),
		busy:    make(map[string]struct{}),
		again:   make(map[string]bool),
		addrs:   make(map[string]string),
		sources: make(map[string]netip.Addr),
		watches: make(map[string]*watch),
		now:     time.Now,
		store:   c.Store,
		prov:    tracedProvider{p: c.Provider},

		createSpans: make(map[string]trace.SpanContext),

		deadlines: make(map[string]time.Time),

		resumeSlots: make(chan struct{}, c.ResumeConcurrency),
	}
	instanceID := c.InstanceIDFunc
	if ip, ok := c.Provider.(provider.InstanceIDer); ok && instanceID == nil {
		instanceID = func(r store.Record) string {
			if r.ServerID == "" {
				return ""
			}
			return ip.InstanceID(r.ServerID)
		}
	}
	if telemetry {
		if p.tel, err = newTelemetry(c); err != nil {
			return nil, err
		}
		p.store = &tracedStore{s: c.Store, t: p.tel}
		p.prov.t = p.tel
	}
	p.handler = &callback.Handler{
		Store:          p.store,
		Key:            c.CallbackKey,
		OnReady:        p.onReady,
		OnEvent:        p.onBootEvent,
		Logger:         c.Logger,
		CheckSource:    c.CallbackCheckSource,
		TrustedProxies: c.CallbackTrustedProxies,
		InstanceIDFunc: instanceID,
	}
	if p.vocab, err = p.newVocabulary(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if p.tel != nil {
		p.handler.OnOutcome = p.callbackOutcome
		if p.tel.registration, err = p.tel.meter.RegisterCallback(p.observe, p.tel.observed...); err != nil {
			return nil, fmt.Errorf("%w: telemetry: %w", ErrConfig, err)
		}
	}
	return p, nil
}

// Replica returns the name this Provisioner uses in leases.
func (p *Provisioner) Replica() string { return p.cfg.Replica }

// Handler returns the phone_home endpoint: a *callback.Handler wired to
// start the injection when a server phones home, configured from Config's
// Callback fields, behind a thin wrapper that hands the request's client
// address to the injection (see verifySource). Mount it at
// Config.CallbackBase; the tenant ID is the last segment of the path, so it
// works under a ServeMux prefix pattern or http.StripPrefix. Every call
// returns the same handler.
func (p *Provisioner) Handler() http.Handler { return callbackFront{p} }

// CallbackURL returns the phone_home URL that the tenant's current server
// was given (r as stored): its token is bound to r.CallbackNonce, so that
// the token of an earlier server of the tenant is refused (see
// callback.Handler.AttemptURL).
func (p *Provisioner) CallbackURL(r store.Record) string {
	return p.handler.AttemptURL(p.cfg.CallbackBase, r.ID, r.CallbackNonce)
}

// callbackURL is CallbackURL, the one place where the URL is made.
func (p *Provisioner) callbackURL(r store.Record) string { return p.CallbackURL(r) }

// CheckProvider checks the provider's credentials when Config.Provider
// can (provider.CredentialChecker): nil when it accepts them or cannot
// check, an error wrapping provider.ErrUnauthorized when it refuses them,
// another error when it could not tell. Run calls it first; call it at
// start when you do not use Run.
func (p *Provisioner) CheckProvider(ctx context.Context) error {
	if _, ok := p.cfg.Provider.(provider.CredentialChecker); !ok {
		return nil
	}
	if err := p.prov.CheckCredentials(ctx); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

// Provision starts tenant id: it creates its record (pending), moves it to
// creating under this replica's lease, builds the cloud-config, creates the
// server and records cloud_init with the server's ID and addresses. The
// rest happens when the server phones home (see Handler).
//
// A tenant that already exists is not an error, and nothing is done twice:
// if it is past pending, or another replica holds it, Provision returns nil
// at once. When creating the server fails, the tenant is recorded failed
// and retried in the background (see Config.MaxAttempts); the error is
// returned, redacted, as an *Error.
//
// Two cases are errors: a deleted tenant gets one wrapping ErrDeleted
// (its ID cannot be provisioned again while the deleted record exists),
// and a tenant that failed for good (a final error, or no attempt left)
// gets the recorded failure, as an *Error (Retry starts it again). A
// failed tenant whose retry is coming gets nil.
func (p *Provisioner) Provision(ctx context.Context, id string) error {
	ctx, span := p.tel.startSpan(ctx, "hatchery.Provision", id, trace.SpanKindInternal)
	err := p.doProvision(ctx, id)
	endSpan(span, err)
	return err
}

// doProvision is Provision, in its span.
func (p *Provisioner) doProvision(ctx context.Context, id string) error {
	if err := store.CheckID(id); err != nil {
		return err
	}
	done, err := p.begin(id)
	if errors.Is(err, errBusy) {
		return nil
	} else if err != nil {
		return err
	}
	defer done()
	ctx, cancel := p.workContext(ctx)
	defer cancel()

	switch err := p.store.Create(ctx, store.Record{ID: id, Status: store.StatusPending}); {
	case err == nil:
		p.emit(ctx, Event{Tenant: id, To: store.StatusPending})
	case errors.Is(err, store.ErrExists):
	default:
		return fmt.Errorf("provision: create record %s: %w", id, err)
	}
	r, err := p.claim(ctx, id, store.StatusPending, store.StatusCreating, newNonce)
	if err != nil {
		var ce *store.ConflictError
		switch {
		case errors.As(err, &ce) && r.Status == store.StatusDeleted:
			return fmt.Errorf("%w: %s", ErrDeleted, id)
		case errors.As(err, &ce) && r.Status == store.StatusFailed && !p.willRetry(r):
			return recordedError(r)
		case ignorableClaim(err):
			return nil
		}
		return fmt.Errorf("provision: claim %s: %w", id, err)
	}
	p.emit(ctx, Event{Tenant: id, From: store.StatusPending, To: store.StatusCreating})
	return p.leased(ctx, r, func(ctx context.Context) error { return p.create(ctx, r) })
}

// Rotate injects the tenant's current secrets into its ready server and
// restarts the service, without rebuilding the server: ready ->
// injecting_secrets (under this replica's lease) -> ready, with
// StepsInput.Rotate set. A tenant that is not ready gets ErrNotReady. When
// the injection fails, the tenant is recorded failed and retried like a
// first injection.
func (p *Provisioner) Rotate(ctx context.Context, id string) error {
	ctx, span := p.tel.startSpan(ctx, "hatchery.Rotate", id, trace.SpanKindInternal)
	err := p.doRotate(ctx, id)
	endSpan(span, err)
	return err
}

// doRotate is Rotate, in its span.
func (p *Provisioner) doRotate(ctx context.Context, id string) error {
	return p.operate(ctx, id, "claim", notReady, func(ctx context.Context) (store.Record, func(context.Context) error, error) {
		r, err := p.claim(ctx, id, store.StatusReady, store.StatusInjectingSecrets, func(r *store.Record) error {
			r.Attempts = 0 // a rotation gets its own attempts
			return nil
		})
		if err != nil {
			return r, nil, err
		}
		p.emit(ctx, Event{Tenant: id, From: store.StatusReady, To: store.StatusInjectingSecrets})
		return r, func(ctx context.Context) error { return p.inject(ctx, r, true, phaseRotate, false) }, nil
	})
}

// notReady is the error of an operation (Rotate, Replace) whose claim
// found the tenant in another status than it needs.
func notReady(id string, ce *store.ConflictError, _ error) error {
	return fmt.Errorf("%w: %s is %s", ErrNotReady, id, ce.Status)
}

// operate runs an operation that a caller asked for on tenant id (Rotate,
// Replace, Retry): it waits until this process's other work on the tenant
// is over, claims the tenant with claim and runs the work claim returns
// under the lease. A claim refused because of the tenant's status returns
// conflict's error, one refused because another replica holds the lease
// ErrBusy, and any other claim error "provision: WHAT ID: ...".
func (p *Provisioner) operate(ctx context.Context, id, what string,
	conflict func(id string, ce *store.ConflictError, err error) error,
	claim func(ctx context.Context) (store.Record, func(context.Context) error, error),
) error {
	if err := store.CheckID(id); err != nil {
		return err
	}
	done, err := p.beginWait(ctx, id)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := p.workContext(ctx)
	defer cancel()
	r, work, err := claim(ctx)
	if err != nil {
		var ce *store.ConflictError
		switch {
		case errors.As(err, &ce):
			return conflict(id, ce, err)
		case errors.Is(err, errLeaseHeld):
			return fmt.Errorf("%w: %s", ErrBusy, id)
		}
		return fmt.Errorf("provision: %s %s: %w", what, id, err)
	}
	return p.leased(ctx, r, work)
}

// Deprovision records the tenant deleted, whatever its status, and deletes
// its server (both servers during a replacement: ServerID and
// RetiringServerID). Deleting is idempotent: calling it again for a deleted
// tenant deletes the server again if that failed the first time (Resume
// does the same). Work in flight for the tenant on any replica stops at its
// next store write; a server that a racing create brings up is deleted by
// that replica.
//
// A server whose creation was accepted by the provider but never recorded
// (the replica crashed in between) and whose tenant is deprovisioned
// before Resume adopts it is not known here; it carries the LabelTenant
// label.
func (p *Provisioner) Deprovision(ctx context.Context, id string) error {
	ctx, span := p.tel.startSpan(ctx, "hatchery.Deprovision", id, trace.SpanKindInternal)
	err := p.doDeprovision(ctx, id)
	endSpan(span, err)
	return err
}

// doDeprovision is Deprovision, in its span.
func (p *Provisioner) doDeprovision(ctx context.Context, id string) error {
	if err := store.CheckID(id); err != nil {
		return err
	}
	if p.isClosed() {
		return ErrClosed
	}
	before, err := p.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("provision: deprovision %s: %w", id, err)
	}
	notDeleted := []store.Status{store.StatusPending, store.StatusCreating, store.StatusCloudInit,
		store.StatusInjectingSecrets, store.StatusReady, store.StatusFailed}
	r, err := store.Transition(ctx, p.store, id, notDeleted, store.StatusDeleted, func(r *store.Record) error {
		r.LeaseOwner, r.LeaseUntil = "", time.Time{}
		return nil
	})
	var ce *store.ConflictError
	switch {
	case err == nil:
		p.emit(ctx, Event{Tenant: id, From: before.Status, To: store.StatusDeleted})
	case errors.As(err, &ce) && ce.Status == store.StatusDeleted:
	default:
		return fmt.Errorf("provision: deprovision %s: %w", id, err)
	}
	p.forgetAddr(id)
	return p.deleteServer(ctx, r)
}

// deleteServer deletes the servers of a deleted record (its server, and
// the retiring one of a replacement) and forgets them.
func (p *Provisioner) deleteServer(ctx context.Context, r store.Record) error {
	if r.ServerID == "" && r.RetiringServerID == "" {
		return nil
	}
	for _, id := range []string{r.ServerID, r.RetiringServerID} {
		if id == "" {
			continue
		}
		if err := p.prov.Delete(ctx, id); err != nil {
			return fmt.Errorf("provision: deprovision %s: %w", r.ID, err)
		}
	}
	_, err := p.store.Update(ctx, r.ID, func(cur *store.Record) error {
		if cur.Status != store.StatusDeleted || cur.ServerID != r.ServerID || cur.RetiringServerID != r.RetiringServerID {
			return errLeaseLost // someone else changed it; nothing to clear
		}
		cur.ServerID, cur.RetiringServerID = "", ""
		return nil
	})
	if err != nil && !errors.Is(err, errLeaseLost) {
		return fmt.Errorf("provision: record server deletion of %s: %w", r.ID, err)
	}
	p.log.InfoContext(ctx, "server deleted", "tenant", r.ID, "server", r.ServerID, "retiring_server", r.RetiringServerID)
	return nil
}

// Retry moves a failed tenant back into the lifecycle now, whatever its
// attempt count and even after a final error (see Error.Final): to creating
// when it has no server, or its server never phoned home, or the host keys
// its phone_home posted turned out not to be the server's (that server is
// deleted first, and a new one created), to injecting_secrets when the
// server's host keys are recorded. It returns when that attempt is over.
// A failed replacement (RetiringServerID set) is retried as one: the old
// server is kept until the new one is ready (see Replace).
func (p *Provisioner) Retry(ctx context.Context, id string) error {
	ctx, span := p.tel.startSpan(ctx, "hatchery.Retry", id, trace.SpanKindInternal)
	err := p.doRetry(ctx, id)
	endSpan(span, err)
	return err
}

// doRetry is Retry, in its span.
func (p *Provisioner) doRetry(ctx context.Context, id string) error {
	notFailed := func(id string, _ *store.ConflictError, err error) error {
		return fmt.Errorf("provision: retry %s: not failed: %w", id, err)
	}
	return p.operate(ctx, id, "retry", notFailed, func(ctx context.Context) (store.Record, func(context.Context) error, error) {
		r, phase, err := p.claimRetry(ctx, id, false)
		return r, func(ctx context.Context) error { return p.work(ctx, r, phase) }, err
	})
}

// Wait polls the store until tenant id is settled and returns its record:
// ready, deleted, or failed with no retry coming (attempts used up or a
// final error), and this Provisioner's work on it has ended, so that the
// events it reports (Config.OnEvent) are out. It is meant for tests,
// examples and command-line tools; a service follows Config.OnEvent
// instead.
//
// A status change this Provisioner makes wakes Wait at once; one made by
// another replica is seen by polling, at most a second apart.
func (p *Provisioner) Wait(ctx context.Context, id string) (store.Record, error) {
	delay := 20 * time.Millisecond
	for {
		w := p.watch(id) // before the read: a change after it wakes us
		// Config's store, not the traced one: a poll makes no spans.
		r, err := p.cfg.Store.Get(ctx, id)
		if err != nil {
			p.unwatch(id, w)
			return store.Record{}, err
		}
		switch {
		case r.Status == store.StatusReady, r.Status == store.StatusDeleted,
			r.Status == store.StatusFailed && !p.willRetry(r):
			if !p.isBusy(id) {
				p.unwatch(id, w)
				return r, nil
			}
			// This process's work on the tenant is finishing: wait for
			// it, so that its events are out when Wait returns.
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			p.unwatch(id, w)
			return r, fmt.Errorf("provision: wait for %s (%s): %w", id, r.Status, ctx.Err())
		case <-w.ch:
			t.Stop()
		case <-t.C:
			delay = min(delay*2, time.Second)
		}
		p.unwatch(id, w)
	}
}

// Shutdown stops taking new work and waits for the work in flight
// (creates, injections) to end. When ctx ends first, the work is cancelled
// (its leases are released, so another replica takes over at once), waited
// for, and ctx's error returned. Pending retries are dropped: another
// replica's Resume (or this one's after a restart) picks them up.
func (p *Provisioner) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	first := !p.closed
	if first {
		p.closed = true
		close(p.closing)
	}
	p.mu.Unlock()
	if first && p.tel != nil && p.tel.registration != nil {
		// The gauges stop: the store may be closed next.
		if err := p.tel.registration.Unregister(); err != nil {
			p.log.WarnContext(ctx, "cannot unregister the metric callback", "err", err)
		}
	}
	idle := make(chan struct{})
	go func() { p.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		p.stopWork()
		return nil
	case <-ctx.Done():
		p.stopWork()
		<-idle
		return ctx.Err()
	}
}

// stopWork cancels the work in flight and any work that starts later.
func (p *Provisioner) stopWork() {
	p.mu.Lock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	cancels := p.cancels
	p.cancels = map[uint64]context.CancelCauseFunc{}
	p.mu.Unlock()
	for _, cancel := range cancels {
		cancel(ErrClosed)
	}
}

// Close cancels the work in flight, waits for it to end, and stops taking
// new work. Work that was cancelled is left to the other replicas' Resume.
func (p *Provisioner) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (p *Provisioner) isBusy(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.busy[id]
	return ok
}

func (p *Provisioner) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// begin registers work for tenant id (id "" registers work for no tenant):
// it fails with ErrClosed after Shutdown and with errBusy when this
// process already works on the tenant. done must be called when the work
// ends.
func (p *Provisioner) begin(id string) (done func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if id != "" {
		if _, ok := p.busy[id]; ok {
			return nil, errBusy
		}
		p.busy[id] = struct{}{}
	}
	p.wg.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			followUp := false
			if id != "" {
				delete(p.busy, id)
				p.wakeLocked(id) // Wait may return now: the work's events are out
				if p.again[id] {
					delete(p.again, id)
					followUp = !p.closed
				}
			}
			if followUp {
				p.wg.Add(1)
			}
			p.mu.Unlock()
			if followUp {
				go func() {
					defer p.wg.Done()
					p.onReady(context.Background(), store.Record{ID: id})
				}()
			}
			p.wg.Done()
		})
	}, nil
}

// beginWait is begin for a caller's request: while this process is
// finishing other work on the tenant, it waits (until ctx ends).
func (p *Provisioner) beginWait(ctx context.Context, id string) (func(), error) {
	for {
		done, err := p.begin(id)
		if !errors.Is(err, errBusy) {
			return done, err
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %s: %w", ErrBusy, id, ctx.Err())
		case <-t.C:
		}
	}
}

// workContext returns ctx, also cancelled (cause ErrClosed) when the
// work in flight is stopped (stopWork).
func (p *Provisioner) workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	p.mu.Lock()
	select {
	case <-p.stop:
		p.mu.Unlock()
		cancel(ErrClosed)
		return ctx, func() {}
	default:
	}
	key := p.nextKey
	p.nextKey++
	p.cancels[key] = cancel
	p.mu.Unlock()
	return ctx, func() {
		p.mu.Lock()
		delete(p.cancels, key)
		p.mu.Unlock()
		cancel(nil)
	}
}

// background runs work for tenant id on its own goroutine, with a context
// cancelled by Close. claim runs first, synchronously, with ctx: work
// starts only when it succeeds. It returns claim's error, nil when the
// tenant is held elsewhere, errBusy when this process works on it. With
// slot set, it first waits for one of Resume's slots
// (Config.ResumeConcurrency), held until the work ends.
func (p *Provisioner) background(ctx context.Context, id string, slot bool, claim func(ctx context.Context) (store.Record, error), work func(ctx context.Context, r store.Record) error) error {
	release := func() {}
	if slot {
		p.health.slotWaits.Add(1) // waiting is progress, for Check
		select {
		case p.resumeSlots <- struct{}{}:
		case <-ctx.Done():
			p.health.slotWaits.Add(-1)
			return ctx.Err()
		case <-p.closing:
			p.health.slotWaits.Add(-1)
			return ErrClosed
		}
		p.health.slotWaits.Add(-1)
		p.beat()
		release = func() { <-p.resumeSlots }
	}
	done, err := p.begin(id)
	if err != nil {
		release()
		return err
	}
	ctx, cancel := p.workContext(ctx)
	r, err := claim(ctx)
	cancel()
	if err != nil {
		done()
		release()
		if ignorableClaim(err) {
			return nil
		}
		return err
	}
	go func() {
		defer release()
		defer done()
		// The work outlives ctx; its spans are children of ctx's.
		ctx, cancel := p.workContext(detach(ctx))
		defer cancel()
		if err := p.leased(ctx, r, func(ctx context.Context) error { return work(ctx, r) }); err != nil {
			p.log.DebugContext(ctx, "background work ended", "tenant", id, "err", err)
		}
	}()
	return nil
}

// onReady is the callback handler's OnReady: the server phoned home, the
// record is injecting_secrets; take the lease and inject. When this
// process is busy with the tenant (its create is just finishing), the
// injection is tried again as soon as that work ends.
func (p *Provisioner) onReady(ctx context.Context, r store.Record) {
	if r.Status != "" { // from the handler, not a follow-up of begin
		p.keepSource(ctx, r)
		p.emit(ctx, Event{Tenant: r.ID, To: store.StatusInjectingSecrets, RetiringServer: r.RetiringServerID})
	}
	var err error
	for {
		// The injection's span is a child of the phone_home's (ctx, the
		// request's); it outlives the request.
		err = p.background(detach(ctx), r.ID, false,
			func(ctx context.Context) (store.Record, error) {
				return p.claim(ctx, r.ID, store.StatusInjectingSecrets, store.StatusInjectingSecrets, nil)
			},
			func(ctx context.Context, r store.Record) error { return p.inject(ctx, r, false, phaseInject, true) })
		if !errors.Is(err, errBusy) {
			break
		}
		p.mu.Lock()
		_, busy := p.busy[r.ID]
		if busy {
			p.again[r.ID] = true
		}
		p.mu.Unlock()
		if busy {
			return
		}
	}
	if err != nil {
		// The record stays injecting_secrets without a lease: any
		// replica's Resume takes it over.
		p.log.WarnContext(ctx, "cannot start injection after phone_home; left to Resume", "tenant", r.ID, "err", err)
	}
}

// emit reports an event to Config.OnEvent and the log, and counts a
// status change (hatchery.transitions); ctx is the work's, for the log
// record's trace.
func (p *Provisioner) emit(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = p.now()
	}
	e.Replica = p.cfg.Replica
	if e.Step == "" && e.To != "" { // drift reports are logged by recordDrift
		if e.To != store.StatusInjectingSecrets || e.From != "" && e.From != store.StatusCreating && e.From != store.StatusCloudInit {
			// Only the callback moves a record from creating or cloud_init
			// to injecting_secrets; callbackOutcome counts that, with the
			// status it left, once (onReady's event and the creator's, when
			// the server phoned home first, report it again).
			p.tel.transition(ctx, e.From, e.To)
		}
		level := slog.LevelInfo
		if e.To == store.StatusFailed {
			level = slog.LevelWarn
		}
		if p.log.Enabled(ctx, level) {
			attrs := []slog.Attr{slog.String("tenant", e.Tenant), slog.String("from", string(e.From)), slog.String("to", string(e.To))}
			if e.RetiringServer != "" {
				attrs = append(attrs, slog.String("retiring_server", e.RetiringServer))
			}
			if e.Err != nil {
				attrs = append(attrs, slog.String("err", e.Err.Error()))
			}
			p.log.LogAttrs(ctx, level, "status", attrs...)
		}
		p.wake(e.Tenant)
	}
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(e)
	}
}

// watch is what Wait calls of a tenant wait on: ch is closed at the
// tenant's next status change made in this process.
type watch struct {
	ch chan struct{}
	n  int // Wait calls holding it
}

// watch returns the tenant's current watch; unwatch it when done.
func (p *Provisioner) watch(id string) *watch {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.watches[id]
	if w == nil {
		w = &watch{ch: make(chan struct{})}
		p.watches[id] = w
	}
	w.n++
	return w
}

func (p *Provisioner) unwatch(id string, w *watch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.n--; w.n == 0 && p.watches[id] == w {
		delete(p.watches, id)
	}
}

// wake wakes the Wait calls of a tenant whose status changed.
func (p *Provisioner) wake(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wakeLocked(id)
}

func (p *Provisioner) wakeLocked(id string) {
	if w := p.watches[id]; w != nil {
		close(w.ch)
		delete(p.watches, id)
	}
}

func (p *Provisioner) rememberAddr(id, addr string) {
	if addr == "" {
		return
	}
	p.mu.Lock()
	p.addrs[id] = addr
	p.mu.Unlock()
}

// forgetAddr forgets what this process learned of the tenant's server:
// its SSH address and a phone_home client address to verify.
func (p *Provisioner) forgetAddr(id string) {
	p.mu.Lock()
	delete(p.addrs, id)
	delete(p.sources, id)
	p.mu.Unlock()
}

func (p *Provisioner) knownAddr(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[id]
}
