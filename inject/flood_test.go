package inject_test

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/opensshd"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// heapPeak runs op and returns how far the live heap rose above what it
// was before, at its highest (sampled every millisecond), and how many
// bytes op allocated in all.
func heapPeak(op func()) (peak, total uint64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	base, allocs := s[1].Value.Uint64(), s[2].Value.Uint64()
	var mu sync.Mutex
	high := base
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(m)
			mu.Lock()
			high = max(high, m[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	op()
	close(stop)
	wg.Wait()
	metrics.Read(s)
	mu.Lock()
	defer mu.Unlock()
	high = max(high, s[1].Value.Uint64())
	return high - base, s[2].Value.Uint64() - allocs
}

// TestOutputFlood: a server that prints 256 MiB on stdout, or 128 MiB on
// stderr, must not raise the control plane's heap by as much.
func TestOutputFlood(t *testing.T) {
	key := sshtest.NewKey(t)
	srv := opensshd.Start(t, opensshd.Options{AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}})
	pinned, err := inject.PinnedHostKeys([]string{srv.HostKeyLine()})
	require.NoError(t, err)
	ctx := context.Background()
	c, err := inject.Dial(ctx, srv.Addr, inject.SSHConfig{User: srv.User, Signer: key, HostKeyCallback: pinned})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	// The commands: 256 MiB on stdout, 128 MiB on stderr.
	const stdout = "head -c 256M /dev/zero | tr '\\0' x; exit 1"
	const stderr = "head -c 128M /dev/zero | tr '\\0' x >&2; exit 1"
	steps := func(cmd string) []inject.Step {
		return []inject.Step{{Name: "ok", Cmd: "true"}, {Name: "flood", Cmd: cmd}, {Name: "never", Cmd: "true"}}
	}
	for _, tt := range []struct {
		name  string
		run   func(cmd string) error
		bound uint64 // heap growth allowed
	}{
		// (*SSH).Run returns stdout: it holds up to MaxOutput of it.
		{"SSH.Run", func(cmd string) error { _, _, err := c.Run(ctx, cmd, nil); return err }, 3 * inject.DefaultMaxOutput},
		// Run keeps markers and a tail.
		{"Run/stepwise", func(cmd string) error { return inject.Run(ctx, c, steps(cmd), inject.WithPipelining(false)) }, 16 << 20},
		{"Run/pipelined", func(cmd string) error { return inject.Run(ctx, c, steps(cmd)) }, 16 << 20},
	} {
		for _, cmd := range []struct{ name, cmd string }{{"stdout 256 MiB", stdout}, {"stderr 128 MiB", stderr}} {
			t.Run(tt.name+"/"+cmd.name, func(t *testing.T) {
				var err error
				start := time.Now()
				peak, total := heapPeak(func() { err = tt.run(cmd.cmd) })
				t.Logf("heap +%d MiB at peak, %d MiB allocated, %v: %.200v", peak>>20, total>>20, time.Since(start).Round(time.Millisecond), err)
				assert.Less(t, peak, tt.bound, "heap growth")
				var le *inject.OutputLimitError
				require.ErrorAs(t, err, &le)
				assert.Equal(t, int64(inject.DefaultMaxOutput), le.Limit)
				if tt.name != "SSH.Run" {
					var se *inject.StepError
					require.ErrorAs(t, err, &se)
					assert.Equal(t, "flood", se.Step)
					assert.Equal(t, 1, se.Index)
					assert.Equal(t, -1, se.ExitCode)
					assert.Contains(t, err.Error(), `step 2 "flood" failed: the command's output passed the limit of 16777216 bytes`)
					if cmd.cmd == stderr {
						assert.Len(t, se.Stderr, 16<<10, "a tail of stderr")
					}
				}
			})
		}
	}
	// The connection is still good.
	out, _, err := c.Run(ctx, "printf ok", nil)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(out))
}
