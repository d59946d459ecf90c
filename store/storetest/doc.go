// Package storetest is the conformance suite that every store.Store driver
// runs: one call to [Run] from the driver's test file checks the semantics
// the rest of Hatchery relies on.
//
// # What it checks
//
//   - Create, Get, Update and List round-trip every Record field, each on
//     its own and found by reflection, so a field added to Record later is
//     checked too; the store sets CreatedAt and UpdatedAt, in UTC at
//     microsecond precision. Fields over the store's size limits are
//     refused with a *store.FieldSizeError; fields at them are kept whole.
//   - The sentinel errors: store.ErrNotFound, store.ErrExists,
//     store.ErrInvalid (bad input changes nothing) and store.ErrConflict
//     through store.Transition.
//   - Update is an atomic read-modify-write: fn's error is returned as is
//     with nothing written.
//   - Records are copied in and out: no caller can change a stored record
//     through a slice it holds.
//   - List filters by status and orders by CreatedAt then ID.
//   - A cancelled or expired context stops every method, also while an
//     Update waits for another one.
//   - Contention: many goroutines incrementing one record and many records,
//     with the exact final counts; with [Replicas], through two separately
//     opened stores on one database, as two control-plane replicas would.
//   - Purge removes deleted records written strictly before the given time,
//     at most store.PurgeLimit per call, oldest first, and nothing else.
//   - Optional interfaces, when the store implements them: store.Pinger,
//     store.Counter (its counts by status agree with List's, through
//     creates, transitions and purges), and store.NowUpdater, whose time is in stored form, moves forward
//     with every write, becomes UpdatedAt, and is read once the record is
//     locked (an UpdateNow that waited 100ms behind another Update sees a
//     time at least 100ms after that Update's). The store's clock must be
//     within a second of the test's.
//   - With [Corrupter], damaged rows (bad host keys, an unknown status, a
//     time out of range): List returns every good record and an error
//     naming each bad one; Get, Update and Transition report a
//     *store.CorruptError.
//
// # Usage
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
//	}
//
// open must return a store on a fresh, empty database each time it is
// called (subtests run in parallel), and arrange with t.Cleanup to close it.
// A driver whose stores can share a database passes [Replicas] as well, so
// the contention tests also run across two separately opened stores:
//
//	storetest.Run(t, openFresh, storetest.Replicas(func(t *testing.T) (store.Store, store.Store) {
//		path := filepath.Join(t.TempDir(), "hatchery.db")
//		return openAt(t, path), openAt(t, path)
//	}))
//
// A driver whose rows can be damaged in the database passes [Corrupter]
// too, with a function that damages a row directly (SQL UPDATE on the
// table), for each [Corruption].
//
// # Benchmarks
//
// [BenchmarkUpdate] measures Update serially, contended on one record and
// spread over many, for a driver's BenchmarkUpdate.
package storetest
