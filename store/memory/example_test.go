package memory_test

import (
	"context"
	"fmt"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

func Example() {
	ctx := context.Background()
	s := memory.New()

	id := "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e"
	if err := s.Create(ctx, store.Record{ID: id, Status: store.StatusPending}); err != nil {
		fmt.Println(err)
		return
	}

	// Update is an atomic read-modify-write.
	r, err := s.Update(ctx, id, func(r *store.Record) error {
		r.Attempts++
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Status, r.Attempts, r.UpdatedAt.After(r.CreatedAt) || r.UpdatedAt.Equal(r.CreatedAt))

	pending, _ := s.List(ctx, store.StatusPending)
	fmt.Println(len(pending))

	err = s.Create(ctx, store.Record{ID: id, Status: store.StatusPending})
	fmt.Println(err)
	// Output:
	// pending 1 true
	// 1
	// store: record already exists: 0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e
}
