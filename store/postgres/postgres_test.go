package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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

// TestIdleConnectionKilled ends the backend of the pool's only connection
// while it sits idle (as a server restart, a failover or an administrator's
// pg_terminate_backend does) and checks that the next operation of every
// kind succeeds on a new connection instead of failing on the dead one.
func TestIdleConnectionKilled(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t, testenv.PostgresURL(t))
	pool, err := pgxpool.New(t.Context(), dsn+"&pool_max_conns=1")
	require.NoError(t, err)
	defer pool.Close()
	s, err := postgres.New(t.Context(), pool)
	require.NoError(t, err)
	admin, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { _ = admin.Close(context.Background()) }()

	r := store.Record{ID: storetest.NewID(), Status: store.StatusDeleted}
	require.NoError(t, s.Create(t.Context(), r))
	ops := []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, r.ID); return err }},
		{"List", func(ctx context.Context) error { _, err := s.List(ctx); return err }},
		{"Create", func(ctx context.Context) error {
			return s.Create(ctx, store.Record{ID: storetest.NewID(), Status: store.StatusPending})
		}},
		{"Update", func(ctx context.Context) error {
			_, err := s.Update(ctx, r.ID, func(r *store.Record) error { r.Attempts++; return nil })
			return err
		}},
		{"UpdateNow", func(ctx context.Context) error {
			_, err := s.UpdateNow(ctx, r.ID, func(r *store.Record, now time.Time) error { r.LeaseUntil = now; return nil })
			return err
		}},
		{"Purge", func(ctx context.Context) error { _, err := s.Purge(ctx, time.Now().Add(-time.Hour)); return err }},
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
	}
	for _, op := range ops {
		var pid uint32
		require.NoError(t, pool.AcquireFunc(t.Context(), func(c *pgxpool.Conn) error {
			pid = c.Conn().PgConn().PID()
			return nil
		}))
		var ended bool
		require.NoError(t, admin.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ended))
		require.True(t, ended)
		require.Eventually(t, func() bool {
			var n int
			return admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n) == nil && n == 0
		}, 10*time.Second, time.Millisecond, "backend %d ends", pid)

		require.NoError(t, op.do(t.Context()), "%s after the idle connection's backend ended", op.name)
	}
	got, err := s.Get(t.Context(), r.ID)
	require.NoError(t, err)
	require.Equal(t, 1, got.Attempts, "the Update landed once")
}

// TestUpgradeFrom001 opens a schema that only has the first migration, with
// a record in it, as a store of the previous release left it: the schema is
// upgraded in place and the record keeps every value.
func TestUpgradeFrom001(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t, testenv.PostgresURL(t))
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	first, err := os.ReadFile("migrations/001_records.sql")
	require.NoError(t, err)
	for _, q := range []string{
		`CREATE TABLE hatchery_schema_version (version integer NOT NULL PRIMARY KEY,
			name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO hatchery_schema_version (version, name) VALUES (1, '001_records.sql')`,
		string(first),
	} {
		_, err := conn.Exec(t.Context(), q)
		require.NoError(t, err)
	}
	id := storetest.NewID()
	created := time.Date(2027, 1, 2, 3, 4, 5, 6000, time.UTC)
	_, err = conn.Exec(t.Context(), `INSERT INTO hatchery_records (id, status, server_id, host_keys, error, attempts,
		lease_owner, lease_until, created_at, updated_at) VALUES ($1, 'ready', '4711', ARRAY['ssh-ed25519 AAAA'], 'e', 2, 'a', $2, $3, $3)`,
		id, created.Add(time.Hour), created)
	require.NoError(t, err)

	s := open(t, dsn)
	got, err := s.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, store.Record{ID: id, Status: store.StatusReady, ServerID: "4711", HostKeys: []string{"ssh-ed25519 AAAA"},
		Error: "e", Attempts: 2, LeaseOwner: "a", LeaseUntil: created.Add(time.Hour), CreatedAt: created, UpdatedAt: created}, got)

	driftAt := time.Now().UTC().Truncate(time.Microsecond)
	got, err = s.Update(t.Context(), id, func(r *store.Record) error {
		r.Location, r.Drift, r.DriftAt = "fsn1", "server gone", driftAt
		return nil
	})
	require.NoError(t, err)
	again, err := s.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, got, again)
	var versions int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM hatchery_schema_version`).Scan(&versions))
	require.Equal(t, numMigrations(t), versions)
}

// Ping fails after Close, also on a pool the caller keeps open.
func TestPingAfterClose(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t, testenv.PostgresURL(t))
	pool, err := pgxpool.New(t.Context(), dsn)
	require.NoError(t, err)
	defer pool.Close()
	s, err := postgres.New(t.Context(), pool)
	require.NoError(t, err)
	require.NoError(t, s.Ping(t.Context()))
	require.NoError(t, s.Close())
	require.Error(t, s.Ping(t.Context()))

	owned, err := postgres.Open(t.Context(), dsn)
	require.NoError(t, err)
	require.NoError(t, owned.Close())
	require.Error(t, owned.Ping(t.Context()))
}

// Open's errors say "postgres" once and what failed: connecting is not
// migrating.
func TestOpenMessages(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(t.Context(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	require.ErrorContains(t, err, "postgres: open: failed to connect")
	require.Equal(t, 1, strings.Count(err.Error(), "postgres:"), "%v", err)
	require.NotContains(t, err.Error(), "migrate")

	dsn := freshSchema(t, testenv.PostgresURL(t))
	open(t, dsn)
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(t.Context(), `INSERT INTO hatchery_schema_version (version, name) VALUES (99, '099_future.sql')`)
	require.NoError(t, err)
	_, err = postgres.Open(t.Context(), dsn)
	require.EqualError(t, err, fmt.Sprintf("postgres: open: migrate: database schema version 99 is newer than this build's %d", numMigrations(t)))
	pool, err := pgxpool.New(t.Context(), dsn)
	require.NoError(t, err)
	defer pool.Close()
	_, err = postgres.New(t.Context(), pool)
	require.ErrorContains(t, err, "postgres: new: migrate: database schema version 99")
}
