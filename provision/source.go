package provision

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
)

// Addresses that come later.
//
// A provider may create a server without telling its address yet
// (DigitalOcean: a droplet has no IP until it is active). Such a server
// is recorded in cloud_init without IPs, and the callback.Handler cannot
// check where its phone_home comes from (CallbackCheckSource): it accepts
// it, since nothing tells the server's address apart from another. The
// Provisioner then checks before it injects:
//
//   - the Handler wrapper (callbackFront) passes the client address of
//     each phone_home along with the request's context, and onReady keeps
//     it for the injection when the handler could not compare it;
//   - before injecting, the server's address comes from what its Create
//     returned, else from one provider Get (sshAddr), which this needs
//     anyway to connect; the IPs are recorded then (Record.IPv4, IPv6);
//   - the kept client address must be the server's (its IPv4, or in its
//     IPv6 /64: the rule of the callback.Handler): otherwise the host keys
//     that the phone_home posted came from elsewhere, nothing is sent to
//     the server, and the attempt fails like a host key mismatch: the pin
//     is dropped and the retry creates a new server (errWrongSource).
//
// Why not a Get in the handler, before the transition: the handler must
// answer fast and must not spend provider API calls (rate limited, shared
// by every tenant) on requests it has not yet checked; and the injection
// needs the address anyway. A callback's address alone is never trusted:
// the SSH connection goes to the address the provider reports, pinned to
// the posted keys.
//
// What is not covered: when the replica that received the phone_home dies
// before injecting, the replica that takes the injection over does not know
// the client address (it is not stored), and injects without this check.
// That is still safe for the secrets: the connection goes to the address
// the provider gives and is pinned to the posted host keys, so keys posted
// by anyone but the server fail the handshake before any secret is sent
// (and the attempt goes back to a new server, see fail). The check is a
// guard against that wasted attempt, and an early, clear warning.
//
// A provider that knows the address at create (Hetzner) is checked by the
// callback.Handler itself, as before, with no extra API call: the client
// address is kept only for a callback that the handler could not compare.

// errWrongSource fails an injection whose phone_home came from another
// address than the server's.
var errWrongSource = errors.New("the phone_home did not come from the server's address")

// sourceKey is the context key of a phone_home's client address.
type sourceKey struct{}

// callbackFront is the Handler: the callback.Handler, with the client
// address of each request in its context (when CallbackCheckSource is on),
// which the handler passes on to onReady.
type callbackFront struct{ p *Provisioner }

func (f callbackFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if f.p.cfg.CallbackCheckSource {
		if a, ok := f.p.handler.ClientAddr(r); ok {
			ctx = context.WithValue(ctx, sourceKey{}, a)
		}
	}
	if t := f.p.tel; t != nil {
		// The request's span: a server span, or a child of the one an
		// HTTP instrumentation (otelhttp) started. The handler's
		// OnOutcome (callbackOutcome) sets its outcome and link.
		kind, name := trace.SpanKindServer, "hatchery.phone_home"
		if t.traced(ctx) {
			kind = trace.SpanKindInternal
		}
		if strings.Contains(r.URL.RawQuery, callback.EventParam) && r.URL.Query().Has(callback.EventParam) {
			name = "hatchery.boot_event"
		}
		sctx, span := t.startSpan(ctx, name, "", kind)
		defer span.End()
		if span.IsRecording() || span.SpanContext().IsValid() {
			ctx = sctx // else no SDK: nothing to hand on, no request to copy
		}
	}
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	f.p.handler.ServeHTTP(w, r)
}

// keepSource keeps the client address of the phone_home that moved r
// (as the handler wrote it) to injecting_secrets, when the handler could
// not compare it with the server's address: r has no IP.
func (p *Provisioner) keepSource(ctx context.Context, r store.Record) {
	a, ok := ctx.Value(sourceKey{}).(netip.Addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sources, r.ID) // an earlier phone_home's, if any
	if ok && p.cfg.CallbackCheckSource && r.IPv4 == "" && r.IPv6 == "" {
		p.sources[r.ID] = a
	}
}

// takeSource returns, once, the client address kept for tenant id.
func (p *Provisioner) takeSource(id string) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.sources[id]
	delete(p.sources, id)
	return a, ok
}

// verifySource checks the phone_home's client address kept for r, if any,
// against the server's addresses as now known.
func (p *Provisioner) verifySource(ctx context.Context, r store.Record, ipv4, ipv6 string) error {
	a, ok := p.takeSource(r.ID)
	if !ok || ipv4 == "" && ipv6 == "" || callback.FromServer(ipv4, ipv6, a) {
		return nil // nothing to check, nothing to compare with, or fine
	}
	p.log.WarnContext(ctx, "phone_home came from another address than the server's; not injecting",
		"tenant", r.ID, "client", a.String(), "ipv4", ipv4, "ipv6", ipv6)
	return fmt.Errorf("%w: it came from %s, the provider reports %s",
		errWrongSource, a, strings.Trim(ipv4+" "+ipv6, " "))
}
