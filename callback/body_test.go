package callback

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidHostname(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	long := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".") // 253
	for s, want := range map[string]bool{
		"tenant-a": true, "a": true, "1host": true, "A.b-c.D9": true, label63: true, long: true,
		"": false, "-a": false, "a-": false, "a..b": false, ".a": false, "a.": false,
		"a_b": false, "a b": false, "a\n": false, "é": false, label63 + "a": false, long + "b": false,
	} {
		assert.Equal(t, want, validHostname(s), "%q", s)
	}
}

func TestValidInstanceID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"12345678": true, "i-0abc123def": true, "iid-datasource-none": true, "0f0e0d0c-0b0a-4999-8888-777766665555": true,
		"a.b_c:d": true, strings.Repeat("x", 128): true,
		"": false, strings.Repeat("x", 129): false, "a/b": false, "a b": false, "$INSTANCE_ID": false, "i\x00": false,
	} {
		assert.Equal(t, want, validInstanceID(s), "%q", s)
	}
}

func TestParseHostKey(t *testing.T) {
	t.Parallel()
	const ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO8OAwe6RMyFXnzHx8bVdo55w1mGeWHQMBItKIJqRJTU"
	for _, in := range []string{ed, ed + " root@host", ed + " root@host\n", "  " + ed + "\t comment with spaces\r\n"} {
		got, err := parseHostKey(in, []string{"ssh-ed25519"})
		assert.NoError(t, err, "%q", in)
		assert.Equal(t, ed, got, "%q", in)
	}
	for _, in := range []string{"", "ssh-ed25519", "ssh-ed25519 !!!", `no-pty ` + ed, ed + "\n" + ed} {
		_, err := parseHostKey(in, []string{"ssh-ed25519"})
		assert.Error(t, err, "%q", in)
	}
	_, err := parseHostKey(ed, []string{"ssh-rsa"})
	assert.ErrorContains(t, err, "does not belong")
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	h := &Handler{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	for _, c := range []struct {
		remote string
		xff    []string
		want   string // "" = refused
	}{
		{"198.51.100.1:1", nil, "198.51.100.1"},
		{"198.51.100.1:1", []string{"203.0.113.7"}, "198.51.100.1"}, // untrusted peer: XFF ignored
		{"[::ffff:198.51.100.1]:1", nil, "198.51.100.1"},
		{"[2001:db8::1]:4242", nil, "2001:db8::1"},
		{"10.1.2.3:1", nil, "10.1.2.3"}, // a trusted peer without XFF is the client
		{"10.1.2.3:1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"10.1.2.3:1", []string{"198.51.100.9, 203.0.113.7", "10.0.0.9"}, "203.0.113.7"}, // several headers
		{"10.1.2.3:1", []string{"10.0.0.8, 10.0.0.9"}, "10.0.0.8"},                       // all trusted: leftmost
		{"[fd00::1]:1", []string{"[2001:db8::5]:443"}, "2001:db8::5"},
		{"10.1.2.3:1", []string{"203.0.113.7:5555"}, "203.0.113.7"},
		{"10.1.2.3:1", []string{"unknown"}, ""},
		{"10.1.2.3:1", []string{"203.0.113.7,"}, ""},
		{"not an address", nil, ""},
		{"pipe", nil, ""},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		got, ok := h.ClientAddr(r)
		if c.want == "" {
			assert.False(t, ok, "%s %v: %s", c.remote, c.xff, got)
			continue
		}
		assert.True(t, ok, "%s %v", c.remote, c.xff)
		assert.Equal(t, c.want, got.String(), "%s %v", c.remote, c.xff)
	}
}

func TestFromServer(t *testing.T) {
	t.Parallel()
	addr := netip.MustParseAddr
	for _, c := range []struct {
		ipv4, ipv6 string
		from       string
		want       bool
	}{
		{"", "", "192.0.2.1", true},
		{"203.0.113.7", "", "203.0.113.7", true},
		{"203.0.113.7", "", "203.0.113.8", false},
		{"203.0.113.7", "", "2001:db8::1", false},
		{"", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"", "2001:db8:1:2::/64", "2001:db8:1:2::1", true},
		{"", "2001:db8:1:2::/64", "203.0.113.7", false},
		{"203.0.113.7", "2001:db8:1:2::1", "2001:db8:1:2::1", true},
		{"garbage", "", "203.0.113.7", false},
		{"", "garbage", "2001:db8::1", false},
		{"garbage", "garbage", "203.0.113.7", false},
		{"", "203.0.113.7", "203.0.113.7", false}, // an IPv4 address in the IPv6 field has no /64
	} {
		got := FromServer(c.ipv4, c.ipv6, addr(c.from))
		assert.Equal(t, c.want, got, "%+v", c)
	}
}
