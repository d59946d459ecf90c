package provision_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

// newProvisioner embeds Hatchery in a control plane: a recipe (what a server
// boots with, what reaches it over SSH), the callback in your router, Resume.
func newProvisioner(ctx context.Context, mux *http.ServeMux, cloud provider.Provider, st store.Store,
	secrets inject.SecretSource, signer ssh.Signer, baseURL string, key []byte) (*provision.Provisioner, error) {
	p, err := provision.New(provision.Config{
		Provider:     cloud,   // hetzner.New(hetzner.NewClient(token), hetzner.Options{…})
		Store:        st,      // sqlite.Open(ctx, path); postgres.Open(ctx, dsn) for replicas
		Secrets:      secrets, // your vault, as an inject.SecretSource
		Signer:       signer,  // the control plane's SSH key
		SSHUser:      "app",
		CallbackBase: baseURL + "/api/provision/callback",
		CallbackKey:  key, // 32 random bytes, the same on every replica
		BootstrapFunc: func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
			return cloudinit.Config{Packages: []string{"curl"}}, nil // public: nothing secret
		},
		StepsFunc: func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
			env := []byte("API_TOKEN=" + in.Secrets["API_TOKEN"] + "\n") // over SSH, on stdin
			unit := []byte("[Service]\nEnvironmentFile=/home/app/.env\nExecStart=/home/app/bin/app\n")
			return []inject.Step{
				inject.WriteFile("/home/app/.env", env, 0o600),
				inject.InstallUnit("app.service", unit), inject.DaemonReload(),
				inject.RestartUnit("app.service"), inject.CheckActive("app.service", time.Second),
			}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("POST /api/provision/callback/{id}", p.Handler())
	go p.Run(ctx) // Resume now and then: crashed work, retries, phone_home deadlines
	return p, nil
}

// Embedding Hatchery in a control plane, with newProvisioner (above, and in
// the README): a SQLite store in a file, the callback in the control
// plane's router, and simulated servers (provider/fake; hetzner.New or
// digitalocean.New for real ones). One tenant goes from nothing to its
// service running with its secret.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "hatchery-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hatchery.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	cloud := fake.New(fake.Options{BootDelay: 10 * time.Millisecond, Dir: filepath.Join(dir, "servers")})
	defer cloud.Close()
	mux := http.NewServeMux() // the control plane's router
	cp := httptest.NewServer(mux)
	defer cp.Close()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	const tenant = "0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c"
	secrets := inject.StaticSecrets{tenant: {"API_TOKEN": "demo-token-not-a-secret"}}

	p, err := newProvisioner(ctx, mux, cloud, st, secrets, signer, cp.URL, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	if err := p.Provision(ctx, tenant); err != nil {
		fmt.Println(err)
		return
	}
	r, err := p.Wait(ctx, tenant)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, _ := cloud.Server(r.ServerID)
	env, _ := os.ReadFile(srv.Path("/home/app/.env"))
	fmt.Println(r.Status, r.ServerName, srv.Unit("app.service").Active)
	fmt.Print(string(env))
	// Output:
	// ready hatchery-0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c true
	// API_TOKEN=demo-token-not-a-secret
}
