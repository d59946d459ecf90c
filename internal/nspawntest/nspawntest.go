// Package nspawntest gives tests real local servers from provider/nspawn,
// under internal/testenv's rules: a machine without root, systemd-nspawn
// or debootstrap skips the test, or fails it when HATCHERY_INTEGRATION=1.
//
// The image comes from the shared cache (nspawn.CacheEnv, else the user's
// cache directory), so a CI run builds it once for every test package;
// the first test to need it builds it, the others wait on its lock.
package nspawntest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
)

// ImageTimeout bounds the wait for an image: a cold build, on a busy
// 2-core machine, downloads about 60 MB and takes a few minutes.
const ImageTimeout = 15 * time.Minute

// New returns a Provider on a fresh StateDir (unless opts names one) with
// the image of opts.Suite (or the default) ready. At the end of the test
// the console of every server left is logged if the test failed, and the
// Provider is closed.
func New(t testing.TB, opts nspawn.Options) *nspawn.Provider {
	t.Helper()
	p := Open(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), ImageTimeout)
	defer cancel()
	if err := p.Prepare(ctx); err != nil {
		t.Fatalf("nspawn: image: %v", err)
	}
	return p
}

// Open is New without the image: it is built (or found) by the first
// Create.
func Open(t testing.TB, opts nspawn.Options) *nspawn.Provider {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = testenv.Logger(t)
	}
	p, err := nspawn.New(opts)
	if errors.Is(err, nspawn.ErrRequirements) {
		testenv.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatalf("nspawn.New: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			LogConsoles(t, p)
		}
		if err := p.Close(); err != nil {
			t.Errorf("nspawn: Close: %v", err)
		}
	})
	return p
}

// LogConsoles logs the end of the console of every server of p: what
// systemd and cloud-init said while booting.
func LogConsoles(t testing.TB, p *nspawn.Provider) {
	t.Helper()
	servers, err := p.List(context.Background(), nil)
	if err != nil {
		t.Logf("nspawn: list servers: %v", err)
		return
	}
	for _, s := range servers {
		out, err := p.Console(s.ID)
		if err != nil {
			t.Logf("nspawn: console of %s (%s): %v", s.Name, s.ID, err)
			continue
		}
		lines := strings.Split(string(out), "\n")
		lines = lines[max(len(lines)-60, 0):]
		t.Logf("nspawn: end of the console of %s (%s, %s):\n%s", s.Name, s.ID, s.Status, strings.Join(lines, "\n"))
	}
}
