package cloudinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Build validates cfg and renders it as user-data: Header followed by the
// YAML that go.yaml.in/yaml/v3 produces from the typed model, keys in
// declaration order (map keys sorted), byte-for-byte the same for the same
// Config. With cfg.Compress it returns base64(gzip(document)) on one line,
// without a trailing newline.
//
// Build fails with a *FieldError (errors.Is ErrInvalid) naming the first
// invalid field, with a *SecretError (ErrSecret) when a field or the
// document holds a private key block, a token-shaped string or a value
// listed in cfg.Secrets, and with a *SizeError (ErrTooLarge) when what
// would be sent is over cfg.MaxSize (0 means MaxSize) or the plain document
// over MaxDocument.
func Build(cfg Config) ([]byte, error) {
	// Secrets first: a private key pasted into the wrong field is reported
	// as a secret, not as an invalid value. Only the checks of Secrets
	// themselves come before, since the scan looks for them.
	if err := cfg.validateOwn(); err != nil {
		return nil, err
	}
	sc := newScanner(cfg.Secrets)
	sc.allow(cfg.madeByControlPlane()...)
	if err := scanSourceNames(&cfg, sc); err != nil {
		return nil, err
	}
	if err := scanConfig(&cfg, sc); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	doc, err := render(cfg)
	if err != nil {
		return nil, err
	}
	if err := scanDocument(doc, sc); err != nil {
		return nil, err
	}
	if len(doc) > MaxDocument {
		return nil, &SizeError{Size: len(doc), Limit: MaxDocument}
	}
	out := doc
	if cfg.Compress {
		if out, err = compress(doc); err != nil {
			return nil, err
		}
	}
	limit := cfg.MaxSize
	if limit == 0 {
		limit = MaxSize
	}
	if len(out) > limit {
		return nil, &SizeError{Size: len(out), Limit: limit}
	}
	return out, nil
}

// render encodes cfg through a yaml.Node tree (see nodeBuilder and strStyle),
// so that every string is written in a style that PyYAML, which cloud-init
// uses, reads back as the same string.
func render(cfg Config) ([]byte, error) {
	if cfg.PhoneHome != nil && cfg.PhoneHome.Tries == 0 {
		ph := *cfg.PhoneHome // never write to the caller's PhoneHome
		ph.Tries = DefaultTries
		cfg.PhoneHome = &ph
	}
	if len(cfg.Reporting) > 0 {
		rep := make(map[string]Reporter, len(cfg.Reporting)) // nor to its map
		for name, r := range cfg.Reporting {
			if r.Timeout == 0 {
				r.Timeout = DefaultReporterTimeout
			}
			rep[name] = r
		}
		cfg.Reporting = rep
	}
	var nb nodeBuilder
	n, err := nb.build(reflect.ValueOf(cfg))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(2048)
	buf.WriteString(Header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("cloudinit: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cloudinit: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// pyImplicitRE is the union of PyYAML's implicit resolvers (bool, float,
// int, merge, null, timestamp, value) from yaml/resolver.py, with the
// verbose-mode whitespace removed.
var pyImplicitRE = regexp.MustCompile(`^(?:` +
	`yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF` +
	`|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)` +
	`|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+` +
	`|<<` +
	`|~|null|Null|NULL|` +
	`|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?` +
	`|=` +
	`)$`)

// pyImplicit reports whether PyYAML would resolve the plain scalar s to
// something other than a string. Only the first characters PyYAML keys its
// resolvers by can start such a scalar.
func pyImplicit(s string) bool {
	if s == "" {
		return true
	}
	if strings.IndexByte("yYnNtTfFoO-+0123456789.<~=", s[0]) < 0 {
		return false
	}
	return pyImplicitRE.MatchString(s)
}

// compress returns base64(gzip(doc)) on one line. The gzip header carries
// no name and no time, so the result is deterministic.
func compress(doc []byte) ([]byte, error) {
	var zb bytes.Buffer
	zw, err := gzip.NewWriterLevel(&zb, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: gzip: %w", err)
	}
	if _, err := zw.Write(doc); err != nil {
		return nil, fmt.Errorf("cloudinit: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("cloudinit: gzip: %w", err)
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(zb.Len()))
	base64.StdEncoding.Encode(out, zb.Bytes())
	return out, nil
}

// madeByControlPlane returns the values a control plane makes from the
// tenant's identity: the host name, the phone_home URL and the reporting
// endpoints, which carry the tenant ID.
func (c *Config) madeByControlPlane() []string {
	out := []string{c.Hostname}
	if c.PhoneHome != nil {
		out = append(out, c.PhoneHome.URL)
	}
	for _, r := range c.Reporting {
		out = append(out, r.Endpoint)
	}
	return out
}
