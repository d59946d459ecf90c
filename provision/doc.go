// Package provision is Hatchery's orchestrator: it takes a tenant from
// nothing to a running server with its secrets, crash-safe, exactly once,
// with any number of control-plane replicas sharing one store. It is the
// only package that imports the others (store, cloudinit, provider,
// callback, inject); nothing imports it.
//
// # The lifecycle
//
//	pending -> creating -> cloud_init --(phone_home)--> injecting_secrets -> ready
//	any of them -> failed -> (retry) creating or injecting_secrets
//	any -> deleted
//
//	ready or failed --Replace--> creating -> cloud_init --(phone_home)-->
//	    injecting_secrets --(the old server deleted)--> ready
//	    (RetiringServerID names the old server throughout)
//	ready, server gone/off or probe failing --(drift check)--> ready with Drift set
//	    (gone, with ReplaceOnDrift: --> Replace)
//	deleted, servers deleted, older than DeletedRetention --(Resume)--> removed
//
// The steps:
//
//   - [Provisioner.Provision] creates the record (pending), claims it
//     (creating, with a fresh Record.CallbackNonce), renders the tenant's
//     cloud-config (Config.BootstrapFunc, plus the phone_home URL with its
//     token, the SSH user and key, and the tenant's secret values listed as
//     secrets, so a secret that slipped into the bootstrap fails the build;
//     checked against the provider's user-data limit when it has one,
//     provider.UserDataLimiter, or the bootstrap's MaxSize when smaller),
//     creates the server under a name derived from the tenant ID, of the
//     type, image and location Config.PlacementFunc gives (see Placement),
//     and records cloud_init with the server's ID, addresses (when the
//     provider knows them yet), server type and location. Provision on a
//     deleted tenant fails with ErrDeleted; on a tenant that failed for
//     good it returns the recorded *Error.
//   - [Provisioner.Handler] receives cloud-init's phone_home: the
//     callback.Handler moves the tenant to injecting_secrets with the host
//     keys the server posted, and the Provisioner injects: it takes the
//     lease, dials SSH pinned to those host keys (never insecure), runs
//     `cloud-init status --wait` in a session of its own (so no secret is
//     sent to a server whose bootstrap failed), then Config.StepsFunc's
//     steps as one script, with every secret value redacted from errors and
//     logs, and records ready.
//   - [Provisioner.Rotate] injects fresh secrets into a ready server and
//     restarts the service; [Provisioner.Deprovision] records deleted and
//     deletes the server.
//   - [Provisioner.Replace] gives a ready or failed tenant a new server
//     (see Replacing a server); [Provisioner.CheckDrift] and
//     [Provisioner.Probe] compare the ready tenants' servers with the
//     provider and probe them (see Drift); [Provisioner.Sweep] deletes the
//     servers no live record owns (see Orphans).
//
// # Exactly once
//
// Every status change is a compare-and-set through store.Transition, and
// the work that takes time (creating a server, injecting) runs under a
// lease: LeaseOwner (Config.Replica) and LeaseUntil, taken in the same
// atomic write that checks the status, renewed every third of
// Config.LeaseDuration while the work runs, and checked again by the write
// that ends the work. A repeated callback, a second replica, a Resume pass
// and a retry timer all try the same claim, and only one wins; the losers
// do nothing. A replica that loses its lease (it stalled past LeaseUntil and
// another took over, or the tenant was deprovisioned) stops its work at
// once and writes nothing more.
//
// A lease ends by the clock, whatever the store does. Its times are the
// store's (store.UpdateNow: PostgreSQL's clock_timestamp() in the write
// that takes or renews it; the local clock for the embedded stores, which
// every user of the database shares): LeaseUntil is the store's now plus
// Config.LeaseDuration, and another replica takes over only when the
// store's now, read in its claim, is Config.MaxClockSkew past LeaseUntil.
// The holder stops its work LeaseDuration after it sent the write that
// took or last renewed the lease, by its own clock, which is no later than
// the lease's end in the store whatever the clocks say (each renewal must
// answer before then, so a store that hangs cannot stretch a lease); the
// margin covers the moment the holder's cancelled SSH commands take to
// stop.
//
// Each claim also compares the store's clock with the replica's: the
// store read its clock after the write was sent and before its answer was
// handled, so a now outside that window widened by MaxClockSkew proves a
// skew. A replica whose clock is off by more than that takes no lease: the
// claim fails with an error wrapping ErrClockSkew (Provision, Rotate,
// Retry and Replace return it; Resume's and the callback's claims log
// it), an error is logged (then once a minute while it lasts), and leases
// are taken again once the clocks agree. Leases would be right anyway, but
// other comparisons (retry due times, phone_home deadlines) use the
// replica's clock, and a clock that far off means NTP is down. Keep the
// clocks synchronized (NTP does, by far).
//
// Within one process a tenant has at most one piece of work in flight, so
// the creating replica that learns the server phoned home before its create
// was recorded simply goes on to inject under the lease it already holds.
//
// # Crashes and Resume
//
// A replica can die anywhere. [Provisioner.Resume], which every replica
// runs at start and periodically ([Provisioner.Run]), picks the work up:
// pending records are claimed and created; creating records whose lease
// expired are claimed again and the server is created or, when the dead
// replica's create had gone through, adopted by name (a provider's Create
// is idempotent by name; the name is Config.ServerNameFunc of the ID);
// injecting_secrets records whose lease expired are injected again (steps
// are idempotent, and StepsInput.Rotate tells them the service may already
// run); cloud_init records older than Config.PhoneHomeTimeout fail with
// "no phone_home"; failed records with attempts left are retried; and, at
// a Provisioner's first Resume, deleted records whose server deletion did
// not finish are finished.
//
// Where the SSH daemon of a server listens is what the provider's Create
// returned; a replica that did not create the server asks the provider
// (Get), since the store keeps only the IP addresses.
//
// # Addresses that come later
//
// A provider may create a server before it has an address (DigitalOcean:
// a droplet has none until it is active). The server is then recorded in
// cloud_init without IPs, and the provider is asked once, by a Get, when
// the server has phoned home, just before the injection: the addresses
// are recorded then (Record.IPv4, IPv6). There is no polling. A provider
// that gives the addresses at create (Hetzner) costs no Get.
//
// With Config.CallbackCheckSource, the callback.Handler cannot compare a
// phone_home's client address with a server address it does not know yet,
// and accepts it; the Provisioner keeps that client address and compares it
// with the address the provider reports before it injects. A phone_home
// from another address gets nothing: the attempt fails like a host key
// mismatch (below), and the retry creates a new server. The client address
// is kept in memory only: when the replica that received the phone_home
// dies before injecting, the one that takes over injects without that
// comparison, which costs no safety, only the early refusal: the SSH
// connection goes to the address the provider reports, pinned to the posted
// host keys, so keys posted by anyone but the server fail the handshake
// before anything is sent. The check is not done in the handler, which must
// answer fast and must not spend provider API calls on requests it has not
// yet checked.
//
// # Reaching the servers
//
// The injection connects to each server directly, or through a bastion
// (Config.SSHJump: its address, user, host key check, and Config.Signer or
// an SSH agent's keys), one bastion connection per injection. The keys of
// an SSH agent can be offered to the servers too (Config.SSHAgent); the
// cloud-config authorizes only Config.Signer's.
//
// # Failures and retries
//
// A failure records failed, with Record.Error set to the phase ("create",
// "phone_home", "inject", "rotate") and the cause with every secret value of
// the tenant redacted (as given, and without its surrounding white space,
// since a value read from a file often ends in a newline that a bootstrap
// or a step drops), and Attempts incremented. A retry follows after
// Config.RetryBackoff, doubled per attempt up to Config.MaxBackoff, until
// Config.MaxAttempts attempts have failed. The pause is jittered ("equal
// jitter": between half and all of it), so that tenants that failed
// together, in a provider outage, do not retry together; the jitter comes
// from a hash of the tenant ID and the attempt count, so every replica
// computes the same pause and no due time is stored: Resume's check (from
// the failure's UpdatedAt) and the timer of the replica that recorded the
// failure agree. A retry goes back to:
//
//   - injecting_secrets when the server's host keys are recorded (the server
//     phoned home): the same server is injected again;
//   - creating otherwise. A server that exists but never phoned home, or
//     whose pin was dropped (below), is deleted first, then a new one is
//     created under the same name, with a new Record.CallbackNonce. Since
//     a provider may hold the name of a server it is deleting (Hetzner
//     does, for some seconds), the retry waits until the provider's Get
//     reports the old server gone (within Config.CreateTimeout) before it
//     creates: the wait costs no attempt.
//
// A host key mismatch at the first injection of a server (its SSH daemon
// presents another key than the one posted at phone_home), or a phone_home
// that did not come from the server's address (see Addresses that come
// later), fails the attempt without sending anything and drops the pin
// (HostKeys, Hostname, InstanceID are cleared): the retry, automatic or
// [Provisioner.Retry], deletes the server and creates a new one that phones
// home afresh. It never injects to the same pin again: the posted keys may
// be an attacker's, sent first with a token read off the tenant's server
// (its user-data, cloud-init's log), and the real server's own phone_home
// has been refused since. A rotation is different: its server was ready
// with the pinned keys, so a mismatch is a man in the middle or a server
// rebuilt behind the library's back; it is final, the server and the pin
// are kept (deleting a working tenant's server is the operator's call),
// and Retry retries the rotation.
//
// A capacity error (provider.ErrUnavailable) in one of the locations that
// Config.PlacementFunc lists moves the create to the next location at
// once, within the attempt, which is not spent unless the last location
// refuses too. A server that a dead replica's create brought up is adopted
// by name wherever it is (names are unique per provider account): the
// resumed create tries the first location again, which adopts it there;
// the record's Location is where the provider says the server is
// (provider.Server.Location), or the location of the request when the
// driver cannot tell, which for an adopted server may differ.
//
// An attempt that hangs fails too: Config.CreateTimeout bounds creating a
// server, Config.InjectTimeout an injection, so a dead server cannot hold a
// lease forever.
//
// Some failures are final and never retried, their Record.Error starting
// with "final: " (see [Error]): a host key that does not match the pinned
// one at a rotation (above) or the bastion's, an SSH authentication
// failure (a misconfiguration; retrying wrong keys gets addresses blocked),
// a cloud-config that does not build (for instance because a secret is in
// it, or it is over the provider's user-data limit), and a provider that
// refuses for good (invalid request, quota, a name that is not ours,
// credentials it refuses: provider.ErrUnauthorized). [Provisioner.Retry]
// retries any failed tenant by hand.
//
// # Replacing a server
//
// [Provisioner.Replace] gives a ready or failed tenant a new server
// without giving up the old one first. Its claim (ready or failed ->
// creating, under the lease) moves ServerID to Record.RetiringServerID and
// clears what described the old server (name, addresses, host keys,
// instance ID, type, location), draws a new CallbackNonce and resets
// Attempts. The new server is then created, phones home and is injected
// like a first one, under the same crash, lease and retry machinery;
// RetiringServerID is kept through every status, and every event of the
// replacement names it (Event.RetiringServer). Once the injection into the
// new server succeeded, the old server is deleted, still under the lease,
// and ready is recorded with RetiringServerID cleared: a ready record
// names one server. A crash between the two makes Resume take the
// injection over (it runs again: steps are idempotent) and delete again
// (deleting a deleted server succeeds). A deletion that keeps failing
// (within Config.CreateTimeout) fails the attempt in phase "retire"; its
// retry injects and deletes again.
//
// The new server is named apart from the old one, since providers adopt
// servers by name: Config.ServerNameFunc of the ID followed by '-' and 8
// hex digits of a hash of the nonce (shortened to 63 bytes). A create
// resumed after a crash keeps the nonce, so the name, and adopts the
// server the dead replica's create brought up; each further server of the
// replacement (a retry that deleted the failed attempt's server) gets a
// new nonce and a new name. A later first-generation create (a retry of a
// tenant that is not being replaced) uses the plain name again.
//
// The old server's phone_home, or any earlier server's, cannot move the
// new attempt: the record's instance ID is cleared, so the callback
// handler expects the new server's (Config.InstanceIDFunc, or the
// provider's InstanceIDer, of the new ServerID), and the token is to be
// bound to the nonce.
//
// What the tenant's users see: the service keeps running on the old
// server until the new one is injected, then runs on the new server, at
// another address (Record.IPv4, IPv6, which describe the new server from
// cloud_init on; the old one's is the provider's, Get RetiringServerID).
// The ready event (with RetiringServer set) is the moment to point DNS or
// a load balancer at the new address. Nothing on the old server's disk is
// carried over.
//
// A replacement that fails for good (attempts used up, or a final error)
// leaves the record failed with RetiringServerID set: the old server is
// never deleted while the tenant has no injected new one, and it keeps
// serving. (Going back to ready on the old server is not possible: its
// pinned host keys were replaced by the new server's at its phone_home.)
// Retry, or Replace again (which starts from a fresh server), takes the
// replacement up; Deprovision deletes both servers.
//
// # Drift
//
// Resume starts, every Config.DriftInterval (5 minutes by default;
// negative: never), a drift check in the background ([Provisioner.CheckDrift]):
// the servers of the ready tenants are compared with what the provider
// reports. With a provider.Lister, one List of the servers carrying this
// control plane's label (one call per page: 20 calls for 1,000 servers on
// Hetzner) is compared by server ID, and the servers it left out are
// looked up (Get), at most Config.DriftBatch per check, to confirm they
// are gone (a server created before LabelControlPlane existed is found so,
// at the cost of a Get per check). Without one, a check looks up
// DriftBatch tenants' servers, the next ones at the next check. A server
// that is gone, or powered off (provider status "off"), is reported:
// Record.Drift says what was seen and DriftAt when (first seen), an Event
// with Drift set is emitted and a warning logged, once; when the server is
// seen fine again, Drift is cleared (Event.DriftCleared). With
// Config.ReplaceOnDrift, a tenant whose server is gone is replaced
// (Replace); one powered off is only reported (it may come back with its
// data).
//
// With Config.ProbeSteps, Resume also starts a probe pass every
// Config.ProbeInterval ([Provisioner.Probe]): the steps (e.g.
// inject.CheckActive) run over SSH on each ready tenant's server, pinned
// to its recorded host keys, at most Config.ProbeConcurrency at once; a
// probe that fails sets Drift to "probe: " and the redacted error, one
// that passes clears it. A failing probe is reported, never replaced
// automatically: a new server does not mend a service's own fault (call
// Replace from Config.OnEvent to decide otherwise). Every ready transition
// clears Drift. Each replica checks and probes on its own.
//
// # Orphans
//
// Every server carries two labels: LabelTenant (the tenant ID) and
// LabelControlPlane (Config.ControlPlane, "default" unless set; the same
// on every replica of a control plane, different for control planes, or
// environments, that share a provider account). [Provisioner.Sweep]
// lists the servers of its control plane (provider.Lister) and deletes
// those no live record owns (no record, a deleted record, or a record
// naming other servers), once older than Config.SweepGrace (an hour by
// default; a server of unknown age is never deleted), unless dryRun; it
// returns what it found and did. Another control plane's servers, and
// servers the driver did not create, are never listed, so never touched.
// A create under way (a server accepted by the provider but not yet
// recorded) is owned by its record through the name its create uses.
//
// # Deleted records
//
// A deleted record is kept so that its ID cannot be provisioned again
// (ErrDeleted). With Config.DeletedRetention, Resume removes deleted
// records last written longer ago than that (store.Purge, at most
// store.PurgeLimit per pass), never one whose servers are not yet
// deleted; after that, the ID is free again. Without it (the default),
// deleted records are kept for ever.
//
// # Credentials
//
// [Provisioner.Run] first checks the provider's credentials, when the
// provider can (provider.CredentialChecker, see
// [Provisioner.CheckProvider]): refused credentials make Run return at
// once with an error wrapping provider.ErrUnauthorized, before any work, so
// a bad token is an error at start rather than a failure per tenant. New
// does no I/O; call CheckProvider yourself when you do not use Run.
//
// # No password logins
//
// Every user-data the Provisioner renders turns sshd's password
// authentication off (ssh_pwauth: false) and locks root's password as the
// first runcmd command (passwd -l root), after whatever the provider's
// own vendor data set: Hetzner, for one, generates a root password for a
// server created without an SSH key (set hetzner.Options.SSHKeys so that
// it does not). Key logins, the injection's included, are unaffected. A
// bootstrap that sets ssh_pwauth: true is a configuration error.
//
// # Shutdown
//
// [Provisioner.Shutdown] stops taking work and waits for the work in
// flight; when its context ends it cancels that work, which releases its
// leases so another replica takes over at once. A callback that arrives
// after Shutdown is answered (the record moves to injecting_secrets) and
// left to the other replicas' Resume.
//
// # Boot progress
//
// With Config.BootProgress, every tenant's cloud-config gets cloud-init's
// reporting webhook (a reporter named ReporterName) pointing at Handler's
// mount with "event=1" and the token of the tenant's current server
// (EventsURL: the phone_home URL's authentication, bound to
// Record.CallbackNonce). cloud-init then posts one JSON event each time a
// stage or a config module starts or finishes, and each accepted event is
// reported as an Event with Boot set (a BootProgress: stage, module,
// start or finish, result, cloud-init's description, the server's time,
// and an Activity such as "installing packages", "running runcmd",
// "phoning home" for the modules worth showing, see BootActivity), so that
// an operator sees what a server is doing while it boots:
//
//	tenant: boot modules-final/config-package-update-upgrade-install started (installing packages)
//	tenant: boot modules-final/config-scripts-user finished FAIL (running runcmd)
//
// A module that fails is seen at once, before phone_home, and logged at
// Warn ("boot step did not succeed", with the tenant, the step and its
// activity): the earliest sign that the bootstrap failed. The tenant fails
// later, as without BootProgress, when the injection finds cloud-init in
// error. Events are progress only: they never change the record, and
// Wait, Resume and the lifecycle do not depend on them. What the handler
// refuses (a bad, forged, oversized or another server's event, or one for
// a tenant that is ready, failed or deleted) is answered like a bad
// phone_home and reported nowhere; the end of the final stage, which
// cloud-init posts right after phone_home, arrives while the secrets are
// injected and is taken (see callback, Boot events). Events come from the
// tenant's server: show them as what that server says.
//
// What it costs. Debian 12's cloud-init 22.4.2 posts the events of three
// stages (init-network, modules-config, modules-final; init-local's come
// before it has read the user-data): 65 in one boot of a cloud-config with
// users, runcmd and phone_home, 71 with write_files and packages (as
// Rachel8's), measured on provider/nspawn. It posts them one at a time
// from a worker thread, each waiting for its answer, and waits for the
// queue at the end of each stage, so a slow control plane slows every
// boot (by at most three 5-second timeouts per stage: cloud-init then
// drops the stage's other events, and the boot goes on). The handler
// answers each after the token check and one store read, no write:
// BenchmarkBootEvent, in process, measures an event at about a third of
// the phone_home every boot costs anyway on SQLite (30 to 50 µs against
// 110 to 150 µs on a shared 2-core machine), and about as much as it on
// the memory store (12 to 20 µs), so a boot's 71 events cost the handler
// some 20 phone_homes' worth, 2 to 4 ms on SQLite; a fleet of N tenants
// booting at once is 71·N requests. The user-data grows by about 270 bytes (the
// webhook and its URL; Rachel8's still fits in 32 KiB with a large
// margin). Off by default for these reasons: turn it on where someone
// watches servers boot.
//
// # Several replicas
//
// Replicas share one store (store/postgres), one Config.CallbackKey and one
// Config.CallbackBase behind a load balancer; each has its own
// Config.Replica name. A callback can reach any of them.
//
// # The callback
//
// Config.CallbackBase must be https, unless its host is loopback (the
// simulated servers of provider/fake) or Config.AllowInsecureCallback is
// set: the phone_home request carries the host keys that the injection
// pins. The callback.Handler's checks are set through Config.
//
// Config.InstanceIDFunc (callback.Handler.InstanceIDFunc) returns the
// cloud-init instance ID the tenant's server posts, so that a callback
// from an earlier server of the tenant, or a replayed one, is refused. It
// depends on the provider, and a provider that knows it
// (provider.InstanceIDer) gives it by default: without InstanceIDFunc, the
// check is then on, with
//
//	func(r store.Record) string { return ip.InstanceID(r.ServerID) } // "" without a ServerID
//
// Every driver of this module knows it (hetzner: the server ID;
// digitalocean: the droplet ID; nspawn: "nspawn-" + the ID; fake: "i-" +
// the ID). Set InstanceIDFunc only for a provider of your own that does
// not implement provider.InstanceIDer, e.g.
//
//	cfg.InstanceIDFunc = func(r store.Record) string { return r.ServerID }
//
// Each new server of a tenant gets a new Record.CallbackNonce (a new
// record, a retry that deleted the failed attempt's server, and a
// replacement), to bind
// the phone_home token to that server, so that a token read off an earlier
// server of the tenant is refused: the token carries the nonce and its
// MAC, and the callback answers 401 to a token whose nonce is not the
// record's (see callback.Handler.AttemptURL). A create resumed after a
// crash, which adopts the server the dead replica's create brought up, keeps the nonce:
// that server's user-data holds the token of that nonce.
//
// Config.CallbackCheckSource (callback.Handler.CheckSource) requires the
// callback to come from the server's own address; with a load balancer in
// front, name it in Config.CallbackTrustedProxies so that its
// X-Forwarded-For is used.
//
// # Observability
//
// The Provisioner reports OpenTelemetry metrics and spans through
// Config.MeterProvider and Config.TracerProvider, or, when they are nil,
// the global providers (otel.GetMeterProvider, otel.GetTracerProvider),
// which record nothing until the program installs an SDK. Hatchery
// depends on the OpenTelemetry API only; the SDK and the exporter
// (Prometheus, OTLP) are the program's. The instrumentation scope of both
// is the package's import path, github.com/hatchery-dev/hatchery/provision.
// Without an SDK the instrumentation costs little: a store call checks
// its context for a span (a few tens of nanoseconds; the store and
// provider calls make spans only under a span), a callback request starts
// the global no-op tracer's span (a few small allocations) and counts its
// outcome with attributes built once. BenchmarkTelemetryOverhead measures
// the callback and a store update with it and without it, alternately, in
// one run: within a few percent on the memory store, within noise on
// SQLite.
//
// Metrics (names and units after OpenTelemetry's conventions). No
// attribute is ever a tenant's or a server's ID or name: every attribute
// takes a few fixed values.
//
//	hatchery.tenants                        gauge      {tenant}      hatchery.tenant.status
//	hatchery.transitions                    counter    {transition}  hatchery.transition.from, hatchery.transition.to
//	hatchery.provision.duration             histogram  s             (none)
//	hatchery.phase.duration                 histogram  s             hatchery.phase, hatchery.outcome, error.type
//	hatchery.attempts                       counter    {attempt}     hatchery.phase
//	hatchery.failures                       counter    {failure}     hatchery.phase, error.type, hatchery.failure.final
//	hatchery.inject.step.duration           histogram  s             hatchery.phase, hatchery.step.index, hatchery.outcome
//	hatchery.callback.requests              counter    {request}     hatchery.callback.endpoint, hatchery.callback.outcome
//	hatchery.provider.calls                 counter    {call}        hatchery.provider.operation, hatchery.provider.outcome
//	hatchery.provider.call.duration         histogram  s             hatchery.provider.operation, hatchery.provider.outcome
//	hatchery.provider.rate_limit.remaining  gauge      {request}     (none)
//
// What they measure:
//
//   - hatchery.tenants counts the store's records by status (all seven
//     statuses, 0 included): with a store.Counter (every driver of this
//     module: one COUNT ... GROUP BY on the status index, reading no
//     record), at most every 5 seconds whatever the collection rate; with
//     another store, from a List of every record, at most once a minute.
//     Every replica reports the whole store: aggregate replicas with max or
//     last, not sum.
//   - hatchery.transitions counts the status changes this process made,
//     the callback's included (from cloud_init, or creating when a server
//     phoned home before its creation was recorded); "none" is the
//     record's creation (to pending).
//   - hatchery.provision.duration is the time from a tenant's record
//     creation (pending) to ready, by the store's clock, retries included,
//     recorded at the ready write of a first provisioning: not of a
//     rotation nor of a replacement, nor of an injection that Resume took
//     over from a dead replica (a rotation's looks the same).
//   - hatchery.phase.duration times one run of a phase: create (deleting a
//     failed attempt's server, the bootstrap, the provider's Create, until
//     cloud_init is recorded), phone_home (the time the record spent in
//     cloud_init until the phone_home came: the server's boot, by the
//     store's clock, recorded by the replica that received it), inject and
//     rotate (the SSH connection, cloud-init's wait, the steps, until
//     ready), retire (deleting a replaced server). hatchery.outcome is ok,
//     failed (the failure was recorded, or the store failed to record the
//     end) or stopped (the lease was lost, the tenant moved on, the work
//     was cancelled); error.type says why when not ok.
//   - hatchery.attempts counts the runs of create, inject and rotate;
//     hatchery.failures the failures recorded (the tenant went to failed),
//     in every phase, with hatchery.failure.final true when no retry
//     follows for the reason itself (see Error.Final; a tenant whose
//     attempts are used up is not final by this attribute).
//   - hatchery.inject.step.duration times each step of an injection or a
//     rotation; hatchery.step.index is the step's index (0 is the
//     cloud-init wait, 1 the first of StepsFunc's steps): bounded by the
//     recipe, never a name; hatchery.outcome is ok or failed.
//   - hatchery.callback.requests counts the callback handler's requests:
//     hatchery.callback.endpoint phone_home or event, and
//     hatchery.callback.outcome one of callback.Outcomes (transitioned,
//     repeat, bad_token for a forged or mistyped URL, stale_token for an
//     earlier server's, conflict, different_data, wrong_instance,
//     bad_body, too_large, bad_content_type, bad_source, bad_method,
//     bad_id, not_found, store_error, misconfigured, event, late_event).
//   - hatchery.provider.calls and .call.duration count and time the calls
//     to Config.Provider: hatchery.provider.operation create, get, delete,
//     list or check_credentials, hatchery.provider.outcome ok or the
//     error's kind (below; a get of a server that is gone is
//     provider_not_found, which waiting for a deletion expects).
//   - hatchery.provider.rate_limit.remaining is the API requests the
//     provider's rate-limit budget has left, by its last answer, for a
//     provider that tells (a method RateLimitRemaining() (int, bool):
//     provider/hetzner, provider/digitalocean), once it knows.
//
// error.type is one of: timeout, canceled, lease_lost, host_key (the
// server's SSH host key is not the one posted at phone_home, or the
// phone_home came from elsewhere), auth (SSH authentication), jump_host
// (the bastion), secret_in_command, cloud_init (cloud-init's wait, step
// 0, failed: the bootstrap failed), step (one of StepsFunc's steps
// failed), network, config (ErrConfig, inject.ErrInvalid), cloud_config
// (the cloud-config does not build, a secret in it or too large),
// secrets (Config.Secrets failed), provider_quota, provider_unavailable,
// provider_rate_limited, provider_conflict, provider_invalid,
// provider_not_found, unauthorized (the provider refuses the
// credentials), store, other.
//
// Spans. A tenant's spans carry hatchery.tenant.id (spans are per tenant;
// metrics never are); no span holds a secret: a failure's status is its
// redacted message, as Record.Error holds it.
//
//   - One per call of the API, a child of the caller's span:
//     hatchery.Provision, hatchery.Rotate, hatchery.Replace,
//     hatchery.Retry, hatchery.Deprovision, hatchery.CheckDrift,
//     hatchery.Probe, hatchery.Sweep (Check and Resume make none).
//   - One per run of a phase: hatchery.create, hatchery.inject,
//     hatchery.rotate, hatchery.retire, with hatchery.phase,
//     hatchery.attempt, hatchery.server.id, hatchery.replacement (true
//     for a Replace), hatchery.outcome and error.type. A create or a
//     rotation is a child of the call's span; an injection is a child of
//     its phone_home's span (or of the create, when the server phoned
//     home before its creation was recorded); a retire is a child of the
//     injection. Work that Resume or a retry timer starts has no parent.
//   - hatchery.phone_home and hatchery.boot_event, one per request to
//     Handler: a server span, or an internal child of the span an HTTP
//     instrumentation (otelhttp) put in the request's context, with
//     hatchery.callback.outcome. A phone_home that moves the tenant on
//     links to the span of the create of its server, when this process
//     created it (below).
//   - Under those: hatchery.provider.create, .get, .delete, .list,
//     .check_credentials (client spans, with hatchery.server.name and
//     .id and hatchery.provider.outcome); hatchery.store.create, .get,
//     .update, .list, .purge (client spans; hatchery.store.aborted marks
//     an update that the Provisioner's own check aborted, a lost race
//     rather than a store failure); hatchery.ssh.connect (server.address,
//     hatchery.ssh.jump), and hatchery.ssh.session, one per SSH run (the
//     cloud-init wait, then the steps), with a hatchery.inject.step child
//     per step (hatchery.step.index, hatchery.step.name as inject reports
//     it, redacted). The store and the provider are called through
//     wrappers the Provisioner sets at New, so no driver depends on
//     OpenTelemetry; a store or provider call outside any span (lease
//     renewals under no work span, Resume's reads) makes no span.
//
// The link from a phone_home to its create: the create and the callback
// are two traces (cloud-init's request carries no trace context, and
// putting one in the phone_home URL would put it in the user-data). The
// replica that creates a server keeps the create span's context in
// memory, by tenant, until the phone_home comes (or Resume sees the
// tenant settled); the replica that receives the phone_home adds the link
// when it is the one that kept it. Behind a load balancer with several
// replicas the link is best effort: a phone_home that reaches another
// replica has none, and the injection's trace starts at the phone_home.
// Nothing is kept without an SDK that samples the create.
//
// Logs. Every log record is written with the context of the work it
// describes (the ...Context methods of slog; inject's and the callback
// handler's too), so a trace-aware slog handler (otelslog) adds the span's
// trace and span IDs.
//
// # Health
//
// [Provisioner.Check] is for a readiness endpoint: nil when the store
// answers (store.Pinger, else a Get of an ID no tenant has), Run's loop is
// alive (once Run has been started: it has not returned, and it made
// progress within RunStallFactor ResumeIntervals) and the provider
// accepts the credentials (CheckProvider's last result, Run's first
// included, reused for ProviderCheckEvery so that probes cost no API
// call). Its error joins one error per failing part, wrapping
// ErrStoreUnhealthy, ErrRunStopped or ErrProviderUnhealthy (and
// provider.ErrUnauthorized for refused credentials), so the endpoint can
// say which part failed; after Shutdown it is ErrClosed. A provider that
// cannot be reached fails Check too; an endpoint may tolerate it, since
// the callbacks and injections do not need the provider's API.
package provision
