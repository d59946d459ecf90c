package provision

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// SweepResult is what Sweep found and did.
type SweepResult struct {
	// Listed is how many servers of this control plane the provider
	// listed.
	Listed int
	// Orphans are the listed servers that no live record owns, deleted
	// or not (Orphan.Deleted).
	Orphans []Orphan
}

// Orphan is a server of this control plane that no live record owns.
type Orphan struct {
	Server provider.Server
	// Tenant is the server's LabelTenant label.
	Tenant string
	// Reason says why no record owns it: "no record" (the tenant is
	// unknown to the store), "tenant deleted" (its record is deleted),
	// "tenant has another server" (its record names another ServerID and
	// RetiringServerID), "no tenant label".
	Reason string
	// Deleted reports that Sweep deleted the server.
	Deleted bool
	// Kept says why Sweep did not delete it, when it did not: "dry run",
	// "younger than SweepGrace", "creation time unknown", "no tenant
	// label", or the deletion's error.
	Kept string
}

// Reasons an orphan is one, and is kept (see Orphan).
const (
	orphanNoRecord    = "no record"
	orphanDeleted     = "tenant deleted"
	orphanOther       = "tenant has another server"
	orphanNoLabel     = "no tenant label"
	keptDryRun        = "dry run"
	keptYoung         = "younger than SweepGrace"
	keptUnknownAge    = "creation time unknown"
	keptNoTenantLabel = "no tenant label"
)

// Sweep finds the servers of this control plane (those carrying
// LabelControlPlane=Config.ControlPlane, listed through the provider's
// provider.Lister) that no live record owns, and deletes those older than
// Config.SweepGrace, unless dryRun. A server is owned by a record that is
// not deleted and whose ServerID or RetiringServerID is the server's, or,
// while the record has no ServerID yet, whose create would adopt it (the
// server's name is the one that create uses: a create whose answer the
// replica did not get to record). Servers of other control planes, and
// servers the provider driver did not create, are never listed, so never
// touched; a server whose tenant's record the store cannot read, or that
// carries no tenant label, is never deleted either, and a server whose
// creation time the provider does not give is reported, not deleted.
//
// It costs one provider List (one call per page of the provider's), one
// store List, and one Delete per orphan deleted. It keeps no state:
// interrupted (a crash, ctx), it is simply run again. The servers are
// listed before the records, so a server whose create is under way is
// owned by the time its record is read; SweepGrace covers the rest
// (providers whose lists lag).
//
// A provider without provider.Lister gets an error wrapping
// errors.ErrUnsupported. Servers created before their control plane's
// label existed (before ControlPlane was introduced) are not listed:
// Replace gives their tenants servers that carry it.
func (p *Provisioner) Sweep(ctx context.Context, dryRun bool) (SweepResult, error) {
	ctx, span := p.tel.startSpan(ctx, "hatchery.Sweep", "", trace.SpanKindInternal)
	res, err := p.doSweep(ctx, dryRun)
	endSpan(span, err)
	return res, err
}

// doSweep is Sweep, in its span.
func (p *Provisioner) doSweep(ctx context.Context, dryRun bool) (SweepResult, error) {
	if p.isClosed() {
		return SweepResult{}, ErrClosed
	}
	_, ok := p.cfg.Provider.(provider.Lister)
	if !ok {
		return SweepResult{}, fmt.Errorf("provision: sweep: the provider cannot list its servers (provider.Lister): %w", errors.ErrUnsupported)
	}
	servers, err := p.prov.List(ctx, p.selector())
	if err != nil {
		return SweepResult{}, fmt.Errorf("provision: sweep: list servers: %w", err)
	}
	recs, err := p.store.List(ctx)
	unreadable := map[string]bool{}
	if err != nil {
		bad := store.Corrupt(err)
		if len(bad) == 0 {
			return SweepResult{}, fmt.Errorf("provision: sweep: list tenants: %w", err)
		}
		for _, ce := range bad {
			unreadable[ce.ID] = true
			p.log.ErrorContext(ctx, "corrupt record: its servers are not swept", "tenant", ce.ID, "err", ce.Err)
		}
	}
	byID := make(map[string]store.Record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	res := SweepResult{Listed: len(servers)}
	now := p.now()
	var errs []error
	for _, srv := range servers {
		tenant := srv.Labels[LabelTenant]
		if unreadable[tenant] {
			continue
		}
		o := Orphan{Server: srv, Tenant: tenant}
		r, known := byID[tenant]
		switch {
		case tenant == "":
			o.Reason, o.Kept = orphanNoLabel, keptNoTenantLabel
		case !known:
			o.Reason = orphanNoRecord
		case r.Status == store.StatusDeleted:
			o.Reason = orphanDeleted
		case r.ServerID == srv.ID || r.RetiringServerID == srv.ID,
			r.ServerID == "" && srv.Name == p.serverName(r):
			continue // owned
		default:
			o.Reason = orphanOther
		}
		switch {
		case o.Kept != "":
		case srv.Created.IsZero():
			o.Kept = keptUnknownAge
		case now.Sub(srv.Created) < p.cfg.SweepGrace:
			o.Kept = keptYoung
		case dryRun:
			o.Kept = keptDryRun
		}
		if o.Kept == "" {
			if err := p.prov.Delete(ctx, srv.ID); err != nil {
				o.Kept = "delete failed: " + err.Error()
				errs = append(errs, fmt.Errorf("delete server %s (%s): %w", srv.ID, srv.Name, err))
			} else {
				o.Deleted = true
				p.log.WarnContext(ctx, "orphaned server deleted", "server", srv.ID, "name", srv.Name, "tenant", tenant, "reason", o.Reason)
			}
		} else {
			p.log.InfoContext(ctx, "orphaned server found", "server", srv.ID, "name", srv.Name, "tenant", tenant, "reason", o.Reason, "kept", o.Kept)
		}
		res.Orphans = append(res.Orphans, o)
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("provision: sweep: %w", errors.Join(errs...))
	}
	return res, nil
}
