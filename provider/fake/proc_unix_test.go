//go:build unix

package fake_test

import (
	"syscall"
	"time"
)

// gone reports whether no process has the pid.
func gone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }

// childCPU returns the CPU time (user and system) of the process's
// children that have ended and been waited for.
func childCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
