package callback_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

const (
	loadTenants = 10_000
	loadClients = 256
)

// BenchmarkLoad phones home for 10,000 distinct tenants from 256
// concurrent clients over real HTTP on 127.0.0.1, and, in the same run,
// sends the same requests to a bare handler that only answers 200. One
// iteration is one full round of 10,000 callbacks (run with -benchtime=1x
// or 2x). It fails on any lost callback (non-200, transport error, record
// not moved) and on any double transition (OnReady twice for a tenant).
//
// Metrics: req/s and p99-ms for the handler, bare-req/s and bare-p99-ms for
// the bare handler, and ratio = req/s / bare-req/s (goal: >= 0.25 on
// SQLite, p99 < 50 ms).
func BenchmarkLoad(b *testing.B) {
	for _, s := range loadStores {
		b.Run(s.name, func(b *testing.B) { benchLoad(b, s.open) })
	}
}

// loadStore opens an empty store for one round of BenchmarkLoad.
type loadStore struct {
	name string
	open func(b *testing.B) store.Store
}

// loadStores lists the stores BenchmarkLoad runs against: SQLite (the
// embedded default, the one the goal is about) in a fresh file per round,
// and memory as the handler's own ceiling.
var loadStores = []loadStore{
	{"sqlite", func(b *testing.B) store.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "hatchery.db"))
		if err != nil {
			b.Fatal(err)
		}
		return st
	}},
	{"memory", func(*testing.B) store.Store { return memory.New() }},
}

func benchLoad(b *testing.B, open func(b *testing.B) store.Store) {
	ids := make([]string, loadTenants)
	bodies := make([]string, loadTenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		bodies[i] = cloudInitForm(fmt.Sprintf("tenant-%d", i), fmt.Sprint(10_000_000+i))
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        loadClients,
		MaxIdleConnsPerHost: loadClients,
		MaxConnsPerHost:     loadClients,
	}}
	defer client.CloseIdleConnections()

	var rate, p99, bareRate, bareP99 float64
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		ctx := context.Background()
		st := open(b)
		createAll(b, st, ids)

		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
		}))
		r, l := loadRound(b, client, bare.URL, ids, bodies, func(string) string { return "" })
		bare.Close()
		bareRate += r
		bareP99 = max(bareP99, l)

		var mu sync.Mutex
		readies := make(map[string]int, loadTenants)
		var wg sync.WaitGroup
		wg.Add(loadTenants)
		h := &callback.Handler{Store: st, Key: testKey, OnReady: func(_ context.Context, r store.Record) {
			mu.Lock()
			readies[r.ID]++
			n := readies[r.ID]
			mu.Unlock()
			if n == 1 {
				wg.Done()
			}
		}}
		srv := httptest.NewServer(h)
		b.StartTimer()
		r, l = loadRound(b, client, srv.URL+"/cb", ids, bodies, func(id string) string { return tokenFor(testKey, id) })
		b.StopTimer()
		srv.Close()
		rate += r
		p99 = max(p99, l)

		allReady := make(chan struct{})
		go func() { wg.Wait(); close(allReady) }()
		select {
		case <-allReady:
		case <-time.After(time.Minute):
			b.Fatal("OnReady was not called for every tenant")
		}
		mu.Lock()
		for _, id := range ids {
			if n := readies[id]; n != 1 {
				b.Fatalf("tenant %s: OnReady %d times", id, n)
			}
		}
		mu.Unlock()
		recs, err := st.List(ctx, store.StatusInjectingSecrets)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) != loadTenants {
			b.Fatalf("%d of %d tenants moved to injecting_secrets", len(recs), loadTenants)
		}
		if c, ok := st.(io.Closer); ok {
			c.Close()
		}
	}
	n := float64(b.N)
	b.ReportMetric(rate/n, "req/s")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(bareRate/n, "bare-req/s")
	b.ReportMetric(bareP99, "bare-p99-ms")
	b.ReportMetric(rate/bareRate, "ratio")
}

// createAll creates the tenants in cloud_init, a few at a time.
func createAll(b *testing.B, st store.Store, ids []string) {
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(ids)); i = next.Add(1) - 1 {
				if err := st.Create(ctx, store.Record{ID: ids[i], Status: store.StatusCloudInit}); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}

// loadRound posts every body once, from loadClients goroutines, and
// returns the rate in requests per second and the p99 latency in ms.
// Every answer must be a 200.
func loadRound(b *testing.B, client *http.Client, base string, ids, bodies []string, token func(string) string) (float64, float64) {
	var next atomic.Int64
	lat := make([]time.Duration, len(ids))
	errs := make(chan error, loadClients)
	var wg sync.WaitGroup
	start := time.Now()
	for range loadClients {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(ids)); i = next.Add(1) - 1 {
				t0 := time.Now()
				resp, err := client.Post(base+"/"+ids[i]+"?token="+token(ids[i]), formCT, strings.NewReader(bodies[i]))
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("tenant %s: answer %d", ids[i], resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal("lost callback: ", err)
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	return float64(len(ids)) / elapsed.Seconds(), float64(p99) / float64(time.Millisecond)
}
