package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/examples/internal/mirror"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
)

// TestRunNspawn runs the quickstart on real local Debian servers
// (provider/nspawn), with the mirror it starts itself: the Rachel8 recipe
// runs for real (cloud-init, apt, the installers, git, systemd) and both
// tenants end ready.
func TestRunNspawn(t *testing.T) {
	t.Parallel()
	if p, err := nspawn.New(nspawn.Options{StateDir: t.TempDir()}); errors.Is(err, nspawn.ErrRequirements) {
		testenv.Missing(t, err.Error())
	} else {
		require.NoError(t, err)
		require.NoError(t, p.Close())
	}
	if err := mirror.Requirements(); err != nil {
		testenv.Missing(t, err.Error())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	start := time.Now()
	code := run(ctx, []string{"-provider", "nspawn", "-tenants", "2", "-settle", "2s"}, &stdout, &stderr)
	out := stdout.String()
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out, stderr.String())
	t.Logf("quickstart -provider nspawn -tenants 2: %s\n%s", time.Since(start).Round(time.Second), out)
	assert.Empty(t, stderr.String())

	assert.Contains(t, out, "Provisioning 2 tenants on real local Debian bookworm servers (provider/nspawn)")
	assert.Regexp(t, regexp.MustCompile(`(?m)^sources:  a local mirror that this quickstart serves at https://127\.0\.0\.1:[0-9]+, with its own CA:$`), out)
	assert.Contains(t, out, "secrets:  fixed DEMO values (not secrets), written only into the local servers")
	require.Regexp(t, tableHeader, out)
	table := out[tableHeader.FindStringIndex(out)[0]:]
	assert.Len(t, readyRow.FindAllStringSubmatch(table, -1), 2, table)
	assert.Contains(t, table, "2 of 2 tenants ready.")
	assert.Contains(t, out, "The local servers are deleted as the quickstart exits.")
	for _, v := range demoSecrets().Values() {
		assert.NotContains(t, out, v)
	}
}

// Without root or the programs, -provider nspawn says what is missing and
// exits 2, before any server or the board: nspawn's requirements (root,
// systemd-nspawn, debootstrap), and the local mirror's unless -internet.
func TestRunNspawnRequirements(t *testing.T) {
	t.Parallel()
	noRoot := func(nspawn.Options) (*nspawn.Provider, error) {
		return nil, fmt.Errorf("%w: root: systemd-nspawn, overlay mounts and cgroups need CAP_SYS_ADMIN (run as root)", nspawn.ErrRequirements)
	}
	noGit := func(context.Context, mirror.Options) (*mirror.Mirror, error) {
		return nil, fmt.Errorf("%w: git is not installed (apt-get install git)", mirror.ErrRequirements)
	}
	working := func(ctx context.Context, o mirror.Options) (*mirror.Mirror, error) {
		if err := mirror.Requirements(); err != nil {
			return nil, err
		}
		return mirror.Start(ctx, o)
	}
	for _, tc := range []struct {
		name        string
		args        []string
		newNspawn   func(nspawn.Options) (*nspawn.Provider, error)
		startMirror func(context.Context, mirror.Options) (*mirror.Mirror, error)
		want        string
	}{
		{"no root", []string{"-provider", "nspawn"}, noRoot, working,
			"quickstart: -provider nspawn: nspawn: this machine cannot run servers: root: systemd-nspawn, overlay mounts and cgroups need CAP_SYS_ADMIN (run as root)\n"},
		{"no root, internet", []string{"-provider", "nspawn", "-internet"}, noRoot, noGit,
			"quickstart: -provider nspawn: nspawn: this machine cannot run servers: root: systemd-nspawn, overlay mounts and cgroups need CAP_SYS_ADMIN (run as root)\n"},
		{"no git for the mirror", []string{"-provider", "nspawn"}, noRoot, noGit,
			"quickstart: the local mirror for -provider nspawn (or use -internet): mirror: missing programs: git is not installed (apt-get install git)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if strings.HasPrefix(tc.name, "no root") && !strings.Contains(tc.name, "internet") {
				if err := mirror.Requirements(); err != nil {
					testenv.Missing(t, err.Error())
				}
			}
			o, err := parseFlags(tc.args, noEnv, io.Discard)
			require.NoError(t, err)
			o.newNspawn, o.startMirror = tc.newNspawn, tc.startMirror
			var stdout, stderr syncBuffer
			assert.Equal(t, exitUsage, o.run(t.Context(), &stdout, &stderr))
			assert.Equal(t, tc.want, stderr.String())
			assert.NotContains(t, stdout.String(), "Provisioning", "nothing started")
		})
	}
}
