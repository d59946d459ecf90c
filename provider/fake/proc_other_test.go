//go:build !unix

package fake_test

import "time"

// gone reports true: there is no namespace holder where there is no unix.
func gone(int) bool { return true }

// childCPU returns 0: the children's CPU time is not measured here.
func childCPU() time.Duration { return 0 }
