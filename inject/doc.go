// Package inject puts a tenant's secrets on its server over SSH and starts
// its service: a Runner (SSH, pinned to the host keys the server posted at
// phone_home), a list of Steps built from data, and Run, which runs them in
// order and names the step that failed.
//
// # Secrets
//
// Secret values travel only in a Step's Stdin, on the SSH channel: never in
// a command line (visible in `ps` on the server), never in a temp file
// outside the target's directory. WriteFile sends the file's bytes on stdin
// (followed by a trailer, see WriteFile) into a private temp directory
// created under umask 077 beside the target, sets the new file's mode (and
// owner), and renames it over the target, so a dropped connection leaves
// the old file or the new one, never a partial one.
//
// Run replaces every Stdin value, and every value given with WithRedact, by
// [REDACTED] in every error, log line, event and StepError field. Values
// are replaced longest first. Values shorter than MinRedactLen bytes are
// left alone (they would garble every message and are no secrets worth the
// name); for a multi-line Stdin value, each line of 16 bytes or more is
// redacted on its own too. Values inside a file (the lines of an .env) are
// redacted when they are given with WithRedact: pass every value of the
// tenant's SecretSource.
//
// # Round trips
//
// Over SSH, a session costs about two round trips, three when it feeds
// stdin. Run therefore sends the whole step list as one /bin/sh script in
// one session (about three round trips after connecting, however many
// steps): the script carries only command lines with paths, lengths and
// modes, reads each step's stdin from the session's stdin by exact length,
// marks each step's start and end (with its exit code) on stdout and
// stderr, and stops at the first failing step. WithPipelining(false), or a
// Runner that implements StepwiseRunner, runs one session per step instead.
// BenchmarkRun measures both over a link with a set delay.
//
// # Remote commands
//
// The steps' commands use only /bin/sh, sudo -n, cat, head, dd, mkdir,
// mktemp, chmod, chown, mv, rm, sleep, systemctl, journalctl, cloud-init,
// test/[ and printf, with the absolute paths the caller gives: no path is
// computed on the server (no $HOME). Steps that need root run through
// `sudo -n`, which fails at once instead of waiting for a password.
// Step.Cmd is a POSIX sh command line.
//
// # Symbolic links
//
// Mkdir and WriteFile often run as root in a directory the tenant's user
// owns, and that user could plant a symbolic link there to turn a root
// chmod, chown or write onto /etc. So they refuse a target that is a
// symbolic link, and a path with a symbolic link in any directory below
// the top level (/home itself may be a link: only root can put one in /);
// they work relative to the directory they entered and checked (cd -P,
// then `[ . -ef DIR ]`), never follow a link with chown (-h), and write,
// chmod and chown a new file only inside a private temp directory. The
// one race left is described at WriteFile.
//
// # SSH
//
// Dial requires a HostKeyCallback (PinnedHostKeys for the keys a server
// posted, KnownHosts for known_hosts files; nil is an error, never "accept
// anything"), authenticates with a Signer (ParsePrivateKey reads PEM and
// OpenSSH keys, encrypted ones too) and, optionally, the SSH agent; it can
// dial through a jump host. While the server boots it retries refused,
// reset and timed-out connections with capped, jittered backoff until the
// context ends; a host key mismatch (ErrHostKey) or an authentication
// failure (ErrAuth) is final at once. Keepalives detect a dead connection
// during long commands; cancelling Run's context stops the remote command.
package inject
