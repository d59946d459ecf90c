// Package hetzner is the Hetzner Cloud driver of provider.Provider, on
// github.com/hetznercloud/hcloud-go/v2.
//
//	client := hetzner.NewClient(os.Getenv("HCLOUD_TOKEN"))
//	p := hetzner.New(client, hetzner.Options{
//		ServerType: "cx22", Image: "ubuntu-24.04", Location: "fsn1",
//		SSHKeys: []string{"ops"},
//	})
//	if err := p.Init(ctx); err != nil { ... } // optional: fail fast on bad options or keys
//	srv, err := p.Create(ctx, provider.CreateRequest{Name: "t-1234", UserData: userData})
//
// A CreateRequest's ServerType, Location and Image, in Hetzner's names,
// override the Options' for that server (empty keeps the Options'); they
// are checked for Hetzner's name syntax before any request. The returned
// provider.Server says where the server ended up (ServerType, Location)
// and when Hetzner created it (Created), from the API's server object.
//
// # One API request per server
//
// Hetzner allows 3,600 requests per hour per project; every request spent
// polling is a server someone could not create. Create sends one
// POST /servers and returns the server as that answer describes it
// (addresses included) without waiting for the create action: readiness
// comes from cloud-init's phone_home. Get and Delete cost one request each
// and Delete does not wait either. SSH key names are resolved to IDs (hcloud-go
// sends keys by ID only) with one listing, on Init or on the first Create,
// and kept; a failed resolution is retried by the next call.
//
// List (provider.Lister) lets Hetzner filter by label selector
// (ManagedLabel=true and the selector's labels) and pages at Hetzner's
// largest page size, 50: listing 1,000 servers costs 20 requests, however
// many servers of others share the project. CheckCredentials
// (provider.CredentialChecker) costs one request.
//
// # Idempotent creation
//
// Every server gets the label ManagedLabel=true next to Options.Labels and
// the request's labels. When the name is already taken (uniqueness_error),
// because hcloud-go retried a POST whose answer was lost or because the
// caller crashed between creating a server and recording it, Create looks the
// name up once and adopts the server if it carries ManagedLabel and every
// label of the request (put the tenant in a request label to make adoption
// tenant-exact). A server by that name that is not ours is
// provider.ErrConflict.
//
// # Rate limits and retries
//
// hcloud-go retries on its own, in its retry handler, with the client's
// backoff (by default exponential from 1 s with jitter, up to 5 retries;
// hcloud.WithRetryOpts changes it): an hcloud error body with code
// rate_limit_exceeded, conflict, bad_gateway or timeout, a bare 502 or 504,
// and a network timeout (which is how a lost answer to a POST turns into a
// uniqueness_error). It reads the RateLimit headers into Response.Meta but
// never waits for them, and does not retry a 429 without an error body or a
// 503.
//
// Transport fills that gap below hcloud-go, as the client's
// http.RoundTripper (NewClient installs one): it keeps an estimate of the
// project's budget from RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset, lets requests through while budget is left (counting the
// ones in flight), and makes the rest wait until the budget allows them, so
// that a burst of creates does not become a storm of 429s. It retries a 503
// and a 429 without an hcloud error body after Retry-After, RateLimit-Reset
// or a backoff. Every wait ends at the request context's deadline: a wait
// that would outlast it fails at once with a *RateLimitError (matching
// provider.ErrRateLimited) or returns the answer as it is. Because each of
// hcloud-go's retries passes through the Transport too, its backoff only
// adds to what the pacer imposes: a short hcloud backoff is fine.
//
// # Errors
//
// hcloud error codes become the provider errors callers act on, the cause
// kept with %w: resource_limit_exceeded is provider.ErrQuota,
// resource_unavailable and placement_error provider.ErrUnavailable (the
// location has no capacity for the server type: another location may),
// uniqueness_error provider.ErrConflict (once adoption failed),
// rate_limit_exceeded and a bare 429 provider.ErrRateLimited, not_found
// provider.ErrNotFound, invalid_input provider.ErrInvalid, unauthorized (a
// missing or revoked token), forbidden (a read-only token) and a bare 401
// provider.ErrUnauthorized. hcloud-go v2.52 knows no other capacity code; a
// location that does not offer the server type at all is invalid_input
// ("unsupported location for server type"), a configuration error, so
// provider.ErrInvalid and not a reason to fall back. Neither hcloud-go nor
// the Transport retries unauthorized or forbidden: the first answer is
// final.
//
// Get of a missing server is provider.ErrNotFound, and so is Get of a
// server being deleted (Hetzner keeps it, status "deleting", until the
// delete action ends; List leaves it out too); Delete of a missing server
// succeeds.
//
// # Root password
//
// Hetzner generates a root password for a server created without an SSH
// key: the create answer carries it (root_password, "root password when no
// SSH keys have been specified" in the API reference). Whether Hetzner
// also emails it is not in the API reference; third-party Terraform
// modules say it does: count on it existing outside your control. This driver
// never logs, returns or keeps it, and warns once (Logger) when
// Options.SSHKeys is empty. Setting Options.SSHKeys (the control plane's
// key, registered in the project) makes Hetzner generate none, and is the
// recommended setup; the cloud-config provision adds (root's password
// locked, SSH password login off) covers servers created without one.
//
// # Instance ID
//
// cloud-init's Hetzner datasource reports the metadata service's
// instance-id, the numeric server ID (it also checks it against the SMBIOS
// serial): InstanceID returns the server ID unchanged.
//
// # What never leaves the process
//
// User-data over MaxUserData (32 KiB, also provider.UserDataLimiter) is
// refused before any request, wrapping provider.ErrInvalid. Neither this package nor NewClient enables
// hcloud-go's debug writer (hcloud.WithDebugWriter), which prints request
// bodies, user_data included, and the Transport logs methods, paths and
// statuses only.
package hetzner
