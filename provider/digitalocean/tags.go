package digitalocean

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hatchery-dev/hatchery/provider"
)

// ManagedLabel is the label that marks a server as created by a Hatchery
// driver (the Hetzner driver's marker too). On DigitalOcean it is the tag
// ManagedTag: Server.Labels reports ManagedLabel="true" for droplets that
// carry it, and a List selector with it looks for that tag.
const ManagedLabel = "hatchery.dev/managed"

// Tags of the driver. Every droplet it creates carries ManagedTag and the
// name tag NameTag(name); each label k=v becomes LabelTag(k, v).
const (
	ManagedTag     = "hatchery:managed"
	NameTagPrefix  = "hatchery:name:"
	LabelTagPrefix = "hatchery:label:"
	// MaxTagLen is DigitalOcean's limit on a tag name.
	MaxTagLen = 255
)

// reservedPrefix starts every tag of the driver; Options.Tags may not use it.
const reservedPrefix = "hatchery:"

// NameTag returns the tag that names the droplet's Hatchery server name.
// Names are lowercase host name labels (provider.CreateRequest.Validate),
// which are tag characters already.
func NameTag(name string) string { return NameTagPrefix + name }

// LabelTag returns the tag for the label key=value:
//
//	LabelTagPrefix + escape(key) + ":" + escape(value)
//
// escape keeps lowercase letters, digits and '-' and writes every other
// byte as '_' and two lowercase hex digits ("hatchery.dev/tenant" is
// "hatchery_2edev_2ftenant", "A" is "_41"). The result uses only lowercase
// letters, digits, ':', '-' and '_': DigitalOcean's tag alphabet, in
// lowercase because its tags are case-insensitive (the first spelling of
// a tag in the account becomes canonical). The mapping is exact and
// reversible (Labels decodes it); a label whose tag would exceed
// MaxTagLen is refused by Create and List. The label ManagedLabel="true"
// is ManagedTag.
func LabelTag(key, value string) string {
	if key == ManagedLabel && value == "true" {
		return ManagedTag
	}
	var b strings.Builder
	b.Grow(len(LabelTagPrefix) + len(key) + len(value) + 1)
	b.WriteString(LabelTagPrefix)
	escape(&b, key)
	b.WriteByte(':')
	escape(&b, value)
	return b.String()
}

const hexDigits = "0123456789abcdef"

func escape(b *strings.Builder, s string) {
	for i := range len(s) {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

// unescape reverses escape; it accepts only what escape writes.
func unescape(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-':
			b.WriteByte(c)
		case c == '_' && i+2 < len(s):
			hi, lo := strings.IndexByte(hexDigits, s[i+1]), strings.IndexByte(hexDigits, s[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			d := byte(hi<<4 | lo)
			if d >= 'a' && d <= 'z' || d >= '0' && d <= '9' || d == '-' {
				return "", false // escape writes these as they are
			}
			b.WriteByte(d)
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// Labels returns the labels that tags encode: LabelTag tags decoded, and
// ManagedLabel="true" for ManagedTag. Other tags (the name tag,
// Options.Tags, anyone else's) are not labels and are left out. Tags are
// compared without regard to case, as DigitalOcean does.
func Labels(tags []string) map[string]string {
	labels := make(map[string]string)
	for _, t := range tags {
		t = strings.ToLower(t)
		if t == ManagedTag {
			labels[ManagedLabel] = "true"
			continue
		}
		rest, ok := strings.CutPrefix(t, LabelTagPrefix)
		if !ok {
			continue
		}
		ek, ev, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		k, okk := unescape(ek)
		v, okv := unescape(ev)
		if okk && okv && k != "" {
			labels[k] = v
		}
	}
	return labels
}

// labelTags returns the tags of labels, sorted, checking each against
// DigitalOcean's length limit and that ManagedLabel, if present, is
// "true". Errors wrap provider.ErrInvalid; field names the labels' origin.
func labelTags(field string, labels map[string]string) ([]string, error) {
	tags := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		v := labels[k]
		if k == "" {
			return nil, fmt.Errorf("%w: %s: empty label key", provider.ErrInvalid, field)
		}
		if k == ManagedLabel && v != "true" {
			return nil, fmt.Errorf("%w: %s: label %s is the driver's own", provider.ErrInvalid, field, ManagedLabel)
		}
		t := LabelTag(k, v)
		if len(t) > MaxTagLen {
			return nil, fmt.Errorf("%w: %s: label %q is %d characters as a tag, over DigitalOcean's limit of %d",
				provider.ErrInvalid, field, k, len(t), MaxTagLen)
		}
		tags = append(tags, t)
	}
	return tags, nil
}

// checkTag checks a tag of Options.Tags: DigitalOcean's alphabet and
// length, and not in the driver's namespace.
func checkTag(t string) error {
	if t == "" || len(t) > MaxTagLen {
		return fmt.Errorf("tag %q: want 1 to %d characters", t, MaxTagLen)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '-' || c == '_') {
			return fmt.Errorf("tag %q: DigitalOcean tags hold letters, digits, ':', '-' and '_' only", t)
		}
	}
	if strings.HasPrefix(strings.ToLower(t), reservedPrefix) {
		return fmt.Errorf("tag %q: tags starting with %q are the driver's own", t, reservedPrefix)
	}
	return nil
}

// hasTag reports whether tags holds want, without regard to case.
func hasTag(tags []string, want string) bool {
	return slices.ContainsFunc(tags, func(t string) bool { return strings.EqualFold(t, want) })
}
