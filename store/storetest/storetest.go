package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
)

// Option configures Run.
type Option func(*config)

type config struct {
	replicas func(t *testing.T) (store.Store, store.Store)
	corrupt  func(t *testing.T) (store.Store, func(id string, how Corruption) error)
}

// Replicas gives Run a way to open two stores, separately, on one fresh
// database, the way two control-plane replicas would share it. The
// contention, creation and transition tests then spread their goroutines over
// both stores. Drivers whose stores cannot share a database (memory) leave
// this option out.
func Replicas(open func(t *testing.T) (store.Store, store.Store)) Option {
	return func(c *config) { c.replicas = open }
}

// Corruption is a way a stored row can be damaged outside the store (by
// hand, a bad restore, a bug in another program) so that it no longer reads
// back as a valid Record.
type Corruption int

// The corruptions a [Corrupter] must be able to make.
const (
	CorruptHostKeys Corruption = iota // host keys that do not decode (SQLite: bad JSON; PostgreSQL: a NULL element)
	CorruptStatus                     // a status that is not a lifecycle status
	CorruptTime                       // a time out of range or infinite (e.g. lease_until)
)

// Corruptions lists every Corruption.
func Corruptions() []Corruption { return []Corruption{CorruptHostKeys, CorruptStatus, CorruptTime} }

// String names c.
func (c Corruption) String() string {
	switch c {
	case CorruptHostKeys:
		return "host keys"
	case CorruptStatus:
		return "status"
	case CorruptTime:
		return "time"
	}
	return fmt.Sprintf("Corruption(%d)", int(c))
}

// Corrupter gives Run a way to damage stored rows: open returns a store on
// a fresh database together with a function that damages the row of the
// given ID, in the given way, directly in the database. Run then checks
// that one bad row does not hide the others from List, and that Get and
// Update report it as a *store.CorruptError. Drivers that cannot hold a
// damaged row (memory) leave this option out, and the check is skipped.
func Corrupter(open func(t *testing.T) (store.Store, func(id string, how Corruption) error)) Option {
	return func(c *config) { c.corrupt = open }
}

// Run runs the conformance suite against the stores open returns, each test
// in its own parallel subtest on its own fresh store.
func Run(t *testing.T, open func(t *testing.T) store.Store, opts ...Option) {
	t.Helper()
	h := &harness{open: open}
	for _, o := range opts {
		o(&h.cfg)
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *harness)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExists", testCreateExists},
		{"NotFound", testNotFound},
		{"InvalidCreate", testInvalidCreate},
		{"InvalidArguments", testInvalidArguments},
		{"InvalidUpdate", testInvalidUpdate},
		{"UpdateFuncError", testUpdateFuncError},
		{"UpdateSeesCurrent", testUpdateSeesCurrent},
		{"Aliasing", testAliasing},
		{"Times", testTimes},
		{"HostKeys", testHostKeys},
		{"List", testList},
		{"ListOrder", testListOrder},
		{"ContextDone", testContextDone},
		{"ContextWhileWaiting", testContextWhileWaiting},
		{"ContendOne", testContendOne},
		{"ContendMany", testContendMany},
		{"CreateRace", testCreateRace},
		{"TransitionMoves", testTransitionMoves},
		{"TransitionConflict", testTransitionConflict},
		{"TransitionFuncError", testTransitionFuncError},
		{"TransitionInvalid", testTransitionInvalid},
		{"TransitionRace", testTransitionRace},
		{"EveryField", testEveryField},
		{"FieldLimits", testFieldLimits},
		{"Purge", testPurge},
		{"PurgeLimit", testPurgeLimit},
		{"Ping", testPing},
		{"Count", testCount},
		{"UpdateNow", testUpdateNow},
		{"UpdateNowWaits", testUpdateNowWaits},
		{"Corrupt", testCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, h)
		})
	}
}

type harness struct {
	open func(t *testing.T) store.Store
	cfg  config
}

// one opens a fresh store.
func (h *harness) one(t *testing.T) store.Store {
	t.Helper()
	s := h.open(t)
	require.NotNil(t, s, "open returned a nil store")
	return s
}

// all opens a fresh database and returns every store on it: two replicas
// when the driver can, else one store.
func (h *harness) all(t *testing.T) []store.Store {
	t.Helper()
	if h.cfg.replicas == nil {
		return []store.Store{h.one(t)}
	}
	a, b := h.cfg.replicas(t)
	require.NotNil(t, a, "replicas returned a nil store")
	require.NotNil(t, b, "replicas returned a nil store")
	return []store.Store{a, b}
}

// NewID returns a random canonical (version 4) UUID, a valid store ID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// fullRecord returns a record with every field set but CreatedAt and
// UpdatedAt (testFullRecord checks, by reflection, that none is left out),
// its times in a non-UTC zone with nanoseconds, to check normalization.
func fullRecord() store.Record {
	cest := time.FixedZone("CEST", 2*60*60)
	return store.Record{
		ID:               NewID(),
		Status:           store.StatusCloudInit,
		ServerID:         "4711",
		ServerName:       "tenant-1",
		IPv4:             "192.0.2.10",
		IPv6:             "2001:db8::10",
		Hostname:         "tenant-1.example.com",
		InstanceID:       "i-4711",
		HostKeys:         []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 root@tenant-1", "ecdsa-sha2-nistp256 AAAAE2 root@tenant-1"},
		Error:            "previous attempt: quota exceeded",
		Attempts:         2,
		CallbackNonce:    "n0nce-Zm9vYmFy",
		ServerType:       "cx22",
		Location:         "fsn1",
		RetiringServerID: "4242",
		Drift:            "server gone",
		DriftAt:          time.Date(2030, 2, 3, 4, 5, 6, 987654321, cest),
		LeaseOwner:       "replica-a",
		LeaseUntil:       time.Date(2031, 5, 6, 7, 8, 9, 123456789, cest),
	}
}

// storeSet are the Record fields the store sets itself.
var storeSet = map[string]bool{"CreatedAt": true, "UpdatedAt": true}

func pending() store.Record {
	return store.Record{ID: NewID(), Status: store.StatusPending}
}

// stored is what a store must return for r once written: caller-set times
// in UTC at microsecond precision (every time.Time field, found by
// reflection), an empty HostKeys as nil, and the store's own CreatedAt and
// UpdatedAt.
func stored(r store.Record, createdAt, updatedAt time.Time) store.Record {
	r = r.Clone()
	if len(r.HostKeys) == 0 {
		r.HostKeys = nil
	}
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		if t, ok := v.Field(i).Interface().(time.Time); ok {
			if t.IsZero() {
				t = time.Time{}
			} else {
				t = t.UTC().Truncate(time.Microsecond)
			}
			v.Field(i).Set(reflect.ValueOf(t))
		}
	}
	r.CreatedAt, r.UpdatedAt = createdAt, updatedAt
	return r
}

func create(t *testing.T, s store.Store, r store.Record) store.Record {
	t.Helper()
	require.NoError(t, s.Create(t.Context(), r))
	got, err := s.Get(t.Context(), r.ID)
	require.NoError(t, err)
	return got
}

func get(t *testing.T, s store.Store, id string) store.Record {
	t.Helper()
	got, err := s.Get(t.Context(), id)
	require.NoError(t, err)
	return got
}

func requireUTC(t *testing.T, what string, tm time.Time) {
	t.Helper()
	require.Equal(t, time.UTC, tm.Location(), "%s must be in UTC", what)
	require.Equal(t, tm, tm.Truncate(time.Microsecond), "%s must have microsecond precision", what)
}

func testCreateGet(t *testing.T, h *harness) {
	s := h.one(t)
	r := fullRecord()
	r.CreatedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) // ignored
	r.UpdatedAt = time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC) // ignored
	before := time.Now().UTC().Truncate(time.Microsecond)
	got := create(t, s, r)
	after := time.Now().UTC()

	requireUTC(t, "CreatedAt", got.CreatedAt)
	requireUTC(t, "UpdatedAt", got.UpdatedAt)
	requireUTC(t, "LeaseUntil", got.LeaseUntil)
	requireUTC(t, "DriftAt", got.DriftAt)
	assert.Equal(t, got.CreatedAt, got.UpdatedAt, "a new record's UpdatedAt is its CreatedAt")
	assert.False(t, got.CreatedAt.Before(before), "CreatedAt %v before the call at %v", got.CreatedAt, before)
	assert.False(t, got.CreatedAt.After(after), "CreatedAt %v after the call returned at %v", got.CreatedAt, after)
	require.Equal(t, stored(r, got.CreatedAt, got.UpdatedAt), got)

	minimal := pending()
	got = create(t, s, minimal)
	require.Equal(t, stored(minimal, got.CreatedAt, got.UpdatedAt), got)
	assert.True(t, got.LeaseUntil.IsZero(), "a zero LeaseUntil stays zero")
}

func testCreateExists(t *testing.T, h *harness) {
	s := h.one(t)
	r := fullRecord()
	first := create(t, s, r)

	again := pending()
	again.ID = r.ID
	err := s.Create(t.Context(), again)
	require.ErrorIs(t, err, store.ErrExists)
	require.Equal(t, first, get(t, s, r.ID), "a failed Create changes nothing")
}

func testNotFound(t *testing.T, h *harness) {
	s := h.one(t)
	create(t, s, pending())
	missing := NewID()

	_, err := s.Get(t.Context(), missing)
	require.ErrorIs(t, err, store.ErrNotFound)

	called := false
	_, err = s.Update(t.Context(), missing, func(*store.Record) error { called = true; return nil })
	require.ErrorIs(t, err, store.ErrNotFound)
	require.False(t, called, "fn must not run for a missing record")

	_, err = store.Transition(t.Context(), s, missing, []store.Status{store.StatusPending}, store.StatusCreating, nil)
	require.ErrorIs(t, err, store.ErrNotFound)

	_, err = s.Get(t.Context(), missing)
	require.ErrorIs(t, err, store.ErrNotFound, "Update must not create a missing record")
}

var badIDs = []string{
	"",
	"not-a-uuid",
	"6F9619FF-8B86-D011-B42D-00C04FC964FF",   // uppercase
	"{6f9619ff-8b86-d011-b42d-00c04fc964ff}", // braces
	"6f9619ff8b86d011b42d00c04fc964ff",       // no dashes
	"6f9619ff-8b86-d011-b42d-00c04fc964ff\n", // trailing newline
	"6f9619ff-8b86-d011-b42d-00c04fc964ff' OR '1'='1",
}

func testInvalidCreate(t *testing.T, h *harness) {
	s := h.one(t)
	tests := []struct {
		name string
		r    store.Record
	}{
		{"zero record", store.Record{}},
		{"empty ID", store.Record{Status: store.StatusPending}},
		{"no status", store.Record{ID: NewID()}},
		{"unknown status", store.Record{ID: NewID(), Status: "booting"}},
		{"status case", store.Record{ID: NewID(), Status: "PENDING"}},
		{"negative attempts", store.Record{ID: NewID(), Status: store.StatusPending, Attempts: -1}},
		{"NUL in text", store.Record{ID: NewID(), Status: store.StatusPending, Error: "a\x00b"}},
		{"invalid UTF-8", store.Record{ID: NewID(), Status: store.StatusPending, Hostname: "\xff"}},
		{"NUL in a host key", store.Record{ID: NewID(), Status: store.StatusPending, HostKeys: []string{"ok", "\x00"}}},
		{"lease past year 9999", store.Record{ID: NewID(), Status: store.StatusPending,
			LeaseUntil: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"drift before year 1", store.Record{ID: NewID(), Status: store.StatusPending,
			DriftAt: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"NUL in a new field", store.Record{ID: NewID(), Status: store.StatusPending, Location: "fsn\x001"}},
	}
	for _, id := range badIDs {
		tests = append(tests, struct {
			name string
			r    store.Record
		}{fmt.Sprintf("ID %q", id), store.Record{ID: id, Status: store.StatusPending}})
	}
	for _, tt := range tests {
		err := s.Create(t.Context(), tt.r)
		require.ErrorIs(t, err, store.ErrInvalid, tt.name)
	}
	all, err := s.List(t.Context())
	require.NoError(t, err)
	require.Empty(t, all, "invalid records must not be stored")
}

func testInvalidArguments(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, pending())
	for _, id := range badIDs {
		_, err := s.Get(t.Context(), id)
		require.ErrorIs(t, err, store.ErrInvalid, "Get(%q)", id)

		called := false
		_, err = s.Update(t.Context(), id, func(*store.Record) error { called = true; return nil })
		require.ErrorIs(t, err, store.ErrInvalid, "Update(%q)", id)
		require.False(t, called, "fn must not run for an invalid ID")
	}
	_, err := s.Update(t.Context(), r.ID, nil)
	require.ErrorIs(t, err, store.ErrInvalid, "Update with a nil func")

	for _, statuses := range [][]store.Status{{"booting"}, {store.StatusReady, ""}, {"Ready"}} {
		_, err := s.List(t.Context(), statuses...)
		require.ErrorIs(t, err, store.ErrInvalid, "List(%q)", statuses)
	}
	require.Equal(t, r, get(t, s, r.ID))
}

func testInvalidUpdate(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, fullRecord())
	otherID := NewID()
	tests := []struct {
		name string
		fn   func(*store.Record) error
	}{
		{"unknown status", func(r *store.Record) error { r.Status = "booting"; r.Attempts++; return nil }},
		{"empty status", func(r *store.Record) error { r.Status = ""; return nil }},
		{"negative attempts", func(r *store.Record) error { r.Attempts = -1; return nil }},
		{"new ID", func(r *store.Record) error { r.ID = otherID; return nil }},
		{"malformed ID", func(r *store.Record) error { r.ID = "x"; return nil }},
		{"zero record", func(r *store.Record) error { *r = store.Record{}; return nil }},
		{"NUL in text", func(r *store.Record) error { r.LeaseOwner = "x\x00"; return nil }},
		{"lease before year 1", func(r *store.Record) error { r.LeaseUntil = time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC); return nil }},
	}
	for _, tt := range tests {
		_, err := s.Update(t.Context(), r.ID, tt.fn)
		require.ErrorIs(t, err, store.ErrInvalid, tt.name)
		require.Equal(t, r, get(t, s, r.ID), "%s: nothing may change", tt.name)
	}
	_, err := s.Get(t.Context(), otherID)
	require.ErrorIs(t, err, store.ErrNotFound, "changing the ID must not create a record")
}

// boomError is a typed error, to check errors.As through Update.
type boomError struct{ n int }

func (e *boomError) Error() string { return fmt.Sprintf("boom %d", e.n) }

func testUpdateFuncError(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, fullRecord())
	errSentinel := errors.New("fn says no")

	tests := []struct {
		name  string
		err   error
		check func(*testing.T, error)
	}{
		{"sentinel", errSentinel, func(t *testing.T, err error) {
			require.ErrorIs(t, err, errSentinel)
			require.Equal(t, errSentinel, err, "fn's error is returned as is")
		}},
		{"wrapped", fmt.Errorf("step 3: %w", errSentinel), func(t *testing.T, err error) {
			require.ErrorIs(t, err, errSentinel)
			require.EqualError(t, err, "step 3: fn says no")
		}},
		{"typed", &boomError{n: 7}, func(t *testing.T, err error) {
			var be *boomError
			require.ErrorAs(t, err, &be)
			require.Equal(t, 7, be.n)
		}},
		{"looks like a store error", fmt.Errorf("lookup: %w", store.ErrNotFound), func(t *testing.T, err error) {
			require.EqualError(t, err, "lookup: "+store.ErrNotFound.Error())
		}},
	}
	for _, tt := range tests {
		_, err := s.Update(t.Context(), r.ID, func(rec *store.Record) error {
			rec.Status = store.StatusFailed
			rec.Attempts += 10
			rec.Error = "must not be written"
			rec.HostKeys[0] = "must not be written"
			rec.HostKeys = append(rec.HostKeys, "nor this")
			return tt.err
		})
		require.Error(t, err, tt.name)
		tt.check(t, err)
		require.Equal(t, r, get(t, s, r.ID), "%s: fn's error must leave the record alone", tt.name)
	}
}

func testUpdateSeesCurrent(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, fullRecord())

	var seen store.Record
	got, err := s.Update(t.Context(), r.ID, func(rec *store.Record) error {
		seen = rec.Clone()
		rec.Status = store.StatusInjectingSecrets
		rec.Attempts++
		rec.ServerID = "9000"
		rec.HostKeys = []string{"ssh-ed25519 AAAA new"}
		rec.LeaseOwner = "replica-b"
		rec.LeaseUntil = time.Date(2032, 1, 2, 3, 4, 5, 6000, time.UTC)
		rec.Error = ""
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, r, seen, "fn sees the stored record")
	require.Equal(t, got, get(t, s, r.ID), "Update returns what it stored")
	assert.Equal(t, store.StatusInjectingSecrets, got.Status)
	assert.Equal(t, 3, got.Attempts)
	assert.Equal(t, "9000", got.ServerID)
	assert.Equal(t, []string{"ssh-ed25519 AAAA new"}, got.HostKeys)
	assert.Equal(t, "replica-b", got.LeaseOwner)
	assert.Equal(t, time.Date(2032, 1, 2, 3, 4, 5, 6000, time.UTC), got.LeaseUntil)
	assert.Empty(t, got.Error)

	_, err = s.Update(t.Context(), r.ID, func(rec *store.Record) error {
		seen = rec.Clone()
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, got, seen, "the next fn sees the previous write")
}

func testAliasing(t *testing.T, h *harness) {
	s := h.one(t)
	in := fullRecord()
	require.NoError(t, s.Create(t.Context(), in))
	in.HostKeys[0] = "changed after Create"
	want := get(t, s, in.ID)
	require.NotEqual(t, "changed after Create", want.HostKeys[0], "Create must copy HostKeys")

	got := get(t, s, in.ID)
	got.HostKeys[0] = "changed after Get"
	require.Equal(t, want, get(t, s, in.ID), "Get must return a copy")

	var kept *store.Record
	var keptKeys []string
	updated, err := s.Update(t.Context(), in.ID, func(r *store.Record) error {
		kept, keptKeys = r, r.HostKeys
		r.Attempts++
		return nil
	})
	require.NoError(t, err)
	want = get(t, s, in.ID)
	require.Equal(t, updated, want)
	kept.Attempts = 100
	kept.Status = store.StatusFailed
	keptKeys[0] = "changed through fn's slice"
	kept.HostKeys[1] = "changed through fn's record"
	require.Equal(t, want, get(t, s, in.ID), "fn's record must not alias the stored one")

	updated.HostKeys[0] = "changed after Update"
	require.Equal(t, want, get(t, s, in.ID), "Update must return a copy")

	list, err := s.List(t.Context())
	require.NoError(t, err)
	require.Len(t, list, 1)
	list[0].HostKeys[0] = "changed after List"
	require.Equal(t, want, get(t, s, in.ID), "List must return copies")

	// fn's record must not alias the record the caller got earlier either.
	before := get(t, s, in.ID)
	_, err = s.Update(t.Context(), in.ID, func(r *store.Record) error {
		r.HostKeys[0] = "written by fn"
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, want.HostKeys[0], before.HostKeys[0], "an Update must not change a record returned earlier")
}

func testTimes(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, pending())
	prev := r

	for i := range 3 {
		time.Sleep(2 * time.Millisecond)
		got, err := s.Update(t.Context(), r.ID, func(rec *store.Record) error {
			rec.CreatedAt = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) // ignored
			rec.UpdatedAt = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) // ignored
			rec.Attempts++
			return nil
		})
		require.NoError(t, err)
		requireUTC(t, "UpdatedAt", got.UpdatedAt)
		require.Equal(t, r.CreatedAt, got.CreatedAt, "update %d: CreatedAt never changes", i)
		require.True(t, got.UpdatedAt.After(prev.UpdatedAt), "update %d: UpdatedAt %v must move past %v", i, got.UpdatedAt, prev.UpdatedAt)
		require.Equal(t, got, get(t, s, r.ID))
		prev = got
	}

	zones := []*time.Location{time.UTC, time.FixedZone("minus-7", -7*60*60), time.FixedZone("plus-5:30", 5*60*60+30*60)}
	for _, loc := range zones {
		lease := time.Date(2030, 12, 31, 23, 59, 59, 999999999, loc)
		got, err := s.Update(t.Context(), r.ID, func(rec *store.Record) error {
			rec.LeaseOwner = "replica-" + loc.String()
			rec.LeaseUntil = lease
			return nil
		})
		require.NoError(t, err)
		requireUTC(t, "LeaseUntil", got.LeaseUntil)
		require.True(t, got.LeaseUntil.Equal(lease.Truncate(time.Microsecond)), "LeaseUntil %v, want %v", got.LeaseUntil, lease)
		require.Equal(t, got, get(t, s, r.ID))
	}

	// A monotonic reading (time.Now) must not leak into what is stored.
	now := time.Now()
	got, err := s.Update(t.Context(), r.ID, func(rec *store.Record) error { rec.LeaseUntil = now; return nil })
	require.NoError(t, err)
	require.Equal(t, now.UTC().Truncate(time.Microsecond), got.LeaseUntil)

	got, err = s.Update(t.Context(), r.ID, func(rec *store.Record) error {
		rec.LeaseOwner, rec.LeaseUntil = "", time.Time{}
		return nil
	})
	require.NoError(t, err)
	require.True(t, got.LeaseUntil.IsZero(), "a cleared lease reads back as the zero time")
	require.Equal(t, time.Time{}, get(t, s, r.ID).LeaseUntil)
}

func testHostKeys(t *testing.T, h *harness) {
	s := h.one(t)
	empty := pending()
	empty.HostKeys = []string{}
	got := create(t, s, empty)
	require.Nil(t, got.HostKeys, "an empty HostKeys is stored as nil")

	keys := []string{"z-last", "a-first", "", "with 'quotes' and \"double\", commas, {braces}", "ünïcode"}
	got, err := s.Update(t.Context(), empty.ID, func(r *store.Record) error { r.HostKeys = keys; return nil })
	require.NoError(t, err)
	require.Equal(t, keys, got.HostKeys, "HostKeys keep their order and content")
	require.Equal(t, keys, get(t, s, empty.ID).HostKeys)

	got, err = s.Update(t.Context(), empty.ID, func(r *store.Record) error { r.HostKeys = nil; return nil })
	require.NoError(t, err)
	require.Nil(t, got.HostKeys)
	require.Nil(t, get(t, s, empty.ID).HostKeys)
}

func testList(t *testing.T, h *harness) {
	s := h.one(t)
	all, err := s.List(t.Context())
	require.NoError(t, err)
	require.Empty(t, all, "a fresh store is empty")

	byStatus := map[store.Status][]string{}
	for i, st := range []store.Status{store.StatusPending, store.StatusReady, store.StatusPending,
		store.StatusFailed, store.StatusCloudInit, store.StatusReady, store.StatusPending} {
		r := pending()
		r.Status = st
		r.Attempts = i
		create(t, s, r)
		byStatus[st] = append(byStatus[st], r.ID)
	}

	ids := func(rs []store.Record) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.ID
		}
		slices.Sort(out)
		return out
	}
	want := func(statuses ...store.Status) []string {
		var out []string
		for _, st := range statuses {
			out = append(out, byStatus[st]...)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}

	all, err = s.List(t.Context())
	require.NoError(t, err)
	require.Len(t, all, 7)
	for _, r := range all {
		require.Equal(t, get(t, s, r.ID), r, "List returns whole records")
	}

	tests := [][]store.Status{
		{store.StatusPending},
		{store.StatusReady},
		{store.StatusFailed, store.StatusCloudInit},
		{store.StatusReady, store.StatusPending, store.StatusReady},
		store.Statuses(),
	}
	for _, statuses := range tests {
		got, err := s.List(t.Context(), statuses...)
		require.NoError(t, err)
		require.Equal(t, want(statuses...), ids(got), "List(%v)", statuses)
	}
	got, err := s.List(t.Context(), store.StatusDeleted, store.StatusInjectingSecrets)
	require.NoError(t, err)
	require.Empty(t, got)

	// List sees a status change.
	id := byStatus[store.StatusPending][0]
	_, err = s.Update(t.Context(), id, func(r *store.Record) error { r.Status = store.StatusDeleted; return nil })
	require.NoError(t, err)
	got, err = s.List(t.Context(), store.StatusDeleted)
	require.NoError(t, err)
	require.Equal(t, []string{id}, ids(got))
	got, err = s.List(t.Context(), store.StatusPending)
	require.NoError(t, err)
	require.Len(t, got, 2)
}

func testListOrder(t *testing.T, h *harness) {
	s := h.one(t)
	// Descending IDs created in ascending time: CreatedAt must win over ID.
	var ids []string
	for range 5 {
		ids = append(ids, NewID())
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	for _, id := range ids {
		create(t, s, store.Record{ID: id, Status: store.StatusPending})
		time.Sleep(2 * time.Millisecond)
	}
	// A burst: many records share a CreatedAt, so ID breaks the ties.
	for range 30 {
		create(t, s, pending())
	}
	// An update must not move a record in the order.
	_, err := s.Update(t.Context(), ids[0], func(r *store.Record) error { r.Attempts++; return nil })
	require.NoError(t, err)

	got, err := s.List(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 35)
	for i, r := range got[:5] {
		require.Equal(t, ids[i], r.ID, "record %d: older records come first", i)
	}
	require.True(t, slices.IsSortedFunc(got, func(a, b store.Record) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	}), "List orders by CreatedAt then ID")

	filtered, err := s.List(t.Context(), store.StatusPending)
	require.NoError(t, err)
	require.Equal(t, got, filtered, "a filtered List keeps the order")
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testContextDone(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, fullRecord())

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()

	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{{"cancelled", cancelled, context.Canceled}, {"expired", expired, context.DeadlineExceeded}} {
		fresh := pending()
		err := s.Create(c.ctx, fresh)
		require.ErrorIs(t, err, c.want, "%s Create", c.name)
		_, err = s.Get(t.Context(), fresh.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "%s Create must not store", c.name)

		_, err = s.Get(c.ctx, r.ID)
		require.ErrorIs(t, err, c.want, "%s Get", c.name)

		called := false
		_, err = s.Update(c.ctx, r.ID, func(rec *store.Record) error { called = true; rec.Attempts++; return nil })
		require.ErrorIs(t, err, c.want, "%s Update", c.name)
		require.False(t, called, "%s Update must not run fn", c.name)

		_, err = s.List(c.ctx)
		require.ErrorIs(t, err, c.want, "%s List", c.name)

		_, err = store.Transition(c.ctx, s, r.ID, []store.Status{store.StatusCloudInit}, store.StatusInjectingSecrets, nil)
		require.ErrorIs(t, err, c.want, "%s Transition", c.name)
	}
	require.Equal(t, r, get(t, s, r.ID), "nothing changed")

	// A context cancelled while fn runs: whether the write lands is up to
	// the driver, but the store must stay consistent and usable.
	ctx, cancel3 := context.WithCancel(t.Context())
	_, err := s.Update(ctx, r.ID, func(rec *store.Record) error { rec.Attempts++; cancel3(); return nil })
	now := get(t, s, r.ID)
	if err != nil {
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, r, now, "a failed Update writes nothing")
	} else {
		require.Equal(t, r.Attempts+1, now.Attempts)
	}
	_, err = s.Update(t.Context(), r.ID, func(rec *store.Record) error { rec.Attempts++; return nil })
	require.NoError(t, err, "the store is usable after a cancelled Update")
}

// testContextWhileWaiting holds one Update open inside fn and checks that a
// second Update on the same record gives up when its context expires.
func testContextWhileWaiting(t *testing.T, h *harness) {
	stores := h.all(t)
	a, b := stores[0], stores[len(stores)-1]
	r := create(t, a, pending())

	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Update(t.Context(), r.ID, func(rec *store.Record) error {
			close(entered)
			<-release
			rec.Attempts++
			return nil
		})
		done <- err
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("first Update returned before fn ran: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	called := false
	start := time.Now()
	_, err := b.Update(ctx, r.ID, func(rec *store.Record) error { called = true; rec.Attempts += 10; return nil })
	waited := time.Since(start)
	close(release)
	require.NoError(t, <-done)
	require.ErrorIs(t, err, context.DeadlineExceeded, "an Update waiting for the record gives up with its context")
	require.False(t, called, "fn must not run once the context expired")
	require.Less(t, waited, 10*time.Second, "the waiting Update must return soon after its deadline")
	require.Equal(t, 1, get(t, a, r.ID).Attempts, "only the first Update is written")
}

func contention() (goroutines, increments int) {
	if testing.Short() {
		return 4, 10
	}
	return 8, 25
}

// increment adds one to Attempts, checking nobody else wrote in between.
func increment(ctx context.Context, s store.Store, id string) error {
	var before int
	got, err := s.Update(ctx, id, func(r *store.Record) error {
		before = r.Attempts
		r.Attempts++
		return nil
	})
	if err != nil {
		return err
	}
	if got.Attempts != before+1 {
		return fmt.Errorf("update of %s returned Attempts %d after fn saw %d", id, got.Attempts, before)
	}
	return nil
}

func testContendOne(t *testing.T, h *harness) {
	stores := h.all(t)
	r := create(t, stores[0], pending())
	g, n := contention()

	var wg sync.WaitGroup
	errs := make(chan error, g*n)
	for i := range g {
		s := stores[i%len(stores)]
		wg.Go(func() {
			for range n {
				if err := increment(t.Context(), s, r.ID); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, s := range stores {
		require.Equal(t, g*n, get(t, s, r.ID).Attempts, "every increment must land exactly once")
	}
}

func testContendMany(t *testing.T, h *harness) {
	stores := h.all(t)
	g, n := contention()
	n = max(n/2, 1)
	const records = 5
	var ids []string
	for range records {
		ids = append(ids, create(t, stores[0], pending()).ID)
	}

	var wg sync.WaitGroup
	errs := make(chan error, g*n*records)
	for i := range g {
		s := stores[i%len(stores)]
		// Each goroutine walks the records from its own starting point,
		// so writers cross each other.
		wg.Go(func() {
			for j := range n * records {
				id := ids[(i+j)%records]
				if err := increment(t.Context(), s, id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Readers run alongside and must never see a half-written record.
	readCtx, stopReading := context.WithCancel(t.Context())
	var readers sync.WaitGroup
	for _, s := range stores {
		readers.Go(func() {
			for readCtx.Err() == nil {
				list, err := s.List(readCtx)
				if readCtx.Err() != nil {
					return
				}
				if err != nil {
					errs <- fmt.Errorf("list during contention: %w", err)
					return
				}
				for _, r := range list {
					if r.Attempts < 0 || r.Attempts > g*n || r.Status != store.StatusPending {
						errs <- fmt.Errorf("list during contention saw %s with Attempts %d, Status %q", r.ID, r.Attempts, r.Status)
						return
					}
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	stopReading()
	readers.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, id := range ids {
		for _, s := range stores {
			require.Equal(t, g*n, get(t, s, id).Attempts, "record %s", id)
		}
	}
}

func testCreateRace(t *testing.T, h *harness) {
	stores := h.all(t)
	g, _ := contention()
	id := NewID()

	var wg sync.WaitGroup
	results := make([]error, g)
	for i := range g {
		s := stores[i%len(stores)]
		wg.Go(func() {
			results[i] = s.Create(t.Context(), store.Record{ID: id, Status: store.StatusPending, Attempts: i})
		})
	}
	wg.Wait()
	won := -1
	for i, err := range results {
		if err == nil {
			require.Equal(t, -1, won, "two Creates of one ID succeeded")
			won = i
			continue
		}
		require.ErrorIs(t, err, store.ErrExists)
	}
	require.NotEqual(t, -1, won, "one Create must succeed")
	require.Equal(t, won, get(t, stores[0], id).Attempts, "the winner's record is stored")
}

func testTransitionMoves(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, pending())

	got, err := store.Transition(t.Context(), s, r.ID, []store.Status{store.StatusPending, store.StatusFailed}, store.StatusCreating,
		func(rec *store.Record) error {
			require.Equal(t, store.StatusCreating, rec.Status, "fn sees the new status")
			rec.ServerID = "4711"
			rec.Attempts++
			return nil
		})
	require.NoError(t, err)
	assert.Equal(t, store.StatusCreating, got.Status)
	assert.Equal(t, "4711", got.ServerID)
	assert.Equal(t, 1, got.Attempts)
	require.Equal(t, got, get(t, s, r.ID), "status and fn's changes land in one write")

	got, err = store.Transition(t.Context(), s, r.ID, []store.Status{store.StatusCreating}, store.StatusCloudInit, nil)
	require.NoError(t, err, "a nil fn only moves the status")
	assert.Equal(t, store.StatusCloudInit, got.Status)
	assert.Equal(t, "4711", got.ServerID)
}

func testTransitionConflict(t *testing.T, h *harness) {
	s := h.one(t)
	r := fullRecord()
	r.Status = store.StatusReady
	r = create(t, s, r)

	called := false
	from := []store.Status{store.StatusCloudInit, store.StatusFailed}
	got, err := store.Transition(t.Context(), s, r.ID, from, store.StatusInjectingSecrets,
		func(*store.Record) error { called = true; return nil })
	require.ErrorIs(t, err, store.ErrConflict)
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, r.ID, ce.ID)
	assert.Equal(t, store.StatusReady, ce.Status, "the error says where the record is")
	assert.Equal(t, from, ce.Want)
	assert.Equal(t, store.StatusInjectingSecrets, ce.To)
	assert.False(t, called, "fn must not run on a conflict")
	require.Equal(t, r, got, "a conflict returns the current record")
	require.Equal(t, r, get(t, s, r.ID), "a conflict writes nothing")
}

func testTransitionFuncError(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, pending())
	errNo := errors.New("provider refused")
	_, err := store.Transition(t.Context(), s, r.ID, []store.Status{store.StatusPending}, store.StatusCreating,
		func(rec *store.Record) error { rec.ServerID = "x"; return errNo })
	require.Equal(t, errNo, err, "fn's error is returned as is")
	require.Equal(t, r, get(t, s, r.ID), "the status does not move when fn fails")

	// fn's own ConflictError is fn's error like any other.
	own := &store.ConflictError{ID: r.ID, Status: store.StatusReady, To: store.StatusCreating}
	_, err = store.Transition(t.Context(), s, r.ID, []store.Status{store.StatusPending}, store.StatusCreating,
		func(*store.Record) error { return own })
	require.Equal(t, error(own), err)
	require.Equal(t, r, get(t, s, r.ID))
}

func testTransitionInvalid(t *testing.T, h *harness) {
	s := h.one(t)
	r := create(t, s, pending())
	tests := []struct {
		name string
		id   string
		from []store.Status
		to   store.Status
	}{
		{"unknown to", r.ID, []store.Status{store.StatusPending}, "booting"},
		{"unknown from", r.ID, []store.Status{"booting"}, store.StatusCreating},
		{"no from", r.ID, nil, store.StatusCreating},
		{"bad ID", "nope", []store.Status{store.StatusPending}, store.StatusCreating},
	}
	for _, tt := range tests {
		_, err := store.Transition(t.Context(), s, tt.id, tt.from, tt.to, func(rec *store.Record) error {
			rec.Attempts++
			return nil
		})
		require.ErrorIs(t, err, store.ErrInvalid, tt.name)
	}
	require.Equal(t, r, get(t, s, r.ID))
}

// testTransitionRace has every goroutine (over every replica) try the same
// pending -> creating move: exactly one wins, the others get ErrConflict.
func testTransitionRace(t *testing.T, h *harness) {
	stores := h.all(t)
	g, _ := contention()
	const rounds = 3
	for round := range rounds {
		r := create(t, stores[0], pending())
		var wg sync.WaitGroup
		results := make([]error, g)
		for i := range g {
			s := stores[i%len(stores)]
			wg.Go(func() {
				_, results[i] = store.Transition(t.Context(), s, r.ID, []store.Status{store.StatusPending}, store.StatusCreating,
					func(rec *store.Record) error {
						rec.Attempts++
						rec.LeaseOwner = fmt.Sprintf("goroutine-%d", i)
						return nil
					})
			})
		}
		wg.Wait()
		winner := ""
		for i, err := range results {
			if err == nil {
				require.Empty(t, winner, "round %d: two transitions from pending both won", round)
				winner = fmt.Sprintf("goroutine-%d", i)
				continue
			}
			require.ErrorIs(t, err, store.ErrConflict, "round %d", round)
		}
		require.NotEmpty(t, winner, "round %d: one transition must win", round)
		got := get(t, stores[len(stores)-1], r.ID)
		require.Equal(t, store.StatusCreating, got.Status)
		require.Equal(t, 1, got.Attempts, "round %d: the step ran once", round)
		require.Equal(t, winner, got.LeaseOwner)
	}
}
