package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/internal/migrate"
	"github.com/hatchery-dev/hatchery/store/internal/stored"
)

var (
	_ store.Store      = (*Store)(nil)
	_ store.Pinger     = (*Store)(nil)
	_ store.NowUpdater = (*Store)(nil)
	_ store.Counter    = (*Store)(nil)
)

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
	path string      // absolute; empty for ":memory:"
	file os.FileInfo // the database file as opened: see checkFile

	w *sql.DB // the one writer connection
	r *sql.DB // readers; the same pool as w for an in-memory database

	// Statements prepared once: parsing SQL costs more than running it.
	insert, lock, update, get, purge *sql.Stmt
	savepoint, release, rollbackTo   *sql.Stmt

	ops     chan *op      // Updates for the writer goroutine
	stop    chan struct{} // closed by Close: the writer returns
	stopped chan struct{} // closed by the writer when it has returned
	cancel  context.CancelFunc
	closed  atomic.Bool

	// The writer goroutine's context for BEGIN, see begin and group.
	bctx    context.Context
	bcancel context.CancelFunc
}

// Open opens (creating it if needed) the SQLite database at path, or a
// private in-memory database when path is ":memory:", and brings its schema
// up to date. path is a file name, not a DSN: it must not contain '?'. Its
// directory must exist. Every error names path.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?\x00") {
		return nil, fmt.Errorf("%w: sqlite: path %q: want a file name or \":memory:\"", store.ErrInvalid, path)
	}
	s, err := open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string) (*Store, error) {
	s := &Store{ops: make(chan *op), stop: make(chan struct{}), stopped: make(chan struct{})}
	name := path
	if path != ":memory:" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		// SQLite says "unable to open database file" whatever the cause:
		// name the likeliest one first.
		if err := checkDir(filepath.Dir(abs)); err != nil {
			return nil, err
		}
		// Absolute, so that a later chdir cannot point new connections
		// (or checkFile) at another file.
		s.path, name = abs, abs
	}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds())
	// BEGIN IMMEDIATE takes the write lock when the transaction starts, so
	// Update's read and write happen under one lock: no lost update, and no
	// SQLITE_BUSY from a deferred transaction upgrading its lock.
	w, err := sql.Open("sqlite", name+"?_txlock=immediate&"+busy+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	// One writer connection: writers in this process queue in database/sql
	// (honouring their contexts) instead of spinning on SQLite's busy
	// handler. For ":memory:" it is also the database itself, which would
	// vanish with its connection: never let it expire.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s.w, s.r = w, w
	if err := s.migrateRetry(ctx); err != nil {
		_ = w.Close()
		return nil, explainCantOpen(s.path, err)
	}
	if s.path != "" {
		// The file exists now: remember which one it is.
		if s.file, err = os.Stat(s.path); err != nil {
			_ = w.Close()
			return nil, err
		}
		r, err := sql.Open("sqlite", name+"?"+busy+"&_pragma=query_only(1)")
		if err != nil {
			_ = w.Close()
			return nil, err
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
		{&s.purge, s.w, purgeSQL},
		{&s.savepoint, s.w, `SAVEPOINT hatchery_update`},
		{&s.release, s.w, `RELEASE hatchery_update`},
		{&s.rollbackTo, s.w, `ROLLBACK TO hatchery_update`},
	} {
		if *p.stmt, err = p.db.PrepareContext(ctx, p.sql); err != nil {
			_ = s.Close()
			return nil, translate(ctx, err)
		}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go s.writer(wctx)
	return s, nil
}

// dirError says that the database's directory is missing or is no
// directory; it unwraps to the cause (fs.ErrNotExist, syscall.ENOTDIR).
type dirError struct {
	dir string
	err error
}

func (e *dirError) Error() string {
	if errors.Is(e.err, fs.ErrNotExist) {
		return "directory " + e.dir + " does not exist"
	}
	return e.dir + " is not a directory"
}

func (e *dirError) Unwrap() error { return e.err }

// checkDir returns an error when dir is missing or not a directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &dirError{dir: dir, err: fs.ErrNotExist}
	case err != nil:
		return err // *fs.PathError: says what and where
	case !fi.IsDir():
		return &dirError{dir: dir, err: syscall.ENOTDIR}
	}
	return nil
}

// explainCantOpen adds the operating system's reason to SQLite's "unable
// to open database file", which gives none: it opens the file itself, for
// reading and writing, as SQLite would (creating it only when missing, and
// removing it again). Other errors are returned as they are.
func explainCantOpen(path string, err error) error {
	var se *sqlite.Error
	if path == "" || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_CANTOPEN {
		return err
	}
	f, oerr := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(oerr, fs.ErrNotExist) {
		if f, oerr = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); oerr == nil {
			defer func() { _ = os.Remove(path) }()
		}
	}
	if oerr != nil {
		var pe *fs.PathError
		if errors.As(oerr, &pe) {
			oerr = pe.Err // the path is said once, by Open
		}
		return fmt.Errorf("%w (%w)", oerr, err)
	}
	_ = f.Close()
	return err
}

// ErrFileGone is returned by writes (and Ping) once the Store's path no
// longer names the database file it opened: the file was deleted, moved or
// replaced under the running Store. Writes into the open file would
// succeed and be lost with it, so they fail instead.
var ErrFileGone = errors.New("database file gone")

// checkFile returns an error wrapping ErrFileGone when s.path no longer
// names the file s opened. It costs one stat(2). When the path cannot be
// checked for another reason (e.g. permissions), the open file is still
// the database: it returns nil.
func (s *Store) checkFile() error {
	if s.file == nil {
		return nil
	}
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: %s no longer exists (deleted or moved)", ErrFileGone, s.path)
	case err != nil:
		return nil
	case !os.SameFile(fi, s.file):
		return fmt.Errorf("%w: %s is now another file (replaced)", ErrFileGone, s.path)
	}
	return nil
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
	for _, st := range []*sql.Stmt{s.insert, s.lock, s.update, s.get, s.purge, s.savepoint, s.release, s.rollbackTo} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	return errors.Join(append(errs, s.w.Close())...)
}

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
			return fmt.Errorf("%w (%w)", ctx.Err(), err)
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

// migrate applies the embedded migrations the database has not seen, in
// one IMMEDIATE transaction, so two processes opening a new file at once
// apply each migration once. Its errors do not repeat "sqlite" nor the path:
// Open adds them.
func (s *Store) migrate(ctx context.Context) error {
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	// Opening the file is the first thing that can fail here, and is no
	// migration: its error goes out as is.
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(ctx, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS hatchery_schema_version (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", translate(ctx, err))
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM hatchery_schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", translate(ctx, err))
	}
	pending, err := migrate.Pending(all, current)
	if err != nil {
		return err
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, translate(ctx, err))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO hatchery_schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, translate(ctx, err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", translate(ctx, err))
	}
	return nil
}

// columns are a record's, in the order of values and scan. created_at and
// updated_at come last, id first: updateSQL relies on it.
const columns = `id, status, server_id, server_name, ipv4, ipv6, hostname, instance_id,
	host_keys, error, attempts, lease_owner, lease_until,
	callback_nonce, server_type, location, retiring_server_id, drift, drift_at,
	created_at, updated_at`

// numColumns is the number of columns.
const numColumns = 21

const (
	insertSQL = `INSERT INTO hatchery_records (` + columns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	getSQL = `SELECT ` + columns + ` FROM hatchery_records WHERE id = ?`
	// The arguments are updateArgs': values' without the ID and created_at,
	// which never change, and with the ID last.
	updateSQL = `UPDATE hatchery_records SET status = ?, server_id = ?, server_name = ?,
		ipv4 = ?, ipv6 = ?, hostname = ?, instance_id = ?, host_keys = ?, error = ?, attempts = ?,
		lease_owner = ?, lease_until = ?, callback_nonce = ?, server_type = ?, location = ?,
		retiring_server_id = ?, drift = ?, drift_at = ?, updated_at = ? WHERE id = ?`
	// purgeSQL deletes through the partial index hatchery_records_deleted.
	purgeSQL = `DELETE FROM hatchery_records WHERE id IN (SELECT id FROM hatchery_records
		WHERE status = 'deleted' AND updated_at < ? ORDER BY updated_at, id LIMIT ?)`
)

// Create stores r. CreatedAt and UpdatedAt are set to now.
func (s *Store) Create(ctx context.Context, r store.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: create: %w", err)
	}
	if err := store.CheckRecord(r); err != nil {
		return err
	}
	if err := s.checkFile(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", r.ID, err)
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
		return store.Record{}, wrap(ctx, "get", id, err)
	}
	return r, nil
}

// wrap adds "sqlite: op id: " to err, translated; a *store.CorruptError
// names the record itself, so it gets "sqlite: op: ".
func wrap(ctx context.Context, op, id string, err error) error {
	if _, ok := errors.AsType[*store.CorruptError](err); ok {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return fmt.Errorf("sqlite: %s %s: %w", op, id, translate(ctx, err))
}

// Update reads the record, applies fn and writes the result, in a BEGIN
// IMMEDIATE transaction on the writer connection run by the Store's writer
// goroutine. Concurrent Updates are committed together (group commit): each
// runs in its own SAVEPOINT, so fn's error or a failed statement undoes only
// that Update, and every result is delivered once the COMMIT succeeded (if it
// fails, every Update of the group returns the error). An Update still
// waiting for its turn gives up when ctx ends, and a group whose callers
// have all left stops waiting for another process's write lock; once fn has
// been called the Update waits for the COMMIT. fn runs on the writer
// goroutine (a panic in fn is raised again in the caller) and must not call
// the Store's Update or Create, nor, with an in-memory database, anything of
// the Store: it would wait for itself. fn's error is returned as is, with
// nothing written.
func (s *Store) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	return s.UpdateNow(ctx, id, stored.Adapt(fn))
}

// UpdateNow is Update with fn also given now: the local clock's time, read
// on the writer goroutine once the record is read in the write transaction.
// Every process using the file shares that clock. now becomes the record's
// UpdatedAt.
func (s *Store) UpdateNow(ctx context.Context, id string, fn func(*store.Record, time.Time) error) (store.Record, error) {
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
			o.leaveGroup()
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
	fn    stored.Func
	state atomic.Int32
	done  chan struct{} // closed by the writer once rec, err, panicked are set
	group atomic.Pointer[group]
	left  atomic.Bool // counted out of group

	rec      store.Record
	err      error
	wrote    bool // applied inside the transaction, waiting for COMMIT
	panicked any
}

// group is a batch of ops on its way into its transaction: while BEGIN
// waits for another connection's write lock, the last of its callers to
// leave cancels the wait, so that a batch nobody waits for does not hold
// the queue for the whole busy timeout. Callers leave as they give up, with
// no goroutine or context callback per op.
type group struct {
	mu     sync.Mutex
	live   int  // callers still waiting
	begun  bool // BEGIN returned: cancelling now would roll the transaction back
	cancel context.CancelFunc
}

// leave counts one caller out; the last one, before BEGIN returned, cancels.
func (g *group) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.live--; g.live == 0 && !g.begun {
		g.cancel()
	}
}

// leaveGroup counts o, abandoned, out of its group, once, if it has one
// yet (the writer counts out those abandoned, or whose context ended,
// before it set the group).
func (o *op) leaveGroup() {
	if g := o.group.Load(); g != nil && o.left.CompareAndSwap(false, true) {
		g.leave()
	}
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

// failBatch finishes every op of batch still to run with err.
func failBatch(batch []*op, err error) {
	for _, o := range batch {
		if claim(o) {
			o.finish(store.Record{}, fmt.Errorf("sqlite: update %s: %w", o.id, err))
		}
	}
}

// runBatch applies batch in one transaction and delivers the outcomes.
// Statements run under ctx, not the callers' contexts: cancelling one
// statement would interrupt, and roll back, the whole transaction.
func (s *Store) runBatch(ctx context.Context, batch []*op) {
	if err := s.checkFile(); err != nil {
		failBatch(batch, err)
		return
	}
	tx, err := s.begin(ctx, batch)
	if err != nil {
		failBatch(batch, translate(ctx, err))
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

// begin starts batch's transaction under s.bctx (see group), made anew
// from ctx when a previous batch cancelled it.
func (s *Store) begin(ctx context.Context, batch []*op) (*sql.Tx, error) {
	if s.bctx == nil || s.bctx.Err() != nil {
		s.bctx, s.bcancel = context.WithCancel(ctx)
	}
	g := &group{live: len(batch), cancel: s.bcancel}
	for _, o := range batch {
		o.group.Store(g)
	}
	for _, o := range batch {
		if o.state.Load() == opAbandoned || o.ctx.Err() != nil {
			o.leaveGroup()
		}
	}
	tx, err := s.w.BeginTx(s.bctx, nil)
	g.mu.Lock()
	g.begun = true
	g.mu.Unlock()
	if err == nil && s.bctx.Err() != nil && ctx.Err() == nil {
		// Every caller left just as BEGIN succeeded: database/sql rolls
		// back a transaction whose context ends, and nobody is left.
		_ = tx.Rollback()
		err = s.bctx.Err()
	}
	return tx, err
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
		return store.Record{}, wrap(ctx, "update", o.id, err)
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
	_, err = tx.StmtContext(ctx, s.update).ExecContext(ctx, updateArgs(args)...)
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: update %s: %w", o.id, translate(ctx, err))
	}
	return next, nil
}

// List returns the records with any of the given statuses (all records when
// none is given), ordered by CreatedAt then ID. A row that does not read
// back as a valid record is left out and named in the error, a join of
// *store.CorruptError, returned with the other records.
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
	var corrupt []error
	for rows.Next() {
		r, err := scan(rows)
		if ce, ok := errors.AsType[*store.CorruptError](err); ok {
			corrupt = append(corrupt, ce)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: list: %w", translate(ctx, err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", translate(ctx, err))
	}
	if corrupt != nil {
		return out, fmt.Errorf("sqlite: list: %w", errors.Join(corrupt...))
	}
	return out, nil
}

// Count returns how many records the Store holds in each status, with one
// COUNT ... GROUP BY on the status index (no record is read).
func (s *Store) Count(ctx context.Context) (map[store.Status]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM hatchery_records GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count: %w", translate(ctx, err))
	}
	defer func() { _ = rows.Close() }()
	out := make(map[store.Status]int)
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("sqlite: count: %w", translate(ctx, err))
		}
		if store.Status(st).Valid() {
			out[store.Status(st)] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count: %w", translate(ctx, err))
	}
	return out, nil
}

// Purge removes up to store.PurgeLimit deleted records last written before
// before, oldest first, in one short write transaction, and returns how
// many it removed.
func (s *Store) Purge(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: purge: %w", err)
	}
	if err := s.checkFile(); err != nil {
		return 0, fmt.Errorf("sqlite: purge: %w", err)
	}
	res, err := s.purge.ExecContext(ctx, stored.Ceil(before).UnixMicro(), store.PurgeLimit)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge: %w", translate(ctx, err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge: %w", translate(ctx, err))
	}
	return int(n), nil
}

// Ping checks that the Store is open, that its path still names the
// database file it opened (else an error wrapping ErrFileGone), and that a
// reader connection answers a query on the schema.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if s.closed.Load() {
		return fmt.Errorf("sqlite: ping: %w", errClosed)
	}
	if err := s.checkFile(); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	var v int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM hatchery_schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("sqlite: ping: %w", translate(ctx, err))
	}
	return nil
}

// values returns r's columns in the order of columns.
func values(r store.Record) ([]any, error) {
	var hostKeys any
	if r.HostKeys != nil {
		b, err := json.Marshal(r.HostKeys)
		if err != nil {
			return nil, fmt.Errorf("host keys: %w", err)
		}
		hostKeys = string(b)
	}
	return []any{r.ID, string(r.Status), r.ServerID, r.ServerName, r.IPv4, r.IPv6, r.Hostname, r.InstanceID,
		hostKeys, r.Error, r.Attempts, r.LeaseOwner, micros(r.LeaseUntil),
		r.CallbackNonce, r.ServerType, r.Location, r.RetiringServerID, r.Drift, micros(r.DriftAt),
		r.CreatedAt.UnixMicro(), r.UpdatedAt.UnixMicro()}, nil
}

// updateArgs returns updateSQL's arguments from values', in v's memory:
// all but the ID and created_at, then the ID.
func updateArgs(v []any) []any {
	id, updated := v[0], v[numColumns-1]
	copy(v, v[1:numColumns-2])
	v[numColumns-3], v[numColumns-2] = updated, id
	return v[:numColumns-1]
}

// micros is t in Unix microseconds, or NULL for the zero time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

type scanner interface{ Scan(dest ...any) error }

// scan reads one row. A row that is not a record the store could have
// written is a *store.CorruptError; any other error is the driver's.
func scan(row scanner) (store.Record, error) {
	var (
		r                   store.Record
		status              string
		hostKeys            sql.NullString
		leaseUntil, driftAt sql.NullInt64
		createdAt, updated  int64
	)
	err := row.Scan(&r.ID, &status, &r.ServerID, &r.ServerName, &r.IPv4, &r.IPv6, &r.Hostname, &r.InstanceID,
		&hostKeys, &r.Error, &r.Attempts, &r.LeaseOwner, &leaseUntil,
		&r.CallbackNonce, &r.ServerType, &r.Location, &r.RetiringServerID, &r.Drift, &driftAt,
		&createdAt, &updated)
	if err != nil {
		return store.Record{}, err
	}
	r.Status = store.Status(status)
	if hostKeys.Valid {
		if err := json.Unmarshal([]byte(hostKeys.String), &r.HostKeys); err != nil {
			return store.Record{}, &store.CorruptError{ID: r.ID, Err: fmt.Errorf("host_keys: %w", err)}
		}
		if len(r.HostKeys) == 0 {
			r.HostKeys = nil
		}
	}
	if leaseUntil.Valid {
		r.LeaseUntil = time.UnixMicro(leaseUntil.Int64).UTC()
	}
	if driftAt.Valid {
		r.DriftAt = time.UnixMicro(driftAt.Int64).UTC()
	}
	r.CreatedAt = time.UnixMicro(createdAt).UTC()
	r.UpdatedAt = time.UnixMicro(updated).UTC()
	if err := stored.CheckRead(r); err != nil {
		return store.Record{}, err
	}
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
