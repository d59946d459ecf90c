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
//	DELETE /tenants/{id}                  deprovision: the record, now deleted
//	POST   /tenants/{id}/replace          a new server for a ready or failed tenant: 202 and the record
//	POST   /sweep[?dry_run=0]             orphaned servers: a dry run unless dry_run=0 (JSON report)
//	GET    /                              the status page
//	POST   /api/provision/callback/{id}   cloud-init's phone_home (provision's Handler)
//
// Tenant IDs are lowercase UUIDs. POST answers once the server is
// created, when the record says cloud_init. Provisioning an existing tenant
// again answers its record and does nothing twice. A create that failed
// answers 202 too, with the record saying failed and why, because it is
// retried in the background. Errors are {"error": "..."}. Internal causes
// go to the log, not to the client.
//
// POST /tenants/{id}/replace gives a ready or failed tenant a new server
// (provision.Replace) and answers 202 once it is created, with the record:
// retiring_server_id names the old server, which keeps serving until the
// new one is ready and is deleted then; the tenant's address changes to
// the new server's. A tenant in another status gets 409.
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
// another site cannot provision through the operator's browser.
//
// # Status page
//
// GET / lists the tenants and their states. It is rendered on the server
// with html/template, embedded in the binary. A small script (page.js,
// no framework) fetches /tenants every 2 seconds and redraws the table in
// place, and a button provisions a new tenant. Without JavaScript, a meta
// refresh reloads the page every 2 seconds instead.
//
// # Lifecycle of the process
//
// At start, the service opens the store and loads its keys. It serves, and
// runs provision's Run: Resume at once, then every -resume-interval. Resume
// picks up what a crashed process left: pending and creating records,
// injections, retries, phone_home deadlines and deletions. On SIGINT or
// SIGTERM it stops accepting requests and finishes those in flight
// (http.Server.Shutdown), then waits for the injections in flight
// (Provisioner.Shutdown), all within -shutdown-timeout. Work cut short
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
