package provision_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// Deleted records older than DeletedRetention are purged by Resume, never
// one whose server deletion has not finished; until purged, a deleted ID
// cannot be provisioned again, and once purged it can.
func TestPurgeDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	dh := &deleteHook{countingProvider: b.cloud}
	cfg := b.config("r1", nil)
	cfg.Provider = dh
	cfg.DeletedRetention = 300 * time.Millisecond
	cfg.DriftInterval = -1
	p := b.replica(cfg)
	ctx := context.Background()
	recs := readyTenants(t, p, 3)
	done, stuck, kept := recs[0], recs[1], recs[2]
	require.NoError(t, p.Deprovision(ctx, done.ID))
	dh.setFailing(func(id string) error {
		if id == stuck.ServerID {
			return provider.ErrRateLimited
		}
		return nil
	})
	require.Error(t, p.Deprovision(ctx, stuck.ID))
	assert.ErrorIs(t, p.Provision(ctx, done.ID), provision.ErrDeleted, "not before the retention")

	// Past the retention: the finished one goes, the stuck one stays
	// (its server is still there), however many passes.
	require.Eventually(t, func() bool {
		_ = p.Resume(ctx)
		_, err := b.store.Get(ctx, done.ID)
		return errors.Is(err, store.ErrNotFound)
	}, 10*time.Second, 50*time.Millisecond)
	for range 5 {
		time.Sleep(100 * time.Millisecond)
		_ = p.Resume(ctx)
	}
	r := get(t, b.store, stuck.ID)
	assert.Equal(t, store.StatusDeleted, r.Status)
	assert.Equal(t, stuck.ServerID, r.ServerID, "kept while its server is not deleted")
	assert.Equal(t, store.StatusReady, get(t, b.store, kept.ID).Status)

	// Its server deleted at last (by Resume), the record goes after its
	// own retention.
	dh.setFailing(nil)
	require.Eventually(t, func() bool {
		_ = p.Resume(ctx)
		_, err := b.store.Get(ctx, stuck.ID)
		return errors.Is(err, store.ErrNotFound)
	}, 10*time.Second, 50*time.Millisecond)
	_, ok := b.fake.Server(stuck.ServerID)
	assert.False(t, ok)

	// A purged ID is new again.
	require.NoError(t, p.Provision(ctx, done.ID))
	assert.Equal(t, store.StatusReady, waitReady(t, p, done.ID).Status)
}

// Without DeletedRetention, deleted records are kept.
func TestPurgeOff(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	p := b.replica(b.config("r1", nil))
	ctx := context.Background()
	r := readyTenants(t, p, 1)[0]
	require.NoError(t, p.Deprovision(ctx, r.ID))
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, p.Resume(ctx))
	assert.Equal(t, store.StatusDeleted, get(t, b.store, r.ID).Status)
}

// corruptList is a store whose List, like a driver's that meets rows it
// cannot read, returns the good records and an error naming the bad ones.
type corruptList struct {
	store.Store
	bad []string
}

func (c *corruptList) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	recs, err := c.Store.List(ctx, statuses...)
	if err != nil {
		return recs, err
	}
	var errs []error
	for _, id := range c.bad {
		errs = append(errs, &store.CorruptError{ID: id, Err: errors.New("host_keys: invalid JSON")})
	}
	return recs, errors.Join(errs...)
}

// logLines records log records, for tests of what is logged.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logLines) matching(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// One record the store cannot read does not stop Resume: it goes on with
// the others (a pending tenant is provisioned) and logs the bad one, by
// ID, once per pass; its error says so (store.ErrCorrupt). Before, Resume
// returned List's error and did nothing.
func TestResumeSkipsCorruptRecords(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	bad := newID()
	logs := &logLines{}
	cfg := b.config("r1", &corruptList{Store: b.store, bad: []string{bad}})
	cfg.Logger = slog.New(logs)
	cfg.DriftInterval = -1
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, b.store.Create(context.Background(), store.Record{ID: id, Status: store.StatusPending}))

	err := p.Resume(context.Background())
	require.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), bad)
	waitReady(t, p, id)
	assert.Len(t, logs.matching("ERROR", "corrupt record", bad), 1, "once per pass")
	require.ErrorIs(t, p.Resume(context.Background()), store.ErrCorrupt)
	assert.Len(t, logs.matching("ERROR", "corrupt record", bad), 2)
}
