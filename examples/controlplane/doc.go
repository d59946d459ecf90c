// Controlplane is a small HTTP service that gives every tenant its own
// server with Hatchery. It is written the way a Go team would embed the
// library in a service they already have. The phone_home callback is one
// more route in the service's own http.ServeMux.
//
//	go run ./examples/controlplane
//	open http://127.0.0.1:8080/
//	curl -X POST http://127.0.0.1:8080/tenants/$(uuidgen | tr A-Z a-z)
//
// # API
//
//	POST   /tenants/{id}                  provision: 202 Accepted and the record (JSON)
//	GET    /tenants/{id}                  the record (404 when unknown)
//	GET    /tenants[?status=a,b]          {"tenants": [records]}, oldest first
//	POST   /tenants/{id}/retry            retry a failed tenant now
//	POST   /tenants/{id}/rotate           inject a ready tenant's secrets again, restart its service
//	POST   /tenants/{id}/replace          a new server for a ready or failed tenant
//	DELETE /tenants/{id}                  deprovision: the record, now deleted
//	POST   /sweep[?dry_run=0]             orphaned servers: a dry run unless dry_run=0 (JSON report)
//	GET    /                              the status page
//	GET    /healthz                       200 while the process serves
//	GET    /readyz                        200 when it can work (its store answers), else 503
//	GET    /metrics                       metrics, in Prometheus's text format
//	POST   /api/provision/callback/{id}   cloud-init's phone_home (provision's Handler)
//
// Tenant IDs are lowercase UUIDs. A record is the store's (provision
// redacts its error) with what this process knows besides: auto_retry (a
// failed tenant has attempts left and a failure that is not final, so it
// is retried without anyone asking), status_since (when the tenant entered
// its status, as this process saw it happen, else the record's last
// write), last_event (the last event of the tenant that this process saw,
// from provision's Config.OnEvent: "cloud_init → injecting_secrets",
// "step 1/10 wait for cloud-init: done", "drift: ..."; another replica's
// work shows in the record only, and a restart forgets it) and actions
// (those that apply to its status: retry and replace when failed, rotate
// and replace when ready, deprovision until deleted).
//
// Every action answers the record with what it did: {..., "action":
// "retry", "result": "retrying"}. The code says whether work goes on: 202
// Accepted when it does, in the background (GET the tenant, or watch the
// page), 200 when the action is over (the record says how it went: failed,
// with its error, when the attempt failed). Errors are {"error": "..."},
// with the record as "tenant" when the tenant's status is the problem:
//
//	400  the ID is not a lowercase UUID, or a query value is wrong
//	403  a cross-origin request (see below)
//	404  no such tenant; no such path (the ServeMux's own 404, in JSON too)
//	405  a method the path does not take (with the Allow header)
//	409  the tenant's status does not allow the action, or another replica
//	     is working on it
//	500  the store or the provisioner broke (the cause is in the log, not
//	     in the answer)
//	501  POST /sweep with a provider that cannot list its servers
//	502  POST /sweep when the provider's list failed
//	503  shutting down, or this replica's clock and the store's disagree;
//	     GET /readyz when not ready
//
// POST /tenants/{id} creates the tenant's record and server and answers
// once the server is created, when the record says cloud_init (202,
// "created"). A create that failed is 202 when it is retried
// automatically, 200 when it failed for good (a final error, such as the
// provider's quota): fix the cause, then retry. Provisioning a tenant that
// exists does nothing twice and answers its record (200, "exists: nothing
// done"), except that a failed tenant is 409, pointing at POST
// /tenants/{id}/retry, and a deleted one 409 (tenant IDs are not reused):
// a second POST is never a retry, so that a client that repeats its
// request cannot spend a tenant's attempts or skip its backoff.
//
// POST /tenants/{id}/retry retries a failed tenant now (provision.Retry),
// whatever its attempts and even after a final error: its server is
// injected again when it phoned home, else a new one is created. POST
// /tenants/{id}/rotate injects a ready tenant's current secrets again and
// restarts its service (provision.Rotate). Both answer once the tenant is
// claimed (202, "retrying", "rotating": the record says creating or
// injecting_secrets), or once the attempt is over if that came first
// (200). The work goes on after the answer; a shutdown ends it and leaves
// it to Resume. Retrying a tenant that is not failed, or rotating one that
// is not ready, is 409.
//
// POST /tenants/{id}/replace gives a ready or failed tenant a new server
// (provision.Replace) and answers 202 once it is created, with the record:
// retiring_server_id names the old server, which keeps serving until the
// new one is ready and is deleted then; the tenant's address changes to
// the new server's. A tenant in another status gets 409.
//
// DELETE /tenants/{id} records the tenant deleted and deletes its server
// (200, "deprovisioned"); when the server's deletion fails it is 202, and
// Resume deletes the server later. Deprovisioning a deleted tenant is 200
// ("already deprovisioned"), and deletes its server again if that had
// failed.
//
// POST /sweep lists the servers of this control plane that no live
// tenant owns (provision.Sweep): {"dry_run", "listed", "orphans": [{
// "server_id", "name", "tenant", "created", "reason", "deleted", "kept"}]}.
// It is a dry run, deleting nothing, unless the query says dry_run=0: look
// at the dry run's list first. Orphans younger than the grace period (an
// hour) are kept either way.
//
// The API has no authentication of its own. Keep -addr on loopback (the
// default), or put the service behind your own auth. Only
// /api/provision/callback/ needs to be reachable by the servers, and its
// requests carry an HMAC token per tenant. Cross-origin requests to the
// API are refused (net/http's CrossOriginProtection), so a web page on
// another site cannot provision through the operator's browser; and when
// it listens on loopback, the API and the page answer only requests for a
// loopback name (127.0.0.1, [::1], localhost; others get 421), so a page
// whose name is rebound to 127.0.0.1 (DNS rebinding) cannot either.
//
// # Health, metrics and the access log
//
// GET /healthz answers 200 as long as the process serves: a liveness
// probe. GET /readyz answers 200 when the service can do its work (the
// provisioner's own check when it has one, a Check method; else a ping of
// the store), and 503 when not, with the cause in the log: a readiness
// probe for a load balancer or Kubernetes.
//
// GET /metrics serves, in Prometheus's text format, what an OpenTelemetry
// MeterProvider (go.opentelemetry.io/otel/sdk/metric, read by the
// OpenTelemetry Prometheus exporter) collects: the HTTP server's request
// durations (http.server.request.duration, by method, route pattern and
// status: never a tenant ID), and the metrics of whatever instruments
// itself through OpenTelemetry's global MeterProvider, which the service
// sets; with them, the Go runtime's and the process's (go_*, process_*).
// The exporter is the example's dependency, not the library's.
//
// Every request is logged, one line at info level: method, path, the query
// (the values of status and dry_run; any other value, the phone_home
// token's included, as REDACTED), the route pattern, status, bytes,
// duration and the client's address.
//
// # Status page
//
// GET / is the operator's view, with no build step and no framework: a
// page rendered on the server with html/template, embedded in the binary,
// and a small script (page.js) that fetches /tenants every 2 seconds and
// redraws the rows that changed. Without JavaScript, a meta refresh
// reloads the page instead (and the buttons do nothing).
//
// At the top, the status counts and the buttons "Provision a new tenant"
// and "Find orphaned servers". The table lists the tenants newest first:
// the ID's first block (the whole ID in its tooltip; a click copies it),
// the status, the time spent in it and in total, the server, its IPv4
// address, the attempts, the creation time, the details (the error of a
// failed tenant and whether it is retried automatically, drift, a
// replacement under way, the last event, such as the injection's step),
// and the actions that the row's status allows: Retry, Rotate, Replace,
// Deprovision. Replace and Deprovision ask for a second click. An action's
// result shows in a line above the table. Every time on the page is the
// browser's local time, in one format (2026-01-02 15:04:05). The sweep
// runs a dry run first and lists what it found; deleting takes a click of
// its own, and lists the servers again.
//
// # Lifecycle of the process
//
// At start, the service opens the store and loads its keys. It serves, and
// runs provision's Run: Resume at once, then every -resume-interval. Resume
// picks up what a crashed process left: pending and creating records,
// injections, retries, phone_home deadlines and deletions. On SIGINT or
// SIGTERM it stops accepting requests and finishes those in flight
// (http.Server.Shutdown), then waits for the injections in flight
// (Provisioner.Shutdown), the retries and rotations started by requests
// included, all within -shutdown-timeout. Work cut short
// stays in the store for the next start, or for another replica.
//
// # State
//
// The store is SQLite at DIR/hatchery.db by default (-dir, -db), or
// PostgreSQL with -postgres DSN. DIR also holds the control plane's SSH
// key (id_ed25519) and the HMAC key of the phone_home URLs (callback.key).
// Both are created 0600 on first start and kept across restarts, because
// Resume must be able to log in to servers created earlier and check
// their tokens. Replicas sharing a PostgreSQL store must share both files.
//
// DIR is outside the working tree by default, in the user's state
// directory: $XDG_STATE_HOME/hatchery/controlplane, else
// ~/.local/state/hatchery/controlplane, on Linux and other Unix systems;
// ~/Library/Application Support/hatchery/controlplane on macOS;
// %LocalAppData%\hatchery\controlplane on Windows. Neither configuration
// (which is edited and copied between machines) nor cache (which may be
// deleted at any time) suits keys that are the only way into the servers.
// DIR and its missing parents are created 0700, the database file 0600.
// A key file that other users may read or write is refused, as ssh
// refuses such an identity file; a DIR open to them is warned about.
// Before this default, DIR was ./controlplane-data: when that directory
// exists and -dir is not given, the log says so (pass -dir
// controlplane-data to go on with its keys).
//
// # Providers and secrets
//
// The default provider is provider/fake: simulated servers in-process,
// with demo secrets (fixed values, not secrets). Simulated servers do not
// outlive the process. After a restart, their records still say ready,
// but the servers are gone.
//
// -provider hetzner uses Hetzner Cloud, -provider digitalocean
// DigitalOcean; both take the same flags as examples/quickstart, through
// examples/internal/cloud: the token from HCLOUD_TOKEN or
// DIGITALOCEAN_TOKEN, -server-type, -image and -location in the
// provider's own names, and -ssh-key (required on DigitalOcean: a key
// fingerprint, or DigitalOcean emails a root password). Real servers need
// -callback-base, the public URL where servers reach this service. Their
// secrets come from the RACHEL8_* variables (see examples/rachel8) unless
// -secrets demo. The recipe is examples/rachel8 with every provider. The
// cloud paths cannot be tested here, so they share everything with the
// fake path except the provider.
package main
