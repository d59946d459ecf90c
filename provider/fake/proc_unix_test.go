//go:build unix

package fake_test

import "syscall"

// gone reports whether no process has the pid.
func gone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }
