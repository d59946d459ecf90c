// Package store defines where Hatchery keeps each tenant's provisioning
// state: the Record, its lifecycle Status, the Store interface that every
// driver implements, and the errors drivers translate their native errors to.
//
// # Drivers
//
//   - store/memory: a map and a mutex, for tests and single-process tools.
//   - store/sqlite: modernc.org/sqlite (pure Go), the embedded default.
//   - store/postgres: pgx/v5, for several control-plane replicas.
//
// Every driver passes the conformance suite in store/storetest, so a record
// reads back the same whichever driver wrote it.
//
// # Lifecycle
//
//	pending -> creating -> cloud_init --(phone_home)--> injecting_secrets -> ready
//
// Any status can move to failed; failed can be retried; Deprovision moves any
// status to deleted. Every move goes through [Transition], a compare-and-set
// on top of [Store.Update], so two callbacks, two replicas or a retry never
// run the same step twice.
//
// # Update
//
// [Store.Update] is an atomic read-modify-write. fn gets a private copy of
// the current record; what it leaves there is validated ([CheckRecord]) and
// written unless fn returns an error, which Update returns as is with
// nothing written. Changing the ID is an error wrapping [ErrInvalid];
// CreatedAt and UpdatedAt belong to the store, which ignores fn's changes to
// them. fn must be quick and must not write through the same Store (some
// drivers hold a lock or a connection while it runs).
//
// # Values
//
// Stores copy records in and out: no caller changes a stored record through
// a slice it holds. Times come back in UTC at microsecond precision (what
// SQLite and PostgreSQL keep), without a monotonic reading, and a zero
// LeaseUntil stays zero; an empty HostKeys reads back as nil. Text fields
// must be valid UTF-8 without NUL bytes.
//
// # Errors
//
// Drivers return errors wrapping [ErrNotFound], [ErrExists] and
// [ErrInvalid] (bad input, which changes nothing), and keep a context's
// error matchable with errors.Is; [Transition] adds [ErrConflict] through
// [*ConflictError].
package store
