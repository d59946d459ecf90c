package digitalocean_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hatchery-dev/hatchery/provider/digitalocean"
)

func TestLabelTag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, value, tag string }{
		{"hatchery-tenant", "0b6e2f7c-5d1a-4c3e-9f2b-8a7d6c5b4a3f", "hatchery:label:hatchery-tenant:0b6e2f7c-5d1a-4c3e-9f2b-8a7d6c5b4a3f"},
		{"hatchery.dev/tenant", "t-1", "hatchery:label:hatchery_2edev_2ftenant:t-1"},
		{"env", "Prod", "hatchery:label:env:_50rod"},
		{"a_b", "c:d", "hatchery:label:a_5fb:c_3ad"},
		{"k", "", "hatchery:label:k:"},
		{"ü", "x y", "hatchery:label:_c3_bc:x_20y"},
		{digitalocean.ManagedLabel, "true", digitalocean.ManagedTag},
		{digitalocean.ManagedLabel, "yes", "hatchery:label:hatchery_2edev_2fmanaged:yes"},
	} {
		assert.Equal(t, tc.tag, digitalocean.LabelTag(tc.key, tc.value), "%s=%s", tc.key, tc.value)
		assert.Equal(t, map[string]string{tc.key: tc.value}, digitalocean.Labels([]string{tc.tag}), tc.tag)
	}
	assert.Equal(t, "hatchery:name:t-1", digitalocean.NameTag("t-1"))
}

func TestLabelsIgnoresOtherTags(t *testing.T) {
	t.Parallel()
	got := digitalocean.Labels([]string{
		"team:ops", "hatchery:name:t-1", // not labels
		"hatchery:label:nocolon",    // malformed
		"hatchery:label::v",         // empty key
		"hatchery:label:_zz:v",      // not hex
		"hatchery:label:_61:v",      // 'a' escaped: not what LabelTag writes
		"hatchery:label:a_6:v",      // truncated escape
		"hatchery:label:a:b:c",      // ':' in the value
		"HATCHERY:LABEL:ENV:_50ROD", // another spelling of a tag: the same tag
		"Hatchery:Managed",
	})
	assert.Equal(t, map[string]string{"env": "Prod", digitalocean.ManagedLabel: "true"}, got)
	assert.Empty(t, digitalocean.Labels(nil))
}

// FuzzLabelTag: every label maps to a tag in DigitalOcean's alphabet, in
// lowercase, that decodes to the label.
func FuzzLabelTag(f *testing.F) {
	for _, s := range [][2]string{{"hatchery-tenant", "x"}, {"hatchery.dev/managed", "true"}, {"A", "_"}, {"k", ""}, {"\xff", "\x00"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		if key == "" {
			return
		}
		tag := digitalocean.LabelTag(key, value)
		for _, c := range tag {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ':' || c == '-' || c == '_') {
				t.Fatalf("tag %q of %q=%q has %q", tag, key, value, c)
			}
		}
		if !strings.HasPrefix(tag, "hatchery:") {
			t.Fatalf("tag %q outside the driver's namespace", tag)
		}
		got := digitalocean.Labels([]string{tag})
		if len(got) != 1 || got[key] != value {
			t.Fatalf("Labels(%q) = %q, want %q=%q", tag, got, key, value)
		}
	})
}
