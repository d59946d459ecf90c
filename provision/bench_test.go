package provision_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	for b.Loop() {
		fleet(b, n)
	}
}

func fleet(b *testing.B, n int) {
	b.StopTimer()
	runtime.GC()
	baseline := runtime.NumGoroutine()
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hatchery.db"))
	if err != nil {
		b.Fatal(err)
	}
	cloud := fake.New(fake.Options{BootDelay: 10 * time.Millisecond, PhoneHomeInterval: 50 * time.Millisecond, Dir: filepath.Join(dir, "servers")})
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
	front := newFront(b)
	p, err = provision.New(provision.Config{
		Provider: cloud, Store: st, Secrets: secrets,
		BootstrapFunc: bootstrap, StepsFunc: steps,
		SSHUser: sshUser, Signer: newSigner(b),
		CallbackBase: front.base(), CallbackKey: []byte(randHex(32)),
		Replica: "bench", MaxAttempts: 1,
		OnEvent: func(e provision.Event) {
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
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("fleet not settled after 5 minutes: %d ready, %d failed of %d", ready.Load(), failed.Load(), n)
	}
	wall := time.Since(start)
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
	b.ReportMetric(wall.Seconds(), "s/fleet")
	b.ReportMetric(float64(n)/wall.Seconds(), "tenants/s")
	b.ReportMetric(float64(peakSys)/(1<<20), "peak-sys-MiB")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(peakG), "peak-goroutines")
	b.ReportMetric(float64(max(left, 0)), "goroutines-left")
	b.Logf("%d tenants ready in %v; peak %0.f MiB from the OS, %.0f MiB heap, %d goroutines; %d left",
		n, wall.Round(time.Millisecond), float64(peakSys)/(1<<20), float64(peakHeap)/(1<<20), peakG, max(left, 0))
}
