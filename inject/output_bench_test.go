package inject_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/opensshd"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"golang.org/x/crypto/ssh"
)

// BenchmarkOutput measures the memory a command's output costs the
// control plane, against a real OpenSSH sshd: each op runs a command that
// prints 2 MiB on stdout and 2 MiB on stderr, through (*SSH).Run and
// through Run on both paths. B/op (-benchmem) is what the op allocated;
// B/out-byte is that per byte of output.
//
//	go test -run '^$' -bench BenchmarkOutput -benchmem ./inject/
func BenchmarkOutput(b *testing.B) {
	key := sshtest.NewKey(b)
	srv := opensshd.Start(b, opensshd.Options{AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}})
	pinned, err := inject.PinnedHostKeys([]string{srv.HostKeyLine()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c, err := inject.Dial(ctx, srv.Addr, inject.SSHConfig{User: srv.User, Signer: key, HostKeyCallback: pinned})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	const size = 2 << 20
	const cmd = "head -c 2M /dev/zero | tr '\\0' x; head -c 2M /dev/zero | tr '\\0' y >&2"
	for _, bb := range []struct {
		name string
		run  func() error
	}{
		{"SSH.Run", func() error { _, _, err := c.Run(ctx, cmd, nil); return err }},
		{"Run/stepwise", func() error {
			return inject.Run(ctx, c, []inject.Step{{Name: "out", Cmd: cmd}}, inject.WithPipelining(false))
		}},
		{"Run/pipelined", func() error {
			return inject.Run(ctx, c, []inject.Step{{Name: "ok", Cmd: "true"}, {Name: "out", Cmd: cmd}})
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(2 * size)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				if err := bb.run(); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(2*size), "B/out-byte")
		})
	}
}
