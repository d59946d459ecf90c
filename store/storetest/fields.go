package storetest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
)

// testEveryField round-trips each Record field on its own, found by
// reflection, through Create, Get, Update, List and back to its zero value:
// a driver that forgets a column (in its INSERT, UPDATE or SELECT) fails
// here, also for a field added to Record after this suite was written.
func testEveryField(t *testing.T, h *harness) {
	s := h.one(t)

	// The other tests round-trip fullRecord: it must leave nothing unset.
	full := reflect.ValueOf(fullRecord())
	for i := range full.NumField() {
		if name := full.Type().Field(i).Name; !storeSet[name] && full.Field(i).IsZero() {
			t.Errorf("storetest's fullRecord leaves Record.%s unset: set it", name)
		}
	}

	typ := reflect.TypeFor[store.Record]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if storeSet[f.Name] || f.Name == "ID" {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			val := fieldValue(t, f)
			set := func(r *store.Record, v reflect.Value) { reflect.ValueOf(r).Elem().Field(i).Set(v) }

			r := pending()
			set(&r, val)
			got := create(t, s, r)
			require.Equal(t, stored(r, got.CreatedAt, got.UpdatedAt), got, "Create then Get of Record.%s", f.Name)

			base := create(t, s, fullRecord())
			for _, v := range []reflect.Value{val, reflect.Zero(f.Type)} {
				if f.Name == "Status" && v.IsZero() {
					continue // not a valid record
				}
				var want store.Record
				updated, err := s.Update(t.Context(), base.ID, func(rec *store.Record) error {
					set(rec, v)
					want = rec.Clone()
					return nil
				})
				require.NoError(t, err, "Update of Record.%s to %v", f.Name, v)
				want = stored(want, updated.CreatedAt, updated.UpdatedAt)
				require.Equal(t, want, updated, "Update returns Record.%s = %v", f.Name, v)
				require.Equal(t, want, get(t, s, base.ID), "Update writes Record.%s = %v", f.Name, v)
				list, err := s.List(t.Context())
				require.NoError(t, err)
				found := false
				for _, l := range list {
					if l.ID == base.ID {
						found = true
						require.Equal(t, want, l, "List reads Record.%s = %v", f.Name, v)
					}
				}
				require.True(t, found, "List lists the record")
			}
		})
	}
}

// fieldValue returns a value for Record field f that differs from what
// pending and fullRecord hold, or fails: a field of a type the suite does
// not know must be taught here, not skipped.
func fieldValue(t *testing.T, f reflect.StructField) reflect.Value {
	t.Helper()
	switch {
	case f.Type == reflect.TypeFor[store.Status]():
		return reflect.ValueOf(store.StatusReady)
	case f.Type == reflect.TypeFor[time.Time]():
		return reflect.ValueOf(time.Date(2033, 3, 4, 5, 6, 7, 891234567, time.FixedZone("minus-3", -3*60*60)))
	case f.Type == reflect.TypeFor[[]string]():
		return reflect.ValueOf([]string{"ssh-ed25519 AAAA " + f.Name, "ünï 'quoted', {x}"})
	case f.Type.Kind() == reflect.String:
		return reflect.ValueOf("value of " + f.Name + " ünï 'q'").Convert(f.Type)
	case f.Type.Kind() == reflect.Int:
		return reflect.ValueOf(42).Convert(f.Type)
	}
	t.Fatalf("storetest cannot make a value for Record.%s of type %s: teach fieldValue", f.Name, f.Type)
	return reflect.Value{}
}

// testFieldLimits checks that every driver refuses fields over the limits
// of store.CheckRecord, with a *store.FieldSizeError, and stores fields at
// the limits whole.
func testFieldLimits(t *testing.T, h *harness) {
	s := h.one(t)
	keys := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strings.Repeat(string(rune('a'+i%26)), size)
		}
		return out
	}
	tests := []struct {
		field string
		set   func(*store.Record)
	}{
		{"Error", func(r *store.Record) { r.Error = strings.Repeat("e", store.MaxLongField+1) }},
		{"Drift", func(r *store.Record) { r.Drift = strings.Repeat("d", store.MaxLongField+1) }},
		{"ServerName", func(r *store.Record) { r.ServerName = strings.Repeat("n", store.MaxShortField+1) }},
		{"LeaseOwner", func(r *store.Record) { r.LeaseOwner = strings.Repeat("ö", store.MaxShortField/2+1) }},
		{"CallbackNonce", func(r *store.Record) { r.CallbackNonce = strings.Repeat("c", store.MaxShortField+1) }},
		{"HostKeys", func(r *store.Record) { r.HostKeys = keys(store.MaxHostKeys+1, 10) }},
		{"HostKeys[1]", func(r *store.Record) { r.HostKeys = []string{"k", strings.Repeat("k", store.MaxHostKeySize+1)} }},
	}
	r := create(t, s, fullRecord())
	for _, tt := range tests {
		fresh := pending()
		tt.set(&fresh)
		err := s.Create(t.Context(), fresh)
		var fe *store.FieldSizeError
		require.ErrorAs(t, err, &fe, "Create with %s over its limit", tt.field)
		require.ErrorIs(t, err, store.ErrInvalid)
		require.Equal(t, tt.field, fe.Field)
		require.Greater(t, fe.Size, fe.Limit)
		_, err = s.Get(t.Context(), fresh.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "nothing is created")

		_, err = s.Update(t.Context(), r.ID, func(rec *store.Record) error { tt.set(rec); return nil })
		require.ErrorAs(t, err, &fe, "Update with %s over its limit", tt.field)
		require.Equal(t, tt.field, fe.Field)
		require.Equal(t, r, get(t, s, r.ID), "nothing is written")
	}

	// At the limits, everything is kept.
	got, err := s.Update(t.Context(), r.ID, func(rec *store.Record) error {
		rec.Error = strings.Repeat("é", store.MaxLongField/2)
		rec.Drift = strings.Repeat("d", store.MaxLongField)
		rec.ServerName = strings.Repeat("n", store.MaxShortField)
		rec.HostKeys = keys(store.MaxHostKeys, store.MaxHostKeySize)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, got, get(t, s, r.ID))
	require.Len(t, got.Error, store.MaxLongField)
	require.Len(t, got.HostKeys, store.MaxHostKeys)
	require.Len(t, got.HostKeys[store.MaxHostKeys-1], store.MaxHostKeySize)
}
