package rachel8_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// TestProvisionWithRecipe runs the recipe through the orchestrator, as the
// quickstart and the control plane do: provider/fake, the callback over
// real HTTP, secrets from a SecretSource.
func TestProvisionWithRecipe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var mu sync.Mutex
	cloud := &recordingProvider{Provider: fake.New(fake.Options{BootDelay: 10 * time.Millisecond, PhoneHomeInterval: 50 * time.Millisecond}), mu: &mu}
	t.Cleanup(func() { _ = cloud.Close() })
	mux := http.NewServeMux()
	cp := httptest.NewServer(mux)
	t.Cleanup(cp.Close)

	const id = "0b0e3c4f-8d55-4f8e-9a4c-2f5a1c8e7d10"
	s := sampleSecrets()
	var steps []string
	cfg := provision.Config{
		Provider:     cloud,
		Store:        memory.New(),
		Secrets:      inject.StaticSecrets{id: s.Map()},
		Signer:       testSigner(t),
		CallbackBase: cp.URL + "/api/provision/callback",
		CallbackKey:  []byte("0123456789abcdef0123456789abcdef"),
		OnEvent: func(e provision.Event) {
			if e.Step != "" && e.StepDone && e.Err == nil {
				mu.Lock()
				steps = append(steps, e.Step)
				mu.Unlock()
			}
		},
	}
	rachel8.Apply(&cfg, rachel8.Options{Settle: time.Second})
	assert.Equal(t, "rachel", cfg.SSHUser)
	p, err := provision.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	mux.Handle("POST /api/provision/callback/{id}", p.Handler())

	require.NoError(t, p.Provision(ctx, id))
	r, err := p.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.StatusReady, r.Status, "error: %s", r.Error)

	srv, ok := cloud.Server(r.ServerID)
	require.True(t, ok)
	env, err := os.ReadFile(srv.Path("/home/rachel/rachel8/.env"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(env), "TELEGRAM_BOT_TOKEN="+s.TelegramBotToken+"\n"))
	assert.True(t, srv.Unit(rachel8.UnitName).Active)
	mu.Lock()
	assert.Equal(t, wantOrder, steps, "the recipe's own cloud-init wait is used, not a second one")
	mu.Unlock()

	// What the server booted with: the recipe, completed by provision.
	mu.Lock()
	ud := cloud.userData
	mu.Unlock()
	got, err := cloudinit.Parse(ud)
	require.NoError(t, err)
	assert.True(t, slices.Contains(got.Packages, "gpg"), "gpg checks the GitHub CLI's keyring")
	assert.True(t, strings.HasPrefix(got.PhoneHome.URL, cp.URL+"/api/provision/callback/"+id+"?token="), got.PhoneHome.URL)
	assert.Equal(t, []string{"pub_key_ed25519", "instance_id", "hostname", "fqdn"}, got.PhoneHome.Post)
	require.Len(t, got.Users, 1, "provision adds its key to rachel, no second user")
	assert.Len(t, got.Users[0].SSHAuthorizedKeys, 1)
}

// recordingProvider keeps the user-data of the last Create.
type recordingProvider struct {
	*fake.Provider
	mu       *sync.Mutex
	userData []byte
}

func (p *recordingProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	p.mu.Lock()
	p.userData = append([]byte(nil), req.UserData...)
	p.mu.Unlock()
	return p.Provider.Create(ctx, req)
}

func TestBootstrapFuncRefusesOwnURL(t *testing.T) {
	t.Parallel()
	_, err := rachel8.BootstrapFunc(rachel8.Options{PhoneHomeURL: "https://x.example/cb"})(context.Background(), store.Record{})
	require.ErrorIs(t, err, rachel8.ErrOptions)

	// Without a key: provision adds its Signer's.
	cfg, err := rachel8.BootstrapFunc(rachel8.Options{})(context.Background(), store.Record{})
	require.NoError(t, err)
	assert.Empty(t, cfg.Users[0].SSHAuthorizedKeys)
	assert.Empty(t, cfg.PhoneHome.URL)
}

func TestStepsFunc(t *testing.T) {
	t.Parallel()
	fn := rachel8.StepsFunc(rachel8.Options{})
	steps, err := fn(context.Background(), provision.StepsInput{Secrets: sampleSecrets().Map(), Rotate: true})
	require.NoError(t, err)
	assert.Equal(t, rachel8.StepRestart, steps[8].Name)

	// Some secrets but not all: a mistake, refused by name.
	partial := sampleSecrets().Map()
	delete(partial, rachel8.KeyTelegramBotToken)
	_, err = fn(context.Background(), provision.StepsInput{Secrets: partial})
	require.ErrorIs(t, err, rachel8.ErrInvalidSecret)
	assert.ErrorContains(t, err, "TELEGRAM_BOT_TOKEN is missing")

	// None (the source said inject.ErrNoSecrets): the unit is installed
	// and enabled, nothing secret is written, nothing started.
	for _, rotate := range []bool{false, true} {
		steps, err = fn(context.Background(), provision.StepsInput{Secrets: map[string]string{}, Rotate: rotate})
		require.NoError(t, err)
		var names []string
		for _, st := range steps {
			names = append(names, st.Name)
			assert.NotContains(t, st.Cmd, ".credentials.json", st.Name)
			assert.NotContains(t, st.Cmd, "rachel8/.env", st.Name)
		}
		assert.Equal(t, []string{rachel8.StepWaitCloudInit, rachel8.StepAppDir, rachel8.StepInstallUnit, rachel8.StepDaemonReload, rachel8.StepEnable}, names)
	}

	// Extra secret .env variables come from the map by name.
	fn = rachel8.StepsFunc(rachel8.Options{SecretEnv: []string{"AI_API_KEY"}})
	_, err = fn(context.Background(), provision.StepsInput{Secrets: sampleSecrets().Map()})
	require.ErrorIs(t, err, rachel8.ErrInvalidSecret)
	assert.ErrorContains(t, err, "AI_API_KEY is missing")
	m := sampleSecrets().Map()
	m["AI_API_KEY"] = "sk-extra-0123456789"
	steps, err = fn(context.Background(), provision.StepsInput{Secrets: m})
	require.NoError(t, err)
	assert.Contains(t, string(steps[4].Stdin), "LOG_LEVEL=info\nAI_API_KEY=sk-extra-0123456789\n")
}
