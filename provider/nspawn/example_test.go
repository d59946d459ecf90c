package nspawn_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// A recipe tested on a real local server: real cloud-init runs the
// bootstrap, real sshd and systemd take the injection. In a test, skip
// when errors.Is(err, nspawn.ErrRequirements), and use t.TempDir() as
// StateDir.
//
// The StateDir is made for this run (os.MkdirTemp: 0700, a name nobody
// can guess): New refuses one that another user could change, such as a
// fixed name under /var/tmp that someone else made first.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	state, err := os.MkdirTemp("", "my-recipe-test-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(state)
	cloud, err := nspawn.New(nspawn.Options{StateDir: state})
	if errors.Is(err, nspawn.ErrRequirements) {
		fmt.Println("cannot run real servers here:", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cloud.Close() // deletes the servers

	// The control plane, on 127.0.0.1: the servers share the host's network.
	mux := http.NewServeMux()
	cp := httptest.NewServer(mux)
	defer cp.Close()

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	id := "0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c"
	p, err := provision.New(provision.Config{
		Provider: cloud,
		Store:    memory.New(),
		Secrets:  inject.StaticSecrets{id: {"API_TOKEN": "s3cr3t-token-value"}},
		// The recipe under test.
		BootstrapFunc: func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
			return cloudinit.Config{
				Users:    []cloudinit.User{{Name: "app", Shell: "/bin/bash"}},
				Packages: []string{"jq"}, // from the host's Debian mirror
			}, nil
		},
		StepsFunc: func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
			env := []byte("API_TOKEN=" + in.Secrets["API_TOKEN"] + "\n")
			return []inject.Step{
				inject.Mkdir("/home/app/svc", 0o700, inject.Owner("app:app"), inject.AsRoot()),
				inject.WriteFile("/home/app/svc/.env", env, 0o600, inject.Owner("app:app"), inject.AsRoot()),
				inject.InstallUnit("app.service", []byte("[Service]\nUser=app\nEnvironmentFile=/home/app/svc/.env\nExecStart=/bin/sleep infinity\n")),
				inject.DaemonReload(),
				inject.RestartUnit("app.service"),
				inject.CheckActive("app.service", 2*time.Second),
			}, nil
		},
		SSHUser:      "hatchery",
		Signer:       signer,
		CallbackBase: cp.URL + "/callback",
		CallbackKey:  []byte("0123456789abcdef0123456789abcdef"), // 32 random bytes in real life
		// No InstanceIDFunc: provision takes the Provider's InstanceID
		// (it implements provider.InstanceIDer), so a phone_home must
		// carry the instance ID of the tenant's own server.
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	mux.Handle("POST /callback/{id}", p.Handler())

	if err := p.Provision(ctx, id); err != nil {
		fmt.Println(err)
		return
	}
	r, err := p.Wait(ctx, id)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Status, r.Error) // ready, or failed with the journal's tail
}
