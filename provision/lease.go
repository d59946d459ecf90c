package provision

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	redactchain "github.com/hatchery-dev/hatchery/internal/redact"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// Phases of the lifecycle, as they prefix Record.Error.
const (
	phaseCreate    = "create"
	phasePhoneHome = "phone_home"
	phaseInject    = "inject"
	phaseRotate    = "rotate"
)

// finalPrefix starts the Record.Error of a failure that is not retried.
const finalPrefix = "final: "

// Error is why a tenant failed, exactly as recorded in its Record.Error:
// the phase ("create", "phone_home", "inject", "rotate") and the cause,
// with every secret value of the tenant redacted.
type Error struct {
	Tenant string
	Phase  string
	// Final is true when the failure is not retried: an SSH
	// authentication failure, a cloud-config that does not build, a step
	// that would put a secret on a command line, a provider that refuses
	// the request or the credentials for good (invalid, quota, name
	// conflict, unauthorized), a rotation that meets another host key than
	// the one pinned (a host key mismatch at a first injection is not
	// final: the retry creates a new server, see the package
	// documentation).
	Final bool
	msg   string
	err   error // the cause, redacted link by link (see internal/redact.Chain)
}

// Error returns the redacted message.
func (e *Error) Error() string { return e.msg }

// Unwrap returns the cause, redacted like e: its message, and that of
// every error reached by unwrapping it further, has the tenant's secret
// values replaced. errors.Is and errors.As still reach the original
// errors (a typed error found with errors.As is the original, whose
// fields are not redacted by this package).
func (e *Error) Unwrap() error { return e.err }

// newError returns the *Error of a failure: cause with secrets redacted
// from its message and from every error it wraps.
func newError(id, phase string, final bool, msg string, cause error, secrets []string) *Error {
	rd := redactchain.New(secrets, nil)
	return &Error{Tenant: id, Phase: phase, Final: final, msg: msg, err: redactchain.Chain(cause, rd.String)}
}

// recordedError returns the *Error recorded in a failed r's Error: the
// message as recorded, its phase and finality read from it, and the cause
// as text (the original error is not stored).
func recordedError(r store.Record) *Error {
	rest, final := strings.CutPrefix(r.Error, finalPrefix)
	phase, cause, ok := strings.Cut(rest, ": ")
	if !ok {
		phase, cause = "", rest
	}
	return &Error{Tenant: r.ID, Phase: phase, Final: final, msg: r.Error, err: errors.New(cause)}
}

// errNoHostKeys fails an injection that has nothing to pin.
var errNoHostKeys = errors.New("no host keys recorded at phone_home: cannot pin the SSH connection")

// isFinal reports whether a failure must not be retried (badPin says
// when a host key failure is not final after all).
func isFinal(err error) bool {
	for _, target := range []error{
		inject.ErrHostKey, inject.ErrAuth, inject.ErrSecretInCommand, errNoHostKeys, ErrConfig,
		cloudinit.ErrInvalid, cloudinit.ErrSecret, cloudinit.ErrTooLarge,
		provider.ErrInvalid, provider.ErrConflict, provider.ErrQuota, provider.ErrUnauthorized,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// errJump marks a failure to reach the bastion (Config.SSHJump), whose
// host key failures are the bastion's, not the tenant server's.
var errJump = errors.New("jump host")

// badPin reports whether an injection failed because the host keys
// pinned at phone_home are not the server's: its SSH daemon presented
// another key (a phone_home forged with the tenant's token, a man in the
// middle), or the phone_home came from another address (errWrongSource).
// The pin is then worthless for good, but the server may be fine: see
// fail.
func badPin(err error) bool {
	return errors.Is(err, errWrongSource) || errors.Is(err, inject.ErrHostKey) && !errors.Is(err, errJump)
}

// willRetry reports whether a failed record is going to be retried by the
// Provisioners (a timer, or Resume).
func (p *Provisioner) willRetry(r store.Record) bool {
	return r.Status == store.StatusFailed && p.retryable(r)
}

// retryable reports whether a failure recorded in r leaves attempts and is
// not final, whatever r's status.
func (p *Provisioner) retryable(r store.Record) bool {
	return r.Attempts < p.cfg.MaxAttempts && !strings.HasPrefix(r.Error, finalPrefix)
}

// backoff is the pause of tenant id after the given number of failed
// attempts: RetryBackoff doubled per attempt up to MaxBackoff, less a
// part of up to half of it ("equal jitter"), so that tenants that failed
// together (a provider outage) do not retry together. The part comes from
// a hash of the tenant ID and the attempt count, not from a random
// source: every replica computes the same pause for the same failure, so
// Resume's due check (from the record's UpdatedAt) and the retry timer of
// the replica that recorded the failure agree, with no due time stored.
func (p *Provisioner) backoff(id string, attempts int) time.Duration {
	d := p.cfg.RetryBackoff
	for i := 1; i < attempts && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.cfg.MaxBackoff)
	sum := sha256.Sum256(fmt.Appendf(nil, "hatchery/backoff\x00%s\x00%d", id, attempts))
	return d - time.Duration(binary.BigEndian.Uint64(sum[:8])%uint64(d/2+1))
}

// retryDueAt is when the retry of the failure recorded in r is due.
func (p *Provisioner) retryDueAt(r store.Record) time.Time {
	return r.UpdatedAt.Add(p.backoff(r.ID, r.Attempts))
}

// leaseFree reports whether r's lease may be taken at now: it has no
// owner, or it ended more than Config.MaxClockSkew ago (the holder has
// stopped by then, see lease; the margin covers the moment its cancelled
// work takes to stop, and a store without a clock of its own, whose
// times are each replica's, see store.UpdateNow). The claims give the
// store's now; Resume's pre-checks this replica's.
func (p *Provisioner) leaseFree(r store.Record, now time.Time) bool {
	return r.LeaseOwner == "" || now.After(r.LeaseUntil.Add(p.cfg.MaxClockSkew))
}

// ignorableClaim reports whether a claim failed only because the tenant is
// elsewhere in its lifecycle or someone else holds it.
func ignorableClaim(err error) bool {
	return errors.Is(err, store.ErrConflict) || errors.Is(err, errLeaseHeld) || errors.Is(err, errNotDue) || errors.Is(err, errMovedOn)
}

// claim moves id from status from to status to (to may be from: a takeover)
// and takes this replica's lease, in one atomic write, provided no other
// lease is live. A live lease of this replica's own also blocks: the
// work that holds it continues by itself. See claimFrom.
func (p *Provisioner) claim(ctx context.Context, id string, from, to store.Status, fn func(*store.Record) error) (store.Record, error) {
	return p.claimFrom(ctx, id, []store.Status{from}, to, fn)
}

// claimFrom moves id from one of the statuses from to status to and takes
// this replica's lease, in one atomic write (store.UpdateNow), provided no
// other lease is live. The lease's times are the store's: LeaseUntil is
// the store's now plus Config.LeaseDuration, and a lease is free when the
// store's now is MaxClockSkew past it, so that replicas whose clocks
// disagree still agree on leases (see checkSkew for what a clock that
// disagrees does). fn, when set, sees the record in its current status and
// may change it or abort the claim with its error. When the record is in
// none of the from statuses, it returns the record as it stood and a
// *store.ConflictError, like store.Transition.
//
// The work's own deadline (leased) is counted on this replica's clock from
// the moment the write was sent: a lease never lasts longer there than in
// the store.
func (p *Provisioner) claimFrom(ctx context.Context, id string, from []store.Status, to store.Status, fn func(*store.Record) error) (store.Record, error) {
	var (
		conflict *store.ConflictError
		current  store.Record
	)
	sent := p.now()
	r, err := store.UpdateNow(ctx, p.store, id, func(r *store.Record, now time.Time) error {
		if err := p.checkSkew(ctx, sent, now); err != nil {
			return err
		}
		if !slices.Contains(from, r.Status) {
			current = r.Clone()
			conflict = &store.ConflictError{ID: id, Status: r.Status, Want: slices.Clone(from), To: to}
			return conflict
		}
		if !p.leaseFree(*r, now) {
			return errLeaseHeld
		}
		if fn != nil {
			if err := fn(r); err != nil { // fn sees the Error being retried
				return err
			}
		}
		r.Status = to
		r.LeaseOwner, r.LeaseUntil = p.cfg.Replica, now.Add(p.cfg.LeaseDuration)
		r.Error = ""
		return nil
	})
	if err != nil {
		if ce := (*store.ConflictError)(nil); errors.As(err, &ce) && ce == conflict {
			return current, err
		}
		return store.Record{}, err
	}
	p.setDeadline(id, sent.Add(p.cfg.LeaseDuration))
	return r, nil
}

// setDeadline keeps the local deadline of the lease this replica just
// took on id, for leased; takeDeadline gives it once.
func (p *Provisioner) setDeadline(id string, d time.Time) {
	p.mu.Lock()
	p.deadlines[id] = d
	p.mu.Unlock()
}

func (p *Provisioner) takeDeadline(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.deadlines[id]
	delete(p.deadlines, id)
	return d, ok
}

// ErrClockSkew is wrapped by the error of a claim (Provision, Rotate,
// Retry, Replace, and the claims of Resume and of the callback's
// injection) refused because the store's clock and this replica's differ
// by more than Config.MaxClockSkew.
var ErrClockSkew = errors.New("provision: clock skew")

// skewLogEvery is how often a lasting clock skew is logged again.
const skewLogEvery = time.Minute

// checkSkew compares the store's clock (now, read by the store while
// this replica's write was under way) with this replica's: the store read
// its clock after sent and before this check, so only a now outside
// [sent - MaxClockSkew, check time + MaxClockSkew] proves a skew, whatever
// the write's latency. Beyond the bound, it refuses the lease with an
// error wrapping ErrClockSkew and logs an error (at once, then once a
// minute while it lasts; and once at info level when it is over). Leases
// themselves take the store's times, so a skewed replica would keep them
// right; but every other comparison of a stored time with this replica's
// clock (retry due times, phone_home deadlines, the pre-checks of Resume)
// would not, and a skew this large means the clocks are not synchronized
// (NTP down), which the operator must hear of.
func (p *Provisioner) checkSkew(ctx context.Context, sent, now time.Time) error {
	check := p.now()
	var skew time.Duration
	switch {
	case now.Before(sent.Add(-p.cfg.MaxClockSkew)):
		skew = now.Sub(sent) // negative: the store is behind
	case now.After(check.Add(p.cfg.MaxClockSkew)):
		skew = now.Sub(check)
	default:
		p.skewMu.Lock()
		was := p.skewSince
		p.skewSince, p.skewLogged = time.Time{}, time.Time{}
		p.skewMu.Unlock()
		if !was.IsZero() {
			p.log.InfoContext(ctx, "the store's clock agrees with this replica's again; taking leases", "max_clock_skew", p.cfg.MaxClockSkew)
		}
		return nil
	}
	how := "ahead of"
	if skew < 0 {
		how, skew = "behind", -skew
	}
	err := fmt.Errorf("%w: the store's clock is %v %s this replica's, more than MaxClockSkew (%v); no lease is taken until the clocks agree",
		ErrClockSkew, skew.Round(time.Millisecond), how, p.cfg.MaxClockSkew)
	p.skewMu.Lock()
	if p.skewSince.IsZero() {
		p.skewSince = check
	}
	loud := p.skewLogged.IsZero() || check.Sub(p.skewLogged) >= skewLogEvery
	if loud {
		p.skewLogged = check
	}
	p.skewMu.Unlock()
	if loud {
		p.log.ErrorContext(ctx, "clock skew: refusing to take leases", "err", err, "skew", skew, "store_clock", how)
	}
	return err
}

// newNonce gives r a fresh CallbackNonce (callback.NewNonce: 16 random
// bytes, in hex). It is called when a new server is going to be created
// for the tenant: at the claim that starts a new record (pending ->
// creating), at the claim of a retry that replaces the failed attempt's
// server, and again once that server is deleted (create). It is not
// called when a create is resumed (creating -> creating) or an injection
// adopts a server by name: the server that a dead replica's Create brought
// up holds the user-data of that create, and so the nonce then written;
// a new nonce would make its phone_home token invalid, and cost the
// tenant an attempt.
func newNonce(r *store.Record) error {
	r.CallbackNonce = callback.NewNonce()
	return nil
}

// retryTarget is where a failed record goes back to: injecting_secrets
// when its server's host keys are recorded, creating otherwise (creating
// deletes a server that never phoned home, or whose pin was dropped after
// a host key mismatch, before creating a new one).
func retryTarget(r store.Record) store.Status {
	if len(r.HostKeys) > 0 {
		return store.StatusInjectingSecrets
	}
	return store.StatusCreating
}

// claimRetry moves a failed record back into the lifecycle under this
// replica's lease. auto: only when a retry is due (attempts left, not a
// final error, backoff elapsed). It returns the phase the retry runs in
// (see retryPhase).
func (p *Provisioner) claimRetry(ctx context.Context, id string, auto bool) (store.Record, string, error) {
	cur, err := p.store.Get(ctx, id)
	if err != nil {
		return store.Record{}, "", err
	}
	if cur.Status != store.StatusFailed {
		return cur, "", &store.ConflictError{ID: id, Status: cur.Status, Want: []store.Status{store.StatusFailed}, To: retryTarget(cur)}
	}
	to := retryTarget(cur)
	now := p.now()
	var phase string
	r, err := p.claim(ctx, id, store.StatusFailed, to, func(r *store.Record) error {
		if retryTarget(*r) != to || r.ServerID != cur.ServerID {
			return &store.ConflictError{ID: id, Status: store.StatusFailed, Want: []store.Status{store.StatusFailed}, To: to}
		}
		if auto && !(p.retryable(*r) && !now.Before(p.retryDueAt(*r))) {
			return errNotDue
		}
		phase = retryPhase(*r)
		if to == store.StatusCreating && r.ServerID != "" {
			// The failed attempt's server is deleted next, and a new one
			// created: its phone_home token is void from now on, so
			// that a late phone_home from it cannot move the new attempt
			// toward a server being deleted. (Without a recorded server,
			// the nonce stays: a server the failed create brought up
			// unrecorded is adopted by name, its user-data unchanged.)
			return newNonce(r)
		}
		return nil
	})
	if err != nil {
		return r, "", err
	}
	p.emit(ctx, Event{Tenant: id, From: store.StatusFailed, To: to, RetiringServer: r.RetiringServerID})
	return r, phase, nil
}

// retryPhase is the phase in which the retry of failed r runs: a failed
// rotation is retried as a rotation, so that its server, which was ready
// with the pinned host keys, is never deleted for a host key mismatch (see
// fail); anything else runs in the phase of its status (see work).
func retryPhase(r store.Record) string {
	if strings.HasPrefix(strings.TrimPrefix(r.Error, finalPrefix), phaseRotate+": ") {
		return phaseRotate
	}
	return ""
}

// leased runs fn under r's lease, held by this replica: the lease is
// renewed every third of Config.LeaseDuration, and fn's context is
// cancelled (cause errLeaseLost) when it is lost: taken by another replica,
// the tenant deprovisioned or moved on, or simply run out by this
// replica's clock, whatever the store does (see lease.renew).
func (p *Provisioner) leased(ctx context.Context, r store.Record, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	deadline, ok := p.takeDeadline(r.ID)
	if !ok {
		deadline = r.LeaseUntil // not from claimFrom (cannot happen)
	}
	l := &lease{p: p, id: r.ID, lost: cancel, deadline: deadline}
	l.mu.Lock()
	l.watchdog = time.AfterFunc(deadline.Sub(p.now()), func() { l.expired(ctx) })
	l.renewal = time.AfterFunc(p.cfg.LeaseDuration/3, func() { l.renew(ctx) })
	l.mu.Unlock()
	err := fn(ctx)
	l.stop()
	return err
}

// renewRetry is how soon a renewal that failed (the store unreachable)
// is tried again, in LeaseDurations.
const renewRetry = 12

// lease keeps a lease of this replica while its work runs. It has no
// goroutine of its own: a timer renews it and a timer ends it.
//
// The holder must have stopped before another replica may take over, and
// a replica takes over once LeaseUntil is MaxClockSkew past by the
// store's clock (see claimFrom). So, whatever the store does:
//   - the watchdog timer cancels the work at deadline, by this replica's
//     clock, unless a renewal has moved it further first; deadline is
//     LeaseDuration after the moment the claim or renewal that set it was
//     sent, which is no later than the lease's end in the store (the store
//     read its clock after that moment), whatever the clocks say;
//   - each renewal must answer before deadline (less a tenth of the
//     lease): a store that hangs cannot extend the lease late, after the
//     work was stopped;
//   - a renewal counts (moves deadline) only when the store says it was
//     written.
//
// The store must honour its context's deadline for the work's end to
// wait for no hung renewal; the work is stopped by the watchdog either
// way.
type lease struct {
	p    *Provisioner
	id   string
	lost context.CancelCauseFunc // cancels the work

	mu       sync.Mutex
	deadline time.Time // local: see above
	done     bool
	renewal  *time.Timer
	watchdog *time.Timer
	inflight sync.WaitGroup // a renewal running
}

// stop ends the lease's timers and waits for a renewal in flight.
func (l *lease) stop() {
	l.mu.Lock()
	l.done = true
	l.renewal.Stop()
	l.watchdog.Stop()
	l.mu.Unlock()
	l.inflight.Wait()
}

// expired is the watchdog: the lease ran out before it could be renewed;
// ctx is the work's.
func (l *lease) expired(ctx context.Context) {
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if !done {
		l.p.log.WarnContext(ctx, "lease ran out before it could be renewed; stopping work", "tenant", l.id)
		l.lost(errLeaseLost)
	}
}

// renew writes a new LeaseUntil, on the renewal timer's goroutine; ctx
// is the work's.
func (l *lease) renew(ctx context.Context) {
	p := l.p
	l.mu.Lock()
	if l.done || ctx.Err() != nil {
		l.mu.Unlock()
		return
	}
	l.inflight.Add(1)
	deadline := l.deadline
	l.mu.Unlock()
	defer l.inflight.Done()

	var owner string
	rctx, cancel := context.WithDeadline(ctx, deadline.Add(-p.cfg.LeaseDuration/10))
	sent := p.now()
	_, err := store.UpdateNow(rctx, p.store, l.id, func(r *store.Record, now time.Time) error {
		owner = r.LeaseOwner
		if r.LeaseOwner != p.cfg.Replica ||
			r.Status != store.StatusCreating && r.Status != store.StatusInjectingSecrets {
			return errLeaseLost
		}
		// A held lease is renewed whatever the clocks say (its times are
		// the store's); checkSkew only reports a skew here.
		_ = p.checkSkew(ctx, sent, now)
		r.LeaseUntil = now.Add(p.cfg.LeaseDuration)
		return nil
	})
	cancel()

	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.done:
	case err == nil:
		if !l.watchdog.Stop() {
			return // it fired: the work is being stopped
		}
		l.deadline = sent.Add(p.cfg.LeaseDuration)
		l.watchdog.Reset(l.deadline.Sub(p.now()))
		l.renewal.Reset(p.cfg.LeaseDuration / 3)
	case errors.Is(err, errLeaseLost), errors.Is(err, store.ErrNotFound):
		if owner != "" && owner != p.cfg.Replica {
			p.log.WarnContext(ctx, "lease taken over by another replica; stopping work", "tenant", l.id, "owner", owner)
		} else {
			p.log.DebugContext(ctx, "lease ended: the tenant moved on", "tenant", l.id)
		}
		l.lost(errLeaseLost)
	case ctx.Err() != nil:
	default:
		// The store is unreachable or slow: try again soon while the
		// lease lasts; the watchdog stops the work when it runs out.
		p.log.WarnContext(ctx, "lease renewal failed", "tenant", l.id, "err", err)
		l.renewal.Reset(p.cfg.LeaseDuration / renewRetry)
	}
}

// own applies fn to id's record provided this replica still holds its
// lease and the record is in one of statuses; errLeaseLost otherwise.
func (p *Provisioner) own(ctx context.Context, id string, statuses []store.Status, fn func(*store.Record) error) (store.Record, error) {
	return p.store.Update(ctx, id, func(r *store.Record) error {
		if r.LeaseOwner != p.cfg.Replica {
			return errLeaseLost
		}
		for _, s := range statuses {
			if r.Status == s {
				return fn(r)
			}
		}
		return errLeaseLost
	})
}

// release gives up this replica's lease on id, best effort, so that
// another replica can take over at once (after a shutdown).
func (p *Provisioner) release(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := p.own(ctx, id, []store.Status{store.StatusCreating, store.StatusInjectingSecrets}, func(r *store.Record) error {
		r.LeaseOwner, r.LeaseUntil = "", time.Time{}
		return nil
	})
	if err != nil && !errors.Is(err, errLeaseLost) {
		p.log.WarnContext(ctx, "cannot release lease; it expires by itself", "tenant", id, "err", err)
	}
}

// fail records the failure of the work on r (phase, redacted cause) and
// schedules a retry when one is due. When ctx has ended (shutdown, a
// cancelled caller, a lost lease) nothing is recorded: the lease is
// released instead, unless it was lost, and the work is left to Resume.
func (p *Provisioner) fail(ctx context.Context, r store.Record, phase string, cause error, secrets []string) error {
	if ctx.Err() != nil {
		c := context.Cause(ctx)
		if !errors.Is(c, errLeaseLost) {
			p.release(ctx, r.ID)
		}
		return fmt.Errorf("provision: %s %s stopped: %w", phase, r.ID, c)
	}
	final := isFinal(cause)
	// A first injection that finds the pinned host keys are not the
	// server's drops the pin, so that the retry goes back to creating: the
	// server is deleted and a new one phones home afresh. The pin came from
	// a phone_home that anyone holding the tenant's callback token could
	// have sent first, and the real server's own phone_home has been
	// refused since: injecting again to the same pin would fail for ever.
	// A rotation keeps the pin and stays final: its server was ready with
	// that pin, so a mismatch now is a man in the middle or a server
	// rebuilt behind the library's back, and deleting it would destroy a
	// working tenant's server; the operator decides (Retry).
	dropPin := phase == phaseInject && badPin(cause)
	if dropPin {
		final = false
	}
	msg := storableText(redact(phase+": "+cause.Error(), secrets), maxErrorLen)
	if final {
		msg = finalPrefix + msg
	}
	e := newError(r.ID, phase, final, msg, cause, secrets)
	rec, err := store.Transition(ctx, p.store, r.ID,
		[]store.Status{store.StatusCreating, store.StatusInjectingSecrets}, store.StatusFailed,
		func(cur *store.Record) error {
			if cur.LeaseOwner != p.cfg.Replica {
				return errLeaseLost
			}
			cur.LeaseOwner, cur.LeaseUntil = "", time.Time{}
			cur.Error = msg
			cur.Attempts++
			if dropPin {
				cur.HostKeys, cur.Hostname, cur.InstanceID = nil, "", ""
			}
			return nil
		})
	if err != nil {
		if errors.Is(err, errLeaseLost) || errors.Is(err, store.ErrConflict) {
			p.log.InfoContext(ctx, "failure not recorded: the tenant moved on", "tenant", r.ID, "err", msg)
			return e
		}
		p.log.ErrorContext(ctx, "cannot record failure; the lease will expire", "tenant", r.ID, "err", msg, "store_err", err)
		return e
	}
	p.tel.failure(ctx, phase, cause, final)
	p.forgetAddrIfDone(rec)
	if rec.RetiringServerID != "" && !p.willRetry(rec) {
		p.log.WarnContext(ctx, "the replacement failed for good; the retiring server is kept and serves the tenant (Retry or Replace to try again)",
			"tenant", r.ID, "retiring_server", rec.RetiringServerID, "server", rec.ServerID)
	}
	if dropPin {
		p.log.WarnContext(ctx, "the host keys posted at phone_home are not the server's; pin dropped, the retry creates a new server",
			"tenant", r.ID, "server", rec.ServerID)
	}
	p.emit(ctx, Event{Tenant: r.ID, From: r.Status, To: store.StatusFailed, Err: e, RetiringServer: rec.RetiringServerID})
	if p.willRetry(rec) {
		p.scheduleRetry(r.ID, p.backoff(r.ID, rec.Attempts))
	}
	return e
}

func (p *Provisioner) forgetAddrIfDone(r store.Record) {
	if !p.willRetry(r) {
		p.forgetAddr(r.ID)
	}
}

// scheduleRetry retries id after d, unless the Provisioner is shut down
// first (Resume elsewhere then picks the retry up).
func (p *Provisioner) scheduleRetry(id string, d time.Duration) {
	done, err := p.begin("")
	if err != nil {
		return
	}
	go func() {
		defer done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.closing:
			return
		}
		ctx := context.Background()
		if err := p.retryDue(ctx, id, false); err != nil && !errors.Is(err, errBusy) {
			p.log.WarnContext(ctx, "retry failed to start; left to Resume", "tenant", id, "err", err)
		}
	}()
}

// retryDue claims a failed tenant whose retry is due and runs the attempt
// in the background (in one of Resume's slots with slot set).
func (p *Provisioner) retryDue(ctx context.Context, id string, slot bool) error {
	var phase string
	return p.background(ctx, id, slot,
		func(ctx context.Context) (r store.Record, err error) {
			r, phase, err = p.claimRetry(ctx, id, true)
			return r, err
		},
		func(ctx context.Context, r store.Record) error { return p.work(ctx, r, phase) })
}

// work continues a claimed record where its status says; phase, when set,
// is the phase of an injection (see retryPhase).
func (p *Provisioner) work(ctx context.Context, r store.Record, phase string) error {
	switch r.Status {
	case store.StatusCreating:
		return p.create(ctx, r)
	case store.StatusInjectingSecrets:
		// The service may already run: a retry or a takeover restarts it.
		phase = cmp.Or(phase, phaseInject)
		return p.inject(ctx, r, true, phase, phase == phaseInject)
	}
	return fmt.Errorf("provision: no work for %s in status %s", r.ID, r.Status)
}

// maxErrorLen caps Record.Error, in bytes: a journal tail is plenty.
const maxErrorLen = 4 << 10

// storableText makes s storable by every driver: valid UTF-8 without NUL
// bytes, at most max bytes (the end is kept: it holds the journal tail).
func storableText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= max {
		return s
	}
	head := s[:max/4]
	for !utf8.ValidString(head) {
		head = head[:len(head)-1]
	}
	tail := s[len(s)-(max-len(head)-5):]
	for !utf8.ValidString(tail) {
		tail = tail[1:]
	}
	return head + " ... " + tail
}

// redact replaces every secret value in s with [REDACTED], in the forms
// and fragments that inject redacts too (internal/redact: the value
// trimmed and as given, its base64, hex, URL and JSON encodings, wrapped
// over lines, and every 12-byte fragment of a long one). Like inject, it
// leaves values shorter than inject.MinRedactLen alone: they would garble
// every message and are no secrets worth the name.
func redact(s string, secrets []string) string {
	return redactchain.New(secrets, nil).String(s)
}
