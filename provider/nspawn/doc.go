// Package nspawn is a provider.Provider whose servers are real Debian
// systems on the local Linux machine, booted with `systemd-nspawn --boot`:
// systemd as PID 1, cloud-init reading the request's user-data unchanged,
// OpenSSH's sshd, apt against the same Debian mirror as the host. Nothing
// is simulated: users, write_files, apt sources, packages, runcmd and
// phone_home are run by cloud-init itself. It is the referee for what
// happens on a server: a recipe tested here meets real cloud-init and real
// systemd before a cloud bill does. Where provider/fake and nspawn
// disagree, nspawn is right.
//
// # Requirements
//
// Linux, root (CAP_SYS_ADMIN: overlay mounts, cgroups, containers),
// systemd-nspawn and debootstrap:
//
//	apt-get install --no-install-recommends systemd-container debootstrap
//
// (--no-install-recommends: the recommended libnss-mymachines edits
// /etc/nsswitch.conf.) A cgroup v2 hierarchy must be mounted: a pure v2
// host or a hybrid one. New fails with an error wrapping ErrRequirements
// that names what is missing and how to install it; CheckCredentials
// checks the same again.
//
// # What a server costs
//
// Measured with the benchmarks in bench_test.go on a 2-core AMD EPYC VM
// (Debian bookworm, cgroup v1 hybrid, no systemd on the host) that other
// test runs shared (load average 7 to 11), bookworm servers:
//
//   - the image, once: 104 to 128 s to build with the packages already
//     downloaded, 110 to 190 s with the download (63 MB from
//     deb.debian.org; dpkg's work dominates); 327 MB on disk;
//   - Create: 26 to 44 ms, until the container's init runs;
//   - Create to cloud-init's phone_home (a cloud-config with a user, a
//     file, a runcmd and phone_home with the host keys): 2.8 s for a
//     server alone, 5.0 s until the last of three created at once (4.6 s
//     each on average). Generating the four SSH host keys takes 1.9 s of
//     it, as on a cloud;
//   - memory: 17.6 MB per idle server (the proportional set size of
//     every process of the server, systemd-nspawn included, three servers
//     running).
//
// # The image
//
// The image of a suite is built on first use (or by Prepare) with
// debootstrap's minbase variant plus systemd, systemd-sysv, dbus,
// libpam-systemd (as on cloud images, an SSH login is a logind session
// with a user manager, not a process of ssh.service), cloud-init,
// openssh-server, sudo, locales, python3-cffi-backend (without it
// cloud-init's python3-cryptography fails to configure under
// debootstrap), ca-certificates, iproute2 and Options.Packages, and then
// made fit for cloud-init: the en_US.UTF-8 locale generated (cloud-init's
// locale module fails without it), a cloud.cfg.d file with the NoCloud
// datasource, the network left alone (servers share the host's) and
// manage_etc_hosts (sudo says "unable to resolve host" without), no SSH
// host keys (each server's cloud-init makes its own), an empty machine-id,
// and apt sources for the suite, its updates and its security updates
// from Options.Mirror and Options.SecurityMirror.
//
// Images are cached in Options.CacheDir under a name that hashes the
// suite, the mirrors, the package list and the build recipe, with the
// downloaded packages kept for the next build; concurrent builders, in any
// process, wait on a file lock instead of building twice. The
// environment variable HATCHERY_NSPAWN_CACHE (CacheEnv) names the cache
// when Options.CacheDir is empty, so the test packages of a CI run share
// one image. Remove the directory to reclaim the space.
//
// Suites: bookworm (the default; cloud-init 22.4, systemd 252) and trixie
// (cloud-init 25.1, systemd 257, closer to current cloud images). A
// request's Image selects one: "bookworm" or "debian-12", "trixie" or
// "debian-13"; ServerType and Location are ignored, every server being a
// container on this machine.
//
// # A server
//
// Create gives the server an ID (12 hex digits), a directory under
// Options.StateDir and an overlayfs over the read-only image, so it costs
// milliseconds before the boot; into the overlay's writable layer it
// writes, before the first boot:
//
//   - the NoCloud seed: /var/lib/cloud/seed/nocloud/user-data (the
//     request's user-data, byte for byte; NoCloud does not decode
//     base64, so do not use cloudinit.Config.Compress here) and meta-data
//     with instance-id (InstanceID) and local-hostname (the server's name);
//   - /etc/ssh/sshd_config.d/hatchery-nspawn.conf: ListenAddress
//     127.0.0.1:PORT;
//   - /etc/hostname.
//
// The server shares the host's network namespace: its sshd listens on
// 127.0.0.1 on a port of its own, and it reaches the host's 127.0.0.1
// (a phone_home URL such as http://127.0.0.1:PORT/... works) and
// whatever the host reaches (the Debian mirror). Any service a recipe
// starts listens on the host's network too: mind the ports. Server.IPv4 is
// 127.0.0.1 and Server.SSHAddr 127.0.0.1:PORT.
//
// # Not a sandbox
//
// Sharing the host's network namespace means that a server, and so the
// recipe it runs (its runcmd, its packages' scripts, the services it
// starts), reaches every service of the host that listens on the
// loopback address, as the host's own programs do: a PostgreSQL on
// 127.0.0.1:5432 with trust authentication, a Redis without a password,
// an admin interface bound to localhost, the other servers' sshd. Test
// only recipes you trust on a host with such services, or do not run such
// services on the host that runs the servers (a VM or CI runner of its
// own). The containers are for fidelity (real systemd, cloud-init and
// sshd), not for isolation.
//
// Ports are taken from 20000-29999, below Linux's default ephemeral range,
// so no socket bound to port 0 and no outgoing connection gets one. The
// Providers of every process record their ports in
// /run/hatchery-nspawn/ports under a lock, and a port is only given when
// binding it succeeds, so servers never share one. A program outside
// Hatchery can still bind a port in the second between that check and the
// server's sshd starting: sshd then fails to listen, and a connection to
// the port meets that program, whose host key is not the pinned one: the
// injection fails (ErrHostKey), it never talks to the wrong server.
//
// # Instance ID
//
// cloud-init reports the instance-id of the seed's meta-data, which is
// InstanceID(server ID) ("nspawn-" and the ID), and posts it at phone_home.
// Provider implements provider.InstanceIDer with it, and provision uses
// the provider's InstanceID when Config.InstanceIDFunc is nil: leave it
// nil, and a phone_home is bound to the tenant's own server.
//
// # Lifetime
//
// A server is systemd-nspawn and the container's process tree, in a
// session of its own and a cgroup of its own, in the unified hierarchy
// and, on a hybrid host, in the v1 name=systemd one (two containers
// started from one cgroup would share one payload cgroup and break each
// other's services). It is started with --register=no --keep-unit (with no
// systemd on the host there is no machined to register with nor a bus for
// a scope unit) from a mount namespace of its own, where the overlay is
// mounted: the mount is never seen on the host and vanishes with the
// container, even when the process that started it is killed.
//
// The server's record (name, labels, port, cgroups) is kept in its
// directory under Options.StateDir, so a new Provider on the same StateDir,
// in any process, sees (Get, List), adopts (Create of the name) and
// deletes servers an earlier one started: a cloud outlives its control
// plane. Status is "running" while the container has a process, "off" when
// it has none (it powered itself off, or the machine rebooted).
//
// # Trust in the directories
//
// The provider runs as root and acts on what its directories hold: it
// kills the processes of the cgroups a record names and removes those
// cgroups, and mounts the image of the cache as a server's system. So New
// refuses (an error wrapping ErrUnsafeDir, an *UnsafeDirError naming the
// directory and why) a StateDir or CacheDir that another user could
// change: one that is not owned by root, or is writable by its group or
// others, or lies below such a directory (a directory writable by all
// with the sticky bit, as /tmp, is allowed above it, not as it), or is
// reached through another user's symbolic link. Missing directories are
// made 0700. Use a directory of root's (DefaultStateDir), or one made for
// the run (t.TempDir(), os.MkdirTemp); not a fixed name under /tmp or
// /var/tmp, which anyone may make first (New then refuses it).
//
// A record is also checked each time it is read: its machine is
// "hatchery-" and its ID, its cgroups are cgroups of that name in this
// host's cgroup hierarchies (one per hierarchy), its image is one of
// the cache's images of its suite, and its port is in the servers'
// range. A record that is not (it was not written by a Provider of this
// host, or was edited) is never acted on: Get and Delete return an error
// wrapping ErrUntrustedRecord, List and Create skip it with a warning in
// the log. Providers that share a StateDir must therefore share the
// CacheDir too. Records, consoles and locks are opened without following
// symbolic links.
//
// Delete sends SIGTERM to systemd-nspawn, once (a second one makes it
// kill the container at once), which asks the container's systemd to halt:
// a clean shutdown, about 0.2 s. A request that arrives before systemd
// handles it is lost, so it is repeated every second, as SIGRTMIN+3
// straight to the container's init. What is left after
// Options.StopTimeout is killed through the cgroups (cgroup.kill): the
// container's first, so that nspawn ends on its own and cleans up after
// itself, then anything left. It never sends SIGKILL to nspawn alone,
// which would orphan the container. Then it removes the cgroups, the
// port's record and the directory: no mount, cgroup, port or process is
// left. Close deletes every server this
// Provider started, unless Options.Keep. Without Keep the servers are also
// tied to the process: they get SIGTERM (a clean poweroff) when it dies
// (the parent-death signal, from a thread kept for that purpose), so a
// test binary killed by its timeout does not leave containers running.
//
// # What was tested
//
// The tests (real servers; they skip without root and the programs, and
// fail instead with HATCHERY_INTEGRATION=1, as in CI) ran on Debian
// bookworm hosts with a cgroup v1 hybrid hierarchy (v1 controllers, the
// unified hierarchy at /sys/fs/cgroup/unified) and no systemd, with
// bookworm and trixie servers.
//
// On a pure cgroup v2 host the servers' cgroups are made under the
// process's own cgroup in the unified hierarchy, and systemd-nspawn gives
// the container a unified hierarchy of its own. This was tested only in a
// simulation (TestPureCgroupV2): the test runs itself again in a mount
// namespace where /sys/fs/cgroup is the host's unified hierarchy alone, so
// the provider and systemd-nspawn see a pure v2 host; a bookworm server
// boots there, phones home, runs sshd. What the simulation lacks is the
// controllers (cpu, memory, ...), which stay bound to v1 on the test
// machine, so the container has none. On a real v2 host it is usually the
// same: a container gets the controllers its parent cgroup delegates, and
// the provider's own cgroup, which holds the provider's process, delegates
// none (cgroup v2's no-internal-processes rule); systemd in the container
// runs without them (no resource accounting or limits for its units). A
// real pure v2 host, and a host running systemd (where --keep-unit keeps
// the containers in the caller's unit), were not tested.
package nspawn
