// Package stored holds what every driver does to a record on its way into
// and out of the store, so that memory, SQLite and PostgreSQL behave the
// same: times in UTC at microsecond precision (what both databases keep), an
// empty HostKeys as nil, Update's rules for fn, and what makes a stored row
// corrupt.
package stored

import (
	"errors"
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

// Ceil returns t in UTC rounded up to Precision, without a monotonic
// reading: a stored time (a multiple of Precision) is before t exactly when
// it is before Ceil(t).
func Ceil(t time.Time) time.Time {
	c := t.UTC().Truncate(Precision)
	if c.Before(t) {
		c = c.Add(Precision)
	}
	return c
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
	r.DriftAt = Time(r.DriftAt)
	return r
}

// Func is UpdateNow's fn; Update's is adapted with [Adapt].
type Func = func(r *store.Record, now time.Time) error

// Adapt returns Update's fn as a Func (nil for nil).
func Adapt(fn func(*store.Record) error) Func {
	if fn == nil {
		return nil
	}
	return func(r *store.Record, _ time.Time) error { return fn(r) }
}

// Apply runs fn on a copy of cur, with now, and returns the record to store
// and the record to return to the caller: validated, in stored form, with
// cur's CreatedAt and an UpdatedAt of now (never before cur's, should the
// clock step back). The two share no memory with each other or with cur;
// the one to return shares its HostKeys with the record fn saw, which only fn
// could still hold. fn's error is returned as is. A changed ID or an invalid
// result is an error wrapping store.ErrInvalid.
func Apply(cur store.Record, fn Func, now time.Time) (keep, ret store.Record, err error) {
	work := cur.Clone() // fn may keep this pointer: never store it
	if err := fn(&work, now); err != nil {
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
	work.DriftAt = Time(work.DriftAt)
	work.CreatedAt = cur.CreatedAt
	work.UpdatedAt = now
	if now.Before(cur.UpdatedAt) {
		work.UpdatedAt = cur.UpdatedAt
	}
	return work.Clone(), work, nil
}

// CheckUpdate validates the arguments of Update and UpdateNow.
func CheckUpdate(id string, fn Func) error {
	if err := store.CheckID(id); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%w: update %s: nil func", store.ErrInvalid, id)
	}
	return nil
}

// CheckRead returns a *store.CorruptError when r, as read from a database,
// is not a record the store could have written: a malformed ID, an unknown
// status, negative attempts, or a time outside years 1 to 9999. It does not
// apply the write-side size limits, so that a record written before a limit
// existed stays readable.
func CheckRead(r store.Record) error {
	var err error
	switch {
	case !store.ValidID(r.ID):
		err = errors.New("ID is not a canonical UUID")
	case !r.Status.Valid():
		err = fmt.Errorf("unknown status %q", truncate(string(r.Status)))
	case r.Attempts < 0:
		err = fmt.Errorf("negative attempts %d", r.Attempts)
	}
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{"lease_until", r.LeaseUntil}, {"drift_at", r.DriftAt}, {"created_at", r.CreatedAt}, {"updated_at", r.UpdatedAt}} {
		if err == nil && !store.ValidTime(f.t) {
			err = fmt.Errorf("%s: year %d out of range", f.name, f.t.Year())
		}
	}
	if err != nil {
		return &store.CorruptError{ID: r.ID, Err: err}
	}
	return nil
}

// truncate shortens a stored value quoted in an error.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
