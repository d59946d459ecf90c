package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
)

// TestAbandonedBatchFreesWriter has another connection (as another process
// would) hold the write lock while an Update waits for it and gives up:
// the writer goroutine must stop waiting for the lock on behalf of nobody
// and come back to the queue at once, not after BusyTimeout. The queue is
// looked at directly: from outside, every later Update waits for the same
// lock either way.
func TestAbandonedBatchFreesWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hatchery.db")
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	id := "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e"
	require.NoError(t, s.Create(t.Context(), store.Record{ID: id, Status: store.StatusPending}))

	other, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer func() { _ = other.Close() }()
	holder, err := other.Conn(t.Context())
	require.NoError(t, err)
	defer func() { _ = holder.Close() }()
	_, err = holder.ExecContext(t.Context(), `BEGIN IMMEDIATE`)
	require.NoError(t, err)
	defer func() { _, _ = holder.ExecContext(context.Background(), `ROLLBACK`) }()

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = s.Update(ctx, id, func(r *store.Record) error { r.Attempts++; return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The writer takes the next op while the lock is still held.
	gone, stop := context.WithCancel(t.Context())
	stop()
	probe := &op{ctx: gone, id: id, fn: func(*store.Record, time.Time) error { return nil }, done: make(chan struct{})}
	start := time.Now()
	select {
	case s.ops <- probe:
	case <-time.After(BusyTimeout / 2):
		t.Fatalf("the writer still waits for the lock after its only caller left")
	}
	<-probe.done
	require.ErrorIs(t, probe.err, context.Canceled)
	require.Less(t, time.Since(start), time.Second)
}

// BenchmarkCheckFile measures the check that the path still names the open
// file, done once per write group (a batch of Updates, a Create, a Purge):
// compare with BenchmarkUpdate's time per Update.
func BenchmarkCheckFile(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "hatchery.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.checkFile(); err != nil {
			b.Fatal(err)
		}
	}
}
