//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package postgres

import (
	"net"
	"syscall"
)

// stale reports whether conn, a connection that sits idle between requests,
// has anything to read: the server has closed it or sent something (a
// backend ending sends its FATAL error first). Nothing may be sent on such
// a connection, since whether the server then saw it is unknowable. It peeks
// without consuming (MSG_PEEK) and without waiting (MSG_DONTWAIT): one
// system call. A connection it cannot inspect is not stale.
func stale(conn net.Conn) bool {
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	stale := false
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err == syscall.EINTR {
				continue
			}
			// EAGAIN: nothing to read, the connection is idle as it should
			// be. Anything else is data (n > 0), end of file (n == 0) or a
			// socket error.
			stale = err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
			return
		}
	})
	return err == nil && stale
}
