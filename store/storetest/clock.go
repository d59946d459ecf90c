package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
)

// clockSlack is how far the suite lets a store's clock be from the test's:
// a database on another machine may differ a little.
const clockSlack = time.Second

// testUpdateNow checks a store.NowUpdater: fn gets the store's time, in
// stored form, later with each write, and the record is written at it.
func testUpdateNow(t *testing.T, h *harness) {
	s := h.one(t)
	u, ok := s.(store.NowUpdater)
	if !ok {
		t.Skip("the store is no store.NowUpdater")
	}
	ctx := t.Context()
	prev := create(t, s, pending())
	var prevNow time.Time
	for i := range 3 {
		time.Sleep(2 * time.Millisecond)
		before := time.Now()
		var seen time.Time
		got, err := u.UpdateNow(ctx, prev.ID, func(r *store.Record, now time.Time) error {
			seen = now
			r.LeaseOwner = "replica-a"
			r.LeaseUntil = now.Add(time.Minute)
			r.Attempts++
			return nil
		})
		after := time.Now()
		require.NoError(t, err)
		requireUTC(t, "now", seen)
		require.Equal(t, seen, seen.Round(0), "no monotonic reading")
		require.WithinRange(t, seen, before.Add(-clockSlack), after.Add(clockSlack), "update %d: now is the store's current time", i)
		require.True(t, seen.After(prevNow), "update %d: now %v must move past %v", i, seen, prevNow)
		require.False(t, seen.Before(prev.UpdatedAt), "update %d: now %v before the last write's UpdatedAt %v", i, seen, prev.UpdatedAt)
		require.Equal(t, seen, got.UpdatedAt, "update %d: the record is written at now", i)
		require.Equal(t, seen.Add(time.Minute), got.LeaseUntil)
		require.Equal(t, i+1, got.Attempts)
		require.Equal(t, got, get(t, s, prev.ID))
		prev, prevNow = got, seen
	}

	// Otherwise UpdateNow is Update.
	errNo := errors.New("no")
	_, err := u.UpdateNow(ctx, prev.ID, func(r *store.Record, _ time.Time) error { r.Attempts = 99; return errNo })
	require.Equal(t, errNo, err, "fn's error is returned as is")
	require.Equal(t, prev, get(t, s, prev.ID), "nothing is written")
	_, err = u.UpdateNow(ctx, prev.ID, func(r *store.Record, _ time.Time) error { r.Status = "booting"; return nil })
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = u.UpdateNow(ctx, prev.ID, nil)
	require.ErrorIs(t, err, store.ErrInvalid, "a nil func")
	_, err = u.UpdateNow(ctx, "nope", func(*store.Record, time.Time) error { return nil })
	require.ErrorIs(t, err, store.ErrInvalid)
	called := false
	_, err = u.UpdateNow(ctx, NewID(), func(*store.Record, time.Time) error { called = true; return nil })
	require.ErrorIs(t, err, store.ErrNotFound)
	require.False(t, called)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = u.UpdateNow(cancelled, prev.ID, func(*store.Record, time.Time) error { called = true; return nil })
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, called)
	require.Equal(t, prev, get(t, s, prev.ID))

	// store.UpdateNow goes through the store's.
	got, err := store.UpdateNow(ctx, s, prev.ID, func(r *store.Record, now time.Time) error { r.LeaseUntil = now; return nil })
	require.NoError(t, err)
	require.Equal(t, got.UpdatedAt, got.LeaseUntil)
}

// testUpdateNowWaits checks that the time fn gets is read once the record
// is locked, not when the call began: an UpdateNow that waits behind
// another Update for 100ms (through the other replica when there are two)
// sees a time at least 100ms after that Update's.
func testUpdateNowWaits(t *testing.T, h *harness) {
	stores := h.all(t)
	a, b := stores[0], stores[len(stores)-1]
	u, ok := b.(store.NowUpdater)
	if !ok {
		t.Skip("the store is no store.NowUpdater")
	}
	r := create(t, a, pending())
	const held = 100 * time.Millisecond

	entered, release := make(chan struct{}), make(chan struct{})
	type result struct {
		r   store.Record
		err error
	}
	first := make(chan result, 1)
	go func() {
		got, err := a.Update(t.Context(), r.ID, func(rec *store.Record) error {
			close(entered)
			<-release
			rec.Attempts++
			return nil
		})
		first <- result{got, err}
	}()
	<-entered
	second := make(chan result, 1)
	var seen time.Time
	var attempts int
	go func() {
		got, err := u.UpdateNow(t.Context(), r.ID, func(rec *store.Record, now time.Time) error {
			seen, attempts = now, rec.Attempts
			rec.LeaseUntil = now.Add(time.Minute)
			return nil
		})
		second <- result{got, err}
	}()
	time.Sleep(held)
	close(release)
	f, sec := <-first, <-second
	require.NoError(t, f.err)
	require.NoError(t, sec.err)
	require.Equal(t, 1, attempts, "the waiting fn sees the first write")
	require.GreaterOrEqual(t, seen.Sub(f.r.UpdatedAt), held-time.Millisecond,
		"now (%v) is read after the lock the first Update (written at %v) held for %v", seen, f.r.UpdatedAt, held)
	require.Equal(t, seen, sec.r.UpdatedAt)
}
