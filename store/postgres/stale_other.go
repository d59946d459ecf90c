//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package postgres

import "net"

// stale reports false: on this platform an idle connection is not
// inspected, and a stale one is found by the pool's own ping (after a
// second idle) or by the next request on it.
func stale(net.Conn) bool { return false }
