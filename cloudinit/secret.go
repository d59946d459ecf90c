package cloudinit

import (
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Token shapes findToken knows. Every one must start and (where its length
// is fixed) end at a boundary: the byte before and after is not a letter or
// digit. That keeps random base64, such as an SSH public key's blob, from
// matching by chance; hex fingerprints and digests cannot match at all.
const (
	kindPrivateKey = "private key block"
	kindPuTTY      = "PuTTY private key"
	kindAnthropic  = "Anthropic API key (sk-ant-)"
	kindOpenAI     = "OpenAI API key"
	kindStripe     = "Stripe secret key"
	kindGitHub     = "GitHub token"
	kindGitLab     = "GitLab token"
	kindGoogle     = "Google API key (AIza)"
	kindAWS        = "AWS access key ID"
	kindSlack      = "Slack token"
	kindTelegram   = "Telegram bot token"
	kindHetzner    = "Hetzner Cloud API token (64 letters and digits)"
)

// Prefixes of the OpenAI and GitLab token kinds, followed by at least
// minTokenTail token characters.
var (
	openAIPrefixes = [...]string{"sk-proj-", "sk-svcacct-", "sk-admin-"}
	gitLabPrefixes = [...]string{"glpat-", "gldt-", "glrt-", "glptt-", "glft-", "gloas-"}
)

const minTokenTail = 20

// findToken returns the kind and offset of the first secret-shaped string
// in s, or "" and -1.
func findToken[T ~string | ~[]byte](s T) (kind string, offset int) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '-':
			if hasAt(s, i, "-----BEGIN ") || hasAt(s, i, "-----END ") {
				// -----BEGIN [A-Z0-9 ]*PRIVATE KEY[ A-Z]*----- and its END
				// line, which marks a block whose BEGIN line was cut.
				j := i + len("-----BEGIN ")
				if s[i+5] == 'E' {
					j = i + len("-----END ")
				}
				k := j
				for k < len(s) && k-j < 64 && (s[k] >= 'A' && s[k] <= 'Z' || s[k] >= '0' && s[k] <= '9' || s[k] == ' ') {
					k++
				}
				if hasAt(s, k, "-----") && containsAt(s, j, k, "PRIVATE KEY") {
					return kindPrivateKey, i
				}
			}
			// ---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ---- (ssh.com, RFC 4716 style)
			if hasAt(s, i, "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----") {
				return kindPrivateKey, i
			}
		case 'P':
			if hasAt(s, i, "PuTTY-User-Key-File-") {
				return kindPuTTY, i
			}
			// The header of a PEM private key encrypted the legacy way,
			// whatever its BEGIN line says.
			if hasAt(s, i, "Proc-Type: 4,ENCRYPTED") {
				return kindPrivateKey, i
			}
		case 's':
			if !startsWord(s, i) {
				break
			}
			if hasAt(s, i, "sk-ant-") && run(s, i+7, isTokenByte) >= 8 {
				return kindAnthropic, i
			}
			for _, p := range openAIPrefixes {
				if hasAt(s, i, p) && run(s, i+len(p), isTokenByte) >= minTokenTail {
					return kindOpenAI, i
				}
			}
			// Legacy OpenAI keys: sk- + 20 + T3BlbkFJ ("OpenAI" in base64) + 20.
			if hasAt(s, i, "sk-") && run(s, i+3, isAlnum) == 48 && hasAt(s, i+23, "T3BlbkFJ") {
				return kindOpenAI, i
			}
			if isStripe(s, i) {
				return kindStripe, i
			}
		case 'r':
			if startsWord(s, i) && isStripe(s, i) {
				return kindStripe, i
			}
		case 'g':
			if !startsWord(s, i) {
				break
			}
			if i+4 <= len(s) && s[i+1] == 'h' && strings.IndexByte("pousr", s[i+2]) >= 0 && s[i+3] == '_' &&
				run(s, i+4, isAlnum) == 36 {
				return kindGitHub, i
			}
			if hasAt(s, i, "github_pat_") && run(s, i+11, isWordByte) >= 22 {
				return kindGitHub, i
			}
			for _, p := range gitLabPrefixes {
				if hasAt(s, i, p) && run(s, i+len(p), isTokenByte) >= minTokenTail {
					return kindGitLab, i
				}
			}
		case 'A':
			if !startsWord(s, i) {
				break
			}
			if (hasAt(s, i, "AKIA") || hasAt(s, i, "ASIA")) &&
				run(s, i+4, isUpperDigit) == 16 && (i+20 == len(s) || !isAlnum(s[i+20])) {
				return kindAWS, i
			}
			if hasAt(s, i, "AIza") && run(s, i+4, isTokenByte) == 35 {
				return kindGoogle, i
			}
		case 'x':
			if startsWord(s, i) && hasAt(s, i, "xox") && i+4 < len(s) && strings.IndexByte("abposr", s[i+3]) >= 0 &&
				s[i+4] == '-' && run(s, i+5, isSlackByte) >= 10 {
				return kindSlack, i
			}
		case ':':
			// digits:35 token characters, e.g. 123456789:AAH...
			d := i
			for d > 0 && s[d-1] >= '0' && s[d-1] <= '9' {
				d--
			}
			if i-d >= 5 && startsWord(s, d) && run(s, i+1, isTokenByte) == 35 {
				return kindTelegram, d
			}
		}
		if isAlnum(s[i]) && startsWord(s, i) && isHetzner(s, i) {
			return kindHetzner, i
		}
	}
	return "", -1
}

// isStripe reports a Stripe secret or restricted key at i:
// (sk|rk)_(live|test)_ and at least minTokenTail letters and digits.
func isStripe[T ~string | ~[]byte](s T, i int) bool {
	if !(hasAt(s, i, "sk_") || hasAt(s, i, "rk_")) || !(hasAt(s, i+3, "live_") || hasAt(s, i+3, "test_")) {
		return false
	}
	return run(s, i+8, isAlnum) >= minTokenTail
}

// isHetzner reports a Hetzner Cloud API token at i, a word start: exactly
// 64 letters and digits, holding lowercase, uppercase and digits (which a
// hex digest never does), not inside base64 (no + / = around it, not
// after "-" as in "sha384-...", not a line of a base64 block such as a PEM
// or PGP body, whose 64-character lines are often all letters and
// digits).
func isHetzner[T ~string | ~[]byte](s T, i int) bool {
	const n = 64
	if run(s, i, isAlnum) != n {
		return false
	}
	if i > 0 && strings.IndexByte("+/-", s[i-1]) >= 0 || i+n < len(s) && strings.IndexByte("+/=", s[i+n]) >= 0 {
		return false
	}
	var lower, upper, digit bool
	for k := i; k < i+n; k++ {
		switch c := s[k]; {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		default:
			digit = true
		}
	}
	return lower && upper && digit && !inBase64Block(s, i, i+n)
}

// inBase64Block reports whether s[i:j] is a whole line (give or take
// indentation and a carriage return) next to another line of base64
// text: a line of a wrapped base64 body.
func inBase64Block[T ~string | ~[]byte](s T, i, j int) bool {
	ls := i
	for ls > 0 && (s[ls-1] == ' ' || s[ls-1] == '\t') {
		ls--
	}
	if ls > 0 && s[ls-1] != '\n' {
		return false
	}
	le := j
	if le < len(s) && s[le] == '\r' {
		le++
	}
	if le < len(s) && s[le] != '\n' {
		return false
	}
	if ls > 0 {
		if from, to := lineBefore(s, ls-1); isBase64Line(s, from, to) {
			return true
		}
	}
	return le < len(s) && isBase64Line(s, le+1, lineEnd(s, le+1))
}

// lineBefore returns the bounds of the line that ends at the newline at nl.
func lineBefore[T ~string | ~[]byte](s T, nl int) (int, int) {
	start := nl
	for start > 0 && s[start-1] != '\n' {
		start--
	}
	return start, nl
}

func lineEnd[T ~string | ~[]byte](s T, from int) int {
	for from < len(s) && s[from] != '\n' {
		from++
	}
	return from
}

// isBase64Line reports whether s[from:to], without indentation and a
// trailing carriage return, is at least 4 characters of base64 (padding
// and an armor checksum line such as "=Ab12" included).
func isBase64Line[T ~string | ~[]byte](s T, from, to int) bool {
	for from < to && (s[from] == ' ' || s[from] == '\t') {
		from++
	}
	if to > from && s[to-1] == '\r' {
		to--
	}
	if to-from < 4 {
		return false
	}
	for k := from; k < to; k++ {
		if c := s[k]; !isAlnum(c) && c != '+' && c != '/' && c != '=' {
			return false
		}
	}
	return true
}

func secretKind(n int) string {
	return "a value listed in Config.Secrets (Secrets[" + strconv.Itoa(n) + "])"
}

// scanSourceNames reports a secret used as an apt source name. It runs
// before anything else: validation errors name the sources, and the error
// here does not.
func scanSourceNames(c *Config, sc *scanner) error {
	if c.Apt == nil {
		return nil
	}
	for _, name := range sortedKeys(c.Apt.Sources) {
		if err := sc.value(name, at("apt.sources (a source name)")); err != nil {
			return err
		}
	}
	return nil
}

// scanConfig reports the first secret in a field of c, naming the field.
// Encoded write_files content is scanned after decoding first, then as
// written. Apt source names are scanSourceNames' job; reporting handler
// names are scanned here, before any error shows them.
func scanConfig(c *Config, sc *scanner) error {
	if err := sc.value(c.Hostname, at("hostname")); err != nil {
		return err
	}
	for i, u := range c.Users {
		l := at("users").index(i)
		for _, f := range [...]struct{ name, v string }{{"name", u.Name}, {"shell", u.Shell}, {"sudo", u.Sudo}} {
			if err := sc.value(f.v, l.field(f.name)); err != nil {
				return err
			}
		}
		for j, g := range u.Groups {
			if err := sc.value(g, l.field("groups").elem(j)); err != nil {
				return err
			}
		}
		for j, k := range u.SSHAuthorizedKeys {
			if err := sc.value(k, l.field("ssh_authorized_keys").elem(j)); err != nil {
				return err
			}
		}
	}
	if c.CACerts != nil {
		for i, cert := range c.CACerts.Trusted {
			if err := sc.value(cert, at("ca_certs.trusted").index(i)); err != nil {
				return err
			}
		}
	}
	if c.Apt != nil {
		for _, name := range sortedKeys(c.Apt.Sources) {
			s, l := c.Apt.Sources[name], at("apt.sources").keyed(name)
			for _, f := range [...]struct{ name, v string }{{"source", s.Source}, {"keyid", s.KeyID}, {"keyserver", s.KeyServer}, {"key", s.Key}} {
				if err := sc.value(f.v, l.field(f.name)); err != nil {
					return err
				}
			}
		}
	}
	for i, p := range c.Packages {
		if err := sc.value(p, at("packages").index(i)); err != nil {
			return err
		}
	}
	for i, f := range c.WriteFiles {
		l := at("write_files").index(i)
		if f.Encoding != "" {
			// Undecodable content is Validate's to report.
			if raw, err := decodeContent(f.Encoding, f.Content); err == nil {
				if err := sc.value(string(raw), l.field("content (decoded)")); err != nil {
					return err
				}
			}
		}
		for _, v := range [...]struct{ name, v string }{{"path", f.Path}, {"content", f.Content}, {"owner", f.Owner}, {"permissions", f.Permissions}} {
			if err := sc.value(v.v, l.field(v.name)); err != nil {
				return err
			}
		}
	}
	for i, cmd := range c.RunCmd {
		for j, a := range cmd {
			if err := sc.value(a, at("runcmd").index(i).elem(j)); err != nil {
				return err
			}
		}
	}
	if c.PhoneHome != nil {
		if err := sc.value(c.PhoneHome.URL, at("phone_home").field("url")); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(c.Reporting) {
		if err := sc.value(name, at("reporting (a handler name)")); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(c.Reporting) {
		r := c.Reporting[name]
		for _, f := range [...]struct{ name, v string }{{"type", r.Type}, {"endpoint", r.Endpoint}} {
			if err := sc.value(f.v, at("reporting").keyed(name).field(f.name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// scanDocument reports the first secret in the rendered document by line.
func scanDocument(doc []byte, sc *scanner) error {
	fd, ok, err := sc.scan(doc)
	if err != nil {
		if u, isU := errors.AsType[*errUnscannable](err); isU {
			return &FieldError{Field: "the rendered document", Reason: u.reason}
		}
		return err
	}
	if ok {
		return &SecretError{Kind: fd.kind, Line: lineOf(doc, fd.off)}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func lineOf(doc []byte, off int) int {
	line := 1
	for _, c := range doc[:off] {
		if c == '\n' {
			line++
		}
	}
	return line
}

func hasAt[T ~string | ~[]byte](s T, i int, p string) bool {
	return i+len(p) <= len(s) && string(s[i:i+len(p)]) == p
}

func containsAt[T ~string | ~[]byte](s T, from, to int, p string) bool {
	return strings.Contains(string(s[from:to]), p)
}

// run counts the bytes from i on that satisfy ok.
func run[T ~string | ~[]byte](s T, i int, ok func(byte) bool) int {
	n := i
	for n < len(s) && ok(s[n]) {
		n++
	}
	return n - i
}

func startsWord[T ~string | ~[]byte](s T, i int) bool { return i == 0 || !isAlnum(s[i-1]) }

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isUpperDigit(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

func isWordByte(c byte) bool { return isAlnum(c) || c == '_' }

func isTokenByte(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }

func isSlackByte(c byte) bool { return isAlnum(c) || c == '-' }
