package callback

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr returns the address r came from, by the rule [Handler.CheckSource]
// uses: the peer's, or, when the peer is in [Handler.TrustedProxies], the
// rightmost X-Forwarded-For hop that is not a trusted proxy (the leftmost
// hop when all of them are). It returns false when an address it needs
// does not parse.
func (h *Handler) ClientAddr(r *http.Request) (netip.Addr, bool) {
	addr, ok := parseHop(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	if !h.trusted(addr) {
		return addr, true
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			return netip.Addr{}, false
		}
		addr = a
		if !h.trusted(a) {
			break
		}
	}
	return addr, true
}

// parseHop parses "addr", "addr:port" or "[addr]:port".
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func (h *Handler) trusted(a netip.Addr) bool {
	for _, p := range h.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// FromServer reports whether addr may be the server whose addresses are
// ipv4 and ipv6, by the rule of [Handler.CheckSource]: addr is its IPv4
// address, or in its IPv6 address's /64, the network the provider routes
// to that server (an ipv6 given as a prefix, "2001:db8:1:2::/64", is used
// as is). With neither address (a server that phoned home before its
// create call was recorded) there is nothing to compare, and any address
// is accepted.
func FromServer(ipv4, ipv6 string, addr netip.Addr) bool {
	if ipv4 == "" && ipv6 == "" {
		return true
	}
	if ipv4 != "" {
		if a, err := netip.ParseAddr(ipv4); err == nil && a.Unmap() == addr {
			return true
		}
	}
	if ipv6 != "" {
		var p netip.Prefix
		var err error
		if strings.Contains(ipv6, "/") {
			p, err = netip.ParsePrefix(ipv6)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(ipv6); err == nil {
				p, err = a.Prefix(64)
			}
		}
		if err == nil && p.Masked().Contains(addr) {
			return true
		}
	}
	return false
}
