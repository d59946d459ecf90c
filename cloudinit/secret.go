package cloudinit

import (
	"bytes"
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
	kindGitHub     = "GitHub token"
	kindAWS        = "AWS access key ID"
	kindSlack      = "Slack token"
	kindTelegram   = "Telegram bot token"
)

// findToken returns the kind and offset of the first secret-shaped string
// in s, or "" and -1.
func findToken[T ~string | ~[]byte](s T) (kind string, offset int) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '-':
			if hasAt(s, i, "-----BEGIN ") {
				// -----BEGIN [A-Z0-9 ]*PRIVATE KEY[ A-Z]*-----
				j := i + len("-----BEGIN ")
				k := j
				for k < len(s) && k-j < 64 && (s[k] >= 'A' && s[k] <= 'Z' || s[k] >= '0' && s[k] <= '9' || s[k] == ' ') {
					k++
				}
				if hasAt(s, k, "-----") && containsAt(s, j, k, "PRIVATE KEY") {
					return kindPrivateKey, i
				}
			}
		case 'P':
			if hasAt(s, i, "PuTTY-User-Key-File-") {
				return kindPuTTY, i
			}
		case 's':
			if startsWord(s, i) && hasAt(s, i, "sk-ant-") && run(s, i+7, isTokenByte) >= 8 {
				return kindAnthropic, i
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
		case 'A':
			if startsWord(s, i) && (hasAt(s, i, "AKIA") || hasAt(s, i, "ASIA")) &&
				run(s, i+4, isUpperDigit) == 16 && (i+20 == len(s) || !isAlnum(s[i+20])) {
				return kindAWS, i
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
	}
	return "", -1
}

// findSecret returns which listed secret s holds first, or -1.
func findSecret(s string, secrets []string) int {
	for n, v := range secrets {
		if v != "" && strings.Contains(s, v) {
			return n
		}
	}
	return -1
}

func secretKind(n int) string {
	return "a value listed in Config.Secrets (Secrets[" + strconv.Itoa(n) + "])"
}

// scanValue reports a secret in one value of the model.
func scanValue(v string, secrets []string, l loc) error {
	if kind, _ := findToken(v); kind != "" {
		return l.secret(kind)
	}
	if n := findSecret(v, secrets); n >= 0 {
		return l.secret(secretKind(n))
	}
	return nil
}

// scanSourceNames reports a secret used as an apt source name. It runs
// before anything else: validation errors name the sources, and the error
// here does not.
func scanSourceNames(c *Config) error {
	if c.Apt == nil {
		return nil
	}
	for name := range c.Apt.Sources {
		if err := scanValue(name, c.Secrets, at("apt.sources (a source name)")); err != nil {
			return err
		}
	}
	return nil
}

// scanConfig reports the first secret in a field of a valid c, naming the
// field. Encoded write_files content is scanned after decoding, too.
// Source names are scanSourceNames' job.
func scanConfig(c *Config) error {
	sec := c.Secrets
	if err := scanValue(c.Hostname, sec, at("hostname")); err != nil {
		return err
	}
	for i, u := range c.Users {
		l := at("users").index(i)
		if err := scanValue(u.Name, sec, l.field("name")); err != nil {
			return err
		}
		for j, g := range u.Groups {
			if err := scanValue(g, sec, l.field("groups").elem(j)); err != nil {
				return err
			}
		}
		if err := scanValue(u.Shell, sec, l.field("shell")); err != nil {
			return err
		}
		if err := scanValue(u.Sudo, sec, l.field("sudo")); err != nil {
			return err
		}
		for j, k := range u.SSHAuthorizedKeys {
			if err := scanValue(k, sec, l.field("ssh_authorized_keys").elem(j)); err != nil {
				return err
			}
		}
	}
	if c.Apt != nil {
		names := make([]string, 0, len(c.Apt.Sources))
		for name := range c.Apt.Sources {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			s, l := c.Apt.Sources[name], at("apt.sources").keyed(name)
			for _, f := range [...]struct{ name, v string }{{"source", s.Source}, {"keyid", s.KeyID}, {"keyserver", s.KeyServer}, {"key", s.Key}} {
				if err := scanValue(f.v, sec, l.field(f.name)); err != nil {
					return err
				}
			}
		}
	}
	for i, p := range c.Packages {
		if err := scanValue(p, sec, at("packages").index(i)); err != nil {
			return err
		}
	}
	for i, f := range c.WriteFiles {
		l := at("write_files").index(i)
		for _, v := range [...]struct{ name, v string }{{"path", f.Path}, {"content", f.Content}, {"owner", f.Owner}, {"permissions", f.Permissions}} {
			if err := scanValue(v.v, sec, l.field(v.name)); err != nil {
				return err
			}
		}
		if f.Encoding != "" {
			raw, err := decodeContent(f.Encoding, f.Content)
			if err != nil {
				return l.field("content").err("does not decode as " + f.Encoding)
			}
			if err := scanValue(string(raw), sec, l.field("content (decoded)")); err != nil {
				return err
			}
		}
	}
	for i, cmd := range c.RunCmd {
		for j, a := range cmd {
			if err := scanValue(a, sec, at("runcmd").index(i).elem(j)); err != nil {
				return err
			}
		}
	}
	if c.PhoneHome != nil {
		if err := scanValue(c.PhoneHome.URL, sec, at("phone_home").field("url")); err != nil {
			return err
		}
	}
	return nil
}

// scanDocument reports the first secret in the rendered document by line.
func scanDocument(doc []byte, secrets []string) error {
	if kind, off := findToken(doc); kind != "" {
		return &SecretError{Kind: kind, Line: lineOf(doc, off)}
	}
	for n, v := range secrets {
		if off := bytes.Index(doc, []byte(v)); v != "" && off >= 0 {
			return &SecretError{Kind: secretKind(n), Line: lineOf(doc, off)}
		}
	}
	return nil
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
