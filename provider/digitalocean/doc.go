// Package digitalocean is the DigitalOcean driver of provider.Provider, on
// github.com/digitalocean/godo.
//
//	client, err := digitalocean.NewClient(os.Getenv("DIGITALOCEAN_TOKEN"))
//	if err != nil { ... }
//	p := digitalocean.New(client, digitalocean.Options{
//		Size: "s-1vcpu-2gb", Image: "ubuntu-24-04-x64", Region: "fra1",
//		SSHKeys: []string{"3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"},
//	})
//	if err := p.Init(ctx); err != nil { ... } // optional: fail fast on bad options, token or keys
//	srv, err := p.Create(ctx, provider.CreateRequest{Name: "t-1234", UserData: userData})
//
// DigitalOcean differs from Hetzner in the ways that test the Provider
// abstraction: droplet names are not unique, a new droplet has no address
// until it is active, labels are tags with another alphabet, user_data may
// hold 64 KiB, and a droplet created without an SSH key gets a root
// password that DigitalOcean emails to the account owner. Options without
// an SSH key are therefore refused (Validate, Init, Create), before any
// request.
//
// # Idempotent creation without a uniqueness error
//
// Every droplet gets the tags ManagedTag and NameTag(name) (and its
// labels as tags, below). Creating a name of ours that exists adopts it,
// as the Provider contract says, although DigitalOcean would happily make
// a second droplet by the same name. So Create looks before it leaps:
//
//  1. GET /v2/droplets?name=NAME. A droplet by that name that carries
//     ManagedTag, NameTag(NAME) and every label of the request is ours:
//     Create returns it. One by that name that is not ours is
//     provider.ErrConflict. (The name filter, not the tag filter: the name
//     is part of the create itself, and a foreign droplet by the name is
//     seen.)
//  2. With none, POST /v2/droplets, and return the answer.
//  3. When the POST fails in a way that may have made a droplet anyway (no
//     answer, a timeout, a 5xx: an answer lost after the droplet was
//     made), the POST is never simply sent again, neither by Create nor by
//     the Transport nor by godo (NewClient and New refuse godo's retrying
//     client). Create waits Options.LookupDelay (5 s), looks the name up
//     again and adopts what the lost request made. Only when the lookup
//     finds nothing does it POST once more, and then looks once more,
//     after the same delay, for a droplet the first request made late.
//  4. Whenever a lookup finds several droplets of ours by the name, Create
//     keeps the one with the lowest ID and deletes the others before it
//     returns. DigitalOcean numbers droplets in the order it creates them,
//     so the lowest ID is the oldest: the one an earlier lookup could have
//     seen and returned, hence the one a caller may have recorded. Every
//     process applies the same rule, so two of them converge on the same
//     droplet. When a duplicate cannot be deleted yet (DigitalOcean refuses
//     to delete a droplet busy with its creation: "pending event"), Create
//     fails and the next Create of the name deletes it.
//
// Two Creates of one name in one process never overlap (a lock per name).
// Across processes, provision's lease keeps one replica creating a tenant,
// and a replica that takes over after a crash looks the name up (step 1).
// What remains is a create request that DigitalOcean carries out only
// after Create gave up on it and after every lookup that followed (two
// LookupDelays after its answer was lost): that droplet is a duplicate
// until the next Create of the name deletes it (step 4), or an orphan
// sweep (List by ManagedTag, against the store) does.
//
// # API requests
//
// DigitalOcean allows 5,000 requests an hour per token, and 250 a minute.
//
//   - Create: 2 (lookup, create) when all goes well; 1 to adopt a droplet
//     of ours (a caller that crashed between Create and recording it); 3
//     when the answer to the create was lost after the droplet was made
//     (lookup, create, lookup); 5 when a failed create made nothing
//     (lookup, create, lookup, create, lookup); one more per duplicate
//     deleted. It never waits for the droplet to become active.
//   - Get, Delete, CheckCredentials: 1. Init: 1 + one per SSH key.
//   - List: 1 per 200 droplets carrying the tag it lists by.
//
// Rate limiting, 429 retries and the Transport's own retries of a GET or
// DELETE add to these.
//
// # Addresses come later
//
// A droplet is "new" without networks until it is active, a minute or so
// later. Create returns it that way: status "new", no IPv4, no IPv6,
// Addr() empty. Get returns its public addresses once DigitalOcean reports
// them. Callers that need the address poll Get (sparingly: every request
// counts against the budget) or learn it otherwise, e.g. from the source
// of cloud-init's phone_home, checked against a Get.
//
// # Labels as tags
//
// DigitalOcean has no labels; tags hold letters, digits, ':', '-' and '_',
// up to 255 characters, and are case-insensitive (the first spelling of a
// tag in the account is canonical). A label key=value becomes the tag
// LabelTag(key, value) = "hatchery:label:" + escape(key) + ":" +
// escape(value), where escape keeps lowercase letters, digits and '-' and
// writes every other byte as '_' and two lowercase hex digits:
//
//	hatchery-tenant=0b6e…-…-c1      hatchery:label:hatchery-tenant:0b6e…-…-c1
//	hatchery.dev/tenant=t-1         hatchery:label:hatchery_2edev_2ftenant:t-1
//	env=Prod                        hatchery:label:env:_50rod
//	hatchery.dev/managed=true       hatchery:managed (ManagedTag)
//
// The mapping is deterministic, lowercase, and reversible (Labels decodes
// it: Server.Labels are the labels the droplet was created with, plus
// ManagedLabel). A label whose tag would be longer than 255 characters is
// refused with provider.ErrInvalid. List's selector uses the same
// mapping, so List(ctx, map[string]string{"hatchery-tenant": id}) lists
// by that tag. Options.Tags go on every droplet unchanged; tags starting
// with "hatchery:" are the driver's.
//
// # Rate limits and retries
//
// Transport (installed by NewClient) paces requests from DigitalOcean's
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers
// (godo.Response.Rate reads the same) and keeps at most 250 requests in
// any minute. It retries a 429 whatever the method, after Retry-After,
// RateLimit-Reset or a backoff, and a 5xx or network error of a GET,
// PUT or DELETE; never a POST otherwise. A wait that would outlast the
// context's deadline fails at once with a *RateLimitError (matching
// provider.ErrRateLimited).
//
// # Errors
//
// godo's ErrorResponse carries the status and DigitalOcean's message (not
// its error id), and becomes the provider error callers act on, the cause
// kept with %w: 401 and 403 are provider.ErrUnauthorized (final: the token
// is missing, revoked, or lacks a scope); 404 provider.ErrNotFound; 429
// provider.ErrRateLimited; a 422 about the droplet limit ("creating
// this/these droplet(s) will exceed your droplet limit")
// provider.ErrQuota; one saying a size or region is not available
// provider.ErrUnavailable; "pending event" (a droplet busy with its
// creation) is passed on as it is, since trying later works; any other 422
// or 400 provider.ErrInvalid. A 5xx is passed on as it is. Get of a
// missing droplet is provider.ErrNotFound; Delete of a missing droplet
// succeeds.
//
// A token needs the droplet (create, read, delete) and tag (create, read)
// scopes; Init and CheckCredentials read the account and the SSH keys.
//
// # Instance ID and user-data limit
//
// cloud-init's DigitalOcean datasource reports the droplet ID as the
// instance ID (metadata droplet_id, or the DMI system serial number):
// InstanceID returns its argument. MaxUserData is 64 KiB; Create refuses
// more before any request.
//
// # What never leaves the process
//
// Neither this package nor NewClient logs a request body (user_data) or
// the token; the Transport logs methods, paths and statuses only.
package digitalocean
