package inject

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Step is one remote command. Cmd is a POSIX sh command line that holds
// no secret (it is visible in `ps` on the server and in logs); Stdin is
// fed to it, and is where secret values travel. Every Stdin value is
// redacted from errors and logs.
//
// Steps built by the constructors in this package carry an error when
// their arguments are invalid; Run refuses a list holding one before
// running anything (see Step.Err).
type Step struct {
	Name  string
	Cmd   string
	Stdin []byte

	err error
}

// Err reports why a constructor rejected its arguments, or nil.
func (s Step) Err() error { return s.err }

func invalid(name, format string, args ...any) Step {
	return Step{Name: name, err: fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))}
}

// eofMark follows a WriteFile's data on stdin. The step renames its temp
// file only after reading it, so input cut short (a dropped connection
// gives the remote command an early EOF) never replaces the target.
const eofMark = "#hatchery-eof#"

// FileOption changes how Mkdir and WriteFile create their path.
type FileOption func(*fileOptions)

type fileOptions struct {
	owner string
	root  bool
}

// Owner sets the owner of the file or directory, "user" or "user:group",
// with a separate chown command (run as root when AsRoot is given too).
func Owner(owner string) FileOption { return func(o *fileOptions) { o.owner = owner } }

// AsRoot runs the step through `sudo -n`, which fails at once instead of
// waiting for a password.
func AsRoot() FileOption { return func(o *fileOptions) { o.root = true } }

var ownerRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}\$?(:[a-z_][a-z0-9_.-]{0,31}\$?)?$`)

func fileOpts(opts []FileOption) (fileOptions, error) {
	var o fileOptions
	for _, f := range opts {
		f(&o)
	}
	if o.owner != "" && !ownerRE.MatchString(o.owner) {
		return o, fmt.Errorf("owner %q is not user or user:group", o.owner)
	}
	return o, nil
}

// checkPath accepts absolute, clean paths without control characters.
func checkPath(p string) error {
	switch {
	case !path.IsAbs(p):
		return fmt.Errorf("path %q is not absolute", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	case len(p) > 4096:
		return fmt.Errorf("path is longer than 4096 bytes")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("path %q holds a control character", p)
		}
	}
	return nil
}

func checkMode(mode fs.FileMode) (string, error) {
	if mode&^fs.ModePerm != 0 {
		return "", fmt.Errorf("mode %v has more than permission bits", mode)
	}
	return fmt.Sprintf("%04o", uint32(mode.Perm())), nil
}

// Quote quotes s as one word for a POSIX shell. Words made only of
// letters, digits and _-./:@%+, are returned as they are, so absolute
// paths stay readable (and recognisable) in the command line.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_-./:@%+,", c) >= 0) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// asRoot wraps a shell command line so it runs as root through sudo -n.
func asRoot(cmd string) string {
	return "sudo -n /bin/sh -c " + Quote(cmd)
}

// noLinkFunc defines hatchery_nolink, which fails (printing which one)
// when any of its arguments is a symbolic link.
const noLinkFunc = `hatchery_nolink() { for a; do [ ! -L "$a" ] || { printf "hatchery: %s is a symbolic link; refusing to follow it\n" "$a" >&2; return 1; }; done; }; `

// guarded returns the directories on the path to dir (dir included) that
// must not be symbolic links: all but the top level. A top-level directory
// such as /home sits in /, where only root creates links, so a link there
// is the system's own (/home -> /var/home); a link below it may have been
// planted by the user who owns its directory.
func guarded(dir string) []string {
	var out []string
	for d := dir; strings.Count(d, "/") >= 2; d = path.Dir(d) {
		out = append(out, d)
	}
	slices.Reverse(out)
	return out
}

// quoteAll quotes each word and joins them with spaces.
func quoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// Mkdir creates path and its parents, then sets mode (and owner with
// Owner) on path itself.
//
// Mkdir refuses (exit code 1, and says why on stderr) when path, or a
// directory on the way to it below the top level, is a symbolic link, so
// a link planted by the owner of a directory on the path can never turn a
// root chmod or chown onto another file. It changes the mode through the
// directory it entered after checking it (cd -P, then the checks again and
// `[ . -ef path ]`), and the owner with chown -h, so swapping path for a
// link in the middle of the step changes nothing but that link.
func Mkdir(p string, mode fs.FileMode, opts ...FileOption) Step {
	name := "mkdir " + p
	o, err := fileOpts(opts)
	if err != nil {
		return invalid(name, "mkdir: %v", err)
	}
	if err := checkPath(p); err != nil {
		return invalid(name, "mkdir: %v", err)
	}
	m, err := checkMode(mode)
	if err != nil {
		return invalid(name, "mkdir %s: %v", p, err)
	}
	q := Quote(p)
	links := quoteAll(append(guarded(path.Dir(p)), p))
	var b strings.Builder
	b.WriteString(noLinkFunc)
	b.WriteString("hatchery_nolink " + links + " || exit 1; ")
	b.WriteString("mkdir -p " + q + " && cd -P " + q + " || exit 1; ")
	b.WriteString("hatchery_nolink " + links + " || exit 1; ")
	b.WriteString("[ . -ef " + q + ` ] || { printf "hatchery: %s changed while it was being created; refusing to follow it\n" ` + q + " >&2; exit 1; }; ")
	b.WriteString("chmod " + m + " .")
	if o.owner != "" {
		b.WriteString(" && chown -h " + Quote(o.owner) + " " + q)
	}
	cmd := b.String()
	if o.root {
		cmd = asRoot(cmd)
	}
	return Step{Name: name, Cmd: cmd}
}

// newName is the name WriteFile's data gets in its private temp directory.
// Dotted and ending in ~, it is a name that run-parts, cron, sudo, apt and
// systemd all skip, should a race move the file somewhere else (see
// WriteFile).
const newName = ".hatchery-new~"

// WriteFile replaces path with data, atomically: data travels on stdin
// (never in the command line), into a file in a private temp directory
// (mode 0700) created under umask 077 in path's own directory; the file
// gets mode (and owner with Owner) and is then renamed over path. A
// dropped connection leaves the old file or the new one, never a partial
// one, and no temp directory when the shell lives to clean up (it traps
// HUP, INT, PIPE and TERM). The directory must exist.
//
// Stdin carries the data followed by a fixed trailer (#hatchery-eof#): the
// step renames its temp file only after reading the trailer, so input cut
// short by a dropped connection (an early EOF that looks like the end of
// the data) never replaces path. A custom Runner must pass Stdin through
// whole, trailer included.
//
// Like Mkdir, WriteFile refuses (exit code 1, saying why on stderr) when
// path is a symbolic link or a directory, or when a directory on the way to
// it below the top level is a symbolic link; it works in the directory it
// entered after checking it, and writes, chmods and chowns (chown -h) the
// new file only inside its private temp directory, which no other user can
// change. The rename (`mv -fT`, GNU coreutils) never moves the file into a
// directory: when the owner of path's directory swaps path for a symbolic
// link just before it, the rename replaces the link itself; when they
// swap it for a directory, the rename fails, and so does the step, saying
// so. Either way nothing lands outside path's directory. After the rename
// the step checks that path is a regular file, not a link, and fails when
// it was swapped again.
func WriteFile(p string, data []byte, mode fs.FileMode, opts ...FileOption) Step {
	name := "write " + p
	o, err := fileOpts(opts)
	if err != nil {
		return invalid(name, "write: %v", err)
	}
	if err := checkPath(p); err != nil {
		return invalid(name, "write: %v", err)
	}
	if p == "/" {
		return invalid(name, "write: path is /")
	}
	m, err := checkMode(mode)
	if err != nil {
		return invalid(name, "write %s: %v", p, err)
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	tbase := base
	if len(tbase) > 200 {
		tbase = tbase[:200]
	}
	q, qd, qb := Quote(p), Quote(dir), Quote("./"+base)
	dirs := quoteAll(guarded(dir))
	if dirs != "" {
		dirs += " "
	}
	// Double quotes only (and Quote for caller-given words), so the
	// command nests in sudo's sh -c and in the pipelined script without
	// layers of escaping.
	var b strings.Builder
	b.WriteString("umask 077; " + noLinkFunc)
	// Check the path, enter its directory, check again: from here on,
	// relative names are in the directory that passed the checks, however
	// its path changes.
	b.WriteString("hatchery_nolink " + dirs + q + " || exit 1; ")
	b.WriteString("cd -P " + qd + " || exit 1; ")
	if dirs != "" {
		b.WriteString("hatchery_nolink " + dirs + "|| exit 1; ")
	}
	b.WriteString("[ . -ef " + qd + ` ] || { printf "hatchery: %s changed while %s was being written; refusing to follow it\n" ` + qd + " " + q + " >&2; exit 1; }; ")
	b.WriteString("[ ! -d " + qb + ` ] || { printf "hatchery: %s is a directory\n" ` + q + " >&2; exit 1; }; ")
	b.WriteString("t=$(mktemp -d " + Quote("./."+tbase+".hatchery-XXXXXXXXXX") + `) || exit 1; t=${t#./}; `)
	b.WriteString(`hatchery_rm() { rm -rf "./$t"; }; trap hatchery_rm 0; trap "exit 129" 1; trap "exit 130" 2; trap "exit 141" 13; trap "exit 143" 15; `)
	// In a subshell that enters the temp directory, once it is sure it
	// is the one mktemp made: ours, and still at its name.
	b.WriteString(`( cd -P "$t" && [ -O . ] && [ ! -L "../$t" ] && [ . -ef "../$t" ] || `)
	b.WriteString(`{ printf "hatchery: the temp directory for %s changed; refusing to follow it\n" ` + q + " >&2; exit 1; }; ")
	b.WriteString("head -c " + strconv.Itoa(len(data)) + " >" + newName + ` && [ "$(head -c ` + strconv.Itoa(len(eofMark)) + `)" = "` + eofMark + `" ] || `)
	b.WriteString(`{ printf "hatchery: input for %s ended early, left unchanged\n" ` + q + " >&2; exit 1; }; ")
	b.WriteString("chmod " + m + " " + newName)
	if o.owner != "" {
		b.WriteString(" && chown -h " + Quote(o.owner) + " " + newName)
	}
	// -T: the target is never taken for a directory to move into, even
	// when it was swapped for a link to one (or for one) in the meantime.
	b.WriteString(" && mv -fT " + newName + " ../" + Quote(base) + " ) || exit $?; ")
	b.WriteString("[ -f " + qb + " ] && [ ! -L " + qb + ` ] || { printf "hatchery: %s was replaced while it was being written\n" ` + q + " >&2; exit 1; }")
	cmd := b.String()
	if o.root {
		cmd = asRoot(cmd)
	}
	stdin := make([]byte, 0, len(data)+len(eofMark))
	stdin = append(append(stdin, data...), eofMark...)
	return Step{Name: name, Cmd: cmd, Stdin: stdin}
}

// Command runs the program name with args, like exec.Command: name and
// every argument are shell-quoted, so nothing in them is expanded. The
// step's Name is the command line (cut at 100 bytes); set Step.Name for
// another.
func Command(name string, args ...string) Step {
	if name == "" {
		return invalid("command", "command: no program")
	}
	q := make([]string, 0, 1+len(args))
	for i, a := range append([]string{name}, args...) {
		if strings.ContainsRune(a, 0) {
			return invalid(name, "command %s: argument %d holds a NUL byte", name, i)
		}
		q = append(q, Quote(a))
	}
	cmd := strings.Join(q, " ")
	title := cmd
	if len(title) > 100 {
		title = title[:97] + "..."
	}
	return Step{Name: title, Cmd: cmd}
}

// RootCommand is Command run as root through `sudo -n`.
func RootCommand(name string, args ...string) Step {
	s := Command(name, args...)
	if s.err == nil {
		s.Cmd = "sudo -n " + s.Cmd
		s.Name = "sudo " + s.Name
	}
	return s
}

// WaitCloudInit waits for cloud-init to finish (`cloud-init status
// --wait`). When cloud-init reports a failure the step fails with its exit
// code, and its stderr holds the last lines cloud-init's stages printed
// (their journal, read with sudo when the user may: what a failing runcmd
// command or installer said and cloud-init's warnings; host key
// fingerprints, banners and systemd's own lines left out) and then
// cloud-init's own `cloud-init status --long` report, last, so that a
// StepError's tail keeps it: phone_home fires even when runcmd failed, so
// this is where a broken bootstrap stops the injection. Exit code 2
// ("done, with recoverable errors", on recent cloud-init) counts as
// success only when allowRecoverable is true.
func WaitCloudInit(allowRecoverable bool) Step {
	ok := "[ $r -eq 0 ]"
	if allowRecoverable {
		ok = "[ $r -eq 0 ] || [ $r -eq 2 ]"
	}
	return Step{
		Name: "wait for cloud-init",
		Cmd: "cloud-init status --wait >/dev/null; r=$?; if " + ok + "; then exit 0; fi; " +
			`printf "hatchery: cloud-init status --wait exited %s\n" "$r" >&2; ` +
			`{ sudo -n journalctl -b -u cloud-init.service -u cloud-config.service -u cloud-final.service --no-pager -o cat 2>/dev/null` +
			` | grep -v -e ' SHA256:' -e 'SSH HOST KEY' -e '^Cloud-init v\. ' -e '^Starting cloud-' -e '^Finished cloud-'` +
			` -e '^cloud-[a-z]*\.service: ' | tail -n 12; } >&2; ` +
			`cloud-init status --long >&2; exit $r`,
	}
}

var unitRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9:_.@\\-]{0,254}$`)
var unitFileRE = regexp.MustCompile(`\.(service|socket|timer|target|path|mount|automount|slice|scope|swap|device)$`)

// InstallUnit writes a systemd unit file to /etc/systemd/system/NAME as
// root, mode 0644, atomically. Follow it with DaemonReload.
func InstallUnit(name string, content []byte) Step {
	if !unitRE.MatchString(name) || !unitFileRE.MatchString(name) {
		return invalid("install unit "+name, "unit file name %q is not NAME.service (or another unit type)", name)
	}
	s := WriteFile("/etc/systemd/system/"+name, content, 0o644, AsRoot())
	s.Name = "install unit " + name
	return s
}

func systemctl(verb, unit string) Step {
	name := verb + " " + unit
	if !unitRE.MatchString(unit) {
		return invalid(name, "unit name %q", unit)
	}
	return Step{Name: name, Cmd: "sudo -n systemctl " + verb + " " + Quote(unit)}
}

// DaemonReload makes systemd read changed unit files.
func DaemonReload() Step {
	return Step{Name: "daemon-reload", Cmd: "sudo -n systemctl daemon-reload"}
}

// EnableUnit enables a unit so it starts at boot.
func EnableUnit(unit string) Step { return systemctl("enable", unit) }

// StartUnit starts a unit (no-op when it is running).
func StartUnit(unit string) Step { return systemctl("start", unit) }

// RestartUnit restarts a unit, starting it when it is stopped; use it
// after new secrets are written so the service reads them.
func RestartUnit(unit string) Step { return systemctl("restart", unit) }

// CheckActive checks that a unit is active now and stays active for
// settle (polled every second, rounded up to whole seconds). When it is
// not, the step fails with exit code 3 and its stderr carries the unit's
// state and `journalctl -u UNIT -n 50 --no-pager`, redacted like all
// stderr.
func CheckActive(unit string, settle time.Duration) Step {
	name := "check " + unit + " active"
	if !unitRE.MatchString(unit) {
		return invalid(name, "unit name %q", unit)
	}
	if settle < 0 {
		return invalid(name, "negative settle time %v", settle)
	}
	secs := int((settle + time.Second - 1) / time.Second)
	u := Quote(unit)
	cmd := "i=0; while s=$(systemctl is-active " + u + " 2>&1); do [ $i -ge " + strconv.Itoa(secs) + " ] && exit 0; sleep 1; i=$((i+1)); done; " +
		"printf \"hatchery: %s is %s\\n\" " + u + ` "$s" >&2; sudo -n journalctl -u ` + u + " -n 50 --no-pager >&2; exit 3"
	return Step{Name: name, Cmd: cmd}
}
