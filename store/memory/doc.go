// Package memory is a store.Store kept in a map: for tests, examples and
// single-process tools. Nothing survives the process.
//
// # Semantics
//
// It behaves like the SQL drivers, as the conformance suite in
// store/storetest checks: records are copied on the way in and on the way
// out, so a caller that changes a returned record (its HostKeys slice
// included) changes nothing stored, and times are kept in UTC at microsecond
// precision, so records compare equal whichever driver produced them.
//
// # Concurrency
//
// Writers (Create, Update, Purge) take turns through one writer lock; an
// Update holds it while fn runs. A writer waiting for the lock gives up when
// its context ends. Get and List never wait for fn: fn may read the Store,
// but must not write to it. UpdateNow's time is the local clock's, read
// once the lock is held. A memory Store cannot hold a damaged record, and
// Ping fails only with its context.
package memory
