package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/internal/stored"
)

var (
	_ store.Store      = (*Store)(nil)
	_ store.Pinger     = (*Store)(nil)
	_ store.NowUpdater = (*Store)(nil)
	_ store.Counter    = (*Store)(nil)
)

// Store is an in-memory store.Store. The zero value is not usable; call New.
//
// Writers (Create and Update) take turns through a writer slot that a
// waiting writer gives up when its context ends; the map itself sits behind
// a read-write mutex held only to copy a record in or out, so Get and List
// never wait for an Update's fn.
type Store struct {
	writer  chan struct{} // a one-slot semaphore held by the one writer; see lock
	mu      sync.RWMutex  // guards records
	records map[string]store.Record
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		writer:  make(chan struct{}, 1),
		records: make(map[string]store.Record),
	}
}

// lock takes the writer slot, or returns ctx's error when ctx ends first.
// A channel rather than a sync.Mutex, so that a waiting writer can give up
// with its context without a helper goroutine.
func (s *Store) lock(ctx context.Context) error {
	select {
	case s.writer <- struct{}{}:
		return nil
	default:
	}
	select {
	case s.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) unlock() { <-s.writer }

// Create stores a copy of r. CreatedAt and UpdatedAt are set to now; the
// values in r are ignored. It returns an error wrapping store.ErrExists when
// the ID is taken and store.ErrInvalid when r is malformed.
func (s *Store) Create(ctx context.Context, r store.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: create: %w", err)
	}
	if err := store.CheckRecord(r); err != nil {
		return err
	}
	r = stored.Record(r)
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("memory: create: %w", err)
	}
	defer s.unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[r.ID]; ok {
		return fmt.Errorf("%w: %s", store.ErrExists, r.ID)
	}
	now := stored.Now()
	r.CreatedAt, r.UpdatedAt = now, now
	s.records[r.ID] = r
	return nil
}

// Get returns a copy of the record with the given ID.
func (s *Store) Get(ctx context.Context, id string) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, fmt.Errorf("memory: get: %w", err)
	}
	if err := store.CheckID(id); err != nil {
		return store.Record{}, err
	}
	s.mu.RLock()
	r, ok := s.records[id]
	s.mu.RUnlock()
	if !ok {
		return store.Record{}, fmt.Errorf("%w: %s", store.ErrNotFound, id)
	}
	return r.Clone(), nil
}

// Update applies fn to a copy of the record while holding the writer slot
// and stores the result unless fn fails; fn's error is returned as is. fn may
// read the Store (Get, List) but must not write to it: that would wait for
// itself. Changing the ID is an error wrapping store.ErrInvalid; changes to
// CreatedAt and UpdatedAt are ignored.
func (s *Store) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	return s.UpdateNow(ctx, id, stored.Adapt(fn))
}

// UpdateNow is Update with fn also given now, read from the local clock once
// the writer slot is held: the time the record's UpdatedAt gets.
func (s *Store) UpdateNow(ctx context.Context, id string, fn func(*store.Record, time.Time) error) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, fmt.Errorf("memory: update: %w", err)
	}
	if err := stored.CheckUpdate(id, fn); err != nil {
		return store.Record{}, err
	}
	if err := s.lock(ctx); err != nil {
		return store.Record{}, fmt.Errorf("memory: update: %w", err)
	}
	defer s.unlock()
	s.mu.RLock()
	cur, ok := s.records[id]
	s.mu.RUnlock()
	if !ok {
		return store.Record{}, fmt.Errorf("%w: %s", store.ErrNotFound, id)
	}
	keep, ret, err := stored.Apply(cur, fn, stored.Now())
	if err != nil {
		return store.Record{}, err
	}
	s.mu.Lock()
	s.records[id] = keep
	s.mu.Unlock()
	return ret, nil
}

// Purge removes up to store.PurgeLimit deleted records last written before
// before, oldest first, and returns how many it removed.
func (s *Store) Purge(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memory: purge: %w", err)
	}
	if err := s.lock(ctx); err != nil {
		return 0, fmt.Errorf("memory: purge: %w", err)
	}
	defer s.unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var old []store.Record
	for _, r := range s.records {
		if r.Status == store.StatusDeleted && r.UpdatedAt.Before(before) {
			old = append(old, r)
		}
	}
	slices.SortFunc(old, func(a, b store.Record) int {
		if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	old = old[:min(len(old), store.PurgeLimit)]
	for _, r := range old {
		delete(s.records, r.ID)
	}
	return len(old), nil
}

// Ping returns nil: a Store in memory always answers, unless ctx has ended.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: ping: %w", err)
	}
	return nil
}

// Count returns how many records the Store holds in each status.
func (s *Store) Count(ctx context.Context) (map[store.Status]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: count: %w", err)
	}
	out := make(map[store.Status]int)
	s.mu.RLock()
	for _, r := range s.records {
		out[r.Status]++
	}
	s.mu.RUnlock()
	return out, nil
}

// List returns copies of the records with any of the given statuses (all
// records when none is given), ordered by CreatedAt then ID.
func (s *Store) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: list: %w", err)
	}
	if err := store.CheckStatuses(statuses...); err != nil {
		return nil, err
	}
	s.mu.RLock()
	out := make([]store.Record, 0, len(s.records))
	for _, r := range s.records {
		if len(statuses) == 0 || slices.Contains(statuses, r.Status) {
			out = append(out, r.Clone())
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Record) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}
