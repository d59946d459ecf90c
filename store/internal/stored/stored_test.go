package stored

import (
	"errors"
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

func TestApply(t *testing.T) {
	t.Parallel()
	created := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cur := store.Record{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Status: store.StatusPending,
		HostKeys: []string{"k"}, CreatedAt: created, UpdatedAt: created.Add(time.Hour)}

	// The wall clock stepped back: UpdatedAt does not.
	keep, ret, err := Apply(cur, func(r *store.Record) error { r.Attempts++; return nil }, created)
	require.NoError(t, err)
	require.Equal(t, cur.UpdatedAt, keep.UpdatedAt)
	require.Equal(t, keep, ret)
	keep.HostKeys[0] = "x"
	require.Equal(t, "k", ret.HostKeys[0], "keep and ret share nothing")
	require.Equal(t, "k", cur.HostKeys[0], "cur is never changed")

	errNo := errors.New("no")
	_, _, err = Apply(cur, func(*store.Record) error { return errNo }, created)
	require.Equal(t, errNo, err)

	_, _, err = Apply(cur, func(r *store.Record) error { r.ID = "x"; return nil }, created)
	require.ErrorIs(t, err, store.ErrInvalid)

	require.ErrorIs(t, CheckUpdate(cur.ID, nil), store.ErrInvalid)
	require.ErrorIs(t, CheckUpdate("x", func(*store.Record) error { return nil }), store.ErrInvalid)
	require.NoError(t, CheckUpdate(cur.ID, func(*store.Record) error { return nil }))
}
