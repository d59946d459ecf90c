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
	// Get returns the record with the given ID, or an error wrapping
	// ErrNotFound; a record the store cannot read back is an error
	// matching ErrCorrupt (a [*CorruptError]).
	Get(ctx context.Context, id string) (Record, error)
	// Update is an atomic read-modify-write: fn sees the current record and
	// may change it; the result is stored unless fn returns an error, which
	// aborts with nothing written and is returned as is. The ID and CreatedAt
	// cannot be changed; UpdatedAt is set by the store. fn runs at most once.
	Update(ctx context.Context, id string, fn func(*Record) error) (Record, error)
	// List returns the records with any of the given statuses (all records
	// when none is given), ordered by CreatedAt then ID. Records the store
	// cannot read back do not stop it: it returns every other record
	// together with an error matching ErrCorrupt that joins one
	// [*CorruptError] per bad record (see [Corrupt]). Any other error
	// returns no records.
	List(ctx context.Context, statuses ...Status) ([]Record, error)
	// Purge removes deleted records whose last write (UpdatedAt, which for
	// a deleted record is when it was deleted unless it was written since)
	// is before before, oldest first, and returns how many it removed. It
	// removes at most [PurgeLimit] records per call, so that a large
	// backlog never holds the store's locks for long: a result of
	// PurgeLimit means there may be more ([PurgeAll] loops). Records of any
	// other status are never removed.
	Purge(ctx context.Context, before time.Time) (int, error)
}

// PurgeLimit is the most records one [Store.Purge] call removes.
const PurgeLimit = 1000

// PurgeAll calls s.Purge until it removes fewer than [PurgeLimit] records,
// each call its own short transaction, and returns the total removed. It
// stops with ctx, returning what it removed so far and the error.
func PurgeAll(ctx context.Context, s Store, before time.Time) (int, error) {
	total := 0
	for {
		n, err := s.Purge(ctx, before)
		total += n
		if err != nil || n < PurgeLimit {
			return total, err
		}
	}
}

// Pinger is implemented by stores that can check that their database
// answers, for a readiness probe. Ping returns nil when the store can
// serve requests.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Counter is implemented by stores that can count their records by status
// without reading them (SQL's COUNT ... GROUP BY on the status index), for
// metrics: provision's tenants gauge asks it at every collection.
type Counter interface {
	// Count returns how many records the store holds in each status; a
	// status with none is absent (or 0). Records that List would report
	// corrupt are counted under the status they are stored with, when it
	// is a lifecycle status, and left out otherwise.
	Count(ctx context.Context) (map[Status]int, error)
}

// NowUpdater is implemented by stores that can hand Update's fn the
// store's own current time. UpdateNow is [Store.Update] whose fn also
// receives now: the time read from the store's clock once the record is
// locked, in the same transaction (PostgreSQL's clock_timestamp(); the
// local clock for the embedded stores, which every user of the database
// shares). The record it writes gets now as its UpdatedAt (or the previous
// UpdatedAt, should the clock have stepped back), so the returned record
// carries the store's time too.
//
// Replicas that take leases with times from UpdateNow agree on when a
// lease ends whatever their own clocks say, and a replica can compare now
// with its own clock to notice that it is skewed.
type NowUpdater interface {
	UpdateNow(ctx context.Context, id string, fn func(r *Record, now time.Time) error) (Record, error)
}

// UpdateNow calls s.UpdateNow when s is a [NowUpdater], and otherwise
// s.Update with fn given the local clock's time (UTC, microseconds) taken
// inside fn: what the embedded stores do.
func UpdateNow(ctx context.Context, s Store, id string, fn func(r *Record, now time.Time) error) (Record, error) {
	if u, ok := s.(NowUpdater); ok {
		return u.UpdateNow(ctx, id, fn)
	}
	if fn == nil {
		return s.Update(ctx, id, nil)
	}
	return s.Update(ctx, id, func(r *Record) error {
		return fn(r, time.Now().UTC().Truncate(time.Microsecond))
	})
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

// Limits on a record's fields, in bytes unless said otherwise. Every driver
// enforces them through [CheckRecord], so that whatever a tenant's server
// sends cannot grow the store without bound. The long fields hold a redacted
// message with a journal tail (provision keeps Error to 4 KiB); the short
// ones hold identifiers, names and addresses (a host name is at most 253
// bytes, provision's replica name 200).
const (
	MaxShortField  = 256      // every text field but Error, Drift and HostKeys
	MaxLongField   = 16 << 10 // Error and Drift
	MaxHostKeys    = 16       // entries in HostKeys
	MaxHostKeySize = 8 << 10  // one HostKeys entry (a 16384-bit RSA key is under 3 KiB)
)

// FieldSizeError reports a record field over its limit. It matches
// ErrInvalid with errors.Is.
type FieldSizeError struct {
	ID    string // the record's
	Field string // "Error", "HostKeys" (the number of keys), "HostKeys[3]", ...
	Size  int    // bytes, or keys for "HostKeys"
	Limit int
}

// Error names the record, the field, its size and the limit.
func (e *FieldSizeError) Error() string {
	unit := "bytes"
	if e.Field == "HostKeys" {
		unit = "keys"
	}
	return fmt.Sprintf("store: invalid input: record %s: %s is %d %s, over the limit of %d", e.ID, e.Field, e.Size, unit, e.Limit)
}

// Is reports whether target is ErrInvalid.
func (e *FieldSizeError) Is(target error) bool { return target == ErrInvalid }

// CheckRecord validates a record before a driver writes it: a canonical ID,
// a known status, a non-negative attempt count, text fields that are valid
// UTF-8 without NUL bytes and within their limits ([MaxShortField] and the
// others; a [*FieldSizeError] otherwise), and times (LeaseUntil, DriftAt)
// within years 1 to 9999.
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
	// NUL bytes nor invalid UTF-8. (store_test checks by reflection that
	// every text field of Record is listed here.)
	for _, f := range [...]struct {
		name, value string
		limit       int
	}{
		{"ServerID", r.ServerID, MaxShortField}, {"ServerName", r.ServerName, MaxShortField},
		{"IPv4", r.IPv4, MaxShortField}, {"IPv6", r.IPv6, MaxShortField},
		{"Hostname", r.Hostname, MaxShortField}, {"InstanceID", r.InstanceID, MaxShortField},
		{"Error", r.Error, MaxLongField}, {"LeaseOwner", r.LeaseOwner, MaxShortField},
		{"CallbackNonce", r.CallbackNonce, MaxShortField}, {"ServerType", r.ServerType, MaxShortField},
		{"Location", r.Location, MaxShortField}, {"RetiringServerID", r.RetiringServerID, MaxShortField},
		{"Drift", r.Drift, MaxLongField},
	} {
		if len(f.value) > f.limit {
			return &FieldSizeError{ID: r.ID, Field: f.name, Size: len(f.value), Limit: f.limit}
		}
		if !validText(f.value) {
			return fmt.Errorf("%w: record %s: %s is not valid UTF-8 text", ErrInvalid, r.ID, f.name)
		}
	}
	if len(r.HostKeys) > MaxHostKeys {
		return &FieldSizeError{ID: r.ID, Field: "HostKeys", Size: len(r.HostKeys), Limit: MaxHostKeys}
	}
	for i, k := range r.HostKeys {
		if len(k) > MaxHostKeySize {
			return &FieldSizeError{ID: r.ID, Field: fmt.Sprintf("HostKeys[%d]", i), Size: len(k), Limit: MaxHostKeySize}
		}
		if !validText(k) {
			return fmt.Errorf("%w: record %s: HostKeys[%d] is not valid UTF-8 text", ErrInvalid, r.ID, i)
		}
	}
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{"LeaseUntil", r.LeaseUntil}, {"DriftAt", r.DriftAt}} {
		if !ValidTime(f.t) {
			return fmt.Errorf("%w: record %s: %s year %d is out of range", ErrInvalid, r.ID, f.name, f.t.UTC().Year())
		}
	}
	return nil
}

// ValidTime reports whether t is zero or within years 1 to 9999 (UTC): the
// times every driver can store.
func ValidTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

// ErrCorrupt is matched by a [*CorruptError]: a stored record that cannot be
// read back (damaged outside the store, e.g. by hand or by a bad restore).
var ErrCorrupt = errors.New("store: corrupt record")

// CorruptError reports a stored record the driver cannot turn into a valid
// Record: host keys that do not decode, an unknown status, a time out of
// range, a malformed ID. It matches ErrCorrupt with errors.Is.
type CorruptError struct {
	ID  string // as stored; it may itself be what is wrong
	Err error  // what is wrong
}

// Error names the record (quoted when its ID is not canonical) and the cause.
func (e *CorruptError) Error() string {
	id := e.ID
	if !ValidID(id) {
		if len(id) > 64 {
			id = id[:64] + "..."
		}
		id = fmt.Sprintf("%q", id)
	}
	return fmt.Sprintf("store: record %s is corrupt: %v", id, e.Err)
}

// Unwrap returns the cause.
func (e *CorruptError) Unwrap() error { return e.Err }

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Corrupt returns every [*CorruptError] in err's tree (List joins one per
// bad record), in order, or nil when there is none.
func Corrupt(err error) []*CorruptError {
	var out []*CorruptError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *CorruptError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
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
