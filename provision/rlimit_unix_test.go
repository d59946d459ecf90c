//go:build unix

package provision_test

import (
	"syscall"
	"testing"
	"time"
)

// raiseFileLimit raises the soft limit on open files to at least want (up
// to the hard limit): every simulated server holds a listener, and every
// injection and callback a connection.
func raiseFileLimit(tb testing.TB, want int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Logf("getrlimit: %v", err)
		return
	}
	if lim.Cur >= uint64(want) {
		return
	}
	lim.Cur = min(uint64(want), lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Logf("setrlimit: %v", err)
	}
	if lim.Cur < uint64(want) {
		tb.Logf("open files limited to %d (want %d)", lim.Cur, want)
	}
}

// cpuTimes returns the CPU time (user plus system) used so far by this
// process and by its waited-for children (the simulated servers' shells).
func cpuTimes() (self, children time.Duration) {
	var ru syscall.Rusage
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = tv(ru.Utime) + tv(ru.Stime)
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		children = tv(ru.Utime) + tv(ru.Stime)
	}
	return self, children
}
