package rachel8_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// Example shows the recipe's two halves: the cloud-config a new server
// boots with, and the steps that carry the secrets once it has phoned home.
func Example() {
	// The control plane's SSH key (normally loaded from disk or a KMS).
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		panic(err)
	}

	// 1. The bootstrap: nothing secret in it.
	cfg, err := rachel8.Bootstrap(rachel8.Options{
		PublicKey:    signer.PublicKey(),
		PhoneHomeURL: "https://control.example.com/api/provision/callback/tenant-1?token=abc123",
	})
	if err != nil {
		panic(err)
	}
	userData, err := cloudinit.Build(cfg)
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.SplitN(string(userData), "\n", 2)[0], "under 32 KiB:", len(userData) < cloudinit.MaxSize)

	// 2. The secrets, e.g. from rachel8.Load(ctx, rachel8.EnvSource{}, id).
	secrets := rachel8.Secrets{
		ClaudeAccessToken:   "sk-ant-oat01-example",
		ClaudeRefreshToken:  "sk-ant-ort01-example",
		ClaudeExpiresAt:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		TelegramBotToken:    "7123456789:AAExampleExampleExample",
		OwnerTelegramUserID: "123456789",
	}
	steps, err := rachel8.Steps(rachel8.Options{}, secrets, false)
	if err != nil {
		panic(err)
	}
	// Run them with inject.Run(ctx, conn, steps, inject.WithRedact(secrets.Values()...)).
	for i, st := range steps {
		fmt.Printf("%d. %s\n", i+1, st.Name)
	}

	// A value that would break the .env file is refused, by name only.
	secrets.TelegramBotToken = "7123456789:AAE\nLOG_LEVEL=debug"
	_, err = rachel8.Steps(rachel8.Options{}, secrets, false)
	fmt.Println(err)

	// Output:
	// #cloud-config under 32 KiB: true
	// 1. wait for cloud-init
	// 2. create ~/.claude
	// 3. write ~/.claude/.credentials.json
	// 4. ensure ~/rachel8
	// 5. write ~/rachel8/.env
	// 6. install rachel8.service
	// 7. systemctl daemon-reload
	// 8. enable rachel8.service
	// 9. start rachel8.service
	// 10. check rachel8.service is active
	// rachel8: secret TELEGRAM_BOT_TOKEN contains a newline, which a .env value may not hold (allowed: letters, digits and _ - . : / + = @ ,)
}

// ExampleApply provisions a Rachel8 tenant end to end on a simulated
// server: the recipe plugged into provision, the callback served on
// 127.0.0.1, the secrets read from RACHEL8_* environment variables.
func ExampleApply() {
	ctx := context.Background()
	// In real life these are set outside the process.
	for k, v := range map[string]string{
		"RACHEL8_CLAUDE_ACCESS_TOKEN":    "sk-ant-oat01-example-access",
		"RACHEL8_CLAUDE_REFRESH_TOKEN":   "sk-ant-ort01-example-refresh",
		"RACHEL8_CLAUDE_EXPIRES_AT":      "2026-01-01T00:00:00Z",
		"RACHEL8_TELEGRAM_BOT_TOKEN":     "7123456789:AAExampleExampleExample",
		"RACHEL8_OWNER_TELEGRAM_USER_ID": "123456789",
	} {
		os.Setenv(k, v)
		defer os.Unsetenv(k)
	}

	cloud := fake.New(fake.Options{BootDelay: 10 * time.Millisecond, PhoneHomeInterval: 50 * time.Millisecond})
	defer cloud.Close()
	mux := http.NewServeMux()
	cp := httptest.NewServer(mux)
	defer cp.Close()

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	cfg := provision.Config{
		Provider:     cloud,
		Store:        memory.New(),
		Secrets:      rachel8.EnvSource{},
		Signer:       signer,
		CallbackBase: cp.URL + "/api/provision/callback",
		CallbackKey:  []byte("0123456789abcdef0123456789abcdef"), // 32 random bytes in real life
	}
	rachel8.Apply(&cfg, rachel8.Options{Settle: time.Second})
	p, err := provision.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	mux.Handle("POST /api/provision/callback/{id}", p.Handler())

	id := "5f2c9a7e-1b3d-4c8e-a6f0-9d2e4b7c1a35"
	if err := p.Provision(ctx, id); err != nil {
		fmt.Println(err)
		return
	}
	r, err := p.Wait(ctx, id)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Status)

	srv, _ := cloud.Server(r.ServerID)
	env, _ := os.ReadFile(srv.Path("/home/rachel/rachel8/.env"))
	fmt.Print(strings.ReplaceAll(string(env), "7123456789:AAExampleExampleExample", "…"))
	fmt.Println(rachel8.UnitName, "active:", srv.Unit(rachel8.UnitName).Active)
	// Output:
	// ready
	// TELEGRAM_BOT_TOKEN=…
	// OWNER_TELEGRAM_USER_ID=123456789
	// SHARED_FOLDER_PATH=/home/rachel/shared
	// NODE_ENV=production
	// LOG_LEVEL=info
	// rachel8.service active: true
}
