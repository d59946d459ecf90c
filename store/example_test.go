package store_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

func ExampleTransition() {
	ctx := context.Background()
	s := memory.New()
	id := "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e"
	_ = s.Create(ctx, store.Record{ID: id, Status: store.StatusCloudInit})

	// The phone_home callback moves cloud_init -> injecting_secrets and
	// records the host keys in the same atomic write.
	r, err := store.Transition(ctx, s, id,
		[]store.Status{store.StatusCloudInit}, store.StatusInjectingSecrets,
		func(r *store.Record) error {
			r.HostKeys = []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA root@tenant"}
			return nil
		})
	fmt.Println(r.Status, len(r.HostKeys), err)

	// A second callback for the same server finds the record elsewhere.
	r, err = store.Transition(ctx, s, id,
		[]store.Status{store.StatusCloudInit}, store.StatusInjectingSecrets, nil)
	var ce *store.ConflictError
	fmt.Println(errors.Is(err, store.ErrConflict), errors.As(err, &ce) && ce.Status == store.StatusInjectingSecrets, r.Status)
	// Output:
	// injecting_secrets 1 <nil>
	// true true injecting_secrets
}
