package provision

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

// clientAddr follows callback.Handler's rule: the peer, or behind a
// trusted proxy the rightmost X-Forwarded-For hop that is not trusted.
func TestClientAddr(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name, remote string
		xff          []string
		want         string // "" means not parsable
	}{
		{name: "peer", remote: "203.0.113.7:4242", want: "203.0.113.7"},
		{name: "peer v6", remote: "[2001:db8::1]:4242", want: "2001:db8::1"},
		{name: "mapped v4", remote: "[::ffff:203.0.113.7]:1", want: "203.0.113.7"},
		{name: "untrusted peer's header ignored", remote: "203.0.113.7:1", xff: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "trusted proxy", remote: "10.0.0.2:1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "rightmost untrusted hop", remote: "10.0.0.2:1", xff: []string{"192.0.2.9, 198.51.100.1, 10.0.0.3"}, want: "198.51.100.1"},
		{name: "several headers", remote: "10.0.0.2:1", xff: []string{"192.0.2.9", "198.51.100.1"}, want: "198.51.100.1"},
		{name: "all trusted: the leftmost", remote: "10.0.0.2:1", xff: []string{"10.0.0.5, 10.0.0.3"}, want: "10.0.0.5"},
		{name: "garbage hop", remote: "10.0.0.2:1", xff: []string{"nonsense"}},
		{name: "garbage peer", remote: "nonsense"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/cb/x", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got, ok := clientAddr(r, proxies)
			if tt.want == "" {
				assert.False(t, ok)
				return
			}
			assert.True(t, ok)
			assert.Equal(t, netip.MustParseAddr(tt.want), got)
		})
	}
}

func TestFromServer(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr
	assert.True(t, fromServer("203.0.113.7", "", a("203.0.113.7")))
	assert.False(t, fromServer("203.0.113.7", "", a("203.0.113.8")))
	assert.True(t, fromServer("", "2001:db8:1:2::1", a("2001:db8:1:2::ffff")), "the /64")
	assert.False(t, fromServer("", "2001:db8:1:2::1", a("2001:db8:1:3::1")))
	assert.True(t, fromServer("", "2001:db8:1:2::/64", a("2001:db8:1:2::9")), "a prefix as is")
	assert.True(t, fromServer("203.0.113.7", "2001:db8:1:2::1", a("2001:db8:1:2::9")))
	assert.False(t, fromServer("", "", a("203.0.113.7")))
	assert.False(t, fromServer("bogus", "bogus", a("203.0.113.7")))
}
