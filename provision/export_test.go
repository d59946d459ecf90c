package provision

import (
	"time"

	"github.com/hatchery-dev/hatchery/store"
)

// SetClock replaces p's clock, for tests of a replica whose clock is off.
func SetClock(p *Provisioner, now func() time.Time) { p.now = now }

// ServerName is serverName, for tests.
func ServerName(p *Provisioner, r store.Record) string { return p.serverName(r) }

// NewWithoutTelemetry is New without any instrumentation (no metric, no
// span, Config's store and provider called directly): the baseline of
// BenchmarkTelemetry.
func NewWithoutTelemetry(cfg Config) (*Provisioner, error) { return newProvisioner(cfg, false) }

// StoreOf returns the store p works through: Config.Store, traced unless
// p has no telemetry.
func StoreOf(p *Provisioner) store.Store { return p.store }
