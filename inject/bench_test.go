package inject_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/latency"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"golang.org/x/crypto/ssh"
)

// benchDelay is the latency proxy's delay each way: one round trip (RTT)
// costs 2*benchDelay.
const benchDelay = 10 * time.Millisecond

// BenchmarkRun counts the round trips a 9-step injection with two secret
// files costs after connecting, pipelined (one session) and stepwise (one
// session per step), over a link that delays every chunk by benchDelay
// each way; and what connecting costs.
//
// Each iteration runs twice, at the set delay and at none, in turn:
// RTT/op is (time with delay - time without) / RTT, so the local cost of
// running the shell commands drops out; raw-RTT/op is the time with delay
// / RTT. ns/op is the time with delay.
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 20x ./inject/
func BenchmarkRun(b *testing.B) {
	bin, _ := standins(b)
	root := b.TempDir()
	for _, d := range []string{"/etc/systemd/system", "/home/rachel"} {
		if err := os.MkdirAll(root+d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	key := sshtest.NewKey(b)
	srv := sshtest.Start(b, sshtest.Options{
		AuthorizedKeys: []ssh.PublicKey{key.PublicKey()},
		Handler:        sshtest.ExecWith(sandbox(root), "PATH="+bin),
	})
	p, err := latency.New(srv.Addr(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	pinned, err := inject.PinnedHostKeys([]string{srv.HostKeyLine()})
	if err != nil {
		b.Fatal(err)
	}
	cfg := inject.SSHConfig{User: "rachel", Signer: key, HostKeyCallback: pinned, KeepAlive: -1}
	ctx := context.Background()
	steps := []inject.Step{
		inject.WaitCloudInit(false),
		inject.Mkdir("/home/rachel/app", 0o750),
		inject.WriteFile("/home/rachel/app/.env", []byte("ANTHROPIC_API_KEY=sk-ant-0123456789abcdef\nTELEGRAM_BOT_TOKEN=123456:ABCDEF\n"), 0o600),
		inject.WriteFile("/home/rachel/.git-credentials", []byte("https://rachel:ghp_0123456789abcdef@github.com\n"), 0o600),
		inject.InstallUnit("rachel8.service", []byte("[Service]\nExecStart=/home/rachel/app/run\n")),
		inject.DaemonReload(),
		inject.EnableUnit("rachel8.service"),
		inject.RestartUnit("rachel8.service"),
		inject.CheckActive("rachel8.service", 0),
	}

	// measure times op at the set delay and at none, in turn, and reports
	// the round trips.
	measure := func(b *testing.B, op func() error) {
		var delayed, plain time.Duration
		for b.Loop() {
			p.SetDelay(benchDelay)
			start := time.Now()
			if err := op(); err != nil {
				b.Fatal(err)
			}
			delayed += time.Since(start)

			b.StopTimer()
			p.SetDelay(0)
			start = time.Now()
			if err := op(); err != nil {
				b.Fatal(err)
			}
			plain += time.Since(start)
			b.StartTimer()
		}
		rtt := float64(2 * benchDelay)
		n := float64(b.N)
		b.ReportMetric(float64(delayed-plain)/n/rtt, "RTT/op")
		b.ReportMetric(float64(delayed)/n/rtt, "raw-RTT/op")
	}

	b.Run("connect", func(b *testing.B) {
		measure(b, func() error {
			c, err := inject.Dial(ctx, p.Addr(), cfg)
			if err != nil {
				return err
			}
			return c.Close()
		})
	})
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			c, err := inject.Dial(ctx, p.Addr(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			sessions := len(srv.Commands())
			measure(b, func() error {
				return inject.Run(ctx, c, steps, inject.WithPipelining(m.pipelined))
			})
			b.ReportMetric(float64(len(srv.Commands())-sessions)/float64(2*b.N), "sessions/op")
		})
	}
}
