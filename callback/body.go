package callback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// MaxBodySize is the largest callback body the handler reads, in bytes.
// cloud-init's real post (four public keys and three short strings) is
// well under 8 KiB.
const MaxBodySize = 64 << 10

// Limits on what a callback may carry.
const (
	maxHostname   = 253 // RFC 1123, without a trailing dot
	maxLabel      = 63
	maxInstanceID = 128
)

// The fields cloud-init's phone_home module posts, in its order.
const (
	fieldDSA        = "pub_key_dsa" // ignored, see keyFields
	fieldRSA        = "pub_key_rsa"
	fieldECDSA      = "pub_key_ecdsa"
	fieldED25519    = "pub_key_ed25519"
	fieldInstanceID = "instance_id"
	fieldHostname   = "hostname"
	fieldFQDN       = "fqdn"
)

// keyFields maps each host key field to the key types it may carry, in
// cloud-init's order: the order HostKeys are recorded in.
//
// pub_key_dsa is not among them: it is ignored, neither validated nor
// recorded. A DSA host key cannot be pinned (OpenSSH removed DSA in 9.8,
// golang.org/x/crypto/ssh offers no ssh-dss host key algorithm), yet
// Debian 12 (bookworm, cloud-init 22.4.2, OpenSSH 9.2) still generates
// one and posts it, a real "ssh-dss AAAA... root@HOST" line; newer images
// post N/A. Whatever sits in that field is at best an obsolete key, which
// must neither be pinned nor make the whole callback fail.
var keyFields = []struct {
	name  string
	types []string
}{
	{fieldRSA, []string{ssh.KeyAlgoRSA}},
	{fieldECDSA, []string{ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521}},
	{fieldED25519, []string{ssh.KeyAlgoED25519}},
}

// notAvailable is what cloud-init posts for a key file it could not read.
const notAvailable = "N/A"

// errBody marks a body that parses but carries invalid values, or does not
// parse at all: the handler answers 400.
var errBody = errors.New("invalid callback body")

// errMediaType marks a Content-Type the handler does not read: 415.
var errMediaType = errors.New("unsupported content type")

// payload is what a callback reports about the server, validated and
// normalized.
type payload struct {
	Hostname   string
	InstanceID string
	HostKeys   []string // "type base64", no comment, in keyFields order
}

// parseBody reads a phone_home body: a form (what cloud-init sends) or a
// JSON object with the same field names. Unknown fields are ignored, "N/A"
// and empty values count as absent, and the trailing newline cloud-init
// leaves on every key is trimmed. At least one host key is required: the
// keys are what the SSH connection is pinned to afterwards.
func parseBody(contentType string, body []byte) (payload, error) {
	fields, err := decodeFields(contentType, body)
	if err != nil {
		return payload{}, err
	}
	var p payload
	for _, kf := range keyFields {
		v := fields[kf.name]
		if v == "" {
			continue
		}
		key, err := parseHostKey(v, kf.types)
		if err != nil {
			return payload{}, fmt.Errorf("%w: %s: %w", errBody, kf.name, err)
		}
		if !slices.Contains(p.HostKeys, key) {
			p.HostKeys = append(p.HostKeys, key)
		}
	}
	if len(p.HostKeys) == 0 {
		return payload{}, fmt.Errorf("%w: no host key (post at least one of pub_key_rsa, pub_key_ecdsa, pub_key_ed25519)", errBody)
	}
	if v := fields[fieldInstanceID]; v != "" {
		if !validInstanceID(v) {
			return payload{}, fmt.Errorf("%w: %s: not 1 to %d characters of [A-Za-z0-9._:-]", errBody, fieldInstanceID, maxInstanceID)
		}
		p.InstanceID = v
	}
	for _, name := range []string{fieldFQDN, fieldHostname} {
		v := fields[name]
		if v == "" {
			continue
		}
		if !validHostname(v) {
			return payload{}, fmt.Errorf("%w: %s: not an RFC 1123 host name", errBody, name)
		}
		p.Hostname = v // hostname, when present, wins over fqdn
	}
	return p, nil
}

// decodeFields returns the body's fields by name, trimmed, with "N/A"
// dropped. A field given twice is an error, in a form as in JSON: which
// one would count?
func decodeFields(contentType string, body []byte) (map[string]string, error) {
	kind := "form"
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, fmt.Errorf("%w: Content-Type: %w", errMediaType, err)
		}
		switch {
		case mt == "application/x-www-form-urlencoded":
		case mt == "application/json" || strings.HasSuffix(mt, "+json"):
			kind = "json"
		default:
			return nil, fmt.Errorf("%w: %s (send application/x-www-form-urlencoded or application/json)", errMediaType, mt)
		}
	}
	fields := make(map[string]string)
	set := func(name, value string) {
		value = strings.TrimRight(value, "\r\n")
		if value == notAvailable {
			value = ""
		}
		fields[name] = value
	}
	if kind == "form" {
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("%w: form: %w", errBody, err)
		}
		for name, vs := range vals {
			if len(vs) > 1 {
				return nil, fmt.Errorf("%w: form: field %q given %d times", errBody, truncate(name), len(vs))
			}
			set(name, vs[0])
		}
		return fields, nil
	}
	obj, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("%w: JSON: %w", errBody, err)
	}
	for name, v := range obj {
		switch v := v.(type) {
		case nil:
		case string:
			set(name, v)
		case json.Number:
			// Some datasources' instance IDs are numbers (Hetzner's are).
			if name == fieldInstanceID {
				set(name, v.String())
				continue
			}
			return nil, fmt.Errorf("%w: JSON: field %q is not a string", errBody, truncate(name))
		default:
			return nil, fmt.Errorf("%w: JSON: field %q is not a string", errBody, truncate(name))
		}
	}
	return fields, nil
}

// parseHostKey parses one authorized_keys-format public key line (the
// content of a .pub file) and returns it as "type base64", comment and
// trailing whitespace removed, so equal keys compare equal as strings.
func parseHostKey(line string, types []string) (string, error) {
	pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", errors.New("not an SSH public key")
	}
	if len(options) > 0 {
		return "", errors.New("key options are not allowed on a host key")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return "", errors.New("more than one key")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return "", errors.New("certificates are not accepted, post the plain host key")
	}
	if !slices.Contains(types, pub.Type()) {
		return "", fmt.Errorf("key type %s does not belong in this field", pub.Type())
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), nil
}

// validHostname reports whether s is an RFC 1123 host name: dot-separated
// labels of 1 to 63 letters, digits and hyphens, not starting or ending
// with a hyphen, 253 characters at most.
func validHostname(s string) bool {
	if len(s) == 0 || len(s) > maxHostname {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > maxLabel || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// validInstanceID reports whether s looks like a cloud instance ID:
// "i-0abc", "12345678", "iid-datasource-none", a UUID.
func validInstanceID(s string) bool {
	if len(s) == 0 || len(s) > maxInstanceID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' && c != ':' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// truncate keeps untrusted names short enough for an error or a log line.
func truncate(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
