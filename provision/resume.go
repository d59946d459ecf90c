package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// Resume reconciles the store with the world, as a replica does at start
// and then periodically (see Run). For every tenant that is not settled:
//
//   - pending (the replica that created the record died before claiming
//     it): claimed and created, like Provision.
//   - creating whose lease is free or expired: claimed; the server is
//     created, or adopted by name when the dead replica's create had gone
//     through (providers' Create is idempotent by name).
//   - cloud_init for longer than Config.PhoneHomeTimeout (measured from
//     the write that entered cloud_init, the record's UpdatedAt): failed,
//     "no phone_home"; the retry deletes the server and creates a new one.
//   - injecting_secrets whose lease is free or expired: claimed and
//     injected again (steps are idempotent; StepsInput.Rotate is set when
//     a replica had started it).
//   - failed with attempts left, not final, and its backoff elapsed:
//     retried.
//   - deleted with a server not yet deleted (Deprovision was interrupted
//     between recording deleted and deleting the servers): the servers
//     (ServerID, and RetiringServerID of a replacement) are deleted.
//     Deleted records accumulate, so they are listed only by the first
//     Resume of each Provisioner, at start, and, with
//     Config.DeletedRetention, at each purge (below).
//
// Besides, when they are due:
//
//   - a purge (with Config.DeletedRetention): the deleted records last
//     written longer ago than DeletedRetention are removed, at most
//     store.PurgeLimit per pass (the next pass goes on when there were
//     more), never one whose server deletion has not finished: Resume
//     deletes its servers first, and a record whose deletion fails is
//     written again (so its retention starts over) and the purge's
//     cut-off kept before it. Purges run at the first Resume and then
//     every DeletedRetention, or every 10 minutes when that is shorter.
//   - a drift check (every Config.DriftInterval) and a probe pass (every
//     Config.ProbeInterval, with Config.ProbeSteps), started in the
//     background: see CheckDrift and Probe.
//
// Records the store cannot read (List's store.ErrCorrupt) do not stop
// Resume: it goes on with the others and logs each bad record at error
// level, once per pass; its error then matches store.ErrCorrupt too.
//
// Claims are made here, synchronously; the work runs in the background
// (Shutdown waits for it), at most Config.ResumeConcurrency pieces of it
// at once: before each claim, Resume waits for a slot (or for ctx to end),
// so a backlog stays unclaimed in the store, free for other replicas.
// Resume returns the errors it met, joined.
func (p *Provisioner) Resume(ctx context.Context) error {
	err, corrupt := p.resume(ctx)
	if corrupt != nil {
		if err == nil {
			return fmt.Errorf("provision: resume: %w", corrupt)
		}
		return errors.Join(err, fmt.Errorf("provision: resume: %w", corrupt))
	}
	return err
}

// purgeEvery is the longest pause between purges (see Resume).
const purgeEvery = 10 * time.Minute

// resume is Resume; it returns the records the store could not read
// apart, already logged.
func (p *Provisioner) resume(ctx context.Context) (err, corrupt error) {
	if p.isClosed() {
		return ErrClosed, nil
	}
	statuses := []store.Status{store.StatusPending, store.StatusCreating, store.StatusCloudInit,
		store.StatusInjectingSecrets, store.StatusFailed}
	sweep := !p.swept.Load()
	purge := p.purgeDue()
	if sweep || purge {
		statuses = append(statuses, store.StatusDeleted)
	}
	recs, err := p.store.List(ctx, statuses...)
	if err != nil {
		bad := store.Corrupt(err)
		if len(bad) == 0 {
			return fmt.Errorf("provision: resume: %w", err), nil
		}
		// Go on with the good records; the bad ones wait for a person.
		for _, ce := range bad {
			p.log.ErrorContext(ctx, "corrupt record skipped", "tenant", ce.ID, "err", ce.Err)
		}
		corrupt = err
	}
	var errs []error
	var pending []store.Record // deleted records whose server deletion failed
	live := make(map[string]bool, len(recs))
	now := p.now()
	for _, r := range recs {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		p.beat()
		var err error
		switch r.Status {
		case store.StatusPending:
			live[r.ID] = true
			err = p.background(ctx, r.ID, true,
				func(ctx context.Context) (store.Record, error) {
					r, err := p.claim(ctx, r.ID, store.StatusPending, store.StatusCreating, newNonce)
					if err == nil {
						p.emit(ctx, Event{Tenant: r.ID, From: store.StatusPending, To: store.StatusCreating})
					}
					return r, err
				}, p.create)
		case store.StatusCreating:
			live[r.ID] = true
			if p.leaseFree(r, now) {
				err = p.background(ctx, r.ID, true, func(ctx context.Context) (store.Record, error) {
					return p.claim(ctx, r.ID, store.StatusCreating, store.StatusCreating, nil)
				}, p.create)
			}
		case store.StatusCloudInit:
			live[r.ID] = true
			if now.Sub(r.UpdatedAt) > p.cfg.PhoneHomeTimeout {
				err = p.phoneHomeTimeout(ctx, r.ID)
			}
		case store.StatusInjectingSecrets:
			live[r.ID] = true
			if p.leaseFree(r, now) {
				takeover := r.LeaseOwner != ""
				err = p.background(ctx, r.ID, true, func(ctx context.Context) (store.Record, error) {
					return p.claim(ctx, r.ID, store.StatusInjectingSecrets, store.StatusInjectingSecrets, nil)
				}, func(ctx context.Context, r store.Record) error {
					// Not known to end a first provisioning: a rotation
					// whose replica died looks the same.
					return p.inject(ctx, r, takeover, phaseInject, false)
				})
			}
		case store.StatusFailed:
			if p.willRetry(r) {
				live[r.ID] = true
				if !now.Before(p.retryDueAt(r)) {
					err = p.retryDue(ctx, r.ID, true)
				}
			}
		case store.StatusDeleted:
			if r.ServerID != "" || r.RetiringServerID != "" {
				if err = p.deleteServer(ctx, r); err != nil {
					pending = append(pending, r)
				}
			}
		}
		if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, errBusy) {
			errs = append(errs, fmt.Errorf("%s (%s): %w", r.ID, r.Status, err))
		}
	}
	if sweep && len(errs) == 0 {
		p.swept.Store(true)
	}
	if purge && ctx.Err() == nil {
		if corrupt != nil {
			// A deleted record the store cannot read may still have a
			// server to delete: no purge while there is one.
			p.log.WarnContext(ctx, "purge skipped: corrupt records")
		} else if err := p.purge(ctx, pending); err != nil {
			errs = append(errs, err)
		}
	}
	if ctx.Err() == nil {
		p.startChecks()
	}
	p.mu.Lock()
	for id := range p.addrs {
		if !live[id] {
			delete(p.addrs, id)
		}
	}
	for id := range p.sources {
		if !live[id] {
			delete(p.sources, id)
		}
	}
	for id := range p.createSpans {
		if !live[id] {
			delete(p.createSpans, id)
		}
	}
	p.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("provision: resume: %w", errors.Join(errs...)), corrupt
	}
	return nil, corrupt
}

// purgeDue reports whether a purge is due, and if so schedules the next.
func (p *Provisioner) purgeDue() bool {
	if p.cfg.DeletedRetention <= 0 {
		return false
	}
	now := p.now()
	c := &p.checks
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Before(c.purgeNext) {
		return false
	}
	c.purgeNext = now.Add(min(p.cfg.DeletedRetention, purgeEvery))
	return true
}

// purge removes the deleted records older than Config.DeletedRetention,
// up to store.PurgeLimit, except those whose server deletion failed in
// this pass (pending): each is written again, so that its retention
// starts over, and the cut-off is kept before it in any case.
func (p *Provisioner) purge(ctx context.Context, pending []store.Record) error {
	before := p.now().Add(-p.cfg.DeletedRetention)
	for _, r := range pending {
		at := r.UpdatedAt
		touched, err := p.store.Update(ctx, r.ID, func(cur *store.Record) error {
			if cur.Status != store.StatusDeleted || cur.ServerID == "" && cur.RetiringServerID == "" {
				return errMovedOn
			}
			return nil
		})
		if err == nil {
			at = touched.UpdatedAt
		}
		if !at.After(before) {
			before = at // Purge removes only what was written strictly before
		}
	}
	n, err := p.store.Purge(ctx, before)
	if n > 0 {
		p.log.InfoContext(ctx, "deleted records purged", "count", n, "before", before)
	}
	if err != nil {
		return fmt.Errorf("purge deleted records: %w", err)
	}
	if n >= store.PurgeLimit {
		p.checks.mu.Lock()
		p.checks.purgeNext = time.Time{} // more at the next pass
		p.checks.mu.Unlock()
	}
	return nil
}

// phoneHomeTimeout fails a tenant whose server did not phone home in time.
func (p *Provisioner) phoneHomeTimeout(ctx context.Context, id string) error {
	msg := fmt.Sprintf("%s: no phone_home within %s of the server's creation", phasePhoneHome, p.cfg.PhoneHomeTimeout)
	// The deadline is checked with the store's clock, which wrote
	// UpdatedAt.
	rec, err := store.UpdateNow(ctx, p.store, id, func(r *store.Record, now time.Time) error {
		if r.Status != store.StatusCloudInit || now.Sub(r.UpdatedAt) <= p.cfg.PhoneHomeTimeout {
			return errNotDue
		}
		r.Status = store.StatusFailed
		r.Error = msg
		r.Attempts++
		return nil
	})
	if err != nil {
		if ignorableClaim(err) {
			return nil
		}
		return err
	}
	p.tel.failure(ctx, phasePhoneHome, context.DeadlineExceeded, false)
	e := newError(id, phasePhoneHome, false, msg, errors.New(msg), nil)
	p.emit(ctx, Event{Tenant: id, From: store.StatusCloudInit, To: store.StatusFailed, Err: e, RetiringServer: rec.RetiringServerID})
	if p.willRetry(rec) {
		p.scheduleRetry(id, p.backoff(id, rec.Attempts))
	}
	return nil
}

// Run checks the provider's credentials (CheckProvider), then calls Resume
// at once and every Config.ResumeInterval until ctx ends (returning ctx's
// error) or the Provisioner is shut down (returning ErrClosed). A provider
// that refuses the credentials (provider.ErrUnauthorized) makes Run return
// that error at once, before any work: a bad token is an error at start,
// not a failure per tenant later. A check that could not tell (the
// provider unreachable) is logged and Run goes on. Resume's errors are
// logged, not returned.
func (p *Provisioner) Run(ctx context.Context) (err error) {
	if p.isClosed() {
		return ErrClosed
	}
	h := &p.health
	p.beat()
	h.runEnded.Store(nil)
	h.runStarted.Store(true)
	defer func() {
		if !p.isClosed() {
			h.runEnded.Store(&err) // Check reports it
		}
	}()
	err = p.CheckProvider(ctx)
	if ctx.Err() == nil {
		p.noteProviderCheck(err)
	}
	if errors.Is(err, provider.ErrUnauthorized) {
		p.log.ErrorContext(ctx, "the provider refuses the credentials; not starting", "err", err)
		return err
	} else if err != nil && ctx.Err() == nil {
		p.log.WarnContext(ctx, "cannot check the provider's credentials; going on", "err", err)
	}
	t := time.NewTicker(p.cfg.ResumeInterval)
	defer t.Stop()
	for {
		p.beat()
		// The records the store cannot read are logged by resume itself.
		if err, _ := p.resume(ctx); err != nil {
			if errors.Is(err, ErrClosed) {
				return ErrClosed
			}
			if ctx.Err() == nil {
				p.log.WarnContext(ctx, "resume", "err", err)
			}
		}
		p.beat()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.closing:
			return ErrClosed
		case <-t.C:
		}
	}
}
