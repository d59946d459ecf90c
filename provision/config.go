package provision

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// Defaults for the optional Config fields.
const (
	DefaultPhoneHomeTimeout  = 15 * time.Minute
	DefaultLeaseDuration     = 2 * time.Minute
	DefaultMaxAttempts       = 3
	DefaultRetryBackoff      = 10 * time.Second
	DefaultMaxBackoff        = 5 * time.Minute
	DefaultSSHTimeout        = 30 * time.Second
	DefaultPhoneHomeTries    = 10
	DefaultCreateTimeout     = 5 * time.Minute
	DefaultInjectTimeout     = 15 * time.Minute
	DefaultMaxClockSkew      = 2 * time.Second
	DefaultResumeConcurrency = 16
	DefaultDriftInterval     = 5 * time.Minute
	DefaultDriftBatch        = 100
	DefaultProbeInterval     = 5 * time.Minute
	DefaultProbeConcurrency  = 8
	DefaultSweepGrace        = time.Hour
)

// LabelTenant is the label every server carries, set to the tenant ID, so
// servers can be traced back to tenants (and orphans found) in the
// provider's console.
const LabelTenant = "hatchery-tenant"

// LabelControlPlane is the label every server carries, set to
// Config.ControlPlane, so that the drift checks and Sweep look only at the
// servers of their own control plane when several share a provider
// account.
const LabelControlPlane = "hatchery-control-plane"

// DefaultControlPlane is Config.ControlPlane when it is empty.
const DefaultControlPlane = "default"

// Config configures a Provisioner. Provider, Store, Secrets, BootstrapFunc,
// StepsFunc, SSHUser, Signer, CallbackBase and CallbackKey are required;
// every other field has a default.
type Config struct {
	// Provider creates and deletes the servers.
	Provider provider.Provider
	// Store keeps every tenant's Record. Replicas share one Store
	// (store/postgres); a single process can use store/sqlite.
	Store store.Store
	// Secrets returns each tenant's secrets, by name. They go into the
	// injection steps and are listed in the cloud-config's Secrets (as
	// given, and without surrounding white space when they have some), so
	// a secret that slipped into the bootstrap fails the build; values
	// shorter than inject.MinRedactLen, and values that the Provisioner's
	// own part of the cloud-config holds (a port of CallbackBase, the SSH
	// user, "true"), are not listed, with a warning naming the secret
	// once. A source that answers inject.ErrNoSecrets gives the steps an
	// empty map.
	Secrets inject.SecretSource

	// BootstrapFunc returns the tenant's cloud-config, without any secret.
	// The Provisioner adds what it needs: the phone_home module (when
	// PhoneHome or its URL is empty), SSHUser with Signer's public key, the
	// host name (the server name, when empty) and the tenant's secret
	// values as Secrets. It must be deterministic for a tenant: a retry
	// after a crash builds the document again.
	BootstrapFunc func(ctx context.Context, r store.Record) (cloudinit.Config, error)
	// StepsFunc returns the injection steps for a tenant. The Provisioner
	// runs inject.WaitCloudInit first, in an SSH session of its own, then
	// the steps as one script; when the steps begin with a cloud-init wait
	// (as inject.WaitCloudInit builds it), that one is used instead. Steps
	// must be idempotent: a retry or a takeover by another replica runs
	// them again.
	StepsFunc func(ctx context.Context, in StepsInput) ([]inject.Step, error)

	// SSHUser is the user the injection logs in as; it needs passwordless
	// sudo for root steps. When the bootstrap does not define it, it is
	// added with passwordless sudo and /bin/bash.
	SSHUser string
	// Signer is the control plane's SSH key; its public key is put into
	// SSHUser's authorized keys in the cloud-config.
	Signer ssh.Signer
	// SSHTimeout bounds connect and handshake (inject.SSHConfig.Timeout);
	// 0 means DefaultSSHTimeout.
	SSHTimeout time.Duration
	// SSHAgent also offers the keys of the SSH agent at SSHAgentSocket
	// ($SSH_AUTH_SOCK when empty) to the tenants' servers
	// (inject.SSHConfig.Agent), besides Signer. Only Signer's key is put
	// into the cloud-config: an agent key works on a tenant's server only
	// when the bootstrap authorizes it for SSHUser. The agent is asked at
	// each connection; it must be up while the Provisioner injects.
	SSHAgent       bool
	SSHAgentSocket string
	// SSHJump, when set, is the bastion through which every SSH
	// connection to a tenant's server is opened (inject.SSHConfig.Jump),
	// for a control plane that cannot reach the servers directly. nil:
	// direct connections.
	SSHJump *JumpHost

	// CallbackBase is the absolute URL where Handler is mounted, e.g.
	// "https://cp.example.com/api/provision/callback". Servers must reach
	// it. It must be https, since the phone_home request carries the URL's
	// token and the host keys that injection pins: plain http is accepted
	// only for a loopback host (127.0.0.0/8, ::1, "localhost"; the
	// simulated servers of provider/fake) or with AllowInsecureCallback.
	CallbackBase string
	// AllowInsecureCallback accepts a plain http CallbackBase on a host
	// that is not loopback, e.g. a private network the operator trusts.
	// Anyone on the path can then read the tokens and substitute host
	// keys: a man in the middle of the callback is a man in the middle of
	// the injection.
	AllowInsecureCallback bool
	// CallbackKey is the HMAC key of the phone_home URL tokens; at least 16
	// bytes (callback.MinKeySize), the same on every replica.
	CallbackKey []byte
	// CallbackCheckSource sets callback.Handler.CheckSource: a callback
	// must come from the server's own address (its IPv4, or its IPv6 /64).
	// Leave it off behind a load balancer unless CallbackTrustedProxies
	// names it. A server whose addresses the provider did not give at
	// create cannot be checked by the handler; the Provisioner checks its
	// phone_home's address before injecting (see the package
	// documentation, Addresses that come later).
	CallbackCheckSource bool
	// CallbackTrustedProxies sets callback.Handler.TrustedProxies: the
	// networks of the reverse proxies in front of Handler, whose
	// X-Forwarded-For is believed when CallbackCheckSource is on.
	CallbackTrustedProxies []netip.Prefix
	// InstanceIDFunc sets callback.Handler.InstanceIDFunc: the cloud-init
	// instance ID that the server of a record posts at phone_home, so that
	// a callback from another server of the tenant (an earlier attempt's)
	// or a replayed one is refused. It depends on the provider: on Hetzner
	// it is the numeric server ID (r.ServerID), with provider/fake it is
	// "i-" + r.ServerID. It must be quick and must not use the Store; ""
	// means it cannot tell. nil: the provider's own, when Provider
	// implements provider.InstanceIDer (the check is then on by default),
	// else no instance ID check.
	InstanceIDFunc func(r store.Record) string

	// Replica names this process in leases; unique per running replica.
	// "" means host name, process ID and a random suffix.
	Replica string
	// ServerNameFunc returns the server name of a tenant: deterministic (a
	// retry adopts the server by name) and a lowercase host name label of
	// at most 63 bytes. nil means "hatchery-" + ID.
	ServerNameFunc func(id string) string
	// Labels are extra labels for every server; LabelTenant and
	// LabelControlPlane are always set (and cannot be set here).
	Labels map[string]string
	// ControlPlane names this control plane: every server it creates
	// carries it as the label LabelControlPlane, and the drift checks and
	// Sweep list only the servers that carry it, so that several control
	// planes (production and staging, two products) can share a provider
	// account without touching each other's servers. Every replica of a
	// control plane must use the same name, and control planes sharing an
	// account different ones. It is 1 to 63 lowercase letters, digits and
	// '-', starting and ending with a letter or digit: a valid Hetzner
	// label value, and a DigitalOcean tag once the driver has made it one.
	// "" means DefaultControlPlane, "default".
	ControlPlane string
	// PlacementFunc returns the server type, image and locations of a
	// tenant's server (see Placement); nil, or an empty field, means the
	// provider driver's default. It is called for every create, a retry's
	// included, so a tenant's next server can be bigger.
	PlacementFunc func(ctx context.Context, r store.Record) (Placement, error)

	// PhoneHomeTimeout is how long a server may stay in cloud_init before
	// Resume fails it; 0 means DefaultPhoneHomeTimeout.
	PhoneHomeTimeout time.Duration
	// PhoneHomeTries is cloud-init's phone_home tries when the Provisioner
	// sets the phone_home module; 0 means DefaultPhoneHomeTries.
	PhoneHomeTries int
	// CreateTimeout bounds one attempt at creating a server (bootstrap,
	// secrets, the provider's Create) and, separately, the deletions that
	// go with it: on a retry, deleting the server of the failed attempt
	// and waiting for the provider to report it gone; for a tenant
	// deprovisioned during its create, deleting the server that create
	// brought up. 0 means DefaultCreateTimeout.
	CreateTimeout time.Duration
	// InjectTimeout bounds one injection attempt (connecting, waiting for
	// cloud-init, the steps), so that a hung server cannot hold its lease
	// forever; 0 means DefaultInjectTimeout. An attempt that runs out
	// fails and is retried.
	InjectTimeout time.Duration
	// LeaseDuration is how long a replica's claim on a creating or
	// injecting record lasts without renewal; it is renewed every third of
	// it while the work runs (each renewal must answer within the lease),
	// the holder stops its work when it runs out, and another replica
	// takes over once it has expired by MaxClockSkew. 0 means
	// DefaultLeaseDuration.
	LeaseDuration time.Duration
	// MaxClockSkew is the largest difference between the store's clock and
	// a replica's that is tolerated; 0 means DefaultMaxClockSkew. Leases
	// take their times from the store's clock (see the package
	// documentation, Exactly once), and a lease is taken over only once
	// the store's clock is MaxClockSkew past its end, which also covers
	// the time the holder's cancelled work takes to stop. A replica that
	// finds the store's clock further off than MaxClockSkew from its own
	// takes no lease (ErrClockSkew) until they agree. Keep the clocks
	// synchronized (NTP) well within it.
	MaxClockSkew time.Duration
	// MaxAttempts is how many times a tenant is tried before it stays
	// failed; 0 means DefaultMaxAttempts. 1 disables retries.
	MaxAttempts int
	// RetryBackoff is the pause before the first retry, doubled for each
	// further one up to MaxBackoff, of which a random-looking part is left
	// out (between none and half, see the package documentation); 0 means
	// DefaultRetryBackoff.
	RetryBackoff time.Duration
	// MaxBackoff caps RetryBackoff's doubling; 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// ResumeInterval is Run's pause between Resume passes; 0 means a
	// quarter of LeaseDuration.
	ResumeInterval time.Duration
	// ResumeConcurrency is how many pieces of work (creates, injections,
	// retries) that Resume starts may run at once in this process; 0
	// means DefaultResumeConcurrency. Resume claims a tenant only when a
	// slot is free, so a long backlog waits in the store, where other
	// replicas can take it, and Resume returns when the last of its work
	// has started.
	ResumeConcurrency int

	// DriftInterval is how often Resume (and so Run) checks the servers of
	// the ready tenants against the provider (see Drift in the package
	// documentation): a server that is gone or powered off is reported
	// (Record.Drift, an Event, a log line), and with ReplaceOnDrift a gone
	// one is replaced. 0 means DefaultDriftInterval; a negative value
	// turns the checks off. Each replica checks on its own, so with R
	// replicas the provider sees R checks per interval: with a
	// provider.Lister, R x ceil(tenants/page size) calls (Hetzner: 50
	// servers a page, so 1,000 tenants and 2 replicas cost 40 calls per
	// interval, 480 an hour at the default, of Hetzner's 3,600 an hour per
	// project); lengthen it for large fleets.
	DriftInterval time.Duration
	// DriftBatch bounds the provider calls of one drift check. With a
	// provider that lists (provider.Lister) a check lists every server of
	// the control plane (one call per page), and DriftBatch bounds the
	// servers it then looks up one by one (Get) to confirm they are gone:
	// the ready tenants whose server the list left out (so also the
	// automatic replacements one check starts). Without one, a check looks
	// up DriftBatch tenants' servers, the next ones at the next check. 0
	// means DefaultDriftBatch.
	DriftBatch int
	// ReplaceOnDrift replaces (Replace) a ready tenant whose server a
	// drift check found gone. A server powered off, or failing its probe,
	// is reported, never replaced automatically: it may come back with its
	// data, or the fault may be the service's, which a new server does not
	// mend.
	ReplaceOnDrift bool
	// ProbeSteps, when set, is the health probe of a ready tenant's server:
	// short steps (e.g. inject.CheckActive(unit, 0)), run over SSH pinned
	// to the recorded host keys every ProbeInterval, at most
	// ProbeConcurrency servers at once per replica, within SSHTimeout to
	// connect and as much again to run. They get no secret. A probe that
	// fails is reported as drift ("probe: ..."), and cleared by the next
	// that passes.
	ProbeSteps func(r store.Record) []inject.Step
	// ProbeInterval is the pause between probes of a server; 0 means
	// DefaultProbeInterval.
	ProbeInterval time.Duration
	// ProbeConcurrency is how many servers one replica probes at once; 0
	// means DefaultProbeConcurrency.
	ProbeConcurrency int
	// SweepGrace is how old an orphaned server must be (by the provider's
	// provider.Server.Created) before Sweep deletes it, so that a server
	// whose create is still being recorded is never taken for an orphan;
	// 0 means DefaultSweepGrace. A server whose creation time the provider
	// does not give is reported by Sweep, never deleted.
	SweepGrace time.Duration
	// DeletedRetention is how long a deleted record is kept after its
	// last write (its deletion, or the deletion of its server): older ones
	// are removed by Resume, up to store.PurgeLimit per pass, once their
	// server deletion has finished. While the record exists the tenant ID
	// cannot be provisioned again (ErrDeleted); once it is removed, it
	// can. 0 keeps deleted records for ever.
	DeletedRetention time.Duration

	// AllowRecoverableCloudInit lets injection go on when cloud-init ended
	// with recoverable errors (status exit code 2).
	AllowRecoverableCloudInit bool

	// BootProgress adds cloud-init's reporting webhook to every tenant's
	// cloud-config (a reporter named ReporterName, posting to EventsURL:
	// Handler's mount, with the server's token), so that each stage and
	// module of the boot is reported as an Event with Boot set while the
	// server boots ("installing packages", "running runcmd", "phoning
	// home"), and a module that fails is seen at once, before phone_home.
	// Off by default, for what it costs: Debian 12's cloud-init posts
	// about 65 events per boot (71 with write_files and packages), one at
	// a time, each waiting for its answer; Handler answers each after a
	// token check and one store read (no write), and the user-data grows
	// by about 270 bytes. See the package documentation, Boot progress.
	BootProgress bool

	// Logger receives the Provisioner's logs; nil means quiet. No secret
	// is ever logged. Records are logged with the context of the work
	// they describe, so a trace-aware handler can add its trace and span
	// IDs.
	Logger *slog.Logger

	// MeterProvider and TracerProvider receive the Provisioner's metrics
	// and spans (see Observability in the package documentation); nil
	// means OpenTelemetry's global providers (otel.GetMeterProvider,
	// otel.GetTracerProvider), which record nothing, at next to no cost,
	// until the program installs an SDK. Hatchery depends on the
	// OpenTelemetry API only: the exporter is the program's choice.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	// OnEvent, when set, is called for every status change the
	// Provisioner makes, every injection step started or finished, and,
	// with BootProgress, every boot step the server reports. It
	// is called from many goroutines and must return quickly. A tenant's
	// events are reported after the writes they describe, by the
	// goroutines that made them, so two of them can arrive out of order
	// (a callback's transition before its creator reports cloud_init);
	// the store is the reference.
	OnEvent func(Event)
}

// Placement is where a tenant's server goes and what it is, in the
// provider driver's own names (Hetzner: server type "cx22", location
// "fsn1", image "debian-12"); an empty field means the driver's default.
type Placement struct {
	ServerType string
	Image      string
	// Locations are tried in order: a create that the provider refuses
	// for capacity (provider.ErrUnavailable) in one is tried in the next
	// at once, within the same attempt, so the tenant's attempts are not
	// spent on it; only when the last refuses too does the attempt fail
	// (and the retry starts from the first again). Empty: the driver's
	// default location, once.
	Locations []string
}

// JumpHost is an SSH bastion (Config.SSHJump).
type JumpHost struct {
	// Addr is the bastion's SSH address, host:port.
	Addr string
	// User is the user to log in as on the bastion.
	User string
	// HostKeyCallback checks the bastion's host key (inject.KnownHosts,
	// ssh.FixedHostKey). Required: never "accept anything".
	HostKeyCallback ssh.HostKeyCallback
	// Signer is the key offered to the bastion; nil means Config.Signer.
	Signer ssh.Signer
	// Agent also offers the keys of the SSH agent at Config.SSHAgentSocket
	// ($SSH_AUTH_SOCK when empty), e.g. the operator's key the bastion
	// authorizes.
	Agent bool
}

// StepsInput is what StepsFunc turns into injection steps.
type StepsInput struct {
	// Record is the tenant as stored: host name, addresses, host keys.
	Record store.Record
	// Secrets are the tenant's current secrets, by name.
	Secrets map[string]string
	// Rotate is true when the service may already be running, with older
	// secrets: a Rotate call, a retry after a failed injection, or a
	// takeover of an injection another replica left unfinished. Steps
	// must then restart the service instead of starting it. Restarting a
	// stopped unit starts it, so steps written this way are correct on a
	// fresh server too.
	Rotate bool
}

// Event reports progress: a status change (From, To), an injection step
// started (Step set, StepDone false) or finished (StepDone true, Err set
// when it failed), a boot step of the tenant's server (Boot set, with
// Config.BootProgress) or a drift report (Drift, DriftCleared).
type Event struct {
	Tenant string
	// Replica is the Provisioner that made the change or ran the step.
	Replica string
	// From and To are set on status changes. From is empty when the change
	// was made by the callback handler (creating or cloud_init ->
	// injecting_secrets) or is the creation of the record.
	From, To store.Status
	// Step and StepIndex name an injection step; Step is empty on status
	// changes. StepIndex counts from 0 over the whole injection: 0 is the
	// cloud-init wait, 1 the first of StepsFunc's steps. Messages and
	// logs (String, inject's StepError and logs) number steps from 1:
	// StepIndex+1.
	Step      string
	StepIndex int
	StepDone  bool
	// Err is why a step or the tenant failed; redacted.
	Err error
	// RetiringServer is set on the status changes of a replacement (see
	// Replace): the ID of the server that still serves the tenant until
	// the new one is ready. The ready event that carries it says the old
	// server is deleted and the tenant's service runs at the new server's
	// address (the record's IPv4, IPv6): the moment to point the tenant's
	// users there.
	RetiringServer string
	// Drift is set on a drift report: what a drift check or a probe found
	// wrong with a ready tenant's server (as Record.Drift); DriftCleared
	// reports a drift seen fine again.
	Drift        string
	DriftCleared bool
	// Boot is set on a boot step the tenant's server reported through
	// cloud-init's reporting webhook (Config.BootProgress): progress only,
	// the record is not changed by it. A step that finished with FAIL
	// (Boot.Failed) is the earliest sign that the bootstrap failed, before
	// phone_home; the tenant fails later, when the injection finds
	// cloud-init in error.
	Boot *BootProgress
	// Time is when the Provisioner reported the event (for Boot, when the
	// handler received it; Boot.Time is the server's).
	Time time.Time
}

// String renders the event for logs and examples.
func (e Event) String() string {
	var s string
	switch {
	case e.Boot != nil:
		return fmt.Sprintf("%s: boot %s", e.Tenant, e.Boot)
	case e.Drift != "":
		s = fmt.Sprintf("%s: drift: %s", e.Tenant, e.Drift)
	case e.DriftCleared:
		s = fmt.Sprintf("%s: drift cleared", e.Tenant)
	case e.Step != "" && !e.StepDone:
		s = fmt.Sprintf("%s: step %d %q started", e.Tenant, e.StepIndex+1, e.Step)
	case e.Step != "" && e.Err != nil:
		// Err says "step N ... failed ..." itself.
		return fmt.Sprintf("%s: %s", e.Tenant, e.Err.Error())
	case e.Step != "":
		s = fmt.Sprintf("%s: step %d %q done", e.Tenant, e.StepIndex+1, e.Step)
	case e.From == "":
		s = fmt.Sprintf("%s: -> %s", e.Tenant, e.To)
	default:
		s = fmt.Sprintf("%s: %s -> %s", e.Tenant, e.From, e.To)
	}
	if e.RetiringServer != "" {
		s += " (replacing server " + e.RetiringServer + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// ErrConfig is wrapped by New's errors for a missing or invalid Config field.
var ErrConfig = errors.New("provision: invalid config")

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Provider == nil:
		return bad("Provider is nil")
	case c.Store == nil:
		return bad("Store is nil")
	case c.Secrets == nil:
		return bad("Secrets is nil")
	case c.BootstrapFunc == nil:
		return bad("BootstrapFunc is nil")
	case c.StepsFunc == nil:
		return bad("StepsFunc is nil")
	case c.SSHUser == "":
		return bad("SSHUser is empty")
	case !validUser(c.SSHUser):
		return bad("SSHUser %q is not a valid user name", c.SSHUser)
	case c.Signer == nil:
		return bad("Signer is nil")
	case len(c.CallbackKey) < callback.MinKeySize:
		return bad("CallbackKey is %d bytes, want at least %d", len(c.CallbackKey), callback.MinKeySize)
	}
	if (c.SSHAgent || c.SSHJump != nil && c.SSHJump.Agent) && c.SSHAgentSocket == "" && os.Getenv("SSH_AUTH_SOCK") == "" {
		return bad("an SSH agent is asked for, but SSHAgentSocket and $SSH_AUTH_SOCK are empty")
	}
	if j := c.SSHJump; j != nil {
		switch {
		case j.Addr == "":
			return bad("SSHJump.Addr is empty")
		case j.User == "":
			return bad("SSHJump.User is empty")
		case j.HostKeyCallback == nil:
			return bad("SSHJump.HostKeyCallback is nil (pin the bastion's key, e.g. with inject.KnownHosts)")
		}
		jump := *j
		if jump.Signer == nil {
			jump.Signer = c.Signer
		}
		c.SSHJump = &jump
	}
	u, err := url.Parse(c.CallbackBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return bad("CallbackBase %q is not an absolute http(s) URL without query", c.CallbackBase)
	}
	if u.Scheme == "http" && !c.AllowInsecureCallback && !loopbackHost(u.Hostname()) {
		return bad("CallbackBase %q is plain http on a host that is not loopback: use https (or set AllowInsecureCallback)", c.CallbackBase)
	}
	for name, d := range map[string]time.Duration{
		"SSHTimeout": c.SSHTimeout, "PhoneHomeTimeout": c.PhoneHomeTimeout,
		"LeaseDuration": c.LeaseDuration, "RetryBackoff": c.RetryBackoff,
		"MaxBackoff": c.MaxBackoff, "ResumeInterval": c.ResumeInterval,
		"CreateTimeout": c.CreateTimeout, "InjectTimeout": c.InjectTimeout,
		"MaxClockSkew": c.MaxClockSkew, "ProbeInterval": c.ProbeInterval,
		"SweepGrace": c.SweepGrace, "DeletedRetention": c.DeletedRetention,
	} {
		if d < 0 {
			return bad("%s is negative", name)
		}
	}
	if c.MaxAttempts < 0 || c.PhoneHomeTries < 0 || c.ResumeConcurrency < 0 || c.DriftBatch < 0 || c.ProbeConcurrency < 0 {
		return bad("MaxAttempts, PhoneHomeTries, ResumeConcurrency, DriftBatch and ProbeConcurrency must not be negative")
	}
	c.ControlPlane = cmp.Or(c.ControlPlane, DefaultControlPlane)
	if !validControlPlane(c.ControlPlane) {
		return bad("ControlPlane %q: want 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit", c.ControlPlane)
	}
	for _, k := range []string{LabelTenant, LabelControlPlane} {
		if _, ok := c.Labels[k]; ok {
			return bad("Labels sets %s, which the Provisioner sets itself", k)
		}
	}
	c.SSHTimeout = cmp.Or(c.SSHTimeout, DefaultSSHTimeout)
	c.PhoneHomeTimeout = cmp.Or(c.PhoneHomeTimeout, DefaultPhoneHomeTimeout)
	c.CreateTimeout = cmp.Or(c.CreateTimeout, DefaultCreateTimeout)
	c.InjectTimeout = cmp.Or(c.InjectTimeout, DefaultInjectTimeout)
	c.PhoneHomeTries = cmp.Or(c.PhoneHomeTries, DefaultPhoneHomeTries)
	c.LeaseDuration = cmp.Or(c.LeaseDuration, DefaultLeaseDuration)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.MaxClockSkew = cmp.Or(c.MaxClockSkew, DefaultMaxClockSkew)
	c.ResumeConcurrency = cmp.Or(c.ResumeConcurrency, DefaultResumeConcurrency)
	c.RetryBackoff = cmp.Or(c.RetryBackoff, DefaultRetryBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.DriftInterval = cmp.Or(c.DriftInterval, DefaultDriftInterval)
	c.DriftBatch = cmp.Or(c.DriftBatch, DefaultDriftBatch)
	c.ProbeInterval = cmp.Or(c.ProbeInterval, DefaultProbeInterval)
	c.ProbeConcurrency = cmp.Or(c.ProbeConcurrency, DefaultProbeConcurrency)
	c.SweepGrace = cmp.Or(c.SweepGrace, DefaultSweepGrace)
	if c.MaxBackoff < c.RetryBackoff {
		c.MaxBackoff = c.RetryBackoff
	}
	if c.ResumeInterval == 0 {
		c.ResumeInterval = c.LeaseDuration / 4
	}
	if c.Replica == "" {
		c.Replica = defaultReplica()
	}
	if len(c.Replica) > 200 || !utf8.ValidString(c.Replica) || strings.ContainsRune(c.Replica, 0) {
		return bad("Replica must be valid UTF-8 text of at most 200 bytes")
	}
	if c.ServerNameFunc == nil {
		c.ServerNameFunc = DefaultServerName
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.CallbackKey = append([]byte(nil), c.CallbackKey...)
	labels := make(map[string]string, len(c.Labels)+1)
	for k, v := range c.Labels {
		labels[k] = v
	}
	c.Labels = labels
	c.CallbackTrustedProxies = slices.Clone(c.CallbackTrustedProxies)
	return c, nil
}

// validControlPlane accepts what both Hetzner's label values and
// DigitalOcean's tags (through the driver's label tags) hold: 1 to 63
// lowercase letters, digits and '-', starting and ending with a letter or
// digit.
func validControlPlane(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// loopbackHost reports whether host (a URL's Hostname) is a loopback
// address or "localhost".
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// DefaultServerName is the server name used when Config.ServerNameFunc is
// nil: "hatchery-" followed by the tenant ID (45 bytes for a UUID).
func DefaultServerName(id string) string { return "hatchery-" + id }

func defaultReplica() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "replica"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// validUser accepts the user names useradd accepts by default.
func validUser(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case (c >= '0' && c <= '9' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
