//go:build !unix

package provision_test

import (
	"testing"
	"time"
)

func raiseFileLimit(testing.TB, int) {}

func cpuTimes() (self, children time.Duration) { return 0, 0 }
