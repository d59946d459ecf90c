package store_test

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// A lease taken with the store's clock: every replica computes the same end,
// whatever its own clock says.
func ExampleUpdateNow() {
	ctx := context.Background()
	s := memory.New()
	id := "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e"
	_ = s.Create(ctx, store.Record{ID: id, Status: store.StatusInjectingSecrets})

	r, err := store.UpdateNow(ctx, s, id, func(r *store.Record, now time.Time) error {
		if r.LeaseOwner != "" && now.Before(r.LeaseUntil) {
			return errors.New("leased to " + r.LeaseOwner)
		}
		r.LeaseOwner, r.LeaseUntil = "replica-a", now.Add(time.Minute)
		return nil
	})
	fmt.Println(r.LeaseOwner, r.LeaseUntil.Sub(r.UpdatedAt), err)
	// Output:
	// replica-a 1m0s <nil>
}

// One record cannot be read back: List still returns the others.
func ExampleCorrupt() {
	err := fmt.Errorf("sqlite: list: %w", errors.Join(
		&store.CorruptError{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Err: errors.New("host_keys: unexpected end of JSON input")}))
	for _, ce := range store.Corrupt(err) {
		fmt.Println("skipping", ce.ID, errors.Is(err, store.ErrCorrupt))
	}
	// Output:
	// skipping 0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e true
}

// Remove the records deleted more than 30 days ago, one short transaction
// per store.PurgeLimit records.
func ExamplePurgeAll() {
	ctx := context.Background()
	s := memory.New()
	_ = s.Create(ctx, store.Record{ID: "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Status: store.StatusDeleted})
	_ = s.Create(ctx, store.Record{ID: "1b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", Status: store.StatusReady})

	n, err := store.PurgeAll(ctx, s, time.Now().Add(-30*24*time.Hour))
	fmt.Println(n, err) // deleted just now: kept
	n, err = store.PurgeAll(ctx, s, time.Now().Add(time.Second))
	fmt.Println(n, err)
	// Output:
	// 0 <nil>
	// 1 <nil>
}
