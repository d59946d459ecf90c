package provision

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// Errors of Check, one per part it checks; its error joins those that
// failed, so errors.Is tells a readiness endpoint which part it was.
var (
	// ErrStoreUnhealthy: the store did not answer (its Ping failed, or a
	// Get did not answer ErrNotFound for an ID that does not exist).
	ErrStoreUnhealthy = errors.New("provision: store does not answer")
	// ErrRunStopped: Run was started and has returned (other than by
	// Shutdown or Close), or its loop has made no progress for
	// RunStallFactor ResumeIntervals.
	ErrRunStopped = errors.New("provision: Run is not running")
	// ErrProviderUnhealthy: the provider's credential check failed: an
	// error that also wraps provider.ErrUnauthorized when the provider
	// refused the credentials, or another when it could not tell (the
	// provider unreachable).
	ErrProviderUnhealthy = errors.New("provision: provider check failed")
)

// Check's bounds.
const (
	// RunStallFactor is how many ResumeIntervals Run's loop may go
	// without progress (a Resume pass starting or ending, a tenant
	// handled) before Check reports it stopped; a pass waiting for one of
	// Resume's slots (Config.ResumeConcurrency) is progressing.
	RunStallFactor = 3
	// ProviderCheckEvery is how long Check reuses the last provider
	// credential check (Run's first, or Check's own): at most one
	// provider API call per ProviderCheckEvery for any number of probes.
	ProviderCheckEvery = 5 * time.Minute
	// checkTimeout bounds each part of Check when ctx has no deadline.
	checkTimeout = 5 * time.Second
)

// probeID is the ID Check gets from a store without a Ping, expecting
// store.ErrNotFound: a valid ID no tenant has (version 0 is never
// generated).
const probeID = "00000000-0000-0000-0000-000000000000"

// health is what Check knows of the Provisioner: Run's heartbeat and the
// last provider check.
type health struct {
	runStarted atomic.Bool
	runEnded   atomic.Pointer[error] // why Run returned, once it has
	beat       atomic.Int64          // Unix nanoseconds of Run's last progress
	slotWaits  atomic.Int32          // Resume passes waiting for a slot

	providerMu  sync.Mutex
	providerAt  time.Time // when providerErr was found; zero: never
	providerErr error

	countMu  sync.Mutex
	countAt  time.Time
	counts   map[store.Status]int
	countErr error
}

// beat records progress of Run's loop.
func (p *Provisioner) beat() { p.health.beat.Store(p.now().UnixNano()) }

// Check tells whether this Provisioner can do its work, for a readiness
// endpoint: nil when it can, else the errors of the parts that failed,
// joined, each wrapping one of:
//
//   - ErrStoreUnhealthy: the store does not answer: its Ping fails
//     (store.Pinger, which every driver of this module implements), or,
//     for a store without one, a Get of an ID no tenant has does not
//     answer store.ErrNotFound;
//   - ErrRunStopped: Run was started and has returned (not by Shutdown
//     or Close), or its loop has made no progress for RunStallFactor
//     ResumeIntervals (a store that hangs, a deadlock). Before Run is
//     first called this part passes: a program that calls Resume itself
//     has no Run to watch;
//   - ErrProviderUnhealthy: the provider's credentials check
//     (CheckProvider, when the provider is a provider.CredentialChecker)
//     failed, from a result at most ProviderCheckEvery old (Run's first
//     check counts): wrapping provider.ErrUnauthorized too when the
//     credentials were refused. A provider that could not be reached also
//     fails this part; a readiness endpoint may choose to tolerate that
//     (the callbacks and injections do not need the provider API).
//
// After Shutdown or Close, Check returns ErrClosed. Each part is bounded
// by ctx, or 5 seconds when ctx has no deadline. Check makes no span and
// no metric.
func (p *Provisioner) Check(ctx context.Context) error {
	if p.isClosed() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, checkTimeout)
		defer cancel()
	}
	var errs []error
	if err := p.checkStore(ctx); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrStoreUnhealthy, err))
	}
	if err := p.checkRun(); err != nil {
		errs = append(errs, err)
	}
	if err := p.checkProviderCached(ctx); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrProviderUnhealthy, err))
	}
	return errors.Join(errs...)
}

// checkStore pings Config.Store, or gets an ID that does not exist.
func (p *Provisioner) checkStore(ctx context.Context) error {
	if pg, ok := p.cfg.Store.(store.Pinger); ok {
		return pg.Ping(ctx)
	}
	_, err := p.cfg.Store.Get(ctx, probeID)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// checkRun reports whether Run, once started, is running and making
// progress.
func (p *Provisioner) checkRun() error {
	h := &p.health
	if !h.runStarted.Load() {
		return nil
	}
	if e := h.runEnded.Load(); e != nil {
		return fmt.Errorf("%w: it returned: %w", ErrRunStopped, *e)
	}
	if h.slotWaits.Load() > 0 {
		return nil
	}
	last := time.Unix(0, h.beat.Load())
	if since := p.now().Sub(last); since > RunStallFactor*p.cfg.ResumeInterval {
		return fmt.Errorf("%w: no progress for %v (ResumeInterval %v)", ErrRunStopped, since.Round(time.Millisecond), p.cfg.ResumeInterval)
	}
	return nil
}

// checkProviderCached returns the last provider check's result when it
// is at most ProviderCheckEvery old, else checks again (one check at a
// time: concurrent calls wait for it).
func (p *Provisioner) checkProviderCached(ctx context.Context) error {
	if _, ok := p.cfg.Provider.(provider.CredentialChecker); !ok {
		return nil
	}
	h := &p.health
	h.providerMu.Lock()
	defer h.providerMu.Unlock()
	if !h.providerAt.IsZero() && p.now().Sub(h.providerAt) < ProviderCheckEvery {
		return h.providerErr
	}
	err := p.CheckProvider(ctx)
	if ctx.Err() != nil && err != nil {
		return err // the probe's deadline, not the provider's answer: not kept
	}
	h.providerAt, h.providerErr = p.now(), err
	return err
}

// noteProviderCheck keeps the result of a provider check (Run's) for
// Check.
func (p *Provisioner) noteProviderCheck(err error) {
	h := &p.health
	h.providerMu.Lock()
	h.providerAt, h.providerErr = p.now(), err
	h.providerMu.Unlock()
}

// Refreshing the tenant counts of the hatchery.tenants gauge.
const (
	// countEvery is how long counts from a store.Counter are reused: a
	// COUNT per status index, cheap, but every metric reader collects.
	countEvery = 5 * time.Second
	// listCountEvery is how long counts from a List (a store without
	// Counter, which reads every record) are reused.
	listCountEvery = time.Minute
)

// observe is the gauges' callback: the tenants by status, from the store
// (see tenantCounts), and the provider's rate-limit budget, when it
// tells.
func (p *Provisioner) observe(ctx context.Context, o metric.Observer) error {
	t := p.tel
	var err error
	if counts, cerr := p.tenantCounts(ctx); cerr == nil {
		for _, s := range store.Statuses() {
			o.ObserveInt64(t.tenants, int64(counts[s]), t.statusObs[s])
		}
	} else {
		err = fmt.Errorf("provision: count tenants: %w", cerr)
	}
	if rl, ok := p.cfg.Provider.(rateLimiter); ok && t.rateLeft != nil {
		if n, ok := rl.RateLimitRemaining(); ok {
			o.ObserveInt64(t.rateLeft, int64(n))
		}
	}
	return err
}

// tenantCounts returns the number of tenants in each status: from
// Config.Store's Count when it is a store.Counter (one query that reads
// no record), reused for countEvery; else from a List of every record,
// reused for listCountEvery. A failed count is reused as long.
func (p *Provisioner) tenantCounts(ctx context.Context) (map[store.Status]int, error) {
	h := &p.health
	h.countMu.Lock()
	defer h.countMu.Unlock()
	c, isCounter := p.cfg.Store.(store.Counter)
	every := listCountEvery
	if isCounter {
		every = countEvery
	}
	now := p.now()
	if !h.countAt.IsZero() && now.Sub(h.countAt) < every {
		return h.counts, h.countErr
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var counts map[store.Status]int
	var err error
	if isCounter {
		counts, err = c.Count(ctx)
	} else {
		var recs []store.Record
		recs, err = p.cfg.Store.List(ctx)
		if len(store.Corrupt(err)) > 0 {
			err = nil // count what reads; the corrupt ones are logged by Resume
		}
		counts = make(map[store.Status]int)
		for _, r := range recs {
			counts[r.Status]++
		}
	}
	h.countAt, h.counts, h.countErr = now, counts, err
	return counts, err
}
