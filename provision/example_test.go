package provision_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// A tenant from nothing to ready, on simulated servers: the callback is
// served over real HTTP on 127.0.0.1, the secret goes over SSH.
func Example() {
	ctx := context.Background()
	cloud := fake.New(fake.Options{BootDelay: 10 * time.Millisecond, PhoneHomeInterval: 50 * time.Millisecond})
	defer cloud.Close()

	// The control plane's router, with the callback mounted under a prefix.
	mux := http.NewServeMux()
	cp := httptest.NewServer(mux)
	defer cp.Close()

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	p, err := provision.New(provision.Config{
		Provider: cloud,
		Store:    memory.New(),
		Secrets: inject.StaticSecrets{
			"0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c": {"API_TOKEN": "s3cr3t-token-value"},
		},
		BootstrapFunc: func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
			return cloudinit.Config{Users: []cloudinit.User{{Name: "app", Shell: "/bin/bash"}}}, nil
		},
		StepsFunc: func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
			env := []byte("API_TOKEN=" + in.Secrets["API_TOKEN"] + "\n")
			return []inject.Step{
				inject.Mkdir("/home/app/svc", 0o700, inject.Owner("app:app"), inject.AsRoot()),
				inject.WriteFile("/home/app/svc/.env", env, 0o600, inject.Owner("app:app"), inject.AsRoot()),
			}, nil
		},
		SSHUser:      "hatchery",
		Signer:       signer,
		CallbackBase: cp.URL + "/api/provision/callback",
		CallbackKey:  []byte("0123456789abcdef0123456789abcdef"), // 32 random bytes in real life
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	mux.Handle("POST /api/provision/callback/{id}", p.Handler())

	id := "0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c"
	if err := p.Provision(ctx, id); err != nil {
		fmt.Println(err)
		return
	}
	r, err := p.Wait(ctx, id)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.ID, r.Status, r.ServerName)

	srv, _ := cloud.Server(r.ServerID)
	fi, _ := os.Stat(srv.Path("/home/app/svc/.env"))
	fmt.Println(".env", fi.Mode().Perm())
	// Output:
	// 0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c ready hatchery-0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c
	// .env -rw-------
}

// A ready tenant gets a new server (Replace): the old one serves until the
// new one is injected, and is deleted then. Sweep, in a dry run, finds no
// server that no tenant owns.
func ExampleProvisioner_Replace() {
	ctx := context.Background()
	cloud := fake.New(fake.Options{BootDelay: 10 * time.Millisecond, PhoneHomeInterval: 50 * time.Millisecond})
	defer cloud.Close()
	mux := http.NewServeMux()
	cp := httptest.NewServer(mux)
	defer cp.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	p, err := provision.New(provision.Config{
		Provider: cloud, // it implements provider.Lister, which Sweep needs
		Store:    memory.New(),
		Secrets:  inject.StaticSecrets{},
		BootstrapFunc: func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
			return cloudinit.Config{}, nil
		},
		StepsFunc: func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
			return []inject.Step{inject.Command("true")}, nil
		},
		SSHUser:      "hatchery",
		Signer:       signer,
		CallbackBase: cp.URL + "/api/provision/callback",
		CallbackKey:  []byte("0123456789abcdef0123456789abcdef"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	mux.Handle("POST /api/provision/callback/{id}", p.Handler())

	id := "7d2f4c1e-9a8b-4c3d-8e7f-1a2b3c4d5e6f"
	if err := p.Provision(ctx, id); err != nil {
		fmt.Println(err)
		return
	}
	before, _ := p.Wait(ctx, id)
	if err := p.Replace(ctx, id); err != nil {
		fmt.Println(err)
		return
	}
	after, _ := p.Wait(ctx, id)
	_, oldKept := cloud.Server(before.ServerID)
	fmt.Println(after.Status, "new server:", after.ServerID != before.ServerID, "old kept:", oldKept)

	res, err := p.Sweep(ctx, true) // a dry run: report, delete nothing
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("servers:", res.Listed, "orphans:", len(res.Orphans))
	// Output:
	// ready new server: true old kept: false
	// servers: 1 orphans: 0
}
