package storetest

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/hatchery-dev/hatchery/store"
)

// BenchmarkUpdate measures Update on stores from open, in three
// sub-benchmarks, each reporting updates/s:
//
//   - serial: one goroutine incrementing one record;
//   - contended: 4×GOMAXPROCS goroutines (b.RunParallel) incrementing the
//     same record, every Update waiting for the one before;
//   - spread: as many goroutines, each incrementing its own record.
//
// Each checks afterwards that every increment landed.
func BenchmarkUpdate(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("serial", func(b *testing.B) {
		s := open(b)
		id := benchRecord(b, s)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := increment(b.Context(), s, id); err != nil {
				b.Fatal(err)
			}
			n++
		}
		reportRate(b, n)
		checkAttempts(b, s, id, n)
	})
	b.Run("contended", func(b *testing.B) {
		s := open(b)
		id := benchRecord(b, s)
		b.ReportAllocs()
		b.SetParallelism(4)
		var n atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := increment(b.Context(), s, id); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
		b.StopTimer()
		reportRate(b, int(n.Load()))
		checkAttempts(b, s, id, int(n.Load()))
	})
	b.Run("spread", func(b *testing.B) {
		s := open(b)
		const parallelism = 4
		ids := make([]string, parallelism*runtime.GOMAXPROCS(0))
		for i := range ids {
			ids[i] = benchRecord(b, s)
		}
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		var n, next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			id := ids[int(next.Add(1)-1)%len(ids)]
			for pb.Next() {
				if err := increment(b.Context(), s, id); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
		b.StopTimer()
		reportRate(b, int(n.Load()))
	})
}

func benchRecord(b *testing.B, s store.Store) string {
	b.Helper()
	id := NewID()
	if err := s.Create(b.Context(), store.Record{ID: id, Status: store.StatusInjectingSecrets,
		HostKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB root@bench"}}); err != nil {
		b.Fatal(err)
	}
	return id
}

func reportRate(b *testing.B, n int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)/s, "updates/s")
	}
}

func checkAttempts(b *testing.B, s store.Store, id string, want int) {
	b.Helper()
	r, err := s.Get(b.Context(), id)
	if err != nil {
		b.Fatal(err)
	}
	if r.Attempts != want {
		b.Fatalf("Attempts = %d after %d increments: lost updates", r.Attempts, want)
	}
}
