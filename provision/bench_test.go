package provision_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

// BenchmarkFleet provisions a fleet (1,000 tenants; HATCHERY_FLEET
// overrides) from nothing to ready in one process: provider/fake servers
// (each a real SSH server on 127.0.0.1 phoning home over HTTP), the SQLite
// store, one Provisioner. It reports the wall time per fleet, the peak
// memory obtained from the OS and in use by the heap, the peak number of
// goroutines, and the goroutines left once everything is closed (0: no
// leak). Run it once: go test -run '^$' -bench Fleet -benchtime 1x ./provision/
func BenchmarkFleet(b *testing.B) {
	n := 1000
	if s := os.Getenv("HATCHERY_FLEET"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("HATCHERY_FLEET: %v", err)
		}
	}
	raiseFileLimit(b, 8*n+1024)
	// full: the tests' seven steps (mkdir, .env, unit, daemon-reload,
	// enable, start, is-active), about 40 processes on each simulated
	// server. env: only the .env, written as the SSH user, about 10: the
	// orchestration with less of the simulation's cost.
	for _, bc := range []struct {
		name  string
		steps func(context.Context, provision.StepsInput) ([]inject.Step, error)
	}{
		{"steps=full", steps},
		{"steps=env", func(_ context.Context, in provision.StepsInput) ([]inject.Step, error) {
			return []inject.Step{inject.WriteFile("/home/"+sshUser+"/.env", []byte("API_TOKEN="+in.Secrets["API_TOKEN"]+"\n"), 0o600)}, nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				fleet(b, n, bc.steps)
			}
		})
	}
}

func fleet(b *testing.B, n int, stepsFunc func(context.Context, provision.StepsInput) ([]inject.Step, error)) {
	b.StopTimer()
	runtime.GC()
	baseline := runtime.NumGoroutine()
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hatchery.db"))
	if err != nil {
		b.Fatal(err)
	}
	// The simulated servers' file systems are simulation, not what is
	// measured: on tmpfs when there is one, so that the disk of a shared
	// machine does not dominate. The store stays on disk.
	sandboxes := filepath.Join(dir, "servers")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "hatchery-fleet-"); err == nil {
			sandboxes = d
			defer os.RemoveAll(d)
		}
	}
	cloud := fake.New(fake.Options{BootDelay: 10 * time.Millisecond, PhoneHomeInterval: 50 * time.Millisecond, Dir: sandboxes,
		Logger: slog.New(slog.NewTextHandler(benchLog{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	secrets := &secretBox{}
	var ready, failed atomic.Int64
	done := make(chan struct{})
	var doneOnce sync.Once
	settle := func() {
		if ready.Load()+failed.Load() == int64(n) {
			doneOnce.Do(func() { close(done) })
		}
	}
	var p *provision.Provisioner
	phases := newPhaseClock()
	front := newFront(b)
	p, err = provision.New(provision.Config{
		Provider: cloud, Store: st, Secrets: secrets,
		BootstrapFunc: bootstrap, StepsFunc: stepsFunc,
		SSHUser: sshUser, Signer: newSigner(b),
		CallbackBase: front.base(), CallbackKey: []byte(randHex(32)),
		Replica: "bench", MaxAttempts: 1,
		OnEvent: func(e provision.Event) {
			phases.add(e)
			switch e.To {
			case store.StatusReady:
				ready.Add(1)
				settle()
			case store.StatusFailed:
				failed.Add(1)
				b.Logf("failed: %v", e)
				settle()
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	front.add("bench", p.Handler())
	tenants := ids(n)

	stopSampling := make(chan struct{})
	var peakSys, peakHeap uint64
	var peakG int
	var sampled sync.WaitGroup
	sampled.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peakSys = max(peakSys, ms.Sys)
			peakHeap = max(peakHeap, ms.HeapInuse)
			peakG = max(peakG, runtime.NumGoroutine())
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	})

	b.StartTimer()
	start := time.Now()
	self0, children0 := cpuTimes()
	work := make(chan string)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for id := range work {
				if err := p.Provision(ctx, id); err != nil {
					b.Errorf("provision %s: %v", id, err)
				}
			}
		})
	}
	for _, id := range tenants {
		work <- id
	}
	close(work)
	wg.Wait()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	timeout := time.After(5 * time.Minute)
wait:
	for {
		select {
		case <-done:
			break wait
		case <-progress.C:
			b.Logf("%v: %d ready, %d failed", time.Since(start).Round(time.Second), ready.Load(), failed.Load())
		case <-timeout:
			left := map[store.Status]int{}
			recs, _ := st.List(ctx)
			for _, r := range recs {
				left[r.Status]++
			}
			b.Fatalf("fleet not settled after 5 minutes: %d ready, %d failed of %d; statuses %v", ready.Load(), failed.Load(), n, left)
		}
	}
	wall := time.Since(start)
	self1, children1 := cpuTimes()
	b.StopTimer()
	close(stopSampling)
	sampled.Wait()

	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d tenants failed", f, n)
	}
	recs, err := st.List(ctx, store.StatusReady)
	if err != nil || len(recs) != n {
		b.Errorf("%d ready records of %d (%v)", len(recs), n, err)
	}
	_ = p.Close()
	_ = cloud.Close()
	front.srv.Close()
	_ = st.Close()
	left := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = runtime.NumGoroutine() - baseline
		if left <= 0 || time.Now().After(deadline) {
			break
		}
	}
	if left > 0 {
		buf := make([]byte, 1<<20)
		b.Errorf("%d goroutines left:\n%s", left, buf[:runtime.Stack(buf, true)])
	}
	b.Logf("phases (median, p99): %s", phases)
	b.Logf("CPU: this process %v (provision, SQLite, and the fake's SSH and HTTP), the simulated servers' shell processes %v",
		(self1 - self0).Round(time.Millisecond), (children1 - children0).Round(time.Millisecond))
	b.ReportMetric((self1 - self0).Seconds(), "cpu-s-self")
	b.ReportMetric((children1 - children0).Seconds(), "cpu-s-children")
	b.ReportMetric(wall.Seconds(), "s/fleet")
	b.ReportMetric(float64(n)/wall.Seconds(), "tenants/s")
	b.ReportMetric(float64(peakSys)/(1<<20), "peak-sys-MiB")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(peakG), "peak-goroutines")
	b.ReportMetric(float64(max(left, 0)), "goroutines-left")
	b.Logf("%d tenants ready in %v; peak %0.f MiB from the OS, %.0f MiB heap, %d goroutines; %d left",
		n, wall.Round(time.Millisecond), float64(peakSys)/(1<<20), float64(peakHeap)/(1<<20), peakG, max(left, 0))
}

// benchLog passes the fake's warnings (a phone_home that gave up) to the
// benchmark's log.
type benchLog struct{ b *testing.B }

func (l benchLog) Write(p []byte) (int, error) {
	l.b.Log(string(p))
	return len(p), nil
}

// phaseClock measures how long tenants spend in each status.
type phaseClock struct {
	mu    sync.Mutex
	enter map[string]time.Time    // tenant -> when it entered its current status
	cur   map[string]store.Status // tenant -> current status
	spent map[store.Status][]time.Duration
}

func newPhaseClock() *phaseClock {
	return &phaseClock{enter: map[string]time.Time{}, cur: map[string]store.Status{}, spent: map[store.Status][]time.Duration{}}
}

func (c *phaseClock) add(e provision.Event) {
	if e.Step != "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.cur[e.Tenant]; ok {
		c.spent[s] = append(c.spent[s], e.Time.Sub(c.enter[e.Tenant]))
	}
	c.cur[e.Tenant], c.enter[e.Tenant] = e.To, e.Time
}

func (c *phaseClock) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out string
	for _, s := range store.Statuses() {
		d := c.spent[s]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		out += fmt.Sprintf("%s %v/%v; ", s, d[len(d)/2].Round(time.Millisecond), d[len(d)*99/100].Round(time.Millisecond))
	}
	return out
}
