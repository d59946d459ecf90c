package fake_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

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
