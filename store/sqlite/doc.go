// Package sqlite is a store.Store on SQLite through modernc.org/sqlite (pure
// Go, no cgo): the embedded default, one file next to the control plane.
//
// # Concurrency
//
// The database runs in WAL mode with synchronous=NORMAL (a commit survives
// a crash of the process; the last commits may be lost on power failure).
// A Store writes through one connection, so writers in one process queue in
// Go, honouring their contexts, and reads through a small pool that WAL lets
// run beside the writer. Updates go to one writer goroutine, which commits
// the Updates queued meanwhile (up to [MaxBatch]) in one transaction, each
// in its own SAVEPOINT (group commit): an Update that fails is undone alone,
// and none returns before the COMMIT. fn therefore runs on the writer
// goroutine and must not call the Store's writes. Every write transaction
// is BEGIN IMMEDIATE under a busy timeout ([BusyTimeout]), so two Stores or
// two processes on one file wait for each other instead of losing an update
// or failing with SQLITE_BUSY. A group whose callers have all given up
// stops waiting for the other's lock at once, so that it does not hold the
// queue for the rest of the busy timeout.
//
// ":memory:" opens a private in-memory database on a single connection, for
// tests. Each call opens a different database.
//
// # The file
//
// Open takes the path to an absolute one, and says which directory is
// missing, or why the OS refused the file, where SQLite only says "unable
// to open database file". Before each write group (a batch of Updates, a
// Create, a Purge) and in Ping, the Store checks, with one stat(2), that
// the path still names the file it opened: once the file has been
// deleted, moved or replaced, writes fail with an error wrapping
// [ErrFileGone] instead of succeeding into a file nobody will read again.
// Reads go on serving what the open file holds.
//
// # Time
//
// Times are the local clock's, which every process using the file shares:
// UpdateNow hands fn the time read on the writer goroutine once the record
// is read inside the write transaction.
//
// # Schema
//
// Open creates and migrates the schema itself from SQL files embedded in the
// package, recording each applied version in hatchery_schema_version; a
// database written by an older build is upgraded in place, one written by a
// newer build is refused. Records live in hatchery_records with times as
// Unix microseconds (UTC) and HostKeys as a JSON array.
//
// # Errors
//
// SQLite's errors are translated at the boundary: no rows wrap
// store.ErrNotFound, a duplicate ID store.ErrExists, a row that does not
// read back store.ErrCorrupt (a *store.CorruptError; List returns the
// others), and an error after the context ended matches the context's
// error; the driver's cause stays reachable through errors.Unwrap.
package sqlite
