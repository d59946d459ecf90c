package provision_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// postForged posts a phone_home with an attacker's host key to a tenant's
// callback URL, as anyone who read the token off a server of the tenant
// (its user-data, cloud-init's log) can, and returns the status code.
func postForged(t *testing.T, callbackURL, instanceID string) int {
	t.Helper()
	form := url.Values{
		"pub_key_ed25519": {authorizedLine(newSigner(t).PublicKey())},
		"instance_id":     {instanceID},
		"hostname":        {"attacker"},
		"fqdn":            {"attacker"},
	}
	resp, err := http.PostForm(callbackURL, form)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// A phone_home forged with the tenant's token, posted before the real
// server's, pins the attacker's host key. The injection finds that the
// server presents another key: nothing is sent, the pin is dropped, and
// the retry (automatic, or Retry when no attempt is left) deletes the
// server and creates a new one, with a new callback nonce, whose own
// phone_home gets the tenant ready. Before, the tenant failed for good
// and Retry injected to the same forged pin again.
func TestForgedPhoneHomeGetsANewServer(t *testing.T) {
	t.Parallel()
	for _, byHand := range []bool{false, true} {
		t.Run(fmt.Sprintf("byHand=%v", byHand), func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{store: memory.New(), bootDelay: 400 * time.Millisecond})
			cfg := b.config("r1", nil)
			if byHand {
				cfg.MaxAttempts = 1
			}
			p := b.replica(cfg)
			ctx := context.Background()
			id := newID()
			require.NoError(t, p.Provision(ctx, id))
			first := b.server(id)
			before, err := b.store.Get(ctx, id)
			require.NoError(t, err)
			require.NotEmpty(t, before.CallbackNonce)

			// The provider's instance ID is checked by default: a forgery
			// must also guess the new server's ID. This one did.
			require.Equal(t, http.StatusConflict, postForged(t, p.CallbackURL(before), "i-attacker"))
			require.Equal(t, http.StatusOK, postForged(t, p.CallbackURL(before), "i-"+first.ID()),
				"a forgery with the right instance ID is accepted")
			if byHand {
				r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
				require.NoError(t, err)
				require.Equal(t, store.StatusFailed, r.Status)
				assert.True(t, strings.HasPrefix(r.Error, "inject: "), "not final: %s", r.Error)
				assert.Empty(t, r.HostKeys, "the forged pin is dropped")
				assert.Equal(t, first.ID(), r.ServerID, "the server is deleted by the retry, not before")
				require.NoError(t, p.Retry(ctx, id))
			}
			r := waitReady(t, p, id)
			assert.Equal(t, 1, r.Attempts)
			assert.NotEqual(t, first.ID(), r.ServerID, "a new server")
			_, ok := b.fake.Server(first.ID())
			assert.False(t, ok, "the first server was deleted")
			assert.Empty(t, first.Commands(), "nothing reached the first server")
			assert.NotEqual(t, before.CallbackNonce, r.CallbackNonce, "a new server, a new nonce")
			srv := b.server(id)
			require.Len(t, r.HostKeys, 1)
			assert.Contains(t, srv.HostKeyLine(), r.HostKeys[0], "pinned to the new server's own key")
			assert.Equal(t, 1, injections(srv))
			assert.Len(t, b.fake.Servers(), 1)

			// The token read off the first server no longer moves the
			// tenant, whatever it posts.
			assert.Equal(t, http.StatusUnauthorized, postForged(t, p.CallbackURL(before), "i-"+r.ServerID))
		})
	}
}

// A rotation that meets another host key than the pinned one (with which
// the server was ready) keeps the server and the pin, and is final: a
// ready tenant's server is never deleted for it. Retry retries the
// rotation, to the same server.
func TestRotateHostKeyMismatchKeepsTheServer(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	p := b.replica(b.config("r1", nil))
	ctx := context.Background()
	id := newID()
	require.NoError(t, p.Provision(ctx, id))
	ready := waitReady(t, p, id)

	other := authorizedLine(newSigner(t).PublicKey())
	_, err := b.store.Update(ctx, id, func(r *store.Record) error {
		r.HostKeys = []string{other} // as if a man in the middle answered now
		return nil
	})
	require.NoError(t, err)
	err = p.Rotate(ctx, id)
	require.ErrorIs(t, err, inject.ErrHostKey)
	var pe *provision.Error
	require.ErrorAs(t, err, &pe)
	assert.True(t, pe.Final)
	assert.Equal(t, "rotate", pe.Phase)

	err = p.Retry(ctx, id)
	require.ErrorIs(t, err, inject.ErrHostKey)
	r, err := b.store.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, store.StatusFailed, r.Status)
	assert.True(t, strings.HasPrefix(r.Error, "final: rotate: "), r.Error)
	assert.Equal(t, []string{other}, r.HostKeys, "the pin is kept")
	assert.Equal(t, ready.ServerID, r.ServerID)
	_, ok := b.fake.Server(ready.ServerID)
	assert.True(t, ok, "the server is kept")
	assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)))
}

// nonceAtCreate records the tenant's CallbackNonce at each successful
// provider Create.
func nonceAtCreate(b *bundle, id string, also func()) func() []string {
	var mu sync.Mutex
	var nonces []string
	b.cloud.afterFunc = func(string) {
		if r, err := b.store.Get(context.Background(), id); err == nil {
			mu.Lock()
			nonces = append(nonces, r.CallbackNonce)
			mu.Unlock()
		}
		if also != nil {
			also()
		}
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), nonces...)
	}
}

// The callback nonce is new for each new server, and only then: a create
// resumed after a crash adopts the server the dead replica's create
// brought up, with the user-data (and so the nonce) of that create; a
// create that failed before any server existed keeps it; a retry that
// deletes the server of the failed attempt draws a new one.
func TestCallbackNonce(t *testing.T) {
	t.Parallel()
	t.Run("adopted after a crash", func(t *testing.T) {
		t.Parallel()
		b := setup(t, bundleOpts{store: memory.New()})
		a := startCrashing(t, b, nil, nil)
		id := newID()
		nonces := nonceAtCreate(b, id, a.st.kill)
		_ = a.p.Provision(context.Background(), id) // A dies after its Create
		bp := takeOver(t, b, a)
		r := waitReady(t, bp, id)
		got := nonces()
		require.Len(t, got, 2, "A's create, and B's that adopts")
		assert.NotEmpty(t, got[0])
		assert.Equal(t, []string{r.CallbackNonce, r.CallbackNonce}, got)
		assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)))
	})
	t.Run("create failed, no server", func(t *testing.T) {
		t.Parallel()
		var calls atomicCounter
		b := setup(t, bundleOpts{store: memory.New(), faults: func(string) fake.Faults {
			if calls.add() == 1 {
				return fake.Faults{CreateErr: provider.ErrRateLimited}
			}
			return fake.Faults{}
		}})
		p := b.replica(b.config("r1", nil))
		id := newID()
		nonces := nonceAtCreate(b, id, nil)
		require.Error(t, p.Provision(context.Background(), id))
		failed, err := b.store.Get(context.Background(), id)
		require.NoError(t, err)
		r := waitReady(t, p, id)
		assert.NotEmpty(t, failed.CallbackNonce)
		assert.Equal(t, []string{failed.CallbackNonce}, nonces())
		assert.Equal(t, failed.CallbackNonce, r.CallbackNonce)
	})
	t.Run("new server", func(t *testing.T) {
		t.Parallel()
		var calls atomicCounter
		b := setup(t, bundleOpts{store: memory.New(), faults: func(string) fake.Faults {
			return fake.Faults{NoPhoneHome: calls.add() == 1}
		}})
		cfg := b.config("r1", nil)
		cfg.PhoneHomeTimeout = 300 * time.Millisecond
		p := b.replica(cfg)
		b.run(p)
		id := newID()
		nonces := nonceAtCreate(b, id, nil)
		require.NoError(t, p.Provision(context.Background(), id))
		r := waitReady(t, p, id)
		got := nonces()
		require.Len(t, got, 2)
		assert.NotEmpty(t, got[0])
		assert.NotEqual(t, got[0], got[1])
		assert.Equal(t, got[1], r.CallbackNonce)
	})
}

// A secret value with surrounding white space (a file's trailing newline)
// is looked for in the user-data, and redacted from every error, Record,
// log and event, in both forms: as given, and trimmed.
func TestSecretWithSurroundingWhiteSpace(t *testing.T) {
	t.Parallel()
	type tc struct {
		name      string
		value     string
		bootstrap func(secret string) func(context.Context, store.Record) (cloudinit.Config, error)
		steps     func(secret string) func(context.Context, provision.StepsInput) ([]inject.Step, error)
		wantErr   error // from Provision
	}
	trimmedIn := func(secret string) func(context.Context, store.Record) (cloudinit.Config, error) {
		return func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
			c, _ := bootstrap(ctx, r)
			c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/etc/app.conf", Content: "token=" + strings.TrimSpace(secret) + " # the app's\n"})
			return c, nil
		}
	}
	tests := []tc{
		{name: "trailing newline, trimmed into the bootstrap", value: "\n", bootstrap: trimmedIn, wantErr: cloudinit.ErrSecret},
		{name: "leading space, trimmed into the bootstrap", value: " ", bootstrap: trimmedIn, wantErr: cloudinit.ErrSecret},
		{name: "quoted by the bootstrap's error", value: "\n", wantErr: errors.New("any"),
			bootstrap: func(secret string) func(context.Context, store.Record) (cloudinit.Config, error) {
				return func(context.Context, store.Record) (cloudinit.Config, error) {
					return cloudinit.Config{}, fmt.Errorf("token %q is not valid", strings.TrimSpace(secret))
				}
			}},
		{name: "quoted by the steps' error", value: "\r\n",
			steps: func(secret string) func(context.Context, provision.StepsInput) ([]inject.Step, error) {
				return func(context.Context, provision.StepsInput) ([]inject.Step, error) {
					return nil, fmt.Errorf("token %s refused", strings.TrimSpace(secret))
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{store: memory.New()})
			secret := "tok-" + randHex(12)
			if strings.HasPrefix(tt.value, " ") {
				secret = tt.value + secret
			} else {
				secret += tt.value
			}
			trimmed := strings.TrimSpace(secret)
			cfg := b.config("r1", nil)
			cfg.MaxAttempts = 1
			cfg.Secrets = secretsFunc(func(string) map[string]string { return map[string]string{"API_TOKEN": secret} })
			if tt.bootstrap != nil {
				cfg.BootstrapFunc = tt.bootstrap(secret)
			}
			if tt.steps != nil {
				cfg.StepsFunc = tt.steps(secret)
			}
			var logs syncBuffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			p := b.replica(cfg)
			id := newID()
			err := p.Provision(context.Background(), id)
			if tt.wantErr != nil {
				require.Error(t, err)
				if !strings.Contains(tt.name, "error") {
					require.ErrorIs(t, err, tt.wantErr)
				}
				assert.NotContains(t, err.Error(), trimmed)
				for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
					assert.NotContains(t, e.Error(), trimmed)
				}
			} else {
				require.NoError(t, err)
			}
			r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
			require.NoError(t, err)
			require.Equal(t, store.StatusFailed, r.Status)
			if strings.Contains(tt.name, "quoted") {
				assert.Contains(t, r.Error, "[REDACTED]")
			}
			assert.NotContains(t, r.Error, trimmed)
			assert.NotContains(t, logs.String(), trimmed)
			b.events.mu.Lock()
			for _, e := range b.events.all {
				if e.Err != nil {
					assert.NotContains(t, e.Err.Error(), trimmed)
				}
			}
			b.events.mu.Unlock()
			if tt.wantErr == cloudinit.ErrSecret {
				assert.Empty(t, b.fake.Servers(), "no server for a user-data holding a secret")
			}
		})
	}
}

// Provision on a deleted tenant is an error (ErrDeleted); on a tenant that
// failed for good, it returns the recorded failure as an *Error; on a
// failed tenant whose retry is coming, nil.
func TestProvisionAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("deleted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, bundleOpts{store: memory.New()})
		p := b.replica(b.config("r1", nil))
		id := newID()
		require.NoError(t, p.Provision(ctx, id))
		require.NoError(t, p.Deprovision(ctx, id))
		err := p.Provision(ctx, id)
		require.ErrorIs(t, err, provision.ErrDeleted)
		assert.Contains(t, err.Error(), id)
		assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)))
		assert.Empty(t, b.fake.Servers())
	})
	for _, tt := range []struct {
		name        string
		err         error
		maxAttempts int
		backoff     time.Duration
		wantNil     bool
		final       bool
	}{
		{name: "final", err: provider.ErrQuota, maxAttempts: 3, final: true},
		{name: "no attempt left", err: provider.ErrUnavailable, maxAttempts: 1},
		{name: "retry coming", err: provider.ErrUnavailable, maxAttempts: 3, backoff: time.Hour, wantNil: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{store: memory.New(), faults: func(string) fake.Faults {
				return fake.Faults{CreateErr: tt.err}
			}})
			cfg := b.config("r1", nil)
			cfg.MaxAttempts = tt.maxAttempts
			if tt.backoff > 0 {
				cfg.RetryBackoff, cfg.MaxBackoff = tt.backoff, tt.backoff
			}
			p := b.replica(cfg)
			id := newID()
			require.ErrorIs(t, p.Provision(ctx, id), tt.err, "the first call fails with the create's error")
			r, err := b.store.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusFailed, r.Status)

			err = p.Provision(ctx, id)
			if tt.wantNil {
				require.NoError(t, err)
				return
			}
			var pe *provision.Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, r.Error, pe.Error(), "the recorded failure")
			assert.Equal(t, id, pe.Tenant)
			assert.Equal(t, "create", pe.Phase)
			assert.Equal(t, tt.final, pe.Final)
			require.Error(t, errors.Unwrap(err))
			assert.NotContains(t, errors.Unwrap(err).Error(), "final: ")
			r, err = b.store.Get(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, 1, r.Attempts, "nothing tried again")
		})
	}
}

// Step numbers agree everywhere: the record's error, the events and their
// String, counting the cloud-init wait as step 1 and StepsFunc's steps
// from 2.
func TestStepNumbersAgree(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cfg := b.config("r1", nil)
	cfg.MaxAttempts = 1
	cfg.StepsFunc = func(context.Context, provision.StepsInput) ([]inject.Step, error) {
		return []inject.Step{inject.Command("true"), {Name: "breaks", Cmd: "exit 3"}}, nil
	}
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Contains(t, r.Error, `step 3 "breaks" failed`)
	var failed []provision.Event
	b.events.mu.Lock()
	for _, e := range b.events.all {
		if e.Tenant == id && e.Step != "" && e.StepDone && e.Err != nil {
			failed = append(failed, e)
		}
	}
	b.events.mu.Unlock()
	require.Len(t, failed, 1)
	assert.Equal(t, 2, failed[0].StepIndex)
	assert.Equal(t, 1, strings.Count(failed[0].String(), "step 3"), failed[0].String())
	assert.Contains(t, failed[0].Err.Error(), `step 3 "breaks" failed`)
}

// A step that prints a secret encoded (as a service's journal may, which
// CheckActive copies into stderr) or cut into pieces puts none of those
// forms into the record's error, the logs or the events. The server makes
// each form itself from the secret it got on stdin.
func TestSecretEncodingsRedacted(t *testing.T) {
	t.Parallel()
	const secret = "sk-live-Q9v3Zx7Lw2Rt8Yp4Kd6M"
	tests := []struct{ name, cmd, form string }{
		{"base64", "base64 -w0", base64.StdEncoding.EncodeToString([]byte(secret))},
		{"hex", "od -An -v -tx1 | tr -d ' \\n'", hex.EncodeToString([]byte(secret))},
		{"wrapped", "fold -w 14", secret[:14] + "\n" + secret[14:]},
		{"prefix", "head -c 20", secret[:20]},
	}
	for _, tt := range tests {
		for _, where := range []string{"server", "StepsFunc"} {
			t.Run(tt.name+"/"+where, func(t *testing.T) {
				t.Parallel()
				b := setup(t, bundleOpts{store: memory.New()})
				cfg := b.config("r1", nil)
				cfg.MaxAttempts = 1
				cfg.Secrets = secretsFunc(func(string) map[string]string { return map[string]string{"API_TOKEN": secret} })
				cfg.StepsFunc = func(context.Context, provision.StepsInput) ([]inject.Step, error) {
					if where == "StepsFunc" { // the caller's own error quotes it
						return nil, fmt.Errorf("rendering failed near %q", tt.form)
					}
					return []inject.Step{{Name: "noisy", Cmd: "{ " + tt.cmd + "; echo; } >&2; exit 1", Stdin: []byte(secret)}}, nil
				}
				var logs syncBuffer
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				p := b.replica(cfg)
				id := newID()
				require.NoError(t, p.Provision(context.Background(), id))
				r, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
				require.NoError(t, err)
				require.Equal(t, store.StatusFailed, r.Status)
				assert.Contains(t, r.Error, "[REDACTED]")
				for _, line := range strings.Split(tt.form, "\n") {
					assert.NotContains(t, r.Error, line)
					assert.NotContains(t, logs.String(), line)
					b.events.mu.Lock()
					for _, e := range b.events.all {
						if e.Err != nil {
							assert.NotContains(t, e.Err.Error(), line)
						}
					}
					b.events.mu.Unlock()
				}
			})
		}
	}
}

// No server of ours accepts a password login: the user-data turns sshd's
// password authentication off and locks root's password first thing in
// runcmd; a bootstrap that asks for password logins is refused.
func TestNoPasswordLogin(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	p := b.replica(b.config("r1", nil))
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	cfg, err := cloudinit.Parse(b.cloud.lastUserData(provision.DefaultServerName(id)))
	require.NoError(t, err)
	require.NotNil(t, cfg.SSHPwauth)
	assert.False(t, *cfg.SSHPwauth)
	require.NotEmpty(t, cfg.RunCmd)
	assert.Equal(t, cloudinit.Command{"passwd", "-l", "root"}, cfg.RunCmd[0])

	cfg2 := b.config("r2", nil)
	cfg2.MaxAttempts = 1
	cfg2.BootstrapFunc = bootstrapWith(func(c *cloudinit.Config) {
		yes := true
		c.SSHPwauth = &yes
	})
	p2 := b.replica(cfg2)
	err = p2.Provision(context.Background(), newID())
	require.ErrorIs(t, err, provision.ErrConfig)
	assert.Contains(t, err.Error(), "ssh_pwauth")
}

// Retry of a failed tenant whose lease another replica holds (it is
// claiming the tenant right now) says ErrBusy, as documented.
func TestRetryBusy(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	p := b.replica(b.config("r1", nil))
	ctx := context.Background()
	id := newID()
	require.NoError(t, b.store.Create(ctx, store.Record{ID: id, Status: store.StatusFailed, Error: "create: boom", Attempts: 1}))
	_, err := b.store.Update(ctx, id, func(r *store.Record) error {
		r.LeaseOwner, r.LeaseUntil = "r2", time.Now().Add(time.Minute)
		return nil
	})
	require.NoError(t, err)
	require.ErrorIs(t, p.Retry(ctx, id), provision.ErrBusy)
}

// blockingDelete holds every Delete until release is closed.
type blockingDelete struct {
	provider.Provider
	release chan struct{}
}

func (b blockingDelete) Delete(ctx context.Context, id string) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.Provider.Delete(ctx, id)
}

// A retry that will replace the failed attempt's server voids that
// server's phone_home token at its claim, before the server is deleted: a
// late phone_home from it cannot move the new attempt toward a server
// being deleted.
func TestRetryVoidsTheOldTokenAtOnce(t *testing.T) {
	t.Parallel()
	var calls atomicCounter
	b := setup(t, bundleOpts{store: memory.New(), faults: func(string) fake.Faults {
		return fake.Faults{NoPhoneHome: calls.add() == 1}
	}})
	cfg := b.config("r1", nil)
	cfg.MaxAttempts = 1
	cfg.PhoneHomeTimeout = 300 * time.Millisecond
	release := make(chan struct{})
	cfg.Provider = blockingDelete{Provider: b.cloud, release: release}
	p := b.replica(cfg)
	b.run(p)
	ctx := context.Background()
	id := newID()
	require.NoError(t, p.Provision(ctx, id))
	failed, err := p.Wait(ctxTimeout(t, 20*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, failed.Status)
	require.NotEmpty(t, failed.ServerID)

	retried := make(chan error, 1)
	go func() { retried <- p.Retry(ctx, id) }()
	require.Eventually(t, func() bool {
		r, err := b.store.Get(ctx, id)
		return err == nil && r.Status == store.StatusCreating
	}, 10*time.Second, 10*time.Millisecond)
	// The old server phones home now, with its own token and instance ID.
	assert.Equal(t, http.StatusUnauthorized, postForged(t, p.CallbackURL(failed), "i-"+failed.ServerID))
	close(release)
	require.NoError(t, <-retried)
	r := waitReady(t, p, id)
	assert.NotEqual(t, failed.ServerID, r.ServerID)
}
