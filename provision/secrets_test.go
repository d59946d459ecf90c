package provision_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// secretsFunc is a SecretSource from a function.
type secretsFunc func(id string) map[string]string

func (f secretsFunc) Secrets(_ context.Context, id string) (map[string]string, error) {
	return f(id), nil
}

// syncBuffer is a bytes.Buffer for a logger used from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Secret values that are short, or that the Provisioner's own part of the
// user-data holds anyway (the callback's port, the SSH user, a YAML
// boolean), do not fail the build: they are left out of the leak check,
// with one warning per secret that names it and never shows its value.
func TestShortSecretsDoNotFailTheBuild(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	u, err := url.Parse(b.front.base())
	require.NoError(t, err)
	port := u.Port()
	require.GreaterOrEqual(t, len(port), inject.MinRedactLen, "an ephemeral port is long enough to be checked")
	keyBody := strings.Fields(string(ssh.MarshalAuthorizedKey(b.signer.PublicKey())))[1]
	odd := map[string]string{
		"SSH_KEY":       keyBody,   // the SSH user's authorized key
		"PORT":          "80",      // shorter than inject.MinRedactLen
		"CALLBACK_PORT": port,      // in the phone_home URL
		"DEBUG":         "true",    // a YAML boolean
		"SSH_USER":      sshUser,   // the SSH user
		"TINY":          " ab \n",  // short once trimmed
		"EMPTY":         "",        // nothing at all
		"COMMENT":       "cloud-c", // in "#cloud-config"
	}
	cfg := b.config("r1", nil)
	cfg.Secrets = secretsFunc(func(id string) map[string]string {
		m := map[string]string{"API_TOKEN": b.secrets.token(id)}
		for k, v := range odd {
			m[k] = v
		}
		return m
	})
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	p := b.replica(cfg)

	tenants := ids(2)
	for _, id := range tenants {
		require.NoError(t, p.Provision(context.Background(), id))
	}
	for _, id := range tenants {
		waitReady(t, p, id)
	}
	warned := map[string]int{}
	for _, line := range strings.Split(logs.String(), "\n") {
		for _, f := range strings.Fields(line) {
			if name, ok := strings.CutPrefix(f, "secret="); ok {
				warned[name]++
				assert.Contains(t, line, "level=WARN")
				assert.NotContains(t, line, "API_TOKEN=")
			}
		}
	}
	for name, v := range odd {
		if v != "" {
			assert.Equal(t, 1, warned[name], "%s: warned once, by name", name)
		}
	}
	assert.Zero(t, warned["API_TOKEN"], "a real secret is checked, silently")
	assert.Len(t, warned, len(odd)-1)
	assert.NotContains(t, logs.String(), keyBody, "names only, never values")
}

// A step that puts a secret on a command line is refused by inject and
// the failure is final: retrying it would only fail the same way.
func TestSecretInCommandIsFinal(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	cfg := b.config("r1", nil)
	cfg.StepsFunc = func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
		s, err := steps(ctx, in)
		return append(s, inject.Command("test", "-n", in.Secrets["API_TOKEN"])), err
	}
	p := b.replica(cfg)
	b.run(p)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.True(t, strings.HasPrefix(r.Error, "final: inject: "), r.Error)
	assert.Equal(t, 1, r.Attempts, "not retried")
	assert.NotContains(t, r.Error, b.secrets.token(id))
	assert.Zero(t, injections(b.server(id)), "nothing ran")
}
