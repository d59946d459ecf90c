// Package testenv decides whether tests that need outside programs or
// services run, skip or fail.
//
// A test that needs something the machine lacks skips with a clear message,
// unless HATCHERY_INTEGRATION=1 is set (as .ci/run does), in which case the
// missing piece is a failure: CI must never pass by skipping.
package testenv

import (
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Integration reports whether HATCHERY_INTEGRATION=1 is set.
func Integration() bool { return os.Getenv("HATCHERY_INTEGRATION") == "1" }

// Missing skips t with why, or fails it when integration tests are required.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Integration() {
		t.Fatalf("HATCHERY_INTEGRATION=1 but %s", why)
	}
	t.Skipf("skipping: %s (set HATCHERY_INTEGRATION=1 to make this a failure)", why)
}

// LookPath returns the path of program, searching PATH and then the extra
// directories given (e.g. /usr/sbin for sshd). When it is not found, the
// test is skipped or failed through Missing.
func LookPath(t testing.TB, program string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	for _, d := range extraDirs {
		p := d + "/" + program
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	Missing(t, program+" is not installed")
	return ""
}

// PostgresURL returns HATCHERY_POSTGRES_URL, or skips/fails t when it is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("HATCHERY_POSTGRES_URL")
	if u == "" {
		Missing(t, "HATCHERY_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return u
}

// Logger logs to the test output when HATCHERY_TEST_LOG is set, else
// nowhere.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("HATCHERY_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
