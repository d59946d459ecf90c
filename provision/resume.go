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
//   - deleted with its server not yet deleted (Deprovision was interrupted
//     between recording deleted and deleting the server): the server is
//     deleted. Deleted records accumulate, so they are listed only by the
//     first Resume of each Provisioner, at start.
//
// Claims are made here, synchronously; the work runs in the background
// (Shutdown waits for it), at most Config.ResumeConcurrency pieces of it
// at once: before each claim, Resume waits for a slot (or for ctx to end),
// so a backlog stays unclaimed in the store, free for other replicas.
// Resume returns the errors it met, joined.
func (p *Provisioner) Resume(ctx context.Context) error {
	if p.isClosed() {
		return ErrClosed
	}
	statuses := []store.Status{store.StatusPending, store.StatusCreating, store.StatusCloudInit,
		store.StatusInjectingSecrets, store.StatusFailed}
	sweep := !p.swept.Load()
	if sweep {
		statuses = append(statuses, store.StatusDeleted)
	}
	recs, err := p.cfg.Store.List(ctx, statuses...)
	if err != nil {
		return fmt.Errorf("provision: resume: %w", err)
	}
	var errs []error
	live := make(map[string]bool, len(recs))
	now := p.now()
	for _, r := range recs {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		var err error
		switch r.Status {
		case store.StatusPending:
			live[r.ID] = true
			err = p.background(ctx, r.ID, true,
				func(ctx context.Context) (store.Record, error) {
					r, err := p.claim(ctx, r.ID, store.StatusPending, store.StatusCreating, newNonce)
					if err == nil {
						p.emit(Event{Tenant: r.ID, From: store.StatusPending, To: store.StatusCreating})
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
					return p.inject(ctx, r, takeover, phaseInject)
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
			if r.ServerID != "" {
				err = p.deleteServer(ctx, r)
			}
		}
		if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, errBusy) {
			errs = append(errs, fmt.Errorf("%s (%s): %w", r.ID, r.Status, err))
		}
	}
	if sweep && len(errs) == 0 {
		p.swept.Store(true)
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
	p.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("provision: resume: %w", errors.Join(errs...))
	}
	return nil
}

// phoneHomeTimeout fails a tenant whose server did not phone home in time.
func (p *Provisioner) phoneHomeTimeout(ctx context.Context, id string) error {
	now := p.now()
	msg := fmt.Sprintf("%s: no phone_home within %s of the server's creation", phasePhoneHome, p.cfg.PhoneHomeTimeout)
	rec, err := store.Transition(ctx, p.cfg.Store, id, []store.Status{store.StatusCloudInit}, store.StatusFailed,
		func(r *store.Record) error {
			if now.Sub(r.UpdatedAt) <= p.cfg.PhoneHomeTimeout {
				return errNotDue
			}
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
	e := newError(id, phasePhoneHome, false, msg, errors.New(msg), nil)
	p.emit(Event{Tenant: id, From: store.StatusCloudInit, To: store.StatusFailed, Err: e})
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
func (p *Provisioner) Run(ctx context.Context) error {
	if p.isClosed() {
		return ErrClosed
	}
	if err := p.CheckProvider(ctx); errors.Is(err, provider.ErrUnauthorized) {
		p.log.Error("the provider refuses the credentials; not starting", "err", err)
		return err
	} else if err != nil && ctx.Err() == nil {
		p.log.Warn("cannot check the provider's credentials; going on", "err", err)
	}
	t := time.NewTicker(p.cfg.ResumeInterval)
	defer t.Stop()
	for {
		if err := p.Resume(ctx); err != nil {
			if errors.Is(err, ErrClosed) {
				return ErrClosed
			}
			if ctx.Err() == nil {
				p.log.Warn("resume", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.closing:
			return ErrClosed
		case <-t.C:
		}
	}
}
