package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/postgres"
	"github.com/hatchery-dev/hatchery/store/storetest"
)

func TestConformance(t *testing.T) {
	base := testenv.PostgresURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, freshSchema(t, base)) },
		storetest.Replicas(func(t *testing.T) (store.Store, store.Store) {
			dsn := freshSchema(t, base)
			return open(t, dsn), open(t, dsn)
		}),
		storetest.Corrupter(func(t *testing.T) (store.Store, func(string, storetest.Corruption) error) {
			dsn := freshSchema(t, base)
			s := open(t, dsn)
			return s, func(id string, how storetest.Corruption) error {
				set := map[storetest.Corruption]string{
					storetest.CorruptHostKeys: `host_keys = ARRAY['ssh-ed25519 AAAA', NULL]::text[]`,
					storetest.CorruptStatus:   `status = 'booting'`,
					storetest.CorruptTime:     `lease_until = 'infinity'`,
				}[how]
				conn, err := pgx.Connect(t.Context(), dsn)
				if err != nil {
					return err
				}
				defer func() { _ = conn.Close(context.Background()) }()
				_, err = conn.Exec(t.Context(), `UPDATE hatchery_records SET `+set+` WHERE id = $1`, id)
				return err
			}
		}))
}

func open(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// freshSchema creates a schema of its own for one test, dropped when the
// test ends, and returns base with search_path set to it: tests (here and
// in other packages) sharing the database never see each other's rows.
func freshSchema(t testing.TB, base string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "hatchery_store_test_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})

	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// numMigrations counts the package's migration files.
func numMigrations(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return len(files)
}

func BenchmarkUpdate(b *testing.B) {
	base := testenv.PostgresURL(b)
	storetest.BenchmarkUpdate(b, func(b *testing.B) store.Store { return open(b, freshSchema(b, base)) })
}

// Replicas starting together on a fresh schema apply the migration once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t, testenv.PostgresURL(t))
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), dsn)
			if err == nil {
				err = s.Create(t.Context(), store.Record{ID: storetest.NewID(), Status: store.StatusPending})
				_ = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	var versions, records int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM hatchery_schema_version`).Scan(&versions))
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM hatchery_records`).Scan(&records))
	require.Equal(t, numMigrations(t), versions)
	require.Equal(t, n, records)
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t, testenv.PostgresURL(t))
	open(t, dsn)
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(t.Context(), `INSERT INTO hatchery_schema_version (version, name) VALUES (99, '099_future.sql')`)
	require.NoError(t, err)

	_, err = postgres.Open(t.Context(), dsn)
	require.ErrorContains(t, err, "newer than this build")
}

func TestNewWithCallersPool(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t, testenv.PostgresURL(t))
	pool, err := pgxpool.New(t.Context(), dsn)
	require.NoError(t, err)
	defer pool.Close()

	s, err := postgres.New(t.Context(), pool)
	require.NoError(t, err)
	r := store.Record{ID: storetest.NewID(), Status: store.StatusPending}
	require.NoError(t, s.Create(t.Context(), r))
	require.NoError(t, s.Close())
	require.NoError(t, pool.Ping(t.Context()), "Close leaves the caller's pool open")

	// A second Store on the same pool finds the schema in place.
	s2, err := postgres.New(t.Context(), pool)
	require.NoError(t, err)
	_, err = s2.Get(t.Context(), r.ID)
	require.NoError(t, err)

	_, err = postgres.New(t.Context(), nil)
	require.ErrorIs(t, err, store.ErrInvalid)
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	base := testenv.PostgresURL(t)

	_, err := postgres.Open(t.Context(), "postgres://user:sekrit@127.0.0.1:5432/db?sslmode=bogus")
	require.ErrorIs(t, err, store.ErrInvalid)
	require.NotContains(t, err.Error(), "sekrit", "no password in errors")

	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", "hatchery_store_test_does_not_exist")
	u.RawQuery = q.Encode()
	_, err = postgres.Open(t.Context(), u.String())
	require.ErrorContains(t, err, "no schema of the search_path exists")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = postgres.Open(ctx, freshSchema(t, base))
	require.ErrorIs(t, err, context.Canceled)
}

// A rolled-back Update must leave its pooled connection usable and the
// row unlocked: a pool of one connection would deadlock otherwise.
func TestUpdateErrorsReleaseTheRow(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t, testenv.PostgresURL(t))
	s := open(t, dsn+"&pool_max_conns=1")
	r := store.Record{ID: storetest.NewID(), Status: store.StatusPending}
	require.NoError(t, s.Create(t.Context(), r))
	errNo := errors.New("no")
	for range 3 {
		_, err := s.Update(t.Context(), r.ID, func(*store.Record) error { return errNo })
		require.Equal(t, errNo, err)
		_, err = s.Update(t.Context(), r.ID, func(r *store.Record) error { r.Status = "bogus"; return nil })
		require.ErrorIs(t, err, store.ErrInvalid)
		ctx, cancel := context.WithCancel(t.Context())
		_, err = s.Update(ctx, r.ID, func(r *store.Record) error { cancel(); r.Attempts++; return nil })
		require.ErrorIs(t, err, context.Canceled)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := s.Update(ctx, r.ID, func(r *store.Record) error { r.Attempts++; return nil })
	require.NoError(t, err)
	require.Equal(t, 1, got.Attempts)
}
