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
// reads back the same whichever driver wrote it, every field included.
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
// nothing written. fn runs at most once. Changing the ID is an error
// wrapping [ErrInvalid]; CreatedAt and UpdatedAt belong to the store, which
// ignores fn's changes to them. fn must be quick and must not write through
// the same Store (some drivers hold a lock or a connection while it runs).
//
// # Time
//
// The times a store sets (CreatedAt, UpdatedAt) come from its clock: the
// database server's for PostgreSQL, the local clock for SQLite and memory,
// which every user of the database shares. [NowUpdater], which every driver
// implements, hands fn that clock's time, read once the record is locked:
// leases taken with it ([UpdateNow]) end at the same instant for every
// replica whatever their own clocks say, and a replica can compare it with
// its own clock to find that it is skewed. UpdatedAt never moves back, even
// when the clock does.
//
// # Values
//
// Stores copy records in and out: no caller changes a stored record through
// a slice it holds. Times come back in UTC at microsecond precision (what
// SQLite and PostgreSQL keep), without a monotonic reading, and a zero
// LeaseUntil or DriftAt stays zero; an empty HostKeys reads back as nil.
// Text fields must be valid UTF-8 without NUL bytes, and every field has a
// size limit ([MaxShortField], [MaxLongField], [MaxHostKeys],
// [MaxHostKeySize]), so that nothing a tenant's server sends grows the
// store without bound: a write over a limit is refused with a
// [*FieldSizeError], which matches [ErrInvalid].
//
// # Damaged rows
//
// A row changed outside the store (by hand, by a bad restore) may no longer
// be a valid record: host keys that do not decode, an unknown status, a time
// out of range. Reading it gives a [*CorruptError] (matching [ErrCorrupt])
// naming it, from Get and Update; [Store.List] does not stop at it: it
// returns every other record together with an error joining one
// [*CorruptError] per bad row ([Corrupt] lists them), so that one bad row
// never stops the work on all the others.
//
// # Purge
//
// Deleted records stay until [Store.Purge] removes those deleted before a
// given time, at most [PurgeLimit] per call, each call a short transaction
// ([PurgeAll] loops), so that a large backlog never holds the store's locks
// for long.
//
// # Health
//
// Every driver is a [Pinger]: Ping says whether the store can serve
// requests (the database answers; for SQLite, the file is still there).
// Every driver is also a [Counter]: Count says how many records are in
// each status without reading them (one COUNT ... GROUP BY on the status
// index for the SQL drivers), for a metric collected every few seconds.
//
// # Errors
//
// Drivers return errors wrapping [ErrNotFound], [ErrExists],
// [ErrInvalid] (bad input, which changes nothing) and [ErrCorrupt], and
// keep a context's error matchable with errors.Is; [Transition] adds
// [ErrConflict] through [*ConflictError]. Each error says the driver's name
// once, then the operation and the record.
package store
