package fake

import (
	"fmt"
	"strings"
)

// rewritten are the server directories whose absolute paths in a command
// are rewritten into the sandbox.
var rewritten = []string{"/home", "/root", "/etc", "/var/lib", "/opt", "/srv"}

// standinNames are the programs the sandbox stands in; their absolute
// paths in a command (/usr/bin/systemctl, ...) are rewritten to the
// stand-ins too.
var standinNames = []string{"sudo", "chown", "mv", "systemctl", "journalctl", "cloud-init"}

// programDirs are where the real programs live.
var programDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// allowedDirs are the real directories a command may name: programs.
var allowedDirs = []string{"/bin", "/usr/bin", "/sbin", "/usr/sbin"}

// allowedFiles are the real files a command may name: devices that read
// or write nothing of the machine.
var allowedFiles = []string{"/dev/null", "/dev/zero", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/random", "/dev/urandom"}

// RefusedExit is the exit status of a command the simulated server
// refuses to run because it names a path outside the sandbox; its stderr
// says which and why.
const RefusedExit = 126

// refusal is why a command is not run.
type refusal struct {
	token  string // the part of the command refused
	reason string
}

func (r *refusal) Error() string {
	msg := fmt.Sprintf("fake: refusing to run a command with %q: %s outside the sandbox", r.token, r.reason)
	if r.reason == reasonPath {
		msg += " (only /home, /root, /etc, /var/lib, /opt and /srv are simulated; /bin, /usr/bin, /sbin, /usr/sbin," +
			" /dev/null, /dev/zero, /dev/std{in,out,err} and /dev/{u,}random may be named; use $TMPDIR for temporary files)"
	}
	return msg
}

const (
	reasonPath   = "it names a path"
	reasonBuilt  = "a path built at run time (/ then $, ` or a backslash) could lead"
	reasonDotDot = "a parent directory (..) after an absolute path could lead"
)

// checkCommand returns a *refusal when cmd names something outside the
// sandbox that rewritePaths would not move into it: an absolute path that
// is neither under a rewritten directory nor allowed, one with a ..
// component, or one built at run time (/$x, /`...`, /\x). It reads the
// text as rewritePaths does (see there); a URL's path (scheme://host/...)
// is not a path on the machine. Relative paths are not checked: inject
// itself writes ../NAME from a temp directory, so a command can climb out
// of the sandbox with cd .. or $HOME/.. (the namespace stops its writes).
func checkCommand(cmd string) error {
	for i := 0; i < len(cmd); i++ {
		switch {
		case cmd[i] == '/' && pathStartAt(cmd, i):
			if n := urlAt(cmd, i); n > 0 {
				i += n - 1
				continue
			}
			j := i + 1
			for j < len(cmd) && !pathEnd(cmd[j]) {
				j++
			}
			tok := cmd[i:j]
			if i+1 < len(cmd) && strings.IndexByte("$`\\", cmd[i+1]) >= 0 {
				return &refusal{tok, reasonBuilt}
			}
			for c := range strings.SplitSeq(tok, "/") {
				if c == ".." {
					return &refusal{tok, reasonDotDot}
				}
			}
			if !allowedPath(tok) {
				return &refusal{tok, reasonPath}
			}
			i = j - 1
		}
	}
	return nil
}

// allowedPath reports whether an absolute path token may be run: under a
// rewritten directory, a stood-in program, under an allowed directory or
// an allowed file.
func allowedPath(tok string) bool {
	if rewrittenAt(tok) > 0 || programAt(tok) == len(tok) {
		return true
	}
	for _, d := range allowedDirs {
		if tok == d || strings.HasPrefix(tok, d+"/") {
			return true
		}
	}
	for _, f := range allowedFiles {
		if tok == f {
			return true
		}
	}
	return false
}

// urlAt returns the length of the URL whose "//" is at cmd[i:] (as in
// http://host/x, the scheme starting a word), up to the first character
// that ends or starts a word other than ':'; 0 when there is none. file:///x is not a URL here: its path is local.
func urlAt(cmd string, i int) int {
	if i < 2 || cmd[i-1] != ':' || !strings.HasPrefix(cmd[i:], "//") || i+2 >= len(cmd) || cmd[i+2] == '/' {
		return 0
	}
	k := i - 1
	for k > 0 && isSchemeChar(cmd[k-1]) {
		k--
	}
	if k == i-1 || !isLetter(cmd[k]) || (k > 0 && !pathStart(cmd[k-1])) {
		return 0
	}
	j := i
	for j < len(cmd) && (cmd[j] == ':' || !pathStart(cmd[j]) && !pathEnd(cmd[j])) {
		j++
	}
	return j - i
}

// rewritePaths moves the command's server paths into the sandbox: it
// inserts root before every absolute path under one of the rewritten
// directories that starts a word of cmd (at the start, after a blank,
// quote, =, (, ;, |, &, <, >, `, :, { or comma, or glued to an option such
// as -t/etc/x), and replaces ~NAME at a word start with the sandbox's home
// of NAME (~ alone needs nothing: the shell takes it from HOME, which is
// the sandbox home). "/etc" itself and "/etc/..." are rewritten,
// "/etcetera" and "x/etc" are not. The absolute path of a stood-in program
// (e.g. /usr/bin/systemctl) becomes the stand-in's in bin. One pass: what
// is inserted is not rewritten again. checkCommand refuses what it cannot
// move.
func rewritePaths(cmd, root, bin string) string {
	var b strings.Builder
	b.Grow(len(cmd) + 4*len(root))
	for i := 0; i < len(cmd); i++ {
		switch {
		case cmd[i] == '/' && pathStartAt(cmd, i):
			if n := urlAt(cmd, i); n > 0 {
				b.WriteString(cmd[i : i+n])
				i += n - 1
				continue
			}
			if n := programAt(cmd[i:]); n > 0 {
				prog := cmd[i : i+n]
				b.WriteString(bin + prog[strings.LastIndexByte(prog, '/'):])
				i += n - 1
				continue
			}
			if rewrittenAt(cmd[i:]) > 0 {
				b.WriteString(root)
			}
		case cmd[i] == '~' && (i == 0 || pathStart(cmd[i-1])):
			if n := tildeUserAt(cmd[i:]); n > 0 {
				b.WriteString(root + homeOf(cmd[i+1:i+n]))
				i += n - 1
				continue
			}
		}
		b.WriteByte(cmd[i])
	}
	return b.String()
}

// rewrittenAt returns the length of the rewritten directory s starts with
// ("/etc" for "/etc/x" or "/etc"), or 0.
func rewrittenAt(s string) int {
	for _, p := range rewritten {
		if strings.HasPrefix(s, p) && (len(s) == len(p) || s[len(p)] == '/' || pathEnd(s[len(p)])) {
			return len(p)
		}
	}
	return 0
}

// tildeUserAt returns the length of "~NAME" that s starts with, when NAME
// is a user name ending the word or followed by /; else 0.
func tildeUserAt(s string) int {
	j := 1
	for j < len(s) && (isLetter(s[j]) || isDigit(s[j]) || strings.IndexByte("_.-", s[j]) >= 0) {
		j++
	}
	if j == 1 || !(isLetter(s[1]) || s[1] == '_') {
		return 0
	}
	if j < len(s) && s[j] != '/' && !pathEnd(s[j]) {
		return 0
	}
	return j
}

// programAt returns the length of the stood-in program's absolute path s
// starts with (followed by the end or a word end), or 0.
func programAt(s string) int {
	for _, d := range programDirs {
		if !strings.HasPrefix(s, d+"/") {
			continue
		}
		for _, n := range standinNames {
			l := len(d) + 1 + len(n)
			if strings.HasPrefix(s[len(d)+1:], n) && (l == len(s) || pathEnd(s[l])) {
				return l
			}
		}
	}
	return 0
}

// pathStartAt reports whether the / at cmd[i] starts a path: at the
// start, after a character that starts a word (pathStart), or glued to a
// short option that starts a word (-t/etc/x, -xf/x).
func pathStartAt(cmd string, i int) bool {
	if i == 0 || pathStart(cmd[i-1]) {
		return true
	}
	j := i
	for j > 0 && (isLetter(cmd[j-1]) || isDigit(cmd[j-1])) {
		j--
	}
	return j < i && j > 0 && cmd[j-1] == '-' && (j == 1 || pathStart(cmd[j-2]))
}

func pathStart(c byte) bool { return strings.IndexByte(" \t\n'\"=(;|&<>`:{,", c) >= 0 }

func pathEnd(c byte) bool { return strings.IndexByte(" \t\n'\";|&<>`:}),", c) >= 0 }

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isSchemeChar(c byte) bool { return isLetter(c) || isDigit(c) || c == '+' || c == '.' || c == '-' }

// homeOf returns a user's home directory on the server.
func homeOf(name string) string {
	if name == "root" {
		return "/root"
	}
	return "/home/" + name
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
