package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Status is where a tenant is in the provisioning lifecycle.
type Status string

// The lifecycle statuses, in order.
const (
	StatusPending          Status = "pending"
	StatusCreating         Status = "creating"
	StatusCloudInit        Status = "cloud_init"
	StatusInjectingSecrets Status = "injecting_secrets"
	StatusReady            Status = "ready"
	StatusFailed           Status = "failed"
	StatusDeleted          Status = "deleted"
)

// Statuses lists every valid Status in lifecycle order.
func Statuses() []Status {
	return []Status{StatusPending, StatusCreating, StatusCloudInit,
		StatusInjectingSecrets, StatusReady, StatusFailed, StatusDeleted}
}

// Valid reports whether s is one of the lifecycle statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusCreating, StatusCloudInit, StatusInjectingSecrets,
		StatusReady, StatusFailed, StatusDeleted:
		return true
	}
	return false
}

// Record is one tenant's provisioning state.
type Record struct {
	ID         string // tenant ID, a canonical lowercase UUID
	Status     Status
	ServerID   string
	ServerName string
	IPv4       string
	IPv6       string
	Hostname   string
	InstanceID string
	HostKeys   []string // authorized_keys lines the server posted at phone_home
	Error      string   // why the record is failed; redacted, never a secret
	Attempts   int

	// CallbackNonce binds the phone_home URL's token to one server: a new
	// random value for each server created for the tenant, so that a token
	// that leaked from an earlier server is refused. Empty for records
	// written before it existed.
	CallbackNonce string
	ServerType    string // where the server ended up: the provider's server type
	Location      string // and its location, as the provider names them
	// RetiringServerID is the tenant's previous server while a replacement
	// is brought up on ServerID; it is deleted once the tenant is ready on
	// the new one, and then cleared.
	RetiringServerID string
	// Drift is what the last drift check found wrong with the tenant's
	// server ("server gone", "probe: ..."), redacted; empty when nothing
	// was. DriftAt is when it was seen.
	Drift   string
	DriftAt time.Time

	LeaseOwner string    // replica currently injecting, if any
	LeaseUntil time.Time // the lease is void after this instant

	CreatedAt time.Time // set by the store on Create, never changed
	UpdatedAt time.Time // set by the store on every write
}

// Clone returns a deep copy of r: changing the copy's slices leaves r alone.
func (r Record) Clone() Record {
	if r.HostKeys != nil {
		r.HostKeys = append([]string(nil), r.HostKeys...)
	}
	return r
}

// Errors returned by every Store. Drivers wrap their native cause with %w,
// so callers test with errors.Is.
var (
	ErrNotFound = errors.New("store: record not found")
	ErrExists   = errors.New("store: record already exists")
	ErrConflict = errors.New("store: conflicting status")
	// ErrInvalid reports a malformed ID, an unknown status or a zero record.
	ErrInvalid = errors.New("store: invalid input")
)

// Store keeps Records. Implementations are safe for concurrent use.
type Store interface {
	// Create stores a new record. CreatedAt and UpdatedAt are set by the
	// store. It returns an error wrapping ErrExists when the ID is taken.
	Create(ctx context.Context, r Record) error
	// Get returns the record with the given ID, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Update is an atomic read-modify-write: fn sees the current record and
	// may change it; the result is stored unless fn returns an error, which
	// aborts with nothing written and is returned as is. The ID and CreatedAt
	// cannot be changed; UpdatedAt is set by the store.
	Update(ctx context.Context, id string, fn func(*Record) error) (Record, error)
	// List returns the records with any of the given statuses (all records
	// when none is given), ordered by CreatedAt then ID.
	List(ctx context.Context, statuses ...Status) ([]Record, error)
}

// ValidID reports whether id is a canonical UUID: lowercase hex, 8-4-4-4-12.
// (A hand-written check rather than a regexp: it runs on every store call.)
func ValidID(id string) bool {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !lowerHex[id[i]] && i != 8 && i != 13 && i != 18 && i != 23 {
			return false
		}
	}
	return true
}

var lowerHex = [256]bool{
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true,
	'8': true, '9': true, 'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true,
}

// CheckID returns an error wrapping ErrInvalid when id is not a canonical UUID.
// The ID is quoted only when it is short enough to be harmless in a log.
func CheckID(id string) error {
	if ValidID(id) {
		return nil
	}
	if id == "" {
		return fmt.Errorf("%w: empty ID", ErrInvalid)
	}
	if len(id) > 64 {
		return fmt.Errorf("%w: ID is not a canonical UUID (%d bytes)", ErrInvalid, len(id))
	}
	return fmt.Errorf("%w: ID %q is not a canonical UUID", ErrInvalid, id)
}

// CheckStatuses returns an error wrapping ErrInvalid for the first status
// that is not one of the lifecycle statuses.
func CheckStatuses(statuses ...Status) error {
	for _, s := range statuses {
		if !s.Valid() {
			return fmt.Errorf("%w: unknown status %q", ErrInvalid, s)
		}
	}
	return nil
}

// CheckRecord validates a record before a driver writes it: a canonical ID,
// a known status, a non-negative attempt count, text fields that are valid
// UTF-8 without NUL bytes, and a LeaseUntil within years 1 to 9999.
func CheckRecord(r Record) error {
	if r.ID == "" && r.Status == "" {
		return fmt.Errorf("%w: zero record", ErrInvalid)
	}
	if err := CheckID(r.ID); err != nil {
		return err
	}
	if !r.Status.Valid() {
		return fmt.Errorf("%w: record %s: unknown status %q", ErrInvalid, r.ID, r.Status)
	}
	if r.Attempts < 0 {
		return fmt.Errorf("%w: record %s: negative attempts", ErrInvalid, r.ID)
	}
	// Every driver must store every value: PostgreSQL's text holds neither
	// NUL bytes nor invalid UTF-8.
	for _, f := range [...]struct{ name, value string }{
		{"ServerID", r.ServerID}, {"ServerName", r.ServerName}, {"IPv4", r.IPv4}, {"IPv6", r.IPv6},
		{"Hostname", r.Hostname}, {"InstanceID", r.InstanceID}, {"Error", r.Error}, {"LeaseOwner", r.LeaseOwner},
		{"CallbackNonce", r.CallbackNonce}, {"ServerType", r.ServerType}, {"Location", r.Location},
		{"RetiringServerID", r.RetiringServerID}, {"Drift", r.Drift},
	} {
		if !validText(f.value) {
			return fmt.Errorf("%w: record %s: %s is not valid UTF-8 text", ErrInvalid, r.ID, f.name)
		}
	}
	for i, k := range r.HostKeys {
		if !validText(k) {
			return fmt.Errorf("%w: record %s: HostKeys[%d] is not valid UTF-8 text", ErrInvalid, r.ID, i)
		}
	}
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{"LeaseUntil", r.LeaseUntil}, {"DriftAt", r.DriftAt}} {
		if !f.t.IsZero() {
			if y := f.t.UTC().Year(); y < 1 || y > 9999 {
				return fmt.Errorf("%w: record %s: %s year %d is out of range", ErrInvalid, r.ID, f.name, y)
			}
		}
	}
	return nil
}

// Transition moves record id from one of the statuses in from to status to,
// through s.Update, and applies fn (which may be nil) to the record in the
// same atomic write. When the record is in none of the from statuses it
// returns the unchanged record and an error wrapping ErrConflict that says
// where the record is. fn's error aborts the transition and is returned as is.
func Transition(ctx context.Context, s Store, id string, from []Status, to Status, fn func(*Record) error) (Record, error) {
	if err := CheckStatuses(append([]Status{to}, from...)...); err != nil {
		return Record{}, err
	}
	if len(from) == 0 {
		return Record{}, fmt.Errorf("%w: transition to %s from no status", ErrInvalid, to)
	}
	var conflict *ConflictError
	var current Record
	r, err := s.Update(ctx, id, func(r *Record) error {
		for _, f := range from {
			if r.Status == f {
				r.Status = to
				if fn != nil {
					return fn(r)
				}
				return nil
			}
		}
		// The record as it stood when the store checked it: no second read
		// that another writer could overtake.
		current = r.Clone()
		conflict = &ConflictError{ID: id, Status: r.Status, Want: slices.Clone(from), To: to}
		return conflict
	})
	if err != nil {
		if ce := (*ConflictError)(nil); errors.As(err, &ce) && ce == conflict {
			return current, err
		}
		return Record{}, err
	}
	return r, nil
}

// ConflictError is the error Transition returns when the record is not in
// an expected status. It matches ErrConflict with errors.Is.
type ConflictError struct {
	ID     string
	Status Status   // where the record is
	Want   []Status // where the transition expected it
	To     Status   // where the transition would have moved it
}

// Error says where the record is and where the transition expected it.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: record %s is %s, not %v: cannot move to %s", e.ID, e.Status, e.Want, e.To)
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// validText reports whether v is valid UTF-8 without NUL bytes.
func validText(v string) bool {
	return utf8.ValidString(v) && strings.IndexByte(v, 0) < 0
}
