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
// The steps:
//
//   - [Provisioner.Provision] creates the record (pending), claims it
//     (creating), renders the tenant's cloud-config (Config.BootstrapFunc,
//     plus the phone_home URL with its token, the SSH user and key, and the
//     tenant's secret values listed as secrets, so a secret that slipped
//     into the bootstrap fails the build), creates the server under a name
//     derived from the tenant ID, and records cloud_init with the server's
//     ID and addresses.
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
// A lease ends by the clock, whatever the store does: the holder stops its
// work when LeaseUntil passes by its own clock unless a renewal was
// written before (each renewal must answer before then, so a store that
// hangs cannot stretch a lease), and another replica takes over only when
// LeaseUntil is Config.MaxClockSkew past by its clock. LeaseUntil is
// written by one replica and compared with the clock of another, so the
// replicas' clocks must agree within MaxClockSkew (NTP does, by far); the
// margin also covers the moment the holder's cancelled SSH commands take
// to stop.
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
// # Failures and retries
//
// A failure records failed, with Record.Error set to the phase ("create",
// "phone_home", "inject", "rotate") and the cause with every secret value of
// the tenant redacted, and Attempts incremented. A retry follows after
// Config.RetryBackoff, doubled per attempt, until Config.MaxAttempts
// attempts have failed. A retry goes back to:
//
//   - injecting_secrets when the server's host keys are recorded (the server
//     phoned home): the same server is injected again;
//   - creating otherwise. A server that exists but never phoned home is
//     deleted first, then a new one is created under the same name. Since
//     a provider may hold the name of a server it is deleting (Hetzner
//     does, for some seconds), the retry waits until the provider's Get
//     reports the old server gone (within Config.CreateTimeout) before it
//     creates: the wait costs no attempt.
//
// An attempt that hangs fails too: Config.CreateTimeout bounds creating a
// server, Config.InjectTimeout an injection, so a dead server cannot hold a
// lease forever.
//
// Some failures are final and never retried, their Record.Error starting
// with "final: " (see [Error]): a host key that does not match the pinned
// one (a man in the middle or a rebuilt server), an SSH authentication
// failure (a misconfiguration; retrying wrong keys gets addresses blocked),
// a cloud-config that does not build (for instance because a secret is in
// it), and a provider that refuses for good (invalid request, quota, a name
// that is not ours). [Provisioner.Retry] retries any failed tenant by hand.
//
// # Shutdown
//
// [Provisioner.Shutdown] stops taking work and waits for the work in
// flight; when its context ends it cancels that work, which releases its
// leases so another replica takes over at once. A callback that arrives
// after Shutdown is answered (the record moves to injecting_secrets) and
// left to the other replicas' Resume.
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
// depends on the provider: with provider/hetzner it is the numeric server
// ID, with provider/fake it is "i-" followed by the server ID:
//
//	// provider/hetzner
//	cfg.InstanceIDFunc = func(r store.Record) string { return r.ServerID }
//	// provider/fake
//	cfg.InstanceIDFunc = func(r store.Record) string { return "i-" + r.ServerID }
//
// Config.CallbackCheckSource (callback.Handler.CheckSource) requires the
// callback to come from the server's own address; with a load balancer in
// front, name it in Config.CallbackTrustedProxies so that its
// X-Forwarded-For is used.
package provision
