package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

// Open a store in a file, next to the control plane: records survive a
// restart. (Give the same file to provision.Config.Store.)
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hatchery-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "hatchery.db")

	st, err := sqlite.Open(ctx, path) // creates the file and its schema
	if err != nil {
		fmt.Println(err)
		return
	}
	const id = "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e"
	if err := st.Create(ctx, store.Record{ID: id, Status: store.StatusPending}); err != nil {
		fmt.Println(err)
		return
	}
	// Every status change is a compare-and-set (Update is atomic).
	if _, err := store.Transition(ctx, st, id, []store.Status{store.StatusPending}, store.StatusCreating, nil); err != nil {
		fmt.Println(err)
		return
	}
	st.Close()

	// After a restart.
	st, err = sqlite.Open(ctx, path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	r, err := st.Get(ctx, id)
	fmt.Println(r.Status, err)

	// A directory that does not exist is said, not "unable to open
	// database file".
	_, err = sqlite.Open(ctx, filepath.Join(dir, "missing", "hatchery.db"))
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// creating <nil>
	// true
}
