package storetest_test

import (
	"path/filepath"
	"testing"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
	"github.com/hatchery-dev/hatchery/store/storetest"
)

// openAt opens a store on the database at path for one test, closed when
// the test ends.
func openAt(t *testing.T, path string) store.Store {
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// testConformance is a driver's whole conformance test; in the driver's
// own test file it is func TestConformance(t *testing.T). Run calls open
// for each of its parallel subtests, which must get a fresh, empty
// database; Replicas adds the contention tests across two stores opened
// separately on one database, as two control-plane replicas would.
func testConformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return openAt(t, filepath.Join(t.TempDir(), "hatchery.db")) },
		storetest.Replicas(func(t *testing.T) (store.Store, store.Store) {
			path := filepath.Join(t.TempDir(), "hatchery.db")
			return openAt(t, path), openAt(t, path)
		}),
	)
}

// How a store driver runs the suite: one test function (testConformance,
// above), here for store/sqlite. The suite runs under go test, so the
// example only shows it.
func ExampleRun() {
	_ = testConformance // func TestConformance(t *testing.T) { ... } in the driver's package
}
