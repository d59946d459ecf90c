// Package fake is a provider.Provider whose servers are simulated in-process,
// for tests and the quickstart: no cloud account, no virtual machine.
//
// # What a simulated server is
//
// Create reads the user-data as cloud-config (cloudinit.Parse) and refuses a
// document that would give a dead server: one that does not parse, has no
// phone_home, or has no user with an SSH key. It then "boots" the server:
//
//   - a sandbox directory (one per server, under Options.Dir or a temp dir)
//     holding the server's file system: the users' home directories with
//     their .ssh/authorized_keys, the write_files of the cloud-config,
//     /etc/hostname and the SSH host key;
//   - an SSH server (gliderlabs/ssh) on 127.0.0.1 with its own ed25519 host
//     key, accepting, for each cloud-config user, the keys of its
//     ssh_authorized_keys, and exec requests only (no shell, no pty);
//   - a simulated boot: the config modules of Debian 12's cloud-init in
//     their order, each stage's events posted to the cloud-config's
//     reporting webhooks (see Boot events), and, after Options.BootDelay,
//     cloud-init's phone_home, posted exactly as cloud-init 22.4.2 posts it
//     (see below); then `cloud-init status` reports done.
//
// The cloud-config's packages, apt sources and runcmd are not run.
//
// # It is a simulation: files are real, the init system is not
//
// Every SSH exec command runs as `/bin/sh -c COMMAND`, as the OS user
// running the test, in the user's sandbox home, with a minimal environment
// (PATH, HOME, USER, LOGNAME, SHELL, LANG, TMPDIR, the last the sandbox's
// /tmp). Stdin, stdout, stderr and the exit status travel as with sshd;
// signals the client sends go to the command's process group; the command
// is killed when its connection ends or the server stops. Before it runs,
// the command text is checked and rewritten (see Keeping commands in the
// sandbox); stdin is passed through untouched, so file contents keep their
// server paths. Server.Path maps a server path to its real file. A bin
// directory first on PATH holds shell stand-ins (a command naming one by
// absolute path, such as /usr/bin/systemctl, gets the stand-in too):
//
//   - sudo: runs the rest as root when the caller's cloud-config sudo rule
//     has NOPASSWD, else fails like sudo -n ("a password is required");
//   - chown: checks user[:group] against root and the cloud-config users and
//     groups and that the files exist, and records the owner (Server.Owner)
//     without changing real ownership; like GNU chown it records the file
//     a symbolic link points to, or the link itself with -h (or -R without
//     -H or -L);
//   - mv: the real mv, after which recorded owners follow the files moved:
//     a temp file chowned and renamed over its target, as inject.WriteFile
//     does, leaves the target with that owner;
//   - systemctl: daemon-reload, enable, disable, start, stop, restart,
//     is-active, is-enabled, is-failed, status, over unit files in
//     /etc/systemd/system; state kept in files (Server.Unit). Units are
//     loaded on first use and reloaded by daemon-reload, enable and disable,
//     so a changed unit file keeps its old content until then, as with
//     systemd. ConditionPathExists= is honoured (a unit whose condition fails
//     is skipped and inactive, and start still exits 0). As systemd 252
//     does, some settings are checked when a unit is loaded, others when
//     its process starts: a WorkingDirectory= that is not an absolute path
//     (an unrendered placeholder such as __WORKING_DIR__) is a fatal error
//     (start fails: "bad unit file setting"), a ConditionPathExists= or
//     EnvironmentFile= that is not absolute is ignored with a warning; a
//     User= or Group= that does not exist (__USER__ included: the
//     cloud-config's users, Debian's system users and groups, numeric IDs
//     exist), a WorkingDirectory= that does not exist in the sandbox and an
//     ExecStart= program with a placeholder let start exit 0 and the unit
//     fail (status=217/USER, 216/GROUP, 200/CHDIR, 203/EXEC). A unit that
//     starts has one journal line from its process (named by
//     SyslogIdentifier=, else the program's base name), saying that the
//     fake does not run it. Managing units needs root: systemctl answers
//     "Access denied", as on an image without polkit;
//   - journalctl: -u UNIT -n N --no-pager prints the unit's simulated
//     journal; as on Debian, only root and members of adm or systemd-journal
//     see system units' messages (the others get "-- No entries --", and
//     journalctl's hint on stderr);
//   - cloud-init: status [--wait] [--long], as cloud-init 22.4.2 prints it
//     (an error's detail names the module as cloud.cfg does:
//     ('scripts-user', RuntimeError(...))).
//
// Nothing else is simulated: file permissions and ownership are the test
// user's, and commands such as id or whoami tell the truth.
//
// The stand-ins are written for speed as much as for fidelity (a fleet
// benchmark runs thousands of them): shell builtins only, the users and
// groups compiled into each stand-in at Create, no sed, grep, cat,
// dirname or cmp per call. On the paths inject takes, the only processes
// they start are the real mv and one date when a unit's journal is
// written (rm, readlink, tail and cat on rarer ones), so the lines one
// stand-in writes to the journal share a timestamp.
//
// Every command runs: none is answered in process. (inject.WaitCloudInit's
// wait once was, by its exact text; inject now wraps every step in a
// script of its own, and recognising that would tie the simulation to
// inject's internals for about a tenth of a tenant's child CPU time, see
// BenchmarkInject.)
//
// # Keeping commands in the sandbox
//
// The commands run as the test's OS user, which is root in CI, so the
// server keeps them off the real machine in up to three ways.
//
// Rewriting. Absolute paths under /home/, /root/, /etc/, /var/lib/, /opt/
// and /srv/ in the command text are rewritten into the sandbox where a
// path starts: after a space, quote, =, :, (, ;, |, &, <, >, `, { or a
// comma, or glued to a short option (-t/etc/x). ~NAME becomes NAME's
// sandbox home (~ and ~/ need nothing: HOME is the sandbox home, and the
// sudo stand-in sets the target's).
//
// Refusal. A command is not run, and exits with RefusedExit (126) and a
// "fake: refusing ... outside the sandbox" message on stderr, when it names
// at a path start an absolute path that is neither rewritten nor allowed
// (the allowed ones are /bin/, /usr/bin/, /sbin/, /usr/sbin/, the
// stand-ins' absolute paths, and /dev/null, /dev/zero, /dev/stdin,
// /dev/stdout, /dev/stderr, /dev/random, /dev/urandom; /tmp is not: use
// $TMPDIR), an absolute path with a .. component, or one built at run time
// (a / followed by $, ` or a backslash, as in /$f/passwd). So cd /,
// /usr/local/bin/x, /var/tmp/x and rm -rf /* are refused. A lone /, as
// in $((a / b)), is refused too; the URL of scheme://host/... is not a
// path. Words are found lexically, quotes and all, so a path inside an
// sh -c '...' argument is rewritten and checked like any other.
//
// A read-only mount namespace, where the machine allows it: on Linux with
// util-linux's unshare and nsenter and user namespaces permitted (as root
// or not), the provider sets up, when its first server runs its first
// command, a user and mount namespace in which every mount is remounted
// read-only, and /proc/sys is covered read-only (the base, one per
// Provider, ended by Close). Each server then makes, from the base, a
// mount namespace of its own in which only its sandbox directory is bound
// writable; the read-only flags are locked by a nested user namespace
// mapped back to the test's user, so even root there cannot remount them
// writable. Commands join the server's namespace with nsenter (one more
// exec per command; a server's namespace costs three processes and two
// mounts, the base a remount of every mount of the machine once: see
// BenchmarkExec, BenchmarkNamespaceSetup and BenchmarkInject).
// Server.Isolated reports whether a server has it; Options.NoNamespace
// turns it off. Where it cannot be set up, commands run with rewriting
// and refusal only (logged once, as a warning).
//
// What this gives: commands of the shapes inject builds, and the mistakes
// the checks list, stay in the sandbox with or without the namespace;
// with the namespace, a command cannot write a file or directory outside
// its sandbox (another server's included) through any path but /proc
// (below), however it builds the path.
//
// What it does not give. Rewriting and refusal read text: they are not a
// security boundary. Without the namespace, a relative path (cd .. or
// $HOME/.., which inject itself uses from a temp directory), a path built
// in a variable after its first component (/home/$x with x=../..), a
// symbolic link, a script read from stdin or from a file, or a program
// that writes where it likes can reach the real machine with the test
// user's rights. Even with the namespace: files outside the sandbox stay
// readable; device nodes stay writable where the user may write them
// (mounts being read-only does not cover devices; the checks refuse
// /dev/ paths but the allowed ones), and so do Unix sockets (a daemon
// listening on one still answers); /proc is not read-only, and through
// /proc/PID/root a deliberate command reaches the writable mounts of other
// processes it may trace (as root, most); the network, signals to other
// processes of the same user, and the system's other resources are
// shared. It is a guard against accidents in tests,
// not a sandbox for untrusted commands.
//
// # Phone home
//
// After BootDelay the server POSTs to the phone_home URL as Debian 12's
// cloud-init 22.4.2 does through python-requests: Content-Type
// application/x-www-form-urlencoded, User-Agent Cloud-Init/22.4.2,
// Accept-Encoding "gzip, deflate", Accept */*, Connection: keep-alive (on a
// connection of its own all the same: a new session per request), the
// fields of the configured post list in that list's order (a list without
// post means all of pub_key_dsa, pub_key_rsa, pub_key_ecdsa,
// pub_key_ed25519, instance_id, hostname, fqdn; an empty list sends a GET
// with no body). Key values are the .pub file's line with its trailing
// newline and a root@HOST comment (the cloud-config's hostname, else the
// server name). The server has an ed25519 host key, which its SSH server
// presents, and a DSA one, which it posts as pub_key_dsa as Debian 12 does
// (nothing speaks ssh-dss to it); it has no RSA or ECDSA key, posted as
// "N/A" (a real Debian 12 server posts both). hostname and fqdn are the
// server name (what Hetzner's datasource reports as local-hostname, which
// has no domain); instance_id is "i-" followed by the server ID. $INSTANCE_ID (or ${INSTANCE_ID}) in the
// URL is replaced, unencoded; any other $VAR makes cloud-init's module fail,
// so nothing is posted and cloud-init reports an error. Answers of 400 and
// above and transport errors are retried up to tries times (0 means 10),
// Options.PhoneHomeInterval apart; redirects are followed as net/http does
// (a 302 becomes a GET without the body, as with Python requests). There is
// no client timeout: the request ends when the server is deleted.
//
// # Boot events
//
// When the cloud-config has reporting webhooks ("reporting: {NAME: {type:
// webhook, endpoint: URL}}"), the boot posts to each the events that
// cloud-init 22.4.2 posts on Debian 12, as a provider/nspawn server posted
// them for the same cloud-config (the package's tests compare the two):
// from the init-network stage on (the earlier ones happen before cloud-init
// has read the user-data), activate-datasource, then for each config
// module that runs a start event ("running config-NAME with frequency
// F") and a finish event (SUCCESS, "config-NAME ran successfully"; FAIL,
// with the start's description, when it fails), then the stage's own
// finish (FAIL when one of its modules failed): 65 events for users,
// runcmd and phone_home, 71 with write_files and packages. A module runs
// when the cloud-config has a key that activates it (write_files, ca_certs,
// runcmd, packages, package_update, package_upgrade, phone_home) or always,
// as Debian's /etc/cloud/cloud.cfg lists them; those that only run on
// Ubuntu, or on keys the typed cloud-config has not, never do. They spread
// over BootDelay as a real boot's time does (installing packages takes
// about half of it), phone_home being posted as the phone-home module runs.
//
// Each event is a POST of the JSON of ReportingEvent.as_dict() as Python
// writes it (name, description, event_type, origin "cloudinit", timestamp
// in seconds as a float, result on a finish), with the headers of
// phone_home and no Content-Type, as cloud-init's WebHookHandler sends it:
// queued and posted one at a time by a worker of its own per webhook, each
// waiting for its answer, with the reporter's timeout (none when 0) and
// retries (a second apart). An answer of 400 or more, or a transport error,
// is a failed post, logged; at the end of each stage the boot waits for
// the queue, and once three posts in a row have failed the rest of the
// stage's queue is dropped. cloud-init's status is written before the last
// stage's own finish event. Server.EventPosts counts the requests.
//
// # Faults
//
// Options.Faults injects, per server name, the failures the reliability
// tests need: Create failing, phone_home never coming, phone_home from a
// different host key than SSH presents, the SSH connection cut after N exec
// sessions, every unit failing to stay active, and cloud-init reporting an
// error (runcmd failed: the scripts-user module fails, in the boot events
// and in `cloud-init status --long`). A phone_home URL with a template
// variable other than $INSTANCE_ID fails the phone-home module, as it does
// in cloud-init.
//
// # The provider contract and its optional abilities
//
// Create adopts an existing server of the same name when that server
// carries every label of the request (as provider/hetzner does); a server
// of the name with other labels, or a foreign one (AddForeign: a server
// the Provider did not create, as another control plane's), is
// provider.ErrConflict. Invalid requests (provider.CreateRequest.Validate,
// user-data over Options.MaxUserData or not a usable cloud-config, a server
// type, location or image that is not a name) are refused before anything
// starts. A server reports where it is (ServerType and Location: the
// request's, else Options', else DefaultServerType and DefaultLocation) and
// when it was created.
//
// The Provider has every optional ability of package provider: List
// (provider.Lister: its own live servers by label, foreign ones never),
// CheckCredentials (provider.CredentialChecker), InstanceID
// (provider.InstanceIDer: "i-" and the server ID, what phone_home posts)
// and MaxUserData (provider.UserDataLimiter: Options.MaxUserData, by
// default cloudinit.MaxSize, Hetzner's limit).
//
// For day-2 tests, what a cloud does to a control plane can be made to
// happen: SetUnauthorized(true) makes every call fail with
// provider.ErrUnauthorized (a revoked token), SetUnavailable(location,
// true) makes creates in a location fail with provider.ErrUnavailable
// (no capacity there; adopting still works), Vanish deletes a server
// behind the caller's back (Get then says provider.ErrNotFound), PowerOff
// stops one but keeps it (Status "off", SSH refused).
//
// # Lifetime
//
// Delete stops a server: listener and connections closed, running commands
// killed, phone_home stopped, sandbox removed (unless Options.Keep). Close
// deletes every server; no goroutine or listener outlives it.
package fake
