package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hatchery-dev/hatchery/store"
)

// phaseRetire prefixes the Record.Error of a replacement whose retiring
// server could not be deleted.
const phaseRetire = "retire"

// Replace gives a ready or failed tenant a new server, with its own
// cloud-config, callback nonce, phone_home and injection, and deletes the
// old one only once the new one is injected. It returns once the new
// server is created (cloud_init), like Provision; the rest follows its
// phone_home (Wait waits for ready).
//
// The record goes through the statuses of a first provisioning, with
// RetiringServerID naming the old server throughout:
//
//	ready or failed --Replace--> creating -> cloud_init --(phone_home)-->
//	injecting_secrets --(injected; old server deleted)--> ready
//
// The claim moves ServerID to RetiringServerID and clears what described
// the old server (name, addresses, host keys, instance ID, type, location),
// and gives a new Record.CallbackNonce: the new server's phone_home is the
// only one accepted (the instance ID check sees the new ServerID, and the
// phone_home token is bound to the nonce). The new
// server gets another name than the old (see ServerName): providers adopt
// servers by name. The old server is deleted, under the lease, after the
// injection into the new one succeeded and before ready is recorded, so
// that a ready record never names two servers: a crash between the two
// makes Resume inject again (steps are idempotent) and delete again
// (deleting is idempotent). When that deletion fails, the attempt fails
// (phase "retire") and its retry injects and deletes again.
//
// What the tenant's users see: the tenant's service keeps running on the
// old server until the new one is injected, then moves to the new
// server's address (Record.IPv4, IPv6, set at cloud_init), with a gap of
// the time it takes to point the users there (DNS, a load balancer: the
// ready event is the signal). Anything the service kept on the old
// server's disk is not carried over. While the replacement runs, the
// record describes the new server; the old one's address is the
// provider's (Get RetiringServerID), or the one the application kept from
// the tenant's last ready event.
//
// A replacement's attempts fail and are retried like a first
// provisioning's (Config.MaxAttempts, the backoff; its attempt count
// starts at 0). The old server is never deleted while the tenant has no
// injected new one: when the replacement fails for good, the record stays
// failed with RetiringServerID set and the old server keeps running and
// serving; Retry (or Replace again, which starts from a fresh server)
// takes the replacement up again, and Deprovision deletes both servers.
//
// Replace on a tenant that is neither ready nor failed gets ErrNotReady
// (a replacement or another piece of work is under way), and one whose
// lease another replica holds ErrBusy; two replicas' Replace calls run one
// replacement. An unknown tenant gets store.ErrNotFound.
func (p *Provisioner) Replace(ctx context.Context, id string) error {
	ctx, span := p.tel.startSpan(ctx, "hatchery.Replace", id, trace.SpanKindInternal)
	err := p.doReplace(ctx, id)
	endSpan(span, err)
	return err
}

// doReplace is Replace, in its span.
func (p *Provisioner) doReplace(ctx context.Context, id string) error {
	return p.operate(ctx, id, "replace", notReady, func(ctx context.Context) (store.Record, func(context.Context) error, error) {
		r, err := p.claimReplaceOf(ctx, id, []store.Status{store.StatusReady, store.StatusFailed}, "")
		return r, func(ctx context.Context) error { return p.create(ctx, r) }, err
	})
}

// claimReplaceOf moves a tenant in one of the statuses from (ready,
// failed) to creating under this replica's lease, for a new server (see
// Replace), and reports it. With server set, only while the tenant's
// server is that one (errMovedOn otherwise).
func (p *Provisioner) claimReplaceOf(ctx context.Context, id string, from []store.Status, server string) (store.Record, error) {
	var was store.Status
	r, err := p.claimFrom(ctx, id, from, store.StatusCreating,
		func(r *store.Record) error {
			if server != "" && r.ServerID != server {
				return errMovedOn
			}
			was = r.Status
			if r.RetiringServerID == "" {
				// A replacement that failed keeps its retiring server and
				// leaves ServerID, its failed new server, to create to
				// delete; otherwise the current server retires.
				r.RetiringServerID, r.ServerID = r.ServerID, ""
			}
			old := r.ServerName
			r.ServerName, r.IPv4, r.IPv6 = "", "", ""
			r.Hostname, r.InstanceID, r.HostKeys = "", "", nil
			r.ServerType, r.Location = "", ""
			r.Attempts = 0 // a replacement gets its own attempts
			for {
				if err := newNonce(r); err != nil {
					return err
				}
				if r.RetiringServerID == "" || p.serverName(*r) != old {
					return nil // never the old server's name (a 2^-32 chance)
				}
			}
		})
	if err != nil {
		return r, err
	}
	p.log.InfoContext(ctx, "replacing the tenant's server", "tenant", id, "retiring_server", r.RetiringServerID, "from", was)
	p.emit(ctx, Event{Tenant: id, From: was, To: store.StatusCreating, RetiringServer: r.RetiringServerID})
	return r, nil
}

// serverName returns the name of the server that r's current create makes
// (or adopts, after a crash): Config.ServerNameFunc of the tenant ID, or,
// during a replacement (r.RetiringServerID set), that name followed by
// '-' and 8 hex digits derived from r.CallbackNonce, shortened to stay
// within 63 bytes. Each new server of a replacement has a new nonce, so
// another name than the server it replaces (which a provider would
// otherwise adopt), while a create resumed after a crash, which keeps the
// nonce, finds the server the dead replica's create brought up.
func (p *Provisioner) serverName(r store.Record) string {
	base := p.cfg.ServerNameFunc(r.ID)
	if r.RetiringServerID == "" {
		return base
	}
	return generationName(base, r.CallbackNonce)
}

// generationName is base with a suffix derived from nonce (see
// ServerName).
func generationName(base, nonce string) string {
	sum := sha256.Sum256([]byte("hatchery/server-generation\x00" + nonce))
	suffix := hex.EncodeToString(sum[:4])
	if max := 63 - 1 - len(suffix); len(base) > max {
		base = strings.TrimRight(base[:max], "-")
	}
	return base + "-" + suffix
}

// Deleting the retiring server (retire).
const (
	retireFirstPause = 200 * time.Millisecond
	retireMaxPause   = 5 * time.Second
)

// retire deletes r's retiring server, trying again on errors until
// Config.CreateTimeout or ctx ends. Deleting a server that is gone
// already succeeds.
func (p *Provisioner) retire(ctx context.Context, r store.Record) (err error) {
	ctx, ph := p.startPhase(ctx, phaseRetire, r)
	defer func() { ph.end(ctx, err) }()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CreateTimeout)
	defer cancel()
	pause := retireFirstPause
	for {
		err := p.prov.Delete(ctx, r.RetiringServerID)
		if err == nil {
			p.log.InfoContext(ctx, "retiring server deleted", "tenant", r.ID, "server", r.RetiringServerID, "new_server", r.ServerID)
			return nil
		}
		if ctx.Err() != nil || isFinal(err) {
			return fmt.Errorf("delete the retiring server %s: %w", r.RetiringServerID, err)
		}
		p.log.WarnContext(ctx, "cannot delete the retiring server; trying again", "tenant", r.ID, "server", r.RetiringServerID, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		pause = min(2*pause, retireMaxPause)
	}
}
