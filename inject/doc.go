// Package inject puts a tenant's secrets on its server over SSH and starts
// its service: a Runner (SSH, pinned to the host keys the server posted at
// phone_home), a list of Steps built from data, and Run, which runs them in
// order and names the step that failed.
//
// # Security
//
// What this package guarantees, whatever the server does:
//
// Secrets travel only in a Step's Stdin, on the SSH channel: never in a
// command line (visible in `ps` on the server; Run refuses a step whose
// command line or name holds a value to redact, ErrSecretInCommand),
// never in a temp file outside the target's directory. WriteFile sends
// the file's bytes on stdin (followed by a trailer, see WriteFile) into a
// private temp directory created under umask 077 beside the target, sets
// the new file's mode (and owner), and renames it over the target with a
// rename that never moves it into a directory, so a dropped connection
// leaves the old file or the new one, never a partial one, and a target
// swapped for a link leaves nothing elsewhere (see Symbolic links).
//
// Secrets never reach an error, a log line, an event or a StepError
// field: Run replaces them by [REDACTED]. Every value given with
// WithRedact (pass every value of the tenant's SecretSource) is found, and
// with and without its surrounding white space (a value read from a file
// often ends in a newline), as it is and in its common encodings: base64
// (standard and URL alphabets, with and without padding, and inside a
// longer base64 text at any offset), hex (lower and upper case),
// percent-encoding (query and path escaping, upper- and lower-case hex)
// and JSON string escaping (as Go, JavaScript, Python and PHP write it);
// each also when line breaks (with spaces and tabs around them) cut it,
// however often. For a value of RedactWindow (12) bytes or more, every
// fragment of RedactWindow bytes or more of it or of one of these
// encodings is redacted too, wherever it occurs (a value's first 20
// bytes, its middle, hex of a part of it). Every step's Stdin is redacted
// whole, in the same forms, and each line of 16 bytes or more of a
// multi-line one on its own: a file's content mixes secrets with words
// whose fragments are not secret (paths, unit names). Not covered:
// values shorter than MinRedactLen (4) bytes (Run logs how many it left
// alone); fragments shorter than RedactWindow bytes, and any fragment of
// a value shorter than that; other encodings (base32, quoted-printable,
// HTML entities, gzip, encryption, mixed-case hex, a changed case);
// encodings of encodings; a value cut by anything but line breaks and
// blanks (a log prefix on its continuation line: only its parts of
// RedactWindow bytes or more are found). The package doc of
// internal/redact has the exact rules; provision uses the same redactor.
//
// Memory is bounded whatever a server sends: one session may send at most
// SSHConfig.MaxOutput bytes (DefaultMaxOutput, 16 MiB), stdout and stderr
// together; past it the session is closed, which stops the command, and
// Run returns a *StepError naming the step, whose Err is an
// *OutputLimitError. Run reads the output as it arrives (through
// StreamRunner) and keeps only the step markers and a tail of 20 KiB of
// the running step's stderr: its memory does not grow with the output,
// whatever MaxOutput is (BenchmarkOutput, TestOutputFlood). (*SSH).Run,
// which returns stdout, holds up to MaxOutput of it and the last
// MaxStderr bytes of stderr.
//
// Cancelling Run's context stops the steps on the server, even where sshd
// refuses to deliver the client's signal (as it does when the user is
// root, without privilege separation, and under ForceCommand): the step
// script runs in a process group of its own and stops it, with SIGTERM,
// within about a second of its session going away (see Round trips).
// This needs setsid on the server (util-linux, essential on Debian and
// Ubuntu); without it only the signal, when sshd delivers it, and the
// closed session stop a step.
//
// # Round trips
//
// Over SSH, a session costs about two round trips, three when it feeds
// stdin. Run therefore sends the whole step list as one /bin/sh script in
// one session (about three round trips after connecting, however many
// steps): the script carries only command lines with paths, lengths and
// modes, reads each step's stdin from the session's stdin by exact length,
// marks each step's start and end (with its exit code) on stdout and
// stderr, and stops at the first failing step. WithPipelining(false) runs
// each step as a script of its own, one session per step; a Runner that
// implements StepwiseRunner gets each step's command as it is instead.
// BenchmarkRun measures both over a link with a set delay.
//
// The script runs under setsid, in a session and process group of its
// own, behind a wrapper that waits for it and passes the signals it gets
// on to that group; a watchdog in the script writes a probe line on
// stdout every second and, once it cannot (the SSH session is gone),
// sends SIGTERM to the script's process group. Markers and probes carry a
// random tag and are taken out of the output, so a step's output reaches
// StepError as the step wrote it.
//
// # Remote commands
//
// The steps' commands use only /bin/sh, sudo -n, cat, head, dd, mkdir,
// mktemp, chmod, chown, mv (GNU coreutils, for -T), rm, sleep, setsid
// (util-linux; without it the script runs without its watchdog),
// systemctl, journalctl, cloud-init, test/[, kill and printf, with the
// absolute paths the caller gives: no path is computed on the server (no
// $HOME). Steps that need root run through `sudo -n`, which fails at once
// instead of waiting for a password. Step.Cmd is a POSIX sh command line.
//
// # Symbolic links
//
// Mkdir and WriteFile often run as root in a directory the tenant's user
// owns, and that user could plant a symbolic link there to turn a root
// chmod, chown or write onto /etc. So they refuse a target that is a
// symbolic link, and a path with a symbolic link in any directory below
// the top level (/home itself may be a link: only root can put one in /);
// they work relative to the directory they entered and checked (cd -P,
// then `[ . -ef DIR ]`), never follow a link with chown (-h), write, chmod
// and chown a new file only inside a private temp directory, and rename
// it with `mv -fT`, which replaces a link swapped in at the last moment
// instead of moving the file into the directory it points at (see
// WriteFile).
//
// # Errors and logs
//
// Steps are numbered from 1 in every message and log line ("step 2
// \"write /etc/app.env\" failed with exit code 1: ..."; the logs' "step"
// attribute); the Index fields of StepError and Event are indexes into the
// list, from 0. Error messages say each thing once: StepError's does not
// start with the package's name (the caller says what it was doing), and
// no error of this package wraps one of its own sentinels under another
// "inject:".
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
