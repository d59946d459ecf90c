package provision

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// checks schedules the periodic work that Resume starts besides the
// lifecycle: drift checks and probes (in the background, one of each at a
// time) and purges of deleted records.
type checks struct {
	mu                sync.Mutex
	driftNext         time.Time
	probeNext         time.Time
	drifting, probing bool
	driftCursor       string // the last tenant looked up by a drift check's Gets
	probeCursor       string // the last tenant probed, without a Lister
	purgeNext         time.Time
}

// Drift reports: the prefixes of Record.Drift.
const (
	driftGone  = "server gone"
	driftOff   = "server powered off"
	driftProbe = "probe: "
)

// errMovedOn aborts a write whose record has moved on since it was read
// (another status, another server): there is nothing left to do.
var errMovedOn = errors.New("provision: the tenant moved on")

// startChecks starts the drift check and the probe pass that are due, in
// the background (Shutdown waits for them, Close cancels them).
func (p *Provisioner) startChecks() {
	now := p.now()
	c := &p.checks
	c.mu.Lock()
	drift := p.cfg.DriftInterval > 0 && !c.drifting && !now.Before(c.driftNext)
	if drift {
		c.drifting, c.driftNext = true, now.Add(p.cfg.DriftInterval)
	}
	probe := p.cfg.ProbeSteps != nil && !c.probing && !now.Before(c.probeNext)
	if probe {
		c.probing, c.probeNext = true, now.Add(p.cfg.ProbeInterval)
	}
	c.mu.Unlock()
	if drift {
		p.goCheck(func(ctx context.Context) {
			if err := p.CheckDrift(ctx); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				p.log.WarnContext(ctx, "drift check", "err", err)
			}
		}, func() { c.mu.Lock(); c.drifting = false; c.mu.Unlock() })
	}
	if probe {
		p.goCheck(func(ctx context.Context) {
			if err := p.Probe(ctx); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				p.log.WarnContext(ctx, "probe", "err", err)
			}
		}, func() { c.mu.Lock(); c.probing = false; c.mu.Unlock() })
	}
}

// goCheck runs fn on a goroutine of its own, counted for Shutdown, with a
// context that Close cancels; end runs when it is over (or could not
// start).
func (p *Provisioner) goCheck(fn func(ctx context.Context), end func()) {
	done, err := p.begin("")
	if err != nil {
		end()
		return
	}
	go func() {
		defer done()
		defer end()
		ctx, cancel := p.workContext(context.Background())
		defer cancel()
		fn(ctx)
	}()
}

// selector is the label selector of this control plane's servers.
func (p *Provisioner) selector() map[string]string {
	return map[string]string{LabelControlPlane: p.cfg.ControlPlane}
}

// readyRecords lists the ready tenants, going on without (and logging)
// the records the store cannot read.
func (p *Provisioner) readyRecords(ctx context.Context, what string) ([]store.Record, error) {
	recs, err := p.store.List(ctx, store.StatusReady)
	if err != nil {
		bad := store.Corrupt(err)
		if len(bad) == 0 {
			return nil, fmt.Errorf("provision: %s: list ready tenants: %w", what, err)
		}
		for _, ce := range bad {
			p.log.ErrorContext(ctx, "corrupt record skipped", "in", what, "tenant", ce.ID, "err", ce.Err)
		}
	}
	return recs, nil
}

// CheckDrift checks the servers of the ready tenants against the provider
// once, as Resume does every Config.DriftInterval (see Drift in the
// package documentation), and returns when the check is over (the
// replacements it starts, with Config.ReplaceOnDrift, run on in the
// background). With a provider.Lister it lists this control plane's
// servers (one call per page of the provider's) and looks up, one by one,
// at most Config.DriftBatch servers that the list left out, to confirm
// they are gone; without one, it looks up the next Config.DriftBatch
// tenants' servers.
func (p *Provisioner) CheckDrift(ctx context.Context) error {
	ctx, span := p.tel.startSpan(ctx, "hatchery.CheckDrift", "", trace.SpanKindInternal)
	err := p.doCheckDrift(ctx)
	endSpan(span, err)
	return err
}

// doCheckDrift is CheckDrift, in its span.
func (p *Provisioner) doCheckDrift(ctx context.Context) error {
	if p.isClosed() {
		return ErrClosed
	}
	recs, err := p.readyRecords(ctx, "drift check")
	if err != nil {
		return err
	}
	recs = slices.DeleteFunc(recs, func(r store.Record) bool { return r.ServerID == "" })
	if len(recs) == 0 {
		return nil
	}
	var lookUp []store.Record
	if _, ok := p.cfg.Provider.(provider.Lister); ok {
		servers, err := p.prov.List(ctx, p.selector())
		if err != nil {
			return fmt.Errorf("provision: drift check: list servers: %w", err)
		}
		byID := make(map[string]provider.Server, len(servers))
		for _, s := range servers {
			byID[s.ID] = s
		}
		for _, r := range recs {
			if srv, ok := byID[r.ServerID]; ok {
				p.judge(ctx, r, srv, false)
			} else {
				// Gone, or not labelled with this control plane (created
				// before the label existed): a Get tells.
				lookUp = append(lookUp, r)
			}
		}
	} else {
		lookUp = recs
	}
	if len(lookUp) > p.cfg.DriftBatch {
		lookUp = p.nextBatch(lookUp, &p.checks.driftCursor)
	}
	var errs []error
	for _, r := range lookUp {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		srv, err := p.prov.Get(ctx, r.ServerID)
		switch {
		case errors.Is(err, provider.ErrNotFound):
			p.judge(ctx, r, provider.Server{}, true)
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: look up server %s: %w", r.ID, r.ServerID, err))
		default:
			p.judge(ctx, r, srv, false)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("provision: drift check: %w", errors.Join(errs...))
	}
	return nil
}

// nextBatch returns Config.DriftBatch of recs (sorted by ID here), the
// ones after *cursor, going round, and moves the cursor on.
func (p *Provisioner) nextBatch(recs []store.Record, cursor *string) []store.Record {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b store.Record) int { return strings.Compare(a.ID, b.ID) })
	p.checks.mu.Lock()
	defer p.checks.mu.Unlock()
	start, _ := slices.BinarySearchFunc(recs, *cursor, func(r store.Record, id string) int { return strings.Compare(r.ID, id) })
	if start < len(recs) && recs[start].ID == *cursor {
		start++
	}
	out := make([]store.Record, 0, p.cfg.DriftBatch)
	for i := 0; i < len(recs) && len(out) < p.cfg.DriftBatch; i++ {
		out = append(out, recs[(start+i)%len(recs)])
	}
	if len(out) > 0 {
		*cursor = out[len(out)-1].ID
	}
	return out
}

// judge records what a drift check saw of r's server: gone, powered off,
// or fine (which clears a drift the checks reported before); a gone
// server is replaced with Config.ReplaceOnDrift.
func (p *Provisioner) judge(ctx context.Context, r store.Record, srv provider.Server, gone bool) {
	var drift string
	switch {
	case gone:
		drift = fmt.Sprintf("%s: the provider has no server %s", driftGone, r.ServerID)
	case srv.Status == "off":
		drift = fmt.Sprintf("%s: the provider reports server %s %q", driftOff, r.ServerID, srv.Status)
	}
	p.recordDrift(ctx, r, drift, false)
	if gone && p.cfg.ReplaceOnDrift {
		p.replaceDrifted(ctx, r)
	}
}

// recordDrift sets r's Drift (drift not empty) or clears it (empty),
// provided r is still ready on the same server, and reports the change
// (Event, log). A server check (probe false) clears only what server
// checks report, a probe only what probes report; a probe does not
// overwrite what a server check reported. Nothing is written when nothing
// changes.
func (p *Provisioner) recordDrift(ctx context.Context, r store.Record, drift string, probe bool) {
	mine := func(d string) bool { return d != "" && strings.HasPrefix(d, driftProbe) == probe }
	if drift == "" && !mine(r.Drift) || drift != "" && r.Drift == drift {
		return // as listed: nothing to change (the write below checks again)
	}
	rec, err := store.UpdateNow(ctx, p.store, r.ID, func(cur *store.Record, now time.Time) error {
		if cur.Status != store.StatusReady || cur.ServerID != r.ServerID {
			return errMovedOn
		}
		switch {
		case drift == "" && !mine(cur.Drift), drift != "" && cur.Drift == drift:
			return errMovedOn
		case drift == "":
			cur.Drift, cur.DriftAt = "", time.Time{}
		case probe && cur.Drift != "" && !mine(cur.Drift):
			return errMovedOn // the server check's report stands
		default:
			cur.Drift, cur.DriftAt = drift, now
		}
		return nil
	})
	switch {
	case errors.Is(err, errMovedOn), errors.Is(err, store.ErrNotFound):
		return
	case err != nil:
		p.log.WarnContext(ctx, "cannot record drift", "tenant", r.ID, "drift", drift, "err", err)
		return
	}
	if drift == "" {
		p.log.InfoContext(ctx, "drift cleared", "tenant", r.ID, "server", r.ServerID, "was", r.Drift)
		p.emit(ctx, Event{Tenant: r.ID, DriftCleared: true, Time: rec.UpdatedAt})
		return
	}
	p.log.WarnContext(ctx, "drift", "tenant", r.ID, "server", r.ServerID, "drift", drift)
	p.emit(ctx, Event{Tenant: r.ID, Drift: drift, Time: rec.DriftAt})
}

// replaceDrifted starts the replacement of ready tenant r, whose server a
// drift check found gone, in the background, in one of Resume's slots,
// provided it is still ready on that server.
func (p *Provisioner) replaceDrifted(ctx context.Context, r store.Record) {
	err := p.background(ctx, r.ID, true,
		func(ctx context.Context) (store.Record, error) {
			return p.claimReplaceOf(ctx, r.ID, []store.Status{store.StatusReady}, r.ServerID)
		},
		func(ctx context.Context, r store.Record) error { return p.create(ctx, r) })
	if err != nil && !errors.Is(err, errBusy) && !errors.Is(err, ErrClosed) {
		p.log.WarnContext(ctx, "cannot start the replacement of a server that is gone; the next drift check tries again",
			"tenant", r.ID, "server", r.ServerID, "err", err)
	}
}

// Probe runs Config.ProbeSteps on the ready tenants' servers once, as
// Resume does every Config.ProbeInterval, at most Config.ProbeConcurrency
// at once, and returns when they are over. The servers' addresses come
// from one provider.Lister call (per page) or, without one, from a Get
// each, for Config.DriftBatch tenants per call (the next ones at the next
// call). Servers the provider does not report, or reports powered off,
// are left to the drift check. A probe that fails sets the tenant's Drift
// to "probe: " and its (redacted) error; one that passes clears it.
func (p *Provisioner) Probe(ctx context.Context) error {
	ctx, span := p.tel.startSpan(ctx, "hatchery.Probe", "", trace.SpanKindInternal)
	err := p.doProbe(ctx)
	endSpan(span, err)
	return err
}

// doProbe is Probe, in its span.
func (p *Provisioner) doProbe(ctx context.Context) error {
	if p.isClosed() {
		return ErrClosed
	}
	if p.cfg.ProbeSteps == nil {
		return nil
	}
	recs, err := p.readyRecords(ctx, "probe")
	if err != nil {
		return err
	}
	recs = slices.DeleteFunc(recs, func(r store.Record) bool { return r.ServerID == "" || len(r.HostKeys) == 0 })
	if len(recs) == 0 {
		return nil
	}
	servers := make(map[string]provider.Server, len(recs))
	var errs []error
	if _, ok := p.cfg.Provider.(provider.Lister); ok {
		list, err := p.prov.List(ctx, p.selector())
		if err != nil {
			return fmt.Errorf("provision: probe: list servers: %w", err)
		}
		for _, s := range list {
			servers[s.ID] = s
		}
	} else {
		if len(recs) > p.cfg.DriftBatch {
			recs = p.nextBatch(recs, &p.checks.probeCursor)
		}
		for _, r := range recs {
			srv, err := p.prov.Get(ctx, r.ServerID)
			switch {
			case err == nil:
				servers[r.ServerID] = srv
			case !errors.Is(err, provider.ErrNotFound):
				errs = append(errs, fmt.Errorf("%s: look up server %s: %w", r.ID, r.ServerID, err))
			}
		}
	}
	sem := make(chan struct{}, p.cfg.ProbeConcurrency)
	var wg sync.WaitGroup
	for _, r := range recs {
		srv, ok := servers[r.ServerID]
		if !ok || srv.Status == "off" || srv.Addr() == "" {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			p.probe(ctx, r, srv.Addr())
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("provision: probe: %w", errors.Join(errs...))
	}
	return nil
}

// probe runs the probe steps on r's server at addr and records the
// outcome. The probe gets no secret, but what a failing step prints (a
// unit's journal) may hold one: the tenant's secrets are read first and
// redacted from the probe's logs and error, and a probe whose secrets
// cannot be read is not run (it could not be reported safely).
func (p *Provisioner) probe(ctx context.Context, r store.Record, addr string) {
	steps := p.cfg.ProbeSteps(r.Clone())
	if len(steps) == 0 {
		return
	}
	secrets, err := p.secretsOf(ctx, r.ID)
	if err != nil {
		if ctx.Err() == nil {
			p.log.WarnContext(ctx, "probe not run: cannot read the tenant's secrets to redact its output", "tenant", r.ID, "err", err)
		}
		return
	}
	pctx, cancel := context.WithTimeout(ctx, (dialBudget+1)*p.cfg.SSHTimeout)
	defer cancel()
	err = func() error {
		conn, err := p.dialServer(pctx, r, addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		return inject.Run(pctx, conn, steps,
			inject.WithRedact(p.checkedSecrets(pctx, r, cmp.Or(r.ServerName, p.serverName(r)), secrets)...),
			inject.WithLogger(p.log.With("tenant", r.ID, "probe", true)))
	}()
	if ctx.Err() != nil {
		return // shut down or cancelled: no verdict
	}
	if err == nil {
		p.recordDrift(ctx, r, "", true)
		return
	}
	msg := storableText(redact(driftProbe+err.Error(), secretValues(secrets)), maxErrorLen)
	p.recordDrift(ctx, r, msg, true)
}
