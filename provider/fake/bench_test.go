package fake_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

// BenchmarkExec measures one exec session over an open SSH connection,
// with the read-only namespace (where the machine allows it; the setup is
// done before the timer starts) and with rewriting and checks only; and
// one inject-style file write through the sudo, chown and mv stand-ins.
func BenchmarkExec(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts fake.Options
		cmd  string
	}{
		{"true/namespace", fake.Options{}, "true"},
		{"true/no-namespace", fake.Options{NoNamespace: true}, "true"},
		{"write-chown-mv/namespace", fake.Options{}, "t=$(mktemp /home/rachel/.x-XXXXXX) && echo x > \"$t\" && sudo -n chown rachel:rachel \"$t\" && mv -f \"$t\" /home/rachel/x"},
		{"write-chown-mv/no-namespace", fake.Options{NoNamespace: true}, "t=$(mktemp /home/rachel/.x-XXXXXX) && echo x > \"$t\" && sudo -n chown rachel:rachel \"$t\" && mv -f \"$t\" /home/rachel/x"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bb := setup(b, bc.opts, nil)
			_, s := bb.create(b, "srv", doc{})
			if !bc.opts.NoNamespace && !s.Isolated() {
				b.Skip("no namespace on this machine")
			}
			c := dial(b, s, "rachel", bb.key)
			b.ResetTimer()
			for b.Loop() {
				r, err := runErr(c, bc.cmd, "")
				require.NoError(b, err)
				require.Equal(b, 0, r.Code, r.Stderr)
			}
		})
	}
}

// BenchmarkNamespaceSetup measures Create, the namespace setup a
// server's first command triggers, and Delete, against Create and Delete
// alone.
func BenchmarkNamespaceSetup(b *testing.B) {
	for _, ns := range []bool{true, false} {
		name := "create-isolate-delete"
		if !ns {
			name = "create-delete"
		}
		b.Run(name, func(b *testing.B) {
			bb := setup(b, fake.Options{NoNamespace: !ns}, nil)
			for b.Loop() {
				ps, s := bb.create(b, "srv", doc{})
				if ns && !s.Isolated() {
					b.Skip("no namespace on this machine")
				}
				require.NoError(b, bb.p.Delete(context.Background(), ps.ID))
			}
		})
	}
}

// BenchmarkInject measures what one tenant of provision's fleet costs the
// simulation: Create, boot (phone_home), an SSH connection, the
// cloud-init wait, then the steps of a typical app (a directory and a
// secret file owned by the app user, a unit installed, reloaded, enabled,
// started and checked) as one pipelined script, and Delete. child-ms/op
// is the CPU time of the processes the server ran (the shells, the
// stand-ins, nsenter and the namespace holder): on a shared machine it is
// steadier than the wall time.
func BenchmarkInject(b *testing.B) {
	owner := inject.Owner("rachel:rachel")
	steps := []inject.Step{
		inject.Mkdir("/opt/app", 0o750, owner, inject.AsRoot()),
		inject.WriteFile("/opt/app/.env", []byte("API_TOKEN=0123456789abcdef\n"), 0o600, owner, inject.AsRoot()),
		inject.InstallUnit("app.service", []byte("[Unit]\nDescription=App\n[Service]\nExecStart=/opt/app/run\n")),
		inject.DaemonReload(),
		inject.EnableUnit("app.service"),
		inject.StartUnit("app.service"),
		inject.CheckActive("app.service", 0),
	}
	for _, ns := range []bool{true, false} {
		b.Run("namespace="+strconv.FormatBool(ns), func(b *testing.B) {
			bb := setup(b, fake.Options{NoNamespace: !ns}, nil)
			hostKeys := func(s *fake.Server) ssh.HostKeyCallback {
				cb, err := inject.PinnedHostKeys([]string{s.HostKeyLine()})
				require.NoError(b, err)
				return cb
			}
			ctx := context.Background()
			cpu0 := childCPU()
			for b.Loop() {
				ps, s := bb.create(b, "srv", doc{})
				if ns && !s.Isolated() {
					b.Skip("no namespace on this machine")
				}
				<-s.Booted()
				conn, err := inject.Dial(ctx, s.Addr(), inject.SSHConfig{User: "rachel", Signer: bb.key.signer, HostKeyCallback: hostKeys(s), Timeout: 5 * time.Second})
				require.NoError(b, err)
				require.NoError(b, inject.Run(ctx, conn, []inject.Step{inject.WaitCloudInit(false)}))
				require.NoError(b, inject.Run(ctx, conn, steps))
				require.NoError(b, conn.Close())
				require.True(b, s.Unit("app").Active)
				require.NoError(b, bb.p.Delete(ctx, ps.ID))
			}
			b.ReportMetric(float64(childCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "child-ms/op")
		})
	}
}
