package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
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

// Embedding Hatchery: newProvisioner (above, and in the README) with
// simulated servers, one tenant from nothing to its service running.
func Example_embed() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cloud := fake.New(fake.Options{BootDelay: 10 * time.Millisecond})
	defer cloud.Close()
	mux := http.NewServeMux() // the control plane's router
	cp := httptest.NewServer(mux)
	defer cp.Close()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	const tenant = "0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c"
	secrets := inject.StaticSecrets{tenant: {"API_TOKEN": "demo-token-not-a-secret"}}

	p, err := newProvisioner(ctx, mux, cloud, memory.New(), secrets, signer, cp.URL, []byte("0123456789abcdef0123456789abcdef"))
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
	fmt.Println(r.Status, srv.Unit("app.service").Active)
	fmt.Print(string(env))
	// Output:
	// ready true
	// API_TOKEN=demo-token-not-a-secret
}

// The README's "how to embed" snippet is newProvisioner, verbatim, so it
// compiles and runs (Example_embed). The README must hold it as it is here.
func TestEmbedSnippetInSync(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "example_test.go", src, parser.ParseComments)
	require.NoError(t, err)
	var snippet string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "newProvisioner" {
			snippet = string(src[fset.Position(fn.Doc.Pos()).Offset:fset.Position(fn.End()).Offset])
		}
	}
	require.NotEmpty(t, snippet)
	lines := strings.Count(snippet, "\n") + 1
	assert.LessOrEqual(t, lines, 36, "the snippet is meant to be short")

	block := regexp.MustCompile("(?s)```go\n(.*?)```")
	found := 0
	for _, doc := range []string{"../../README.md"} {
		data, err := os.ReadFile(doc)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		for _, m := range block.FindAllStringSubmatch(string(data), -1) {
			if strings.Contains(m[1], "func newProvisioner(") {
				found++
				assert.Equal(t, snippet+"\n", m[1], "%s: the embed snippet differs from example_test.go's newProvisioner", doc)
			}
		}
	}
	assert.Positive(t, found, "no document holds the embed snippet (a ```go block with func newProvisioner)")
}
