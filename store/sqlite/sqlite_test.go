package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
	"github.com/hatchery-dev/hatchery/store/storetest"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, ":memory:") })
	})
	t.Run("file", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, filepath.Join(t.TempDir(), "hatchery.db")) },
			storetest.Replicas(func(t *testing.T) (store.Store, store.Store) {
				path := filepath.Join(t.TempDir(), "hatchery.db")
				return open(t, path), open(t, path)
			}))
	})
}

func BenchmarkUpdate(b *testing.B) {
	storetest.BenchmarkUpdate(b, func(b *testing.B) store.Store { return open(b, filepath.Join(b.TempDir(), "hatchery.db")) })
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestReopenKeepsRecordsAndSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hatchery.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	r := store.Record{ID: storetest.NewID(), Status: store.StatusReady, HostKeys: []string{"k"}}
	require.NoError(t, s.Create(t.Context(), r))
	want, err := s.Get(t.Context(), r.ID)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = open(t, path)
	got, err := s.Get(t.Context(), r.ID)
	require.NoError(t, err)
	require.Equal(t, want, got)

	db := rawDB(t, path)
	var versions int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM hatchery_schema_version`).Scan(&versions))
	require.Equal(t, 1, versions, "each migration is recorded once")
	var mode string
	require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode)
}

func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hatchery.db")
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := sqlite.Open(t.Context(), path)
			if err == nil {
				err = s.Create(t.Context(), store.Record{ID: storetest.NewID(), Status: store.StatusPending})
				err = errors.Join(err, s.Close())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var versions, records int
	db := rawDB(t, path)
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM hatchery_schema_version`).Scan(&versions))
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM hatchery_records`).Scan(&records))
	require.Equal(t, 1, versions)
	require.Equal(t, n, records)
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hatchery.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = rawDB(t, path).Exec(`INSERT INTO hatchery_schema_version (version, name, applied_at) VALUES (99, '099_future.sql', 0)`)
	require.NoError(t, err)

	_, err = sqlite.Open(t.Context(), path)
	require.ErrorContains(t, err, "newer than this build")
}

func TestOpenInvalidPath(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", "hatchery.db?_pragma=journal_mode(DELETE)", "a\x00b"} {
		_, err := sqlite.Open(t.Context(), path)
		require.ErrorIs(t, err, store.ErrInvalid, "%q", path)
	}
}

func TestOpenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hatchery.db"))
	require.ErrorIs(t, err, context.Canceled)
}

func TestMemoryDatabasesArePrivate(t *testing.T) {
	t.Parallel()
	a, b := open(t, ":memory:"), open(t, ":memory:")
	r := store.Record{ID: storetest.NewID(), Status: store.StatusPending}
	require.NoError(t, a.Create(t.Context(), r))
	_, err := b.Get(t.Context(), r.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}
