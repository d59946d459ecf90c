package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
			}),
			storetest.Corrupter(func(t *testing.T) (store.Store, func(string, storetest.Corruption) error) {
				path := filepath.Join(t.TempDir(), "hatchery.db")
				s, db := open(t, path), rawDB(t, path)
				return s, func(id string, how storetest.Corruption) error {
					set := map[storetest.Corruption]string{
						storetest.CorruptHostKeys: `host_keys = '["ssh-ed25519 AAAA", unterminated'`,
						storetest.CorruptStatus:   `status = 'booting'`,
						storetest.CorruptTime:     `lease_until = 9223372036854775807`, // year 294247
					}[how]
					_, err := db.Exec(`UPDATE hatchery_records SET `+set+` WHERE id = ?`, id)
					return err
				}
			}))
	})
}

func BenchmarkUpdate(b *testing.B) {
	storetest.BenchmarkUpdate(b, func(b *testing.B) store.Store { return open(b, filepath.Join(b.TempDir(), "hatchery.db")) })
}

// numMigrations counts the package's migration files.
func numMigrations(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return len(files)
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
	require.Equal(t, numMigrations(t), versions, "each migration is recorded once")
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
	require.Equal(t, numMigrations(t), versions)
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

// holdWriter starts an Update on id whose fn waits for the returned
// release, so that Updates queued meanwhile are committed as one group.
func holdWriter(t *testing.T, s *sqlite.Store, id string) (release func(), done <-chan error) {
	t.Helper()
	entered, rel := make(chan struct{}), make(chan struct{})
	ch := make(chan error, 1)
	go func() {
		_, err := s.Update(t.Context(), id, func(r *store.Record) error {
			close(entered)
			<-rel
			r.Attempts++
			return nil
		})
		ch <- err
	}()
	<-entered
	return func() { close(rel) }, ch
}

// TestGroupCommitIsolatesFailures queues Updates behind a held one so that
// they commit together, some failing in fn, some in the UPDATE statement
// (a trigger aborts it), some panicking: only the failed ones are undone.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hatchery.db")
	s := open(t, path)
	good := store.Record{ID: storetest.NewID(), Status: store.StatusPending}
	bad := store.Record{ID: storetest.NewID(), Status: store.StatusPending}
	for _, r := range []store.Record{good, bad} {
		require.NoError(t, s.Create(t.Context(), r))
	}
	_, err := rawDB(t, path).Exec(`CREATE TRIGGER refuse BEFORE UPDATE ON hatchery_records
		WHEN OLD.id = '` + bad.ID + `' BEGIN SELECT RAISE(ABORT, 'refused'); END`)
	require.NoError(t, err)

	release, held := holdWriter(t, s, good.ID)
	errFn := errors.New("fn says no")
	const n = 30
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			id := good.ID
			if i%3 == 1 {
				id = bad.ID
			}
			_, errs[i] = s.Update(t.Context(), id, func(r *store.Record) error {
				switch {
				case i%6 == 2:
					return errFn
				case i%6 == 5:
					r.Attempts += 100
					panic("boom")
				}
				r.Attempts++
				return nil
			})
		})
	}
	time.Sleep(50 * time.Millisecond) // let the Updates queue behind the held one
	release()
	wg.Wait()
	require.NoError(t, <-held)

	wantGood := 1
	for i := range n {
		switch {
		case i%6 == 5:
			require.Equal(t, "boom", panics[i], "update %d", i)
		case i%6 == 2:
			require.Same(t, errFn, errs[i], "update %d: fn's error is returned as is", i)
		case i%3 == 1:
			require.ErrorContains(t, errs[i], "refused", "update %d", i)
		default:
			require.NoError(t, errs[i], "update %d", i)
			wantGood++
		}
	}
	got, err := s.Get(t.Context(), good.ID)
	require.NoError(t, err)
	require.Equal(t, wantGood, got.Attempts)
	got, err = s.Get(t.Context(), bad.ID)
	require.NoError(t, err)
	require.Zero(t, got.Attempts, "nothing of a failed Update is written")
}

// TestQueuedUpdateCancelled checks that an Update waiting behind another
// leaves when its context ends, without fn running, and that Close fails
// Updates after it.
func TestQueuedUpdateCancelled(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hatchery.db"))
	require.NoError(t, err)
	r := store.Record{ID: storetest.NewID(), Status: store.StatusPending}
	require.NoError(t, s.Create(t.Context(), r))
	release, held := holdWriter(t, s, r.ID)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	called := false
	_, err = s.Update(ctx, r.ID, func(*store.Record) error { called = true; return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	release()
	require.NoError(t, <-held)
	require.False(t, called)

	require.NoError(t, s.Close())
	_, err = s.Update(t.Context(), r.ID, func(*store.Record) error { return nil })
	require.Error(t, err)
	require.Error(t, s.Close(), "a second Close")
}

// TestFileGone deletes, moves or replaces the database file under a
// running Store: writes must fail with ErrFileGone instead of landing in
// the unlinked file, where they would be lost.
func TestFileGone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		do   func(t *testing.T, path string)
	}{
		{"deleted", func(t *testing.T, path string) {
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				require.NoError(t, os.Remove(p))
			}
		}},
		{"moved", func(t *testing.T, path string) { require.NoError(t, os.Rename(path, path+".old")) }},
		{"replaced", func(t *testing.T, path string) {
			other := filepath.Join(filepath.Dir(path), "other.db")
			s, err := sqlite.Open(t.Context(), other)
			require.NoError(t, err)
			require.NoError(t, s.Close())
			require.NoError(t, os.Rename(other, path))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "hatchery.db")
			s := open(t, path)
			r := store.Record{ID: storetest.NewID(), Status: store.StatusPending}
			require.NoError(t, s.Create(t.Context(), r))
			require.NoError(t, s.Ping(t.Context()))

			tt.do(t, path)

			err := s.Create(t.Context(), store.Record{ID: storetest.NewID(), Status: store.StatusPending})
			require.ErrorIs(t, err, sqlite.ErrFileGone)
			require.ErrorContains(t, err, path)
			_, err = s.Update(t.Context(), r.ID, func(r *store.Record) error { r.Attempts++; return nil })
			require.ErrorIs(t, err, sqlite.ErrFileGone)
			_, err = s.Purge(t.Context(), time.Now())
			require.ErrorIs(t, err, sqlite.ErrFileGone)
			require.ErrorIs(t, s.Ping(t.Context()), sqlite.ErrFileGone)
		})
	}
}

// TestUpgradeFrom001 opens a database that only has the first migration,
// with a record in it, as a store of the previous release left it: the
// schema is upgraded in place and the record keeps every value.
func TestUpgradeFrom001(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hatchery.db")
	db := rawDB(t, path)
	first, err := os.ReadFile("migrations/001_records.sql")
	require.NoError(t, err)
	for _, q := range []string{
		`CREATE TABLE hatchery_schema_version (version INTEGER NOT NULL PRIMARY KEY,
			name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
		`INSERT INTO hatchery_schema_version VALUES (1, '001_records.sql', 0)`,
		string(first),
	} {
		_, err := db.Exec(q)
		require.NoError(t, err)
	}
	id := storetest.NewID()
	_, err = db.Exec(`INSERT INTO hatchery_records (id, status, server_id, host_keys, error, attempts,
		lease_owner, lease_until, created_at, updated_at) VALUES (?, 'ready', '4711', '["ssh-ed25519 AAAA"]', 'e', 2, 'a', 1900000000000000, 1800000000000000, 1800000000000001)`, id)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s := open(t, path)
	got, err := s.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, store.Record{ID: id, Status: store.StatusReady, ServerID: "4711", HostKeys: []string{"ssh-ed25519 AAAA"},
		Error: "e", Attempts: 2, LeaseOwner: "a", LeaseUntil: time.UnixMicro(1900000000000000).UTC(),
		CreatedAt: time.UnixMicro(1800000000000000).UTC(), UpdatedAt: time.UnixMicro(1800000000000001).UTC()}, got)

	driftAt := time.Now().UTC().Truncate(time.Microsecond)
	got, err = s.Update(t.Context(), id, func(r *store.Record) error {
		r.Location, r.Drift, r.DriftAt = "fsn1", "server gone", driftAt
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, got, must(s.Get(t.Context(), id)))
	var versions int
	require.NoError(t, rawDB(t, path).QueryRow(`SELECT count(*) FROM hatchery_schema_version`).Scan(&versions))
	require.Equal(t, numMigrations(t), versions)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestOpenNamesTheCause checks Open's errors for a path that cannot be a
// database: they name the path and the cause once each.
func TestOpenNamesTheCause(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	tests := []struct {
		path, want string
		is         error
	}{
		{filepath.Join(dir, "missing", "hatchery.db"),
			"sqlite: open " + filepath.Join(dir, "missing", "hatchery.db") + ": directory " + filepath.Join(dir, "missing") + " does not exist",
			fs.ErrNotExist},
		{filepath.Join(file, "hatchery.db"),
			"sqlite: open " + filepath.Join(file, "hatchery.db") + ": " + file + " is not a directory",
			syscall.ENOTDIR},
	}
	for _, tt := range tests {
		_, err := sqlite.Open(t.Context(), tt.path)
		require.EqualError(t, err, tt.want)
		require.ErrorIs(t, err, tt.is)
	}

	// A relative path is reported as given.
	_, err := sqlite.Open(t.Context(), filepath.Join("no-such-dir-here", "x.db"))
	require.ErrorContains(t, err, "sqlite: open no-such-dir-here/x.db: directory ")
	require.ErrorIs(t, err, fs.ErrNotExist)

	// SQLite gives no reason for a file it cannot open: the OS's is added.
	if fi, err := os.Stat("/sys"); err == nil && fi.IsDir() && runtime.GOOS == "linux" {
		_, err := sqlite.Open(t.Context(), "/sys/hatchery.db") // EACCES even for root
		require.ErrorContains(t, err, "sqlite: open /sys/hatchery.db: permission denied (unable to open database file")
		require.ErrorIs(t, err, fs.ErrPermission)
	}

	// Not a database.
	junk := filepath.Join(dir, "junk.db")
	require.NoError(t, os.WriteFile(junk, []byte(strings.Repeat("not a database ", 100)), 0o600))
	_, err = sqlite.Open(t.Context(), junk)
	require.ErrorContains(t, err, "sqlite: open "+junk+": ")
	require.Equal(t, 1, strings.Count(err.Error(), "sqlite"), "%v", err)
}

func TestPingAfterClose(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hatchery.db"))
	require.NoError(t, err)
	require.NoError(t, s.Ping(t.Context()))
	require.NoError(t, s.Close())
	require.Error(t, s.Ping(t.Context()))
}
