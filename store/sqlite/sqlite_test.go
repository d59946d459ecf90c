package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
	"github.com/hatchery-dev/hatchery/store/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, ":memory:") })
	})
	t.Run("file", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, filepath.Join(t.TempDir(), "hatchery.db")) },
			storetest.Replicas(func(t *testing.T) (store.Store, store.Store) {
				path := filepath.Join(t.TempDir(), "hatchery.db")
				return open(t, path), open(t, path)
			}))
	})
}
