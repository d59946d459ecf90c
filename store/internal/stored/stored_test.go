package stored

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
)

func TestTime(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Time{}, Time(time.Time{}.In(time.FixedZone("x", 3600))), "a zero instant in any zone is the zero time")
	in := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.FixedZone("x", -3600))
	require.Equal(t, time.Date(2030, 1, 2, 4, 4, 5, 678901000, time.UTC), Time(in))
	now := Now()
	require.Equal(t, time.UTC, now.Location())
	require.Equal(t, now, now.Round(0), "no monotonic reading")
}

func TestCeil(t *testing.T) {
	t.Parallel()
	zone := time.FixedZone("x", -3600)
	require.Equal(t, time.Date(2030, 1, 2, 4, 4, 5, 678902000, time.UTC), Ceil(time.Date(2030, 1, 2, 3, 4, 5, 678901001, zone)))
	exact := time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)
	require.Equal(t, exact, Ceil(exact))
	now := time.Now()
	require.Equal(t, Ceil(now), Ceil(now).Round(0), "no monotonic reading")
}

// TestEveryTimeNormalized sets every caller-set time.Time field of Record,
// found by reflection, and checks that Record and Apply store it in UTC at
// Precision: a time field added to Record but not to them fails here.
func TestEveryTimeNormalized(t *testing.T) {
	t.Parallel()
	in := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.FixedZone("x", -3600))
	want := Time(in)
	r := store.Record{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Status: store.StatusPending}
	var fields []int
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if v.Field(i).Type() == reflect.TypeFor[time.Time]() && name != "CreatedAt" && name != "UpdatedAt" {
			v.Field(i).Set(reflect.ValueOf(in))
			fields = append(fields, i)
		}
	}
	require.NotEmpty(t, fields)
	check := func(what string, got store.Record) {
		g := reflect.ValueOf(got)
		for _, i := range fields {
			require.Equal(t, want, g.Field(i).Interface(), "%s: Record.%s", what, g.Type().Field(i).Name)
		}
	}
	check("Record", Record(r))
	keep, ret, err := Apply(store.Record{ID: r.ID, Status: r.Status}, func(w *store.Record, _ time.Time) error {
		*w = r.Clone()
		return nil
	}, Now())
	require.NoError(t, err)
	check("Apply keep", keep)
	check("Apply ret", ret)
}

func TestApply(t *testing.T) {
	t.Parallel()
	created := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cur := store.Record{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Status: store.StatusPending,
		HostKeys: []string{"k"}, CreatedAt: created, UpdatedAt: created.Add(time.Hour)}

	// The clock stepped back: UpdatedAt does not, fn sees the clock's time.
	var seen time.Time
	keep, ret, err := Apply(cur, func(r *store.Record, now time.Time) error { seen = now; r.Attempts++; return nil }, created)
	require.NoError(t, err)
	require.Equal(t, created, seen)
	require.Equal(t, cur.UpdatedAt, keep.UpdatedAt)
	require.Equal(t, keep, ret)
	keep.HostKeys[0] = "x"
	require.Equal(t, "k", ret.HostKeys[0], "keep and ret share nothing")
	require.Equal(t, "k", cur.HostKeys[0], "cur is never changed")

	errNo := errors.New("no")
	_, _, err = Apply(cur, Adapt(func(*store.Record) error { return errNo }), created)
	require.Equal(t, errNo, err)

	_, _, err = Apply(cur, Adapt(func(r *store.Record) error { r.ID = "x"; return nil }), created)
	require.ErrorIs(t, err, store.ErrInvalid)

	require.Nil(t, Adapt(nil))
	require.ErrorIs(t, CheckUpdate(cur.ID, nil), store.ErrInvalid)
	require.ErrorIs(t, CheckUpdate("x", Adapt(func(*store.Record) error { return nil })), store.ErrInvalid)
	require.NoError(t, CheckUpdate(cur.ID, Adapt(func(*store.Record) error { return nil })))
}

func TestCheckRead(t *testing.T) {
	t.Parallel()
	ok := store.Record{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Status: store.StatusReady,
		CreatedAt: time.Unix(0, 0).UTC(), UpdatedAt: time.Unix(0, 0).UTC(), Error: "\xff long ok"}
	require.NoError(t, CheckRead(ok), "write-side checks (UTF-8, sizes) do not apply")
	for name, mod := range map[string]func(*store.Record){
		"ID":       func(r *store.Record) { r.ID = "X" },
		"status":   func(r *store.Record) { r.Status = "booting" },
		"attempts": func(r *store.Record) { r.Attempts = -1 },
		"lease":    func(r *store.Record) { r.LeaseUntil = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"drift":    func(r *store.Record) { r.DriftAt = time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC) },
		"created":  func(r *store.Record) { r.CreatedAt = time.UnixMicro(1 << 62).UTC() },
	} {
		r := ok
		mod(&r)
		err := CheckRead(r)
		require.ErrorIs(t, err, store.ErrCorrupt, name)
		var ce *store.CorruptError
		require.ErrorAs(t, err, &ce, name)
		require.Equal(t, r.ID, ce.ID)
	}
}
