package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
)

func deleted() store.Record {
	r := pending()
	r.Status = store.StatusDeleted
	return r
}

// testPurge checks which records Purge removes: deleted ones last written
// strictly before the given time, and nothing else.
func testPurge(t *testing.T, h *harness) {
	s := h.one(t)
	ctx := t.Context()
	n, err := s.Purge(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "nothing to purge in a fresh store")

	var old []store.Record
	for range 3 {
		old = append(old, create(t, s, deleted()))
	}
	rewritten := create(t, s, deleted())
	var live []store.Record
	for _, st := range store.Statuses() {
		if st != store.StatusDeleted {
			r := pending()
			r.Status = st
			live = append(live, create(t, s, r))
		}
	}
	// The mark is after every write so far, by the store's own clock.
	mark := rewritten.UpdatedAt
	for _, r := range append(append([]store.Record(nil), old...), live...) {
		if r.UpdatedAt.After(mark) {
			mark = r.UpdatedAt
		}
	}
	mark = mark.Add(time.Microsecond)
	time.Sleep(2 * time.Millisecond)
	young := create(t, s, deleted())
	rewritten, err = s.Update(ctx, rewritten.ID, func(r *store.Record) error { r.Error = "written again"; return nil })
	require.NoError(t, err)
	require.True(t, young.UpdatedAt.After(mark) && rewritten.UpdatedAt.After(mark),
		"the store's clock must move on: %v, %v after %v", young.UpdatedAt, rewritten.UpdatedAt, mark)

	n, err = s.Purge(ctx, old[0].UpdatedAt)
	require.NoError(t, err)
	require.Zero(t, n, "a record written at before is not before it")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Purge(cancelled, mark)
	require.ErrorIs(t, err, context.Canceled)
	get(t, s, old[0].ID)

	n, err = s.Purge(ctx, mark)
	require.NoError(t, err)
	require.Equal(t, len(old), n)
	for _, r := range old {
		_, err := s.Get(ctx, r.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "a deleted record written before the mark is purged")
	}
	require.Equal(t, young, get(t, s, young.ID), "a deleted record written after the mark stays")
	require.Equal(t, rewritten, get(t, s, rewritten.ID), "a deleted record written again after the mark stays")
	n, err = s.Purge(ctx, mark)
	require.NoError(t, err)
	require.Zero(t, n, "a second Purge finds nothing")
	n, err = s.Purge(ctx, time.Time{})
	require.NoError(t, err)
	require.Zero(t, n)

	n, err = s.Purge(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, live, all, "records of every other status are never purged")
}

// testPurgeLimit checks that one Purge removes at most store.PurgeLimit
// records, the oldest, and that store.PurgeAll removes them all.
func testPurgeLimit(t *testing.T, h *harness) {
	s := h.one(t)
	ctx := t.Context()
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < store.PurgeLimit; i += workers {
				if err := s.Create(ctx, deleted()); err != nil {
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
	time.Sleep(2 * time.Millisecond)
	var young []string
	for range 3 {
		young = append(young, create(t, s, deleted()).ID)
	}
	keep := create(t, s, pending())

	far := time.Now().Add(time.Hour)
	n, err := s.Purge(ctx, far)
	require.NoError(t, err)
	require.Equal(t, store.PurgeLimit, n, "one Purge removes at most PurgeLimit records")
	all, err := s.List(ctx)
	require.NoError(t, err)
	var left []string
	for _, r := range all {
		left = append(left, r.ID)
	}
	require.ElementsMatch(t, append(young, keep.ID), left, "the oldest go first")

	n, err = s.Purge(ctx, far)
	require.NoError(t, err)
	require.Equal(t, 3, n)

	for range 5 {
		create(t, s, deleted())
	}
	n, err = store.PurgeAll(ctx, s, far)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	all, err = s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.Record{keep}, all)
}

// testPing checks a store.Pinger: nil while the store works, the context's
// error once it ended.
func testPing(t *testing.T, h *harness) {
	s := h.one(t)
	p, ok := s.(store.Pinger)
	if !ok {
		t.Skip("the store is no store.Pinger")
	}
	require.NoError(t, p.Ping(t.Context()))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, p.Ping(ctx), context.Canceled)
}

// testCount checks a store.Counter: the counts by status match what List
// returns, as records are created, moved and purged, and the context's
// error once it ended.
func testCount(t *testing.T, h *harness) {
	s := h.one(t)
	c, ok := s.(store.Counter)
	if !ok {
		t.Skip("the store is no store.Counter")
	}
	ctx := t.Context()
	check := func(want map[store.Status]int) {
		t.Helper()
		got, err := c.Count(ctx)
		require.NoError(t, err)
		for _, st := range store.Statuses() {
			require.Equal(t, want[st], got[st], "count of %s", st)
		}
		for st := range got {
			require.True(t, st.Valid(), "Count reports only lifecycle statuses, not %q", st)
		}
		list, err := s.List(ctx)
		require.NoError(t, err)
		fromList := map[store.Status]int{}
		for _, r := range list {
			fromList[r.Status]++
		}
		for _, st := range store.Statuses() {
			require.Equal(t, fromList[st], got[st], "Count agrees with List for %s", st)
		}
	}
	check(nil)
	var ids []string
	for range 5 {
		ids = append(ids, create(t, s, pending()).ID)
	}
	create(t, s, fullRecord()) // cloud_init
	create(t, s, deleted())
	check(map[store.Status]int{store.StatusPending: 5, store.StatusCloudInit: 1, store.StatusDeleted: 1})
	for _, id := range ids[:2] {
		_, err := store.Transition(ctx, s, id, []store.Status{store.StatusPending}, store.StatusReady, nil)
		require.NoError(t, err)
	}
	_, err := store.Transition(ctx, s, ids[2], []store.Status{store.StatusPending}, store.StatusFailed, nil)
	require.NoError(t, err)
	check(map[store.Status]int{store.StatusPending: 2, store.StatusReady: 2, store.StatusFailed: 1,
		store.StatusCloudInit: 1, store.StatusDeleted: 1})
	n, err := s.Purge(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	check(map[store.Status]int{store.StatusPending: 2, store.StatusReady: 2, store.StatusFailed: 1,
		store.StatusCloudInit: 1})

	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Count(done)
	require.ErrorIs(t, err, context.Canceled)
}
