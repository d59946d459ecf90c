package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
	"github.com/hatchery-dev/hatchery/store/storetest"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{"0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
		{"", false},
		{"0B5D6F1E-8A7C-4E2B-9F3D-1C2A3B4C5D6E", false},
		{"0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6", false},
		{"0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e0", false},
		{"0b5d6f1e8a7c-4e2b-9f3d-1c2a3b4c5d6e0", false},
		{"0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6g", false},
		{"{b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6}", false},
		{"0b5d6f1e-8a7c-4e2b-9f3d_1c2a3b4c5d6e", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, store.ValidID(tt.id), "%q", tt.id)
		require.Equal(t, uuidRE.MatchString(tt.id), store.ValidID(tt.id), "%q agrees with the regexp", tt.id)
		if tt.want {
			require.NoError(t, store.CheckID(tt.id))
		} else {
			require.ErrorIs(t, store.CheckID(tt.id), store.ErrInvalid)
		}
	}
}

// FuzzValidID checks the hand-written ValidID against the regexp it replaces.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"", "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6E", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := store.ValidID(id), uuidRE.MatchString(id); got != want {
			t.Fatalf("ValidID(%q) = %v, regexp says %v", id, got, want)
		}
	})
}

func TestCheckRecord(t *testing.T) {
	t.Parallel()
	id := "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e"
	require.NoError(t, store.CheckRecord(store.Record{ID: id, Status: store.StatusReady, Hostname: "ünïcode", HostKeys: []string{"k"}}))
	for name, r := range map[string]store.Record{
		"zero":           {},
		"bad status":     {ID: id, Status: "up"},
		"NUL":            {ID: id, Status: store.StatusReady, IPv6: "\x00"},
		"bad UTF-8 key":  {ID: id, Status: store.StatusReady, HostKeys: []string{"ok", "\xc3"}},
		"negative count": {ID: id, Status: store.StatusReady, Attempts: -2},
	} {
		require.ErrorIs(t, store.CheckRecord(r), store.ErrInvalid, name)
	}
}

// TestCheckRecordEveryField sets each text and time field of Record, found
// by reflection, to what CheckRecord must refuse: a field added to Record
// but not to CheckRecord fails here.
func TestCheckRecordEveryField(t *testing.T) {
	t.Parallel()
	base := store.Record{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Status: store.StatusReady}
	long := map[string]bool{"Error": true, "Drift": true}
	typ := reflect.TypeFor[store.Record]()
	checked := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		set := func(v any) store.Record {
			r := base
			reflect.ValueOf(&r).Elem().Field(i).Set(reflect.ValueOf(v))
			return r
		}
		switch {
		case f.Name == "ID" || f.Name == "Status":
		case f.Type.Kind() == reflect.String:
			checked++
			limit := store.MaxShortField
			if long[f.Name] {
				limit = store.MaxLongField
			}
			require.NoError(t, store.CheckRecord(set(strings.Repeat("a", limit))), f.Name)
			err := store.CheckRecord(set(strings.Repeat("a", limit+1)))
			var fe *store.FieldSizeError
			require.ErrorAs(t, err, &fe, f.Name)
			require.ErrorIs(t, err, store.ErrInvalid)
			require.Equal(t, store.FieldSizeError{ID: base.ID, Field: f.Name, Size: limit + 1, Limit: limit}, *fe)
			require.ErrorIs(t, store.CheckRecord(set("a\x00")), store.ErrInvalid, "%s with NUL", f.Name)
			require.ErrorIs(t, store.CheckRecord(set("\xff")), store.ErrInvalid, "%s with invalid UTF-8", f.Name)
		case f.Type == reflect.TypeFor[time.Time]() && f.Name != "CreatedAt" && f.Name != "UpdatedAt":
			checked++
			require.NoError(t, store.CheckRecord(set(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))), f.Name)
			require.ErrorIs(t, store.CheckRecord(set(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))), store.ErrInvalid, f.Name)
			require.ErrorIs(t, store.CheckRecord(set(time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC))), store.ErrInvalid, f.Name)
		}
	}
	require.Greater(t, checked, 10)
}

func TestCheckRecordHostKeys(t *testing.T) {
	t.Parallel()
	r := store.Record{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Status: store.StatusReady}
	r.HostKeys = make([]string, store.MaxHostKeys)
	r.HostKeys[3] = strings.Repeat("k", store.MaxHostKeySize)
	require.NoError(t, store.CheckRecord(r))
	r.HostKeys[3] += "k"
	var fe *store.FieldSizeError
	require.ErrorAs(t, store.CheckRecord(r), &fe)
	require.Equal(t, "HostKeys[3]", fe.Field)
	require.EqualError(t, fe, "store: invalid input: record "+r.ID+": HostKeys[3] is 8193 bytes, over the limit of 8192")
	r.HostKeys = append(r.HostKeys[:3], make([]string, store.MaxHostKeys)...)
	require.ErrorAs(t, store.CheckRecord(r), &fe)
	require.Equal(t, store.FieldSizeError{ID: r.ID, Field: "HostKeys", Size: store.MaxHostKeys + 3, Limit: store.MaxHostKeys}, *fe)
	require.Contains(t, fe.Error(), "19 keys")
}

func TestCorrupt(t *testing.T) {
	t.Parallel()
	a := &store.CorruptError{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Err: errors.New("host_keys: bad JSON")}
	b := &store.CorruptError{ID: "X'; DROP", Err: errors.New("ID is not a canonical UUID")}
	err := fmt.Errorf("sqlite: list: %w", errors.Join(a, b))
	require.ErrorIs(t, err, store.ErrCorrupt)
	require.Equal(t, []*store.CorruptError{a, b}, store.Corrupt(err))
	require.Nil(t, store.Corrupt(errors.New("other")))
	require.Nil(t, store.Corrupt(nil))
	require.EqualError(t, a, "store: record 0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e is corrupt: host_keys: bad JSON")
	require.EqualError(t, b, `store: record "X'; DROP" is corrupt: ID is not a canonical UUID`)
	require.ErrorIs(t, (&store.CorruptError{ID: strings.Repeat("x", 1000)}), store.ErrCorrupt)
	require.Less(t, len((&store.CorruptError{ID: strings.Repeat("x", 1000), Err: errors.New("e")}).Error()), 120)
}

// countingStore counts Purge calls and hides the memory store's UpdateNow.
type countingStore struct {
	store.Store
	purges int
}

func (c *countingStore) Purge(ctx context.Context, before time.Time) (int, error) {
	c.purges++
	return c.Store.Purge(ctx, before)
}

func TestPurgeAll(t *testing.T) {
	t.Parallel()
	s := &countingStore{Store: memory.New()}
	for range store.PurgeLimit*2 + 1 {
		require.NoError(t, s.Create(t.Context(), store.Record{ID: storetest.NewID(), Status: store.StatusDeleted}))
	}
	require.NoError(t, s.Create(t.Context(), store.Record{ID: storetest.NewID(), Status: store.StatusReady}))
	n, err := store.PurgeAll(t.Context(), s, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, store.PurgeLimit*2+1, n)
	require.Equal(t, 3, s.purges, "two full batches and the rest")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = store.PurgeAll(ctx, s, time.Now())
	require.ErrorIs(t, err, context.Canceled)
}

// UpdateNow works on a Store without its own: with the local clock.
func TestUpdateNowFallback(t *testing.T) {
	t.Parallel()
	s := &countingStore{Store: memory.New()}
	_, ok := store.Store(s).(store.NowUpdater)
	require.False(t, ok)
	id := storetest.NewID()
	require.NoError(t, s.Create(t.Context(), store.Record{ID: id, Status: store.StatusPending}))
	before := time.Now().UTC().Truncate(time.Microsecond)
	var seen time.Time
	r, err := store.UpdateNow(t.Context(), s, id, func(r *store.Record, now time.Time) error {
		seen, r.LeaseUntil = now, now.Add(time.Minute)
		return nil
	})
	require.NoError(t, err)
	require.WithinRange(t, seen, before, time.Now())
	require.Equal(t, time.UTC, seen.Location())
	require.Equal(t, seen.Add(time.Minute), r.LeaseUntil)
	_, err = store.UpdateNow(t.Context(), s, id, nil)
	require.ErrorIs(t, err, store.ErrInvalid)
}
