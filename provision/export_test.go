package provision

import (
	"time"

	"github.com/hatchery-dev/hatchery/store"
)

// SetClock replaces p's clock, for tests of a replica whose clock is off.
func SetClock(p *Provisioner, now func() time.Time) { p.now = now }

// ServerName is serverName, for tests.
func ServerName(p *Provisioner, r store.Record) string { return p.serverName(r) }
