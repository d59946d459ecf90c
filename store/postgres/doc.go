// Package postgres is a store.Store on PostgreSQL through pgx/v5 (pgxpool),
// for several control-plane replicas sharing one database.
//
// # Replicas
//
// Update locks the row with SELECT ... FOR UPDATE and writes it in the same
// transaction, so Stores in any number of processes can update one record at
// once: no update is lost and no lifecycle step (store.Transition) runs twice.
// BEGIN, the SELECT and a read of the database clock travel together, and so
// do the UPDATE and COMMIT: two round trips per Update, so a row stays
// locked for one round trip plus fn.
//
// # Time
//
// Every time the store sets comes from the database server's clock, not the
// replica's: CreatedAt is now() of the INSERT, and an Update's UpdatedAt is
// clock_timestamp() read once the row is locked. UpdateNow hands that same
// time to fn, so leases taken with it end at the same instant for every
// replica, and a replica whose own clock is skewed can tell by comparing.
//
// # Connections
//
// A pooled connection whose server went away while it sat idle (a backend
// ended by pg_terminate_backend, a restart, a failover) is noticed before
// anything is sent on it, by peeking at the socket without waiting (one
// system call, on Linux and the BSDs), and replaced. An operation whose
// error provably came before anything reached the server
// (pgconn.SafeToRetry) runs again on another connection, and so does a
// read, or an Update before fn ran, whose connection broke: nothing it did
// can have been committed. Writes of unknown outcome are never retried.
//
// # Durability and speed
//
// Each Update is one committed transaction, so with the server's default
// synchronous_commit=on its rate on one record is bounded by the WAL flush
// (fdatasync) time of the server's disk. A deployment that prefers speed to
// the last few hundred milliseconds of commits surviving a server crash can
// add synchronous_commit=off to the DSN (pgx sends it as a run-time
// parameter); commits then wait for no flush and nothing is ever corrupted.
//
// # Schema
//
// [Open] and [New] create and migrate the schema from SQL files embedded in
// the package, recording each applied version in hatchery_schema_version. The
// migration runs in one transaction under pg_advisory_xact_lock keyed on the
// schema name, so replicas starting together do not collide; a schema
// written by an older build is upgraded in place (PostgreSQL 12 or later).
// Tables (hatchery_records, hatchery_schema_version) go into the first
// schema of the connection's search_path: put search_path=NAME in the DSN
// to keep Hatchery's tables apart, or to give each test its own schema.
//
// # Errors
//
// PostgreSQL's errors are translated at the boundary: no rows wrap
// store.ErrNotFound, a unique violation store.ErrExists, a row that does
// not read back (an unknown status, an infinite time, a NULL host key)
// store.ErrCorrupt (a *store.CorruptError; List returns the others), and
// an error after the context ended matches the context's error; pgx's
// cause stays reachable through errors.As (e.g. *pgconn.PgError).
package postgres
