// Quickstart provisions a few tenants end to end with Hatchery, on nothing
// but Go:
//
//	go run ./examples/quickstart
//
// Each tenant gets a server whose cloud-config holds nothing secret. The
// server boots, cloud-init phones home to this process, and the callback
// records the server's host keys. The secrets then go over SSH, pinned to
// those keys, and the tenant's systemd service is started and checked.
// The recipe is examples/rachel8.
//
// # What runs where
//
//   - Store: SQLite (store/sqlite, pure Go) in a temporary directory, removed
//     at exit; -db PATH keeps it.
//   - Servers: provider/fake, simulated in-process. Each one has a real SSH
//     server on 127.0.0.1, a sandbox directory for its file system, and
//     stand-ins for systemctl, journalctl, sudo and cloud-init. It phones
//     home as cloud-init 22.4 does.
//   - Callback: provision's Handler, the real callback.Handler, served by an
//     http.Server on 127.0.0.1 under /api/provision/callback/.
//   - Secrets: fixed demo values, the same for every tenant and marked as
//     such. They never leave the simulated servers' sandboxes.
//
// # Output
//
// On a terminal, a status board redraws in place, with one row per tenant:
// its status, what its server's boot does while it boots (cloud-init's
// events, provision.Config.BootProgress: "boot: installing packages",
// "boot: running runcmd FAILED"), the injection step running, and the
// time taken. It fits the
// terminal, whose size it reads at every redraw (golang.org/x/term):
// lines are cut to the width, and when there are more tenants than rows,
// one line counts those left out ("... and 12 more: 7 ready, 3
// injecting_secrets, 2 creating"), the failed and busy ones keeping their
// rows. When stdout is not a terminal (a pipe, a file, /dev/null, CI), or
// TERM is dumb, each status change is printed on a line of its own, and
// so is each change of what a booting server does (about ten for
// Rachel8's 71 boot events) and each boot step that fails. Either way, a
// final table follows (tenant, status,
// server, time taken), with the reason for every tenant that is not ready.
// The exit status is 0 only when every tenant is ready (1 otherwise, 2 for
// bad flags or a machine that lacks what -provider nspawn needs). NO_COLOR turns the board's colours off. -v sends the
// provisioner's and the servers' logs (log/slog) to stderr, and shows
// plain lines instead of the board so the two do not mix.
//
// # Real local servers: -provider nspawn
//
// With -provider nspawn (Linux, root, systemd-nspawn and debootstrap:
// apt-get install --no-install-recommends systemd-container debootstrap),
// each tenant gets a real Debian server on this machine (provider/nspawn):
// systemd, cloud-init, apt and sshd run the recipe for real. The first run
// builds the image (debootstrap, about two minutes), later ones find it in
// the cache. The servers share this machine's network, so the callback on
// 127.0.0.1 needs no public URL, and they get the demo secrets. -image
// trixie selects Debian 13.
//
// What the recipe fetches at boot (Bun's and Claude's installers, the
// Rachel8 repository, the GitHub CLI's apt repository) the quickstart
// serves itself, from a local mirror on 127.0.0.1 over HTTPS with a CA of
// its own that the recipe installs (examples/internal/mirror: stand-in
// installers, the real git http-backend, an apt repository signed with a
// throwaway key; it needs git, dpkg-dev and gpg), and says so. -internet
// uses the real sources instead, on machines that reach them. The
// servers are deleted as the quickstart exits. Without root or the
// programs it says what is missing and exits 2.
//
//	go run ./examples/quickstart -provider nspawn   # as root
//
// # Real servers: Hetzner Cloud or DigitalOcean
//
// With -provider hetzner or -provider digitalocean, everything stays the
// same except the provider, which examples/internal/cloud builds from the
// same flags for both: -server-type, -image and -location (Hetzner's
// names, default cx22, ubuntu-24.04, fsn1; or DigitalOcean's size, image
// and region slugs, default s-1vcpu-2gb, ubuntu-24-04-x64, fra1) and
// -ssh-key (a Hetzner project key name, optional; the fingerprint of a
// DigitalOcean account key, required, since DigitalOcean emails a root
// password for a droplet created without one). The token comes from
// HCLOUD_TOKEN or DIGITALOCEAN_TOKEN. The servers must reach this
// process, so -callback-base is required: it is the public URL of the
// -listen address, which is usually a reverse proxy or a tunnel to it.
// The secrets come from the RACHEL8_* variables (see examples/rachel8),
// and they are checked before any server is created:
//
//	export HCLOUD_TOKEN=… RACHEL8_CLAUDE_ACCESS_TOKEN=… RACHEL8_CLAUDE_REFRESH_TOKEN=… \
//	       RACHEL8_CLAUDE_EXPIRES_AT=… RACHEL8_TELEGRAM_BOT_TOKEN=… RACHEL8_OWNER_TELEGRAM_USER_ID=…
//	go run ./examples/quickstart -provider hetzner -tenants 1 -listen :8080 \
//	    -callback-base https://cp.example.com
//
//	export DIGITALOCEAN_TOKEN=… RACHEL8_…=…
//	go run ./examples/quickstart -provider digitalocean -ssh-key aa:bb:…:ff -tenants 1 \
//	    -listen :8080 -callback-base https://cp.example.com
//
// Real servers cost money and keep running after the quickstart ends.
// -deprovision deletes them at the end. Otherwise, delete them in the
// console: on Hetzner every server carries the label hatchery-tenant, on
// DigitalOcean the tag hatchery:managed. Each run uses a fresh SSH key,
// so only the run that created a server can inject into it.
// examples/controlplane keeps its key across restarts. The cloud paths
// cannot be tested here (no account, no network), so they share all
// their code with the fake path except the provider, whose construction
// is tested against the fake cloud APIs (internal/hcloudtest,
// internal/dotest).
package main
