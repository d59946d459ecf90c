package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/internal/migrate"
	"github.com/hatchery-dev/hatchery/store/internal/stored"
)

var _ store.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store on PostgreSQL. It is safe for concurrent use, and
// any number of Stores, in any number of processes, may share one database.
type Store struct {
	pool  *pgxpool.Pool
	owned bool // Close closes the pool
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
	s := &Store{pool: pool, owned: true}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New returns a Store on a pool the caller owns (and closes), after
// bringing the schema up to date.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: postgres: nil pool", store.ErrInvalid)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the pool when Open made it; a pool given to New is left to
// its owner. It always returns nil.
func (s *Store) Close() error {
	if s.owned {
		s.pool.Close()
	}
	return nil
}

// migrate applies the embedded migrations the database has not seen, in
// one transaction that first takes a transaction-scoped advisory lock keyed
// on the schema: replicas starting together apply each migration once, and
// stores in different schemas do not wait for each other.
func (s *Store) migrate(ctx context.Context) error {
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var schema *string
		if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		if schema == nil {
			return errors.New("no schema of the search_path exists")
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('hatchery/store/migrate:' || $1, 0))`, *schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS hatchery_schema_version (
			version    integer     NOT NULL PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM hatchery_schema_version`).Scan(&current); err != nil {
			return err
		}
		pending, err := migrate.Pending(all, current)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO hatchery_schema_version (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", translate(ctx, err))
	}
	return nil
}

const columns = `id, status, server_id, server_name, ipv4, ipv6, hostname, instance_id,
	host_keys, error, attempts, lease_owner, lease_until, created_at, updated_at`

const (
	insertSQL = `INSERT INTO hatchery_records (` + columns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
	getSQL       = `SELECT ` + columns + ` FROM hatchery_records WHERE id = $1`
	lockSQL      = getSQL + ` FOR UPDATE`
	listAllSQL   = `SELECT ` + columns + ` FROM hatchery_records ORDER BY created_at, id`
	listByStatus = `SELECT ` + columns + ` FROM hatchery_records WHERE status = ANY($1) ORDER BY created_at, id`
	// The arguments are values' without created_at, which never changes.
	updateSQL = `UPDATE hatchery_records SET status = $2, server_id = $3, server_name = $4, ipv4 = $5,
		ipv6 = $6, hostname = $7, instance_id = $8, host_keys = $9, error = $10, attempts = $11,
		lease_owner = $12, lease_until = $13, updated_at = $14 WHERE id = $1`
)

// Create stores r. CreatedAt and UpdatedAt are set to now.
func (s *Store) Create(ctx context.Context, r store.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: create: %w", err)
	}
	if err := store.CheckRecord(r); err != nil {
		return err
	}
	r = stored.Record(r)
	r.CreatedAt = stored.Now()
	r.UpdatedAt = r.CreatedAt
	if _, err := s.pool.Exec(ctx, insertSQL, values(r)...); err != nil {
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
	r, err := scan(s.pool.QueryRow(ctx, getSQL, id))
	if err != nil {
		return store.Record{}, fmt.Errorf("postgres: get %s: %w", id, translate(ctx, err))
	}
	return r, nil
}

// Update locks the row with SELECT ... FOR UPDATE, applies fn and writes the
// result in one transaction, so Updates through any number of Stores on one
// database never lose a write. The transaction takes two round trips: BEGIN
// and the SELECT are pipelined, and so are the UPDATE and COMMIT. fn's error
// is returned as is, with nothing written.
func (s *Store) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, fmt.Errorf("postgres: update: %w", err)
	}
	if err := stored.CheckUpdate(id, fn); err != nil {
		return store.Record{}, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return store.Record{}, fmt.Errorf("postgres: update %s: %w", id, translate(ctx, err))
	}
	// The pool destroys a connection released inside a transaction, so a
	// failed rollback cannot leak the row lock.
	defer conn.Release()

	var b pgx.Batch
	b.Queue(`BEGIN`)
	b.Queue(lockSQL, id)
	br := conn.SendBatch(ctx, &b)
	_, err = br.Exec()
	var cur store.Record
	if err == nil {
		cur, err = scan(br.QueryRow())
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		rollback(conn)
		return store.Record{}, fmt.Errorf("postgres: update %s: %w", id, translate(ctx, err))
	}

	_, next, err := stored.Apply(cur, fn, stored.Now())
	if err != nil {
		rollback(conn)
		return store.Record{}, err
	}

	b = pgx.Batch{}
	args := values(next)
	b.Queue(updateSQL, append(args[:13:13], args[14])...)
	b.Queue(`COMMIT`)
	br = conn.SendBatch(ctx, &b)
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

// rollback ends the transaction on conn, on its own short deadline: the
// caller's context may be what ended it.
func rollback(conn *pgxpool.Conn) {
	if conn.Conn().IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}

// List returns the records with any of the given statuses (all records when
// none is given), ordered by CreatedAt then ID.
func (s *Store) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	if err := store.CheckStatuses(statuses...); err != nil {
		return nil, err
	}
	var rows pgx.Rows
	var err error
	if len(statuses) == 0 {
		rows, err = s.pool.Query(ctx, listAllSQL)
	} else {
		names := make([]string, len(statuses))
		for i, st := range statuses {
			names[i] = string(st)
		}
		rows, err = s.pool.Query(ctx, listByStatus, names)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: list: %w", translate(ctx, err))
	}
	defer rows.Close()
	out := []store.Record{}
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list: %w", translate(ctx, err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list: %w", translate(ctx, err))
	}
	return out, nil
}

// values returns r's columns in the order of columns.
func values(r store.Record) []any {
	var leaseUntil *time.Time
	if !r.LeaseUntil.IsZero() {
		leaseUntil = &r.LeaseUntil
	}
	return []any{r.ID, string(r.Status), r.ServerID, r.ServerName, r.IPv4, r.IPv6, r.Hostname, r.InstanceID,
		r.HostKeys, r.Error, r.Attempts, r.LeaseOwner, leaseUntil, r.CreatedAt, r.UpdatedAt}
}

func scan(row pgx.Row) (store.Record, error) {
	var (
		r          store.Record
		status     string
		leaseUntil *time.Time
	)
	err := row.Scan(&r.ID, &status, &r.ServerID, &r.ServerName, &r.IPv4, &r.IPv6, &r.Hostname, &r.InstanceID,
		&r.HostKeys, &r.Error, &r.Attempts, &r.LeaseOwner, &leaseUntil, &r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return store.Record{}, err
	}
	r.Status = store.Status(status)
	if len(r.HostKeys) == 0 {
		r.HostKeys = nil
	}
	if leaseUntil != nil {
		r.LeaseUntil = leaseUntil.UTC()
	}
	r.CreatedAt = r.CreatedAt.UTC()
	r.UpdatedAt = r.UpdatedAt.UTC()
	return r, nil
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
