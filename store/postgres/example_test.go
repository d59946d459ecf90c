package postgres_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/postgres"
)

// Open a store that several control-plane replicas share: each replica
// opens the same database (the first to start creates the schema, in the
// first schema of search_path) and passes the store to
// provision.Config.Store. The DSN here comes from the environment, as a
// password should; the example needs a database, so it is not run.
func ExampleOpen() {
	ctx := context.Background()
	dsn := os.Getenv("HATCHERY_DATABASE_URL") // e.g. postgres://hatchery@db.internal:5432/hatchery?sslmode=verify-full&search_path=hatchery
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	failed, err := st.List(ctx, store.StatusFailed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(failed), "failed tenants")
}
