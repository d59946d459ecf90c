package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

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

// Store is a store.Store on PostgreSQL. It is safe for concurrent use, and
// any number of Stores, in any number of processes, may share one database.
type Store struct {
	pool     *pgxpool.Pool
	maxConns int32 // the pool's (Pool.Config copies the whole configuration)
	owned    bool  // Close closes the pool
	closed   atomic.Bool
}

// Open connects to the database at dsn (a URL or key=value string as pgx
// accepts, e.g. "postgres://user@host:5432/db?sslmode=disable&search_path=tenants")
// and brings the schema up to date. The tables go into the first schema of
// the connection's search_path. Close closes the pool.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse error redacts the password.
		return nil, fmt.Errorf("%w: postgres: %w", store.ErrInvalid, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, maxConns: cfg.MaxConns, owned: true}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return s, nil
}

// New returns a Store on a pool the caller owns (and closes), after
// bringing the schema up to date.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: postgres: nil pool", store.ErrInvalid)
	}
	s := &Store{pool: pool, maxConns: pool.Config().MaxConns}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("postgres: new: %w", err)
	}
	return s, nil
}

// Close closes the pool when Open made it; a pool given to New is left to
// its owner. It always returns nil.
func (s *Store) Close() error {
	s.closed.Store(true)
	if s.owned {
		s.pool.Close()
	}
	return nil
}

// migrate applies the embedded migrations the database has not seen, in
// one transaction that first takes a transaction-scoped advisory lock keyed
// on the schema: replicas starting together apply each migration once, and
// stores in different schemas do not wait for each other. Its errors do not
// say "postgres": Open and New add it.
func (s *Store) migrate(ctx context.Context) error {
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	// Connecting is the first thing that can fail here, and is no
	// migration: its error goes out as is.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate(ctx, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := migrateTx(ctx, tx, all); err != nil {
		return translate(ctx, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", translate(ctx, err))
	}
	return nil
}

func migrateTx(ctx context.Context, tx pgx.Tx, all []migrate.Migration) error {
	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if schema == nil {
		return errors.New("migrate: no schema of the search_path exists")
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('hatchery/store/migrate:' || $1, 0))`, *schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS hatchery_schema_version (
		version    integer     NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM hatchery_schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	pending, err := migrate.Pending(all, current)
	if err != nil {
		return err // says "migrate:"
	}
	for _, m := range pending {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO hatchery_schema_version (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	return nil
}

// columns are a record's, in the order of values and scan; created_at and
// updated_at come last, id first.
const columns = `id, status, server_id, server_name, ipv4, ipv6, hostname, instance_id,
	host_keys, error, attempts, lease_owner, lease_until,
	callback_nonce, server_type, location, retiring_server_id, drift, drift_at,
	created_at, updated_at`

// numColumns is the number of columns.
const numColumns = 21

const (
	// The store's times come from the database's clock: now() for a new
	// record (one value for both columns), clock_timestamp() read after the
	// row lock for an Update (lockSQL's batch).
	insertSQL = `INSERT INTO hatchery_records (` + columns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, now(), now())`
	getSQL       = `SELECT ` + columns + ` FROM hatchery_records WHERE id = $1`
	lockSQL      = getSQL + ` FOR UPDATE`
	clockSQL     = `SELECT clock_timestamp()`
	listAllSQL   = `SELECT ` + columns + ` FROM hatchery_records ORDER BY created_at, id`
	listByStatus = `SELECT ` + columns + ` FROM hatchery_records WHERE status = ANY($1) ORDER BY created_at, id`
	countSQL     = `SELECT status, COUNT(*) FROM hatchery_records GROUP BY status`
	// The arguments are values' without created_at, which never changes.
	updateSQL = `UPDATE hatchery_records SET status = $2, server_id = $3, server_name = $4, ipv4 = $5,
		ipv6 = $6, hostname = $7, instance_id = $8, host_keys = $9, error = $10, attempts = $11,
		lease_owner = $12, lease_until = $13, callback_nonce = $14, server_type = $15, location = $16,
		retiring_server_id = $17, drift = $18, drift_at = $19, updated_at = $20 WHERE id = $1`
	// purgeSQL deletes through the partial index hatchery_records_deleted,
	// skipping rows an Update holds (they are not idle, and the next Purge
	// gets them). The doomed rows are picked once, in a materialized CTE: a
	// LIMIT subquery in "id IN (...)" may be scanned again for every row
	// and, as the rows deleted so far are skipped, pick more each time.
	purgeSQL = `WITH doomed AS MATERIALIZED (
			SELECT id FROM hatchery_records WHERE status = 'deleted' AND updated_at < $1
			ORDER BY updated_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
		DELETE FROM hatchery_records r USING doomed
		WHERE r.id = doomed.id AND r.status = 'deleted' AND r.updated_at < $1`
)

// maxAttempts bounds how often an operation runs when it is safe to retry.
const maxAttempts = 3

// acquire returns a pooled connection that is not stale: one whose server
// closed it (or sent it anything) while it sat idle in the pool, e.g. a
// backend ended by pg_terminate_backend or a server restart, is closed and
// another taken, before anything is sent on it. (The pool itself pings only
// connections idle for over a second.) A bounded number of stale ones are
// skipped; the pool then dials a new one.
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	for range s.maxConns + 1 {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		if !stale(c.Conn().PgConn().Conn()) {
			return c, nil
		}
		discard(c)
	}
	return s.pool.Acquire(ctx)
}

// discard closes c, so that releasing it destroys it instead of returning
// it to the pool.
func discard(c *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Conn().Close(ctx)
	c.Release()
}

// retryable reports whether an operation that failed with err on a
// connection now in the state closed may run again on another connection:
// when err provably happened before anything reached the server
// (pgconn.SafeToRetry), or, for an operation that writes nothing (readOnly),
// when the connection broke under it.
func retryable(ctx context.Context, err error, closed, readOnly bool) bool {
	return ctx.Err() == nil && (pgconn.SafeToRetry(err) || readOnly && closed)
}

// do runs f on a connection from acquire, and again on another one (up to
// maxAttempts in all) while its error is retryable.
func (s *Store) do(ctx context.Context, readOnly bool, f func(*pgxpool.Conn) error) error {
	for attempt := 1; ; attempt++ {
		c, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		err = f(c)
		closed := c.Conn().IsClosed()
		c.Release()
		if err == nil || attempt == maxAttempts || !retryable(ctx, err, closed, readOnly) {
			return err
		}
	}
}

// Create stores r. CreatedAt and UpdatedAt are set to the database's now().
func (s *Store) Create(ctx context.Context, r store.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: create: %w", err)
	}
	if err := store.CheckRecord(r); err != nil {
		return err
	}
	args := values(stored.Record(r))[:numColumns-2]
	err := s.do(ctx, false, func(c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, insertSQL, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create %s: %w", r.ID, translate(ctx, err))
	}
	return nil
}

// Get returns the record with the given ID.
func (s *Store) Get(ctx context.Context, id string) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, fmt.Errorf("postgres: get: %w", err)
	}
	if err := store.CheckID(id); err != nil {
		return store.Record{}, err
	}
	var r store.Record
	err := s.do(ctx, true, func(c *pgxpool.Conn) (err error) {
		r, err = scan(c.QueryRow(ctx, getSQL, id))
		return err
	})
	if err != nil {
		return store.Record{}, wrap(ctx, "get", id, err)
	}
	return r, nil
}

// wrap adds "postgres: op id: " to err, translated; a *store.CorruptError
// names the record itself, so it gets "postgres: op: ".
func wrap(ctx context.Context, op, id string, err error) error {
	if _, ok := errors.AsType[*store.CorruptError](err); ok {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return fmt.Errorf("postgres: %s %s: %w", op, id, translate(ctx, err))
}

// Update locks the row with SELECT ... FOR UPDATE, applies fn and writes the
// result in one transaction, so Updates through any number of Stores on one
// database never lose a write. The transaction takes two round trips: BEGIN,
// the SELECT and a read of the database's clock are pipelined, and so are
// the UPDATE and COMMIT. UpdatedAt is the database's time. fn runs at most
// once; its error is returned as is, with nothing written.
func (s *Store) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	return s.UpdateNow(ctx, id, stored.Adapt(fn))
}

// UpdateNow is Update with fn also given now: the database's
// clock_timestamp(), read in the transaction once the row is locked, so
// later than any write the row saw before. now becomes the record's
// UpdatedAt. Every replica reads the same clock, whatever its own says.
func (s *Store) UpdateNow(ctx context.Context, id string, fn func(*store.Record, time.Time) error) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, fmt.Errorf("postgres: update: %w", err)
	}
	if err := stored.CheckUpdate(id, fn); err != nil {
		return store.Record{}, err
	}
	// Until fn has run nothing is written: a connection that breaks
	// before then is retried on another one.
	var (
		conn *pgxpool.Conn
		cur  store.Record
		now  time.Time
	)
	for attempt := 1; ; attempt++ {
		c, err := s.acquire(ctx)
		if err != nil {
			return store.Record{}, fmt.Errorf("postgres: update %s: %w", id, translate(ctx, err))
		}
		cur, now, err = lockRow(ctx, c, id)
		if err == nil {
			conn = c
			break
		}
		closed := c.Conn().IsClosed()
		rollback(c)
		c.Release()
		if attempt == maxAttempts || !retryable(ctx, err, closed, true) {
			return store.Record{}, wrap(ctx, "update", id, err)
		}
	}
	// The pool destroys a connection released inside a transaction, so a
	// failed rollback cannot leak the row lock.
	defer conn.Release()

	_, next, err := stored.Apply(cur, fn, now)
	if err != nil {
		rollback(conn)
		return store.Record{}, err
	}

	var b pgx.Batch
	b.Queue(updateSQL, updateArgs(values(next))...)
	b.Queue(`COMMIT`)
	br := conn.SendBatch(ctx, &b)
	tag, err := br.Exec()
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("updated %d rows, want 1", tag.RowsAffected())
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		rollback(conn)
		return store.Record{}, fmt.Errorf("postgres: update %s: %w", id, translate(ctx, err))
	}
	return next, nil
}

// lockRow begins a transaction on c, locks and reads row id and reads the
// database's clock after the lock, in one round trip.
func lockRow(ctx context.Context, c *pgxpool.Conn, id string) (store.Record, time.Time, error) {
	var b pgx.Batch
	b.Queue(`BEGIN`)
	b.Queue(lockSQL, id)
	b.Queue(clockSQL)
	br := c.SendBatch(ctx, &b)
	_, err := br.Exec()
	var cur store.Record
	var now time.Time
	if err == nil {
		cur, err = scan(br.QueryRow())
	}
	if err == nil {
		err = br.QueryRow().Scan(&now)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return cur, stored.Time(now), err
}

// rollback ends the transaction on conn, if any, on its own short
// deadline: the caller's context may be what ended it.
func rollback(conn *pgxpool.Conn) {
	if conn.Conn().IsClosed() || conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}

// List returns the records with any of the given statuses (all records when
// none is given), ordered by CreatedAt then ID. A row that does not read
// back as a valid record is left out and named in the error, a join of
// *store.CorruptError, returned with the other records.
func (s *Store) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	if err := store.CheckStatuses(statuses...); err != nil {
		return nil, err
	}
	q, args := listAllSQL, []any(nil)
	if len(statuses) > 0 {
		names := make([]string, len(statuses))
		for i, st := range statuses {
			names[i] = string(st)
		}
		q, args = listByStatus, []any{names}
	}
	var out []store.Record
	var corrupt []error
	err := s.do(ctx, true, func(c *pgxpool.Conn) error {
		out, corrupt = []store.Record{}, nil
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scan(rows)
			if ce, ok := errors.AsType[*store.CorruptError](err); ok {
				corrupt = append(corrupt, ce)
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list: %w", translate(ctx, err))
	}
	if corrupt != nil {
		return out, fmt.Errorf("postgres: list: %w", errors.Join(corrupt...))
	}
	return out, nil
}

// Count returns how many records the Store holds in each status, with one
// COUNT ... GROUP BY on the status index (no record is read).
func (s *Store) Count(ctx context.Context) (map[store.Status]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count: %w", err)
	}
	var out map[store.Status]int
	err := s.do(ctx, true, func(c *pgxpool.Conn) error {
		out = make(map[store.Status]int)
		rows, err := c.Query(ctx, countSQL)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var st string
			var n int64
			if err := rows.Scan(&st, &n); err != nil {
				return err
			}
			if store.Status(st).Valid() {
				out[store.Status(st)] = int(n)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: count: %w", translate(ctx, err))
	}
	return out, nil
}

// Purge removes up to store.PurgeLimit deleted records last written before
// before, oldest first, in one statement, and returns how many it removed.
// Records an Update holds at that moment are skipped.
func (s *Store) Purge(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("postgres: purge: %w", err)
	}
	var n int64
	err := s.do(ctx, false, func(c *pgxpool.Conn) error {
		tag, err := c.Exec(ctx, purgeSQL, stored.Ceil(before), store.PurgeLimit)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: purge: %w", translate(ctx, err))
	}
	return int(n), nil
}

// Ping checks that the database answers on a pooled connection. After
// Close it returns an error, also when the pool is the caller's.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	if s.closed.Load() {
		return errors.New("postgres: ping: store closed")
	}
	if err := s.do(ctx, true, func(c *pgxpool.Conn) error { return c.Ping(ctx) }); err != nil {
		return fmt.Errorf("postgres: ping: %w", translate(ctx, err))
	}
	return nil
}

// values returns r's columns in the order of columns.
func values(r store.Record) []any {
	return []any{r.ID, string(r.Status), r.ServerID, r.ServerName, r.IPv4, r.IPv6, r.Hostname, r.InstanceID,
		r.HostKeys, r.Error, r.Attempts, r.LeaseOwner, nullTime(r.LeaseUntil),
		r.CallbackNonce, r.ServerType, r.Location, r.RetiringServerID, r.Drift, nullTime(r.DriftAt),
		r.CreatedAt, r.UpdatedAt}
}

// updateArgs returns updateSQL's arguments from values', in v's memory:
// all but created_at, the second to last.
func updateArgs(v []any) []any {
	v[numColumns-2] = v[numColumns-1]
	return v[:numColumns-1]
}

// nullTime is t, or NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// scan reads one row into types that accept whatever a damaged row holds
// (a NULL host key, an infinite time), so that a row that is not a record
// the store could have written is a *store.CorruptError rather than a scan
// error, which would end a List.
func scan(row pgx.Row) (store.Record, error) {
	var (
		r                                       store.Record
		status                                  string
		hostKeys                                pgtype.FlatArray[pgtype.Text]
		leaseUntil, driftAt, createdAt, updated pgtype.Timestamptz
	)
	err := row.Scan(&r.ID, &status, &r.ServerID, &r.ServerName, &r.IPv4, &r.IPv6, &r.Hostname, &r.InstanceID,
		&hostKeys, &r.Error, &r.Attempts, &r.LeaseOwner, &leaseUntil,
		&r.CallbackNonce, &r.ServerType, &r.Location, &r.RetiringServerID, &r.Drift, &driftAt,
		&createdAt, &updated)
	if err != nil {
		return store.Record{}, err
	}
	r.Status = store.Status(status)
	for i, k := range hostKeys {
		if !k.Valid {
			return store.Record{}, &store.CorruptError{ID: r.ID, Err: fmt.Errorf("host_keys[%d] is NULL", i+1)}
		}
		r.HostKeys = append(r.HostKeys, k.String)
	}
	if r.LeaseUntil, err = readTime(leaseUntil, true); err != nil {
		return store.Record{}, &store.CorruptError{ID: r.ID, Err: fmt.Errorf("lease_until %w", err)}
	}
	if r.DriftAt, err = readTime(driftAt, true); err != nil {
		return store.Record{}, &store.CorruptError{ID: r.ID, Err: fmt.Errorf("drift_at %w", err)}
	}
	if r.CreatedAt, err = readTime(createdAt, false); err != nil {
		return store.Record{}, &store.CorruptError{ID: r.ID, Err: fmt.Errorf("created_at %w", err)}
	}
	if r.UpdatedAt, err = readTime(updated, false); err != nil {
		return store.Record{}, &store.CorruptError{ID: r.ID, Err: fmt.Errorf("updated_at %w", err)}
	}
	if err := stored.CheckRead(r); err != nil {
		return store.Record{}, err
	}
	return r, nil
}

// errNull and errInfinite say what is wrong with a stored time.
var (
	errNull     = errors.New("is NULL")
	errInfinite = errors.New("is infinite")
)

// readTime returns t in UTC: the zero time for NULL when nullable, an error
// for NULL otherwise and for an infinite time.
func readTime(t pgtype.Timestamptz, nullable bool) (time.Time, error) {
	switch {
	case !t.Valid && nullable:
		return time.Time{}, nil
	case !t.Valid:
		return time.Time{}, errNull
	case t.InfinityModifier != pgtype.Finite:
		return time.Time{}, errInfinite
	}
	return t.Time.UTC(), nil
}

// translate maps PostgreSQL's errors to the store's, keeping the cause: no
// rows is store.ErrNotFound, a unique violation store.ErrExists, and an
// error after ctx ended also matches ctx's error.
func translate(ctx context.Context, err error) error {
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w (%w)", store.ErrNotFound, err)
	case errors.As(err, &pe) && pe.Code == "23505": // unique_violation
		return fmt.Errorf("%w (%w)", store.ErrExists, err)
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}
