package rachel8_test

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
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
