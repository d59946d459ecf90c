// Package stored holds what every driver does to a record on its way into
// the store, so that memory, SQLite and PostgreSQL behave the same: times in
// UTC at microsecond precision (what both databases keep), an empty HostKeys
// as nil, and Update's rules for fn.
package stored

import (
	"fmt"
	"time"

	"github.com/hatchery-dev/hatchery/store"
)

// Precision is how finely every driver keeps times.
const Precision = time.Microsecond

// Time returns t as stored: UTC, truncated to Precision, without a
// monotonic reading; any zero instant becomes time.Time{}.
func Time(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(Precision)
}

// Now returns the current time as stored.
func Now() time.Time { return Time(time.Now()) }

// Record returns a deep copy of r in its stored form. CreatedAt and
// UpdatedAt are left as they are: the driver sets them.
func Record(r store.Record) store.Record {
	r = r.Clone()
	if len(r.HostKeys) == 0 {
		r.HostKeys = nil
	}
	r.LeaseUntil = Time(r.LeaseUntil)
	return r
}

// Apply runs fn on a copy of cur and returns the record to store and the
// record to return to the caller: validated, in stored form, with cur's
// CreatedAt and an UpdatedAt of now (never before cur's, should the wall
// clock step back). The two share no memory with each other or with cur;
// the one to return shares its HostKeys with the record fn saw, which only fn
// could still hold. fn's error is returned as is. A changed ID or an invalid
// result is an error wrapping store.ErrInvalid.
func Apply(cur store.Record, fn func(*store.Record) error, now time.Time) (keep, ret store.Record, err error) {
	work := cur.Clone() // fn may keep this pointer: never store it
	if err := fn(&work); err != nil {
		return store.Record{}, store.Record{}, err
	}
	if work.ID != cur.ID {
		return store.Record{}, store.Record{}, fmt.Errorf("%w: update %s: the ID cannot change", store.ErrInvalid, cur.ID)
	}
	if err := store.CheckRecord(work); err != nil {
		return store.Record{}, store.Record{}, err
	}
	if len(work.HostKeys) == 0 {
		work.HostKeys = nil
	}
	work.LeaseUntil = Time(work.LeaseUntil)
	work.CreatedAt = cur.CreatedAt
	work.UpdatedAt = now
	if now.Before(cur.UpdatedAt) {
		work.UpdatedAt = cur.UpdatedAt
	}
	return work.Clone(), work, nil
}

// CheckUpdate validates Update's arguments.
func CheckUpdate(id string, fn func(*store.Record) error) error {
	if err := store.CheckID(id); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%w: update %s: nil func", store.ErrInvalid, id)
	}
	return nil
}
