package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
)

// testCorrupt damages rows through the driver's Corrupter and checks that
// List returns every good record with an error naming each bad one, and
// that Get, Update and Transition report a bad one as a *store.CorruptError.
func testCorrupt(t *testing.T, h *harness) {
	if h.cfg.corrupt == nil {
		t.Skip("no Corrupter: the driver cannot hold a damaged row")
	}
	s, damage := h.cfg.corrupt(t)
	ctx := t.Context()
	var good []store.Record
	bad := map[string]Corruption{}
	good = append(good, create(t, s, fullRecord()))
	for _, c := range Corruptions() {
		r := create(t, s, fullRecord())
		require.NoError(t, damage(r.ID, c), "damage %s", c)
		bad[r.ID] = c
		good = append(good, create(t, s, fullRecord()))
	}

	ids := func(err error) map[string]Corruption {
		out := map[string]Corruption{}
		for _, ce := range store.Corrupt(err) {
			require.Contains(t, bad, ce.ID)
			out[ce.ID] = bad[ce.ID]
		}
		return out
	}
	list, err := s.List(ctx)
	require.ErrorIs(t, err, store.ErrCorrupt)
	var ce *store.CorruptError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, good, list, "List returns every good record")
	require.Equal(t, bad, ids(err), "and names every bad one")
	for id := range bad {
		require.Contains(t, err.Error(), id)
	}

	// A List by status sees the damaged rows it selects.
	list, err = s.List(ctx, good[0].Status)
	require.Equal(t, good, list)
	want := map[string]Corruption{}
	for id, c := range bad {
		if c != CorruptStatus {
			want[id] = c
		}
	}
	require.Equal(t, want, ids(err))

	if c, ok := s.(store.Counter); ok {
		// A damaged row is counted under its status when that is a
		// lifecycle status: every good and bad record is cloud_init,
		// but the one whose status was damaged.
		counts, err := c.Count(ctx)
		require.NoError(t, err, "Count does not read the records")
		require.Equal(t, map[store.Status]int{store.StatusCloudInit: len(good) + len(bad) - 1}, counts)
	}

	for id, c := range bad {
		_, err := s.Get(ctx, id)
		require.ErrorIs(t, err, store.ErrCorrupt, "Get of a record with a bad %s", c)
		require.ErrorAs(t, err, &ce)
		require.Equal(t, id, ce.ID)

		called := false
		_, err = s.Update(ctx, id, func(*store.Record) error { called = true; return nil })
		require.ErrorIs(t, err, store.ErrCorrupt, "Update of a record with a bad %s", c)
		require.False(t, called, "fn never sees a corrupt record")

		_, err = store.Transition(ctx, s, id, store.Statuses(), store.StatusFailed, nil)
		require.ErrorIs(t, err, store.ErrCorrupt)
	}
	for _, r := range good {
		_, err := s.Update(ctx, r.ID, func(rec *store.Record) error { rec.Attempts++; return nil })
		require.NoError(t, err, "good records stay writable")
	}
}
