package cloudinit

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// loc is the path of a field in the document, such as users[0].name,
// runcmd[2][0] or apt.sources[github-cli].keyid. It is a value, formatted
// only when an error needs it.
type loc struct {
	base string // "users", "hostname", "apt.sources", ...
	i    int    // index into base, or -1
	key  string // map key into base, or ""
	sub  string // field below base[i], or ""
	j    int    // index into sub (or into base[i] when sub is ""), or -1
}

func at(base string) loc               { return loc{base: base, i: -1, j: -1} }
func (l loc) index(i int) loc          { l.i = i; return l }
func (l loc) keyed(key string) loc     { l.key = key; return l }
func (l loc) field(sub string) loc     { l.sub = sub; return l }
func (l loc) elem(j int) loc           { l.j = j; return l }
func (l loc) err(reason string) error  { return &FieldError{Field: l.String(), Reason: reason} }
func (l loc) secret(kind string) error { return &SecretError{Kind: kind, Field: l.String()} }
func (l loc) String() string {
	var b strings.Builder
	b.WriteString(l.base)
	if l.i >= 0 {
		b.WriteString("[" + strconv.Itoa(l.i) + "]")
	}
	if l.key != "" {
		b.WriteString("[" + l.key + "]")
	}
	if l.sub != "" {
		b.WriteString("." + l.sub)
	}
	if l.j >= 0 {
		b.WriteString("[" + strconv.Itoa(l.j) + "]")
	}
	return b.String()
}

// Validate reports the first field Build would refuse, as a *FieldError
// that wraps ErrInvalid; nil means the Config renders (unless it holds a
// secret or is too large, which only Build can tell). Errors name the field
// and the rule, never the value.
func (c Config) Validate() error {
	if err := c.validateOwn(); err != nil {
		return err
	}
	if c.Hostname != "" && !isHostname(c.Hostname) {
		return at("hostname").err("is not an RFC 1123 host name (letters, digits, hyphens, dot-separated labels of at most 63, 253 in all)")
	}
	for i, u := range c.Users {
		if err := u.validate(at("users").index(i)); err != nil {
			return err
		}
	}
	if c.CACerts != nil {
		if err := c.CACerts.validate(); err != nil {
			return err
		}
	}
	if c.Apt != nil {
		if err := c.Apt.validate(); err != nil {
			return err
		}
	}
	for i, p := range c.Packages {
		if !isPackage(p) {
			return at("packages").index(i).err("is not a Debian package name (lowercase letters, digits, + - ., at least 2, optionally =version)")
		}
	}
	for i, f := range c.WriteFiles {
		if err := f.validate(at("write_files").index(i)); err != nil {
			return err
		}
	}
	for i, cmd := range c.RunCmd {
		l := at("runcmd").index(i)
		if len(cmd) == 0 {
			return l.err("is an empty argv")
		}
		if cmd[0] == "" {
			return l.elem(0).err("is an empty program name")
		}
		for j, a := range cmd {
			if r := textReason(a); r != "" {
				return l.elem(j).err(r)
			}
		}
	}
	if c.PhoneHome != nil {
		if err := c.PhoneHome.validate(); err != nil {
			return err
		}
	}
	for n, name := range sortedKeys(c.Reporting) {
		// The name goes into field paths below: like an apt source's,
		// it must be neither malformed nor token-shaped before it is shown.
		if !isSourceName(name) {
			return at("reporting").err("handler #" + strconv.Itoa(n) + " (sorted) has a name that is not [A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
		}
		if kind, _ := findToken(name); kind != "" {
			return at("reporting").err("handler #" + strconv.Itoa(n) + " (sorted) has a name shaped like a " + kind)
		}
		if err := c.Reporting[name].validate(at("reporting").keyed(name)); err != nil {
			return err
		}
	}
	return nil
}

// validateOwn checks the fields that are not rendered: MaxSize, and
// Secrets, which the secret scan looks for and so must check first.
func (c Config) validateOwn() error {
	if c.MaxSize < 0 {
		return at("MaxSize").err("must not be negative")
	}
	for i, s := range c.Secrets {
		if s == "" {
			return at("Secrets").index(i).err("is empty, which would match everything")
		}
		if strings.TrimSpace(s) == "" {
			return at("Secrets").index(i).err("is only white space, which would match almost everything")
		}
	}
	return nil
}

func (cc *CACerts) validate() error {
	l := at("ca_certs")
	if !cc.RemoveDefaults && len(cc.Trusted) == 0 {
		return l.err("is empty (cloud-init's schema wants remove_defaults or trusted)")
	}
	for i, cert := range cc.Trusted {
		if r := certsReason(cert); r != "" {
			return l.field("trusted").elem(i).err(r)
		}
	}
	return nil
}

// certsReason checks one ca_certs.trusted entry: one or more PEM
// CERTIFICATE blocks without headers that x509 parses, and nothing but
// white space around them.
func certsReason(s string) string {
	if r := textReason(s); r != "" {
		return r
	}
	rest := []byte(s)
	n := 0
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		if !bytes.HasPrefix(rest, []byte("-----BEGIN CERTIFICATE-----")) {
			if n == 0 {
				return "is not a PEM certificate (-----BEGIN CERTIFICATE-----)"
			}
			return "holds something other than PEM certificates after certificate " + strconv.Itoa(n)
		}
		block, after := pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" || len(block.Headers) > 0 {
			return "holds a PEM block that does not decode as a certificate (#" + strconv.Itoa(n) + ")"
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return "holds a certificate that does not parse (#" + strconv.Itoa(n) + ")"
		}
		rest = after
		n++
	}
	if n == 0 {
		return "is empty"
	}
	return ""
}

func (r Reporter) validate(l loc) error {
	if r.Type != ReporterWebhook {
		return l.field("type").err(`is not "webhook", the only reporting handler modeled`)
	}
	if r.Endpoint == "" {
		return l.field("endpoint").err("is required")
	}
	if strings.Contains(r.Endpoint, "$") {
		return l.field("endpoint").err("has a $, which cloud-init does not substitute here")
	}
	if reason := urlReason(r.Endpoint); reason != "" {
		return l.field("endpoint").err(reason)
	}
	if r.Timeout < 0 {
		return l.field("timeout").err("is negative (0 means " + strconv.Itoa(DefaultReporterTimeout) + " seconds)")
	}
	if r.Retries < 0 {
		return l.field("retries").err("is negative")
	}
	return nil
}

func (u User) validate(l loc) error {
	if !isName(u.Name) {
		return l.field("name").err("is not a user name (^[a-z_][a-z0-9_-]{0,31}$)")
	}
	for j, g := range u.Groups {
		if !isName(g) {
			return l.field("groups").elem(j).err("is not a group name (^[a-z_][a-z0-9_-]{0,31}$)")
		}
	}
	if u.Shell != "" {
		if r := absReason(u.Shell); r != "" {
			return l.field("shell").err(r)
		}
	}
	if u.Sudo != "" {
		if r := lineReason(u.Sudo); r != "" {
			return l.field("sudo").err(r)
		}
		if strings.TrimSpace(u.Sudo) == "" {
			return l.field("sudo").err("is blank")
		}
	}
	for j, k := range u.SSHAuthorizedKeys {
		kl := l.field("ssh_authorized_keys").elem(j)
		if r := lineReason(k); r != "" {
			return kl.err(r)
		}
		_, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			return kl.err("is not an authorized_keys line")
		}
		if len(strings.TrimSpace(string(rest))) > 0 {
			return kl.err("holds more than one key")
		}
	}
	return nil
}

func (a *Apt) validate() error {
	if len(a.Sources) == 0 {
		return at("apt.sources").err("is empty (cloud-init's schema wants at least one entry under apt)")
	}
	names := make([]string, 0, len(a.Sources))
	for name := range a.Sources {
		names = append(names, name)
	}
	slices.Sort(names)
	for n, name := range names {
		// The name goes into field paths below, so it must be neither
		// malformed nor token-shaped before it is shown.
		if !isSourceName(name) {
			return at("apt.sources").err("source #" + strconv.Itoa(n) + " (sorted) has a name that is not a file name ([A-Za-z0-9][A-Za-z0-9_.-]{0,63})")
		}
		if kind, _ := findToken(name); kind != "" {
			return at("apt.sources").err("source #" + strconv.Itoa(n) + " (sorted) has a name shaped like a " + kind)
		}
		if err := a.Sources[name].validate(at("apt.sources").keyed(name)); err != nil {
			return err
		}
	}
	return nil
}

// aptVars are the variables cloud-init 22.4 substitutes in an apt source.
var aptVars = [...]string{"KEY_FILE", "MIRROR", "PRIMARY", "RELEASE", "SECURITY"}

// expiredKeys are signing keys (long key IDs, the fingerprint's last 16
// hex digits) that are known to have expired, with what replaced them.
var expiredKeys = [...]struct{ id, why string }{
	{"23F3D4EA75716059", "is GitHub CLI's signing key that expired on 2026-09-05; the repository is signed by 7F38BBB59D064DBCB3D84D725612B36462313325 now"},
}

func (s AptSource) validate(l loc) error {
	if s.Source == "" {
		return l.field("source").err("is required")
	}
	if r := lineReason(s.Source); r != "" {
		return l.field("source").err(r)
	}
	if !strings.HasPrefix(s.Source, "deb ") && !strings.HasPrefix(s.Source, "deb-src ") {
		return l.field("source").err(`is not a one-line "deb ..." or "deb-src ..." entry`)
	}
	if r := varsReason(s.Source, aptVars[:]); r != "" {
		return l.field("source").err(r)
	}
	if strings.Contains(s.Source, "$KEY_FILE") && s.Key == "" && s.KeyID == "" {
		return l.field("source").err("uses $KEY_FILE without key or keyid")
	}
	if s.Key != "" && s.KeyID != "" {
		return l.field("keyid").err("is set together with key; use one")
	}
	if s.KeyID != "" {
		fp := strings.ReplaceAll(s.KeyID, " ", "")
		if len(fp) != 40 || !isHex(fp) {
			return l.field("keyid").err("is not a full 40-hex-digit fingerprint (short and long key IDs can be forged)")
		}
		for _, k := range expiredKeys {
			if strings.EqualFold(fp[24:], k.id) {
				return l.field("keyid").err(k.why)
			}
		}
	}
	if s.KeyServer != "" {
		if s.KeyID == "" {
			return l.field("keyserver").err("is set without keyid")
		}
		if !isKeyServer(s.KeyServer) {
			return l.field("keyserver").err("is not a host name or an hkp(s)/http(s) URL of one")
		}
	}
	if s.Key != "" {
		if r := textReason(s.Key); r != "" {
			return l.field("key").err(r)
		}
		if r := pgpPublicKeyReason(s.Key); r != "" {
			return l.field("key").err(r)
		}
	}
	return nil
}

func (f File) validate(l loc) error {
	if r := absReason(f.Path); r != "" {
		return l.field("path").err(r)
	}
	if f.Owner != "" && !isOwner(f.Owner) {
		return l.field("owner").err("is not user[:group]")
	}
	if f.Permissions != "" && !isPerm(f.Permissions) {
		return l.field("permissions").err(`is not an octal string with a leading zero, such as "0644"`)
	}
	switch f.Encoding {
	case "":
		if r := textReason(f.Content); r != "" {
			return l.field("content").err(r + "; use encoding b64 for binary content")
		}
	case "b64", "gzip+b64":
		if _, err := decodeContent(f.Encoding, f.Content); err != nil {
			return l.field("content").err("does not decode as " + f.Encoding + " (standard base64 on one line, gzip inside for gzip+b64)")
		}
	default:
		return l.field("encoding").err(`is not "", "b64" or "gzip+b64"`)
	}
	return nil
}

func (p *PhoneHome) validate() error {
	l := at("phone_home")
	if r := urlReason(p.URL); r != "" {
		return l.field("url").err(r)
	}
	if len(p.Post) == 0 {
		return l.field("post").err("is empty: cloud-init would send a GET with no body")
	}
	for j, k := range p.Post {
		if !slices.Contains(postKeys[:], k) {
			return l.field("post").elem(j).err("is not one of " + strings.Join(postKeys[:], " "))
		}
		if slices.Contains(p.Post[:j], k) {
			return l.field("post").elem(j).err("is listed twice")
		}
	}
	if p.Tries < 0 {
		return l.field("tries").err("is negative (0 means 10)")
	}
	return nil
}

// urlReason checks a phone_home URL the way cloud-init 22.4 will use it:
// its schema checks format "uri" (RFC 3986 via rfc3987), then its
// templater replaces $NAME and ${NAME}, failing on any name but
// INSTANCE_ID.
func urlReason(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > 2048 {
		return "is longer than 2048 bytes"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHexByte(s[i+1]) || !isHexByte(s[i+2]) {
				return "has a % not followed by two hex digits"
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0:
		default:
			return "has a character RFC 3986 does not allow in a URI (space, quote, brace, control, non-ASCII, ...); percent-encode it"
		}
	}
	if r := varsReason(s, []string{"INSTANCE_ID"}); r != "" {
		return r
	}
	u, err := url.Parse(s)
	if err != nil {
		return "does not parse as a URL"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "is not an absolute http or https URL"
	}
	if u.Host == "" || u.Hostname() == "" {
		return "has no host"
	}
	if u.User != nil {
		return "carries user information (credentials do not belong in user-data)"
	}
	if strings.Count(s, "#") > 1 {
		return "has more than one #"
	}
	if strings.Count(s, "[")+strings.Count(s, "]") != strings.Count(u.Host, "[")+strings.Count(u.Host, "]") {
		return "has [ or ] outside an IPv6 host"
	}
	return ""
}

// varsReason checks every $ in s: cloud-init's templater replaces
// ${NAME} and $NAME, where NAME is [A-Za-z0-9_.]+ and a dot descends into
// a dictionary, and fails on a name it does not know. Only $NAME with a
// NAME from allowed, not followed by a name character, is accepted.
func varsReason(s string, allowed []string) string {
	for i := strings.IndexByte(s, '$'); i >= 0; {
		rest := s[i+1:]
		if strings.HasPrefix(rest, "{") {
			return "uses ${...}, which cloud-init refuses or cannot expand; write $NAME"
		}
		n := 0
		for n < len(rest) && isVarByte(rest[n]) {
			n++
		}
		if n == 0 {
			return "has a $ that is not a variable; cloud-init's templater would misread it"
		}
		if !slices.Contains(allowed, rest[:n]) {
			return "uses a variable cloud-init does not substitute here (allowed: $" + strings.Join(allowed, " $") + ", followed by a character other than a letter, digit, _ or .)"
		}
		next := strings.IndexByte(rest[n:], '$')
		if next < 0 {
			break
		}
		i += 1 + n + next
	}
	return ""
}

func isVarByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

// lineReason checks a one-line value: valid UTF-8 without control
// characters or Unicode line breaks.
func lineReason(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0xfeff {
			return "holds a newline, NUL or other control character"
		}
	}
	return ""
}

// textReason checks a multi-line value: valid UTF-8 without NUL.
func textReason(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "holds a NUL byte"
	}
	return ""
}

// absReason checks an absolute, clean, one-line path.
func absReason(p string) string {
	if p == "" {
		return "is required"
	}
	if r := lineReason(p); r != "" {
		return r
	}
	if !path.IsAbs(p) || p == "/" || path.Clean(p) != p {
		return "is not a clean absolute path (no .., //, trailing /)"
	}
	return ""
}

func isName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func isOwner(s string) bool {
	u, g, ok := strings.Cut(s, ":")
	return isName(u) && (!ok || isName(g))
}

func isPerm(s string) bool {
	if len(s) != 4 && len(s) != 5 || s[0] != '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

func isHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// isPackage reports a Debian package name (policy 5.6.1), optionally with
// =version (policy 5.6.12 characters).
func isPackage(s string) bool {
	name, version, pinned := strings.Cut(s, "=")
	if len(name) < 2 || !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	if !pinned {
		return true
	}
	if version == "" || !(version[0] >= '0' && version[0] <= '9') {
		return false
	}
	for i := 0; i < len(version); i++ {
		c := version[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".+~:-", c) >= 0) {
			return false
		}
	}
	return true
}

func isSourceName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func isKeyServer(s string) bool {
	host := s
	for _, scheme := range []string{"hkp://", "hkps://", "http://", "https://"} {
		if rest, ok := strings.CutPrefix(s, scheme); ok {
			host = strings.TrimSuffix(rest, "/")
			if h, port, ok := strings.Cut(host, ":"); ok {
				if _, err := strconv.ParseUint(port, 10, 16); err != nil {
					return false
				}
				host = h
			}
			break
		}
	}
	return isHostname(host)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexByte(s[i]) {
			return false
		}
	}
	return true
}

func isHexByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// decodeContent decodes write_files content the way cloud-init does for
// the encodings Build accepts; base64 must be standard and unwrapped.
func decodeContent(encoding, content string) ([]byte, error) {
	if strings.ContainsAny(content, "\r\n") { // the decoder would skip them
		return nil, errWrapped
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(content)
	if err != nil {
		return nil, err
	}
	if encoding == "gzip+b64" {
		return gunzip(raw)
	}
	return raw, nil
}

// pgpPublicKeyReason checks an apt source's key: one ASCII-armored PGP
// public key block (RFC 9580 section 6: the BEGIN line, optional "Name:
// value" headers, a blank line, base64, an optional "=" checksum line, the
// END line) whose first packet is a public key (tag 6).
func pgpPublicKeyReason(key string) string {
	const (
		begin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
		end   = "-----END PGP PUBLIC KEY BLOCK-----"
	)
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(key, "\r\n", "\n")), "\n")
	if len(lines) < 3 || lines[0] != begin || lines[len(lines)-1] != end {
		return "is not one ASCII-armored PGP public key block"
	}
	i := 1
	for i < len(lines)-1 && strings.Contains(lines[i], ": ") {
		i++
	}
	if lines[i] != "" {
		return "is not one ASCII-armored PGP public key block (no blank line after the armor headers)"
	}
	var body strings.Builder
	bodyLines := lines[i+1 : len(lines)-1]
	for j, l := range bodyLines {
		if strings.HasPrefix(l, "=") && j == len(bodyLines)-1 {
			break // the checksum, just before the END line
		}
		if strings.Contains(l, "-----") || strings.HasPrefix(l, "=") {
			return "is not one ASCII-armored PGP public key block (it holds more than one block)"
		}
		body.WriteString(strings.TrimSpace(l))
	}
	b := strings.TrimRight(body.String(), "=")
	n := len(b) - len(b)%4
	if len(b)%4 >= 2 {
		n = len(b)
	}
	raw := make([]byte, base64.RawStdEncoding.DecodedLen(n))
	m, err := base64.RawStdEncoding.Decode(raw, []byte(b[:n]))
	if err != nil || m == 0 {
		return "is not one ASCII-armored PGP public key block (its body is not base64)"
	}
	if c := raw[0]; c != 0xc6 && (c&0xc0 != 0x80 || (c>>2)&0x0f != 6) {
		return "is an armored PGP block whose first packet is not a public key"
	}
	return ""
}
