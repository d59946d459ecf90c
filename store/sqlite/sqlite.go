package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/internal/migrate"
	"github.com/hatchery-dev/hatchery/store/internal/stored"
)

var _ store.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// BusyTimeout is how long a write waits for another process (or another
// Store on the same file) holding the database's write lock before it fails.
// A cancelled context ends the wait sooner.
const BusyTimeout = 10 * time.Second

// MaxReaders is the number of read connections to a database file.
const MaxReaders = 4

// Store is a store.Store on a SQLite database. It is safe for concurrent use.
type Store struct {
	w *sql.DB // the one writer connection
	r *sql.DB // readers; the same pool as w for an in-memory database

	// Statements prepared once: parsing SQL costs more than running it.
	insert, lock, update, get      *sql.Stmt
	savepoint, release, rollbackTo *sql.Stmt

	ops     chan *op      // Updates for the writer goroutine
	stop    chan struct{} // closed by Close: the writer returns
	stopped chan struct{} // closed by the writer when it has returned
	cancel  context.CancelFunc
	closed  atomic.Bool
}

// Open opens (creating it if needed) the SQLite database at path, or a
// private in-memory database when path is ":memory:", and brings its schema
// up to date. path is a file name, not a DSN: it must not contain '?'.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?\x00") {
		return nil, fmt.Errorf("%w: sqlite: path %q: want a file name or \":memory:\"", store.ErrInvalid, path)
	}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds())
	// BEGIN IMMEDIATE takes the write lock when the transaction starts, so
	// Update's read and write happen under one lock: no lost update, and no
	// SQLITE_BUSY from a deferred transaction upgrading its lock.
	w, err := sql.Open("sqlite", path+"?_txlock=immediate&"+busy+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One writer connection: writers in this process queue in database/sql
	// (honouring their contexts) instead of spinning on SQLite's busy
	// handler. For ":memory:" it is also the database itself, which would
	// vanish with its connection: never let it expire.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, r: w, ops: make(chan *op), stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := s.migrateRetry(ctx); err != nil {
		_ = w.Close()
		return nil, err
	}
	if path != ":memory:" {
		r, err := sql.Open("sqlite", path+"?"+busy+"&_pragma=query_only(1)")
		if err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		r.SetMaxOpenConns(MaxReaders)
		r.SetMaxIdleConns(MaxReaders)
		s.r = r
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		db   *sql.DB
		sql  string
	}{
		{&s.insert, s.w, insertSQL},
		{&s.lock, s.w, getSQL},
		{&s.update, s.w, updateSQL},
		{&s.get, s.r, getSQL},
		{&s.savepoint, s.w, `SAVEPOINT hatchery_update`},
		{&s.release, s.w, `RELEASE hatchery_update`},
		{&s.rollbackTo, s.w, `ROLLBACK TO hatchery_update`},
	} {
		if *p.stmt, err = p.db.PrepareContext(ctx, p.sql); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, translate(ctx, err))
		}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go s.writer(wctx)
	return s, nil
}

// Close closes the database. Updates not yet committed fail. Calls after
// the first return an error.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("sqlite: close: %w", errClosed)
	}
	close(s.stop)
	if s.cancel != nil { // the writer runs
		s.cancel()
		<-s.stopped
	}
	var errs []error
	for _, st := range []*sql.Stmt{s.insert, s.lock, s.update, s.get, s.savepoint, s.release, s.rollbackTo} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	return errors.Join(append(errs, s.w.Close())...)
}

// migrate applies the embedded migrations the database has not seen, in
// one IMMEDIATE transaction, so two processes opening a new file at once
// apply each migration once.
// migrateRetry runs migrate, again while it fails with SQLITE_BUSY, for up
// to BusyTimeout and within ctx. Several processes opening a new database
// at once race to switch it to WAL, and that switch can answer BUSY
// without waiting in SQLite's busy handler.
func (s *Store) migrateRetry(ctx context.Context) error {
	deadline := time.Now().Add(BusyTimeout)
	wait := 5 * time.Millisecond
	for {
		err := s.migrate(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait + time.Duration(rand.Int64N(int64(wait))))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("sqlite: migrate: %w (%w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's BUSY or LOCKED, extended codes
// included.
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

func (s *Store) migrate(ctx context.Context) error {
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", translate(ctx, err))
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS hatchery_schema_version (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", translate(ctx, err))
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM hatchery_schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", translate(ctx, err))
	}
	pending, err := migrate.Pending(all, current)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", m.Name, translate(ctx, err))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO hatchery_schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", m.Name, translate(ctx, err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", translate(ctx, err))
	}
	return nil
}

const columns = `id, status, server_id, server_name, ipv4, ipv6, hostname, instance_id,
	host_keys, error, attempts, lease_owner, lease_until, created_at, updated_at`

const (
	insertSQL = `INSERT INTO hatchery_records (` + columns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	getSQL = `SELECT ` + columns + ` FROM hatchery_records WHERE id = ?`
	// The arguments are values' without created_at, which never changes,
	// and with the ID last.
	updateSQL = `UPDATE hatchery_records SET status = ?, server_id = ?, server_name = ?,
		ipv4 = ?, ipv6 = ?, hostname = ?, instance_id = ?, host_keys = ?, error = ?, attempts = ?,
		lease_owner = ?, lease_until = ?, updated_at = ? WHERE id = ?`
)

// Create stores r. CreatedAt and UpdatedAt are set to now.
func (s *Store) Create(ctx context.Context, r store.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: create: %w", err)
	}
	if err := store.CheckRecord(r); err != nil {
		return err
	}
	r = stored.Record(r)
	r.CreatedAt = stored.Now()
	r.UpdatedAt = r.CreatedAt
	args, err := values(r)
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", r.ID, err)
	}
	_, err = s.insert.ExecContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", r.ID, translate(ctx, err))
	}
	return nil
}

// Get returns the record with the given ID.
func (s *Store) Get(ctx context.Context, id string) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, fmt.Errorf("sqlite: get: %w", err)
	}
	if err := store.CheckID(id); err != nil {
		return store.Record{}, err
	}
	r, err := scan(s.get.QueryRowContext(ctx, id))
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: get %s: %w", id, translate(ctx, err))
	}
	return r, nil
}

// Update reads the record, applies fn and writes the result, in a BEGIN
// IMMEDIATE transaction on the writer connection run by the Store's writer
// goroutine. Concurrent Updates are committed together (group commit): each
// runs in its own SAVEPOINT, so fn's error or a failed statement undoes only
// that Update, and every result is delivered once the COMMIT succeeded (if it
// fails, every Update of the group returns the error). An Update still
// waiting for its turn gives up when ctx ends; once fn has been called it
// waits for the COMMIT. fn runs on the writer goroutine (a panic in fn is
// raised again in the caller) and must not call the Store's Update or
// Create, nor, with an in-memory database, anything of the Store: it would
// wait for itself. fn's error is returned as is, with nothing written.
func (s *Store) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, fmt.Errorf("sqlite: update: %w", err)
	}
	if err := stored.CheckUpdate(id, fn); err != nil {
		return store.Record{}, err
	}
	o := &op{ctx: ctx, id: id, fn: fn, done: make(chan struct{})}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		return store.Record{}, fmt.Errorf("sqlite: update %s: %w", id, ctx.Err())
	case <-s.stop:
		return store.Record{}, fmt.Errorf("sqlite: update %s: %w", id, errClosed)
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		if o.state.CompareAndSwap(opWaiting, opAbandoned) {
			return store.Record{}, fmt.Errorf("sqlite: update %s: %w", id, ctx.Err())
		}
		<-o.done // fn has run: the outcome is the COMMIT's
	}
	if o.panicked != nil {
		panic(o.panicked)
	}
	return o.rec, o.err
}

// errClosed is returned by an Update on a closed Store.
var errClosed = errors.New("store closed")

// MaxBatch is the most Updates the writer commits in one transaction.
const MaxBatch = 128

// An op's states: waiting (for the writer), running (the writer has taken
// it: the caller waits for the outcome) or abandoned (the caller left).
const (
	opWaiting int32 = iota
	opRunning
	opAbandoned
)

// op is one Update handed to the writer goroutine.
type op struct {
	ctx   context.Context // the caller's, only read while the caller waits
	id    string
	fn    func(*store.Record) error
	state atomic.Int32
	done  chan struct{} // closed by the writer once rec, err, panicked are set

	rec      store.Record
	err      error
	wrote    bool // applied inside the transaction, waiting for COMMIT
	panicked any
}

// finish delivers o's outcome to its caller.
func (o *op) finish(rec store.Record, err error) {
	o.rec, o.err = rec, err
	close(o.done)
}

// writer runs the Updates queued on s.ops, in groups, until stop is closed.
// ctx is cancelled by Close: it ends a wait for another process's lock.
func (s *Store) writer(ctx context.Context) {
	defer close(s.stopped)
	batch := make([]*op, 0, MaxBatch)
	for {
		select {
		case <-s.stop:
			return
		case o := <-s.ops:
			batch = append(batch[:0], o)
		}
	more:
		for len(batch) < MaxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break more
			}
		}
		s.runBatch(ctx, batch)
		clear(batch)
	}
}

// claim takes o for running, unless its caller left or its context ended
// (then o is finished with the context's error). It reports whether o is
// to run.
func claim(o *op) bool {
	if err := o.ctx.Err(); err != nil {
		if o.state.CompareAndSwap(opWaiting, opAbandoned) {
			o.finish(store.Record{}, fmt.Errorf("sqlite: update %s: %w", o.id, err))
		}
		return false
	}
	return o.state.CompareAndSwap(opWaiting, opRunning)
}

// runBatch applies batch in one transaction and delivers the outcomes.
// Statements run under ctx, not the callers' contexts: cancelling one
// statement would interrupt, and roll back, the whole transaction.
func (s *Store) runBatch(ctx context.Context, batch []*op) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		for _, o := range batch {
			if claim(o) {
				o.finish(store.Record{}, fmt.Errorf("sqlite: update %s: %w", o.id, translate(ctx, err)))
			}
		}
		return
	}
	// Savepoints only matter when there is another Update to keep.
	savepoints := len(batch) > 1
	var broken error // the transaction can no longer be committed
	var run []*op
	for _, o := range batch {
		if !claim(o) {
			continue
		}
		run = append(run, o)
		if broken != nil {
			o.err = fmt.Errorf("sqlite: update %s: %w", o.id, translate(ctx, broken))
			continue
		}
		broken = s.apply(ctx, tx, o, savepoints)
	}
	wrote := false
	for _, o := range run {
		wrote = wrote || o.wrote
	}
	if broken == nil && wrote {
		if err := tx.Commit(); err != nil {
			broken = err
		}
	} else {
		_ = tx.Rollback()
	}
	for _, o := range run {
		switch {
		case o.wrote && broken != nil:
			o.finish(store.Record{}, fmt.Errorf("sqlite: update %s: %w", o.id, translate(ctx, broken)))
		case o.err != nil || o.panicked != nil:
			o.finish(store.Record{}, o.err)
		default:
			o.finish(o.rec, nil)
		}
	}
}

// apply runs o inside tx, in a savepoint when asked, recording its outcome
// in o. It returns an error when the transaction itself is lost.
func (s *Store) apply(ctx context.Context, tx *sql.Tx, o *op, savepoint bool) error {
	if savepoint {
		if _, err := tx.StmtContext(ctx, s.savepoint).ExecContext(ctx); err != nil {
			o.err = fmt.Errorf("sqlite: update %s: %w", o.id, translate(ctx, err))
			return err
		}
	}
	rec, err := s.applyFn(ctx, tx, o)
	if !savepoint {
		o.rec, o.err, o.wrote = rec, err, err == nil && o.panicked == nil
		return nil
	}
	if err != nil || o.panicked != nil {
		if _, rerr := tx.StmtContext(ctx, s.rollbackTo).ExecContext(ctx); rerr != nil {
			o.err = lost(ctx, o.id, err, rerr)
			return rerr
		}
	}
	if _, rerr := tx.StmtContext(ctx, s.release).ExecContext(ctx); rerr != nil {
		o.err = lost(ctx, o.id, err, rerr)
		return rerr
	}
	o.rec, o.err, o.wrote = rec, err, err == nil && o.panicked == nil
	return nil
}

// lost returns the error of an Update whose savepoint could not be undone
// or released: fn's error as is, else the statement's.
func lost(ctx context.Context, id string, err, stmtErr error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("sqlite: update %s: %w", id, translate(ctx, stmtErr))
}

// applyFn reads o's record, runs o.fn and writes the result. A panic in fn
// is recovered into o.panicked, to be raised again by the caller.
func (s *Store) applyFn(ctx context.Context, tx *sql.Tx, o *op) (rec store.Record, err error) {
	cur, err := scan(tx.StmtContext(ctx, s.lock).QueryRowContext(ctx, o.id))
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: update %s: %w", o.id, translate(ctx, err))
	}
	var next store.Record
	func() {
		defer func() {
			if p := recover(); p != nil {
				o.panicked = p
			}
		}()
		_, next, err = stored.Apply(cur, o.fn, stored.Now())
	}()
	if o.panicked != nil || err != nil {
		return store.Record{}, err
	}
	args, err := values(next)
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: update %s: %w", o.id, err)
	}
	_, err = tx.StmtContext(ctx, s.update).ExecContext(ctx, append(args[1:13], args[14], args[0])...)
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: update %s: %w", o.id, translate(ctx, err))
	}
	return next, nil
}

// List returns the records with any of the given statuses (all records when
// none is given), ordered by CreatedAt then ID.
func (s *Store) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	if err := store.CheckStatuses(statuses...); err != nil {
		return nil, err
	}
	q := `SELECT ` + columns + ` FROM hatchery_records`
	args := make([]any, len(statuses))
	if len(statuses) > 0 {
		q += ` WHERE status IN (?` + strings.Repeat(`, ?`, len(statuses)-1) + `)`
		for i, st := range statuses {
			args[i] = string(st)
		}
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", translate(ctx, err))
	}
	defer func() { _ = rows.Close() }()
	out := []store.Record{}
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list: %w", translate(ctx, err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", translate(ctx, err))
	}
	return out, nil
}

// values returns r's columns in the order of columns.
func values(r store.Record) ([]any, error) {
	var hostKeys, leaseUntil any
	if r.HostKeys != nil {
		b, err := json.Marshal(r.HostKeys)
		if err != nil {
			return nil, fmt.Errorf("host keys: %w", err)
		}
		hostKeys = string(b)
	}
	if !r.LeaseUntil.IsZero() {
		leaseUntil = r.LeaseUntil.UnixMicro()
	}
	return []any{r.ID, string(r.Status), r.ServerID, r.ServerName, r.IPv4, r.IPv6, r.Hostname, r.InstanceID,
		hostKeys, r.Error, r.Attempts, r.LeaseOwner, leaseUntil, r.CreatedAt.UnixMicro(), r.UpdatedAt.UnixMicro()}, nil
}

type scanner interface{ Scan(dest ...any) error }

func scan(row scanner) (store.Record, error) {
	var (
		r                  store.Record
		status             string
		hostKeys           sql.NullString
		leaseUntil         sql.NullInt64
		createdAt, updated int64
	)
	err := row.Scan(&r.ID, &status, &r.ServerID, &r.ServerName, &r.IPv4, &r.IPv6, &r.Hostname, &r.InstanceID,
		&hostKeys, &r.Error, &r.Attempts, &r.LeaseOwner, &leaseUntil, &createdAt, &updated)
	if err != nil {
		return store.Record{}, err
	}
	r.Status = store.Status(status)
	if hostKeys.Valid {
		if err := json.Unmarshal([]byte(hostKeys.String), &r.HostKeys); err != nil {
			return store.Record{}, fmt.Errorf("host keys of %s: %w", r.ID, err)
		}
	}
	if leaseUntil.Valid {
		r.LeaseUntil = time.UnixMicro(leaseUntil.Int64).UTC()
	}
	r.CreatedAt = time.UnixMicro(createdAt).UTC()
	r.UpdatedAt = time.UnixMicro(updated).UTC()
	return r, nil
}

// translate maps SQLite's errors to the store's, keeping the cause: no rows
// is store.ErrNotFound, a primary key violation store.ErrExists, and an
// error after ctx ended also matches ctx's error.
func translate(ctx context.Context, err error) error {
	var se *sqlite.Error
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w (%w)", store.ErrNotFound, err)
	case errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE):
		return fmt.Errorf("%w (%w)", store.ErrExists, err)
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}
