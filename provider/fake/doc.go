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
//   - after Options.BootDelay, cloud-init's phone_home, posted exactly as
//     cloud-init 22.4 posts it (see below); then `cloud-init status` reports
//     done.
//
// The cloud-config's packages, apt sources and runcmd are not run.
//
// # It is a simulation: files are real, the init system is not
//
// Every SSH exec command runs as `/bin/sh -c COMMAND`, as the OS user
// running the test, in the user's sandbox home, with a minimal environment
// (PATH, HOME, USER, LOGNAME, SHELL, LANG, TMPDIR). Stdin, stdout, stderr
// and the exit status travel as with sshd; signals the client sends go to
// the command's process group; the command is killed when its connection
// ends or the server stops. Before it runs, absolute
// paths under /home/, /root/, /etc/, /var/lib/, /opt/ and /srv/ in the
// command text are rewritten into the sandbox (only where a path starts:
// after a space, quote, =, (, ;, and the like); stdin is passed through
// untouched, so file contents keep their server paths. Server.Path maps a
// server path to its real file. A bin directory first on PATH holds
// shell stand-ins (a command naming one by absolute path, such as
// /usr/bin/systemctl, gets the stand-in too):
//
//   - sudo: runs the rest as root when the caller's cloud-config sudo rule
//     has NOPASSWD, else fails like sudo -n ("a password is required");
//   - chown: checks user[:group] against root and the cloud-config users and
//     groups and that the files exist, and records the owner (Server.Owner)
//     without changing real ownership;
//   - systemctl: daemon-reload, enable, disable, start, stop, restart,
//     is-active, is-enabled, is-failed, status, over unit files in
//     /etc/systemd/system; state kept in files (Server.Unit). Units are
//     loaded on first use and reloaded by daemon-reload, enable and disable,
//     so a changed unit file keeps its old content until then, as with
//     systemd. ConditionPathExists= is honoured (a unit whose condition fails
//     is skipped and inactive, and start still exits 0); a unit with an
//     unrendered __PLACEHOLDER__ has a bad setting and fails to start.
//     Managing units needs root, as polkit refuses non-interactive users;
//   - journalctl: -u UNIT -n N --no-pager prints the unit's simulated
//     journal; as on Debian, only root and members of adm or systemd-journal
//     see system units' messages;
//   - cloud-init: status [--wait] [--long], as cloud-init 22.4 prints it.
//
// Nothing else is simulated: file permissions and ownership are the test
// user's, commands such as id or whoami tell the truth, and paths outside
// the rewritten prefixes (/tmp, /usr, ...) are the real machine's.
//
// # Phone home
//
// After BootDelay the server POSTs to the phone_home URL as cloud-init 22.4
// does: Content-Type application/x-www-form-urlencoded, User-Agent
// Cloud-Init/22.4, the fields of the configured post list in that list's
// order (a list without post means all of pub_key_dsa, pub_key_rsa,
// pub_key_ecdsa, pub_key_ed25519, instance_id, hostname, fqdn; an empty list
// sends a GET with no body). Key values are the .pub file's line with its
// trailing newline; the server has only an ed25519 host key, so the other
// key types are "N/A". hostname and fqdn are the server name (what Hetzner's
// datasource reports as local-hostname, which has no domain); instance_id
// is "i-" followed by the server ID. $INSTANCE_ID (or ${INSTANCE_ID}) in the
// URL is replaced, unencoded; any other $VAR makes cloud-init's module fail,
// so nothing is posted and cloud-init reports an error. Answers of 400 and
// above and transport errors are retried up to tries times (0 means 10),
// Options.PhoneHomeInterval apart; redirects are followed as net/http does
// (a 302 becomes a GET without the body, as with Python requests). There is
// no client timeout: the request ends when the server is deleted.
//
// # Faults
//
// Options.Faults injects, per server name, the failures the reliability
// tests need: Create failing, phone_home never coming, phone_home from a
// different host key than SSH presents, the SSH connection cut after N exec
// sessions, every unit failing to stay active, and cloud-init reporting an
// error.
//
// # Lifetime
//
// Delete stops a server: listener and connections closed, running commands
// killed, phone_home stopped, sandbox removed (unless Options.Keep). Close
// deletes every server; no goroutine or listener outlives it.
package fake
