package rachel8_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/examples/internal/mirror"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/nspawntest"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// realTenant is one tenant of TestRecipeOnRealDebian: the recipe's options
// (the mirror's sources, and what the case changes) and its secrets
// (nil: the source has none for it).
type realTenant struct {
	name    string
	opts    rachel8.Options
	secrets map[string]string
	check   func(t *testing.T, w *realRecipe, r store.Record)
}

// realRecipe provisions Rachel8 tenants on real local Debian servers
// (provider/nspawn) through provision, their sources on a mirror on
// 127.0.0.1.
type realRecipe struct {
	cloud   *nspawn.Provider
	mirror  *mirror.Mirror
	p       *provision.Provisioner
	tenants map[string]realTenant // by tenant ID
}

func (w *realRecipe) tenant(id string) realTenant { return w.tenants[id] }

// Secrets is the provision.Config's SecretSource: each tenant's own.
func (w *realRecipe) Secrets(_ context.Context, id string) (map[string]string, error) {
	s := w.tenant(id).secrets
	if s == nil {
		return nil, inject.ErrNoSecrets
	}
	return s, nil
}

// TestRecipeOnRealDebian runs the recipe, unchanged but for its sources,
// on real Debian: cloud-init runs the bootstrap (users, ca_certs, apt
// sources, packages, the installers, git clone, bun install, the checks),
// systemd runs the unit, all on provider/nspawn servers, through
// provision. The sources are a mirror on 127.0.0.1 over HTTPS with a CA of
// its own (examples/internal/mirror): stand-in installers, the real git
// http-backend, a real signed apt repository.
func TestRecipeOnRealDebian(t *testing.T) {
	t.Parallel()
	cloud := nspawntest.New(t, nspawn.Options{})
	m, err := mirror.Start(t.Context(), mirror.Options{Logger: testenv.Logger(t)})
	if errors.Is(err, mirror.ErrRequirements) {
		testenv.Missing(t, err.Error())
	}
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close()) })

	secrets := sampleSecrets()
	base := m.RecipeOptions(rachel8.Options{})
	keyring := base
	keyring.GitHubCLI = rachel8.AptRepo{URL: m.AptRepo(), KeyringURL: m.KeyringURL(), Fingerprints: []string{m.SigningFingerprint()}}
	keyring.Env = []rachel8.EnvVar{{Name: "AI_PROVIDER", Value: "claude"}}
	keyring.SecretEnv = []string{"AI_API_KEY"}
	keyringSecrets := secrets.Map()
	keyringSecrets["AI_API_KEY"] = "sk-extra-secret-value-0123456789"
	failing := base
	failing.BunInstaller = m.FailingInstaller()
	stranger := base
	stranger.GitHubCLI.Key = m.StrangerKey()
	unreachable := base
	unreachable.GitHubCLI.URL = "https://127.0.0.1:1/apt" // nothing listens there

	w := &realRecipe{cloud: cloud, mirror: m, tenants: map[string]realTenant{}}
	for _, tt := range []realTenant{
		{name: "ready", opts: base, secrets: secrets.Map(), check: checkReady(secrets, nil)},
		{name: "keyring and extra .env", opts: keyring, secrets: keyringSecrets, check: checkReady(secrets, map[string]string{"AI_PROVIDER": "claude", "AI_API_KEY": keyringSecrets["AI_API_KEY"]})},
		{name: "installer fails", opts: failing, secrets: secrets.Map(), check: checkInstallerFails},
		{name: "gh not from the repository", opts: stranger, secrets: secrets.Map(), check: checkGHRefused},
		{name: "gh repository unreachable", opts: unreachable, secrets: secrets.Map(), check: checkGHUnreachable},
		{name: "no secrets", opts: base, check: checkNoSecrets},
	} {
		w.tenants[newTenantID()] = tt
	}

	mux := http.NewServeMux()
	cp := httptest.NewServer(mux) // on 127.0.0.1, which the servers share
	t.Cleanup(cp.Close)
	cfg := provision.Config{
		Provider:            cloud,
		Store:               memory.New(),
		Secrets:             w,
		Signer:              testSigner(t),
		CallbackBase:        cp.URL + "/callback",
		CallbackKey:         []byte("0123456789abcdef0123456789abcdef"),
		CallbackCheckSource: true,
		MaxAttempts:         1,
		PhoneHomeTimeout:    10 * time.Minute,
		Logger:              testenv.Logger(t),
	}
	rachel8.Apply(&cfg, base)
	cfg.BootstrapFunc = func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
		return rachel8.BootstrapFunc(w.tenant(r.ID).opts)(ctx, r)
	}
	cfg.StepsFunc = func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
		return rachel8.StepsFunc(w.tenant(in.Record.ID).opts)(ctx, in)
	}
	w.p, err = provision.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { w.p.Close() })
	mux.Handle("POST /callback/{id}", w.p.Handler())

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	records := map[string]store.Record{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id := range w.tenants {
		wg.Go(func() {
			assert.NoError(t, w.p.Provision(ctx, id))
			r, err := w.p.Wait(ctx, id)
			assert.NoError(t, err)
			mu.Lock()
			records[id] = r
			mu.Unlock()
			t.Logf("%s: %s after %s", w.tenant(id).name, r.Status, time.Since(start).Round(time.Second))
		})
	}
	wg.Wait()
	for id, tt := range w.tenants {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, w, records[id]) })
	}
}

// server is an SSH connection to a tenant's server as the recipe's user
// (with passwordless sudo: the checks run as root), pinned to the host
// key it posted at phone_home.
type server struct {
	t    *testing.T
	ctx  context.Context
	conn *inject.SSH
}

func (w *realRecipe) dial(t *testing.T, r store.Record) *server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	srv, err := w.cloud.Get(ctx, r.ServerID)
	require.NoError(t, err)
	cb, err := inject.PinnedHostKeys(r.HostKeys)
	require.NoError(t, err)
	algos, err := inject.PinnedHostKeyAlgorithms(r.HostKeys)
	require.NoError(t, err)
	conn, err := inject.Dial(ctx, srv.Addr(), inject.SSHConfig{
		User: rachel8.DefaultUser, Signer: testSigner(t), HostKeyCallback: cb, HostKeyAlgorithms: algos, Timeout: time.Minute,
	})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &server{t: t, ctx: ctx, conn: conn}
}

// root runs a shell command as root and returns its standard output.
func (s *server) root(cmd string) string {
	s.t.Helper()
	out, errOut, err := s.conn.Run(s.ctx, "sudo -n sh -c "+inject.Quote(cmd), nil)
	require.NoError(s.t, err, "%s: %s", cmd, errOut)
	return string(out)
}

// withStdin runs a shell command as root with stdin and returns its
// standard output.
func (s *server) withStdin(stdin, cmd string) string {
	s.t.Helper()
	out, errOut, err := s.conn.Run(s.ctx, "sudo -n sh -c "+inject.Quote(cmd), strings.NewReader(stdin))
	require.NoError(s.t, err, "%s: %s", cmd, errOut)
	return string(out)
}

// fails runs a shell command as root that must fail, and returns its
// output.
func (s *server) fails(cmd string) string {
	s.t.Helper()
	out, errOut, err := s.conn.Run(s.ctx, "sudo -n sh -c "+inject.Quote(cmd), nil)
	require.Error(s.t, err, "%s succeeded: %s", cmd, out)
	return string(out) + string(errOut)
}

// checkReady checks, on the server, everything the recipe promises of a
// ready tenant; extra are the Options.Env and SecretEnv values expected
// after the recipe's own .env lines, in order of the map's keys as the
// test's options list them.
func checkReady(s rachel8.Secrets, extra map[string]string) func(t *testing.T, w *realRecipe, r store.Record) {
	return func(t *testing.T, w *realRecipe, r store.Record) {
		require.Equal(t, store.StatusReady, r.Status, "error: %s", r.Error)
		srv := w.dial(t, r)
		opts := w.tenant(r.ID).opts

		// The user and its sudo rule.
		assert.Equal(t, "rachel:/home/rachel:/bin/bash\n", srv.root("getent passwd rachel | cut -d: -f1,6,7"))
		assert.Contains(t, srv.root("sudo -l -U rachel"), "(ALL) NOPASSWD: ALL")
		assert.Equal(t, "status: done\n", srv.root("cloud-init status"))
		// The mirror's CA, in the system's trust store (cloud-init's
		// ca_certs ran update-ca-certificates).
		assert.Contains(t, srv.root("cat /etc/ssl/certs/ca-certificates.crt"), strings.TrimSpace(w.mirror.CACert()))

		// What the installers and the clone left, all the user's.
		for path, want := range map[string]string{
			"/home/rachel/.bun/bin/bun":      "rachel:rachel 755",
			"/home/rachel/.local/bin/claude": "rachel:rachel 777", // a symbolic link, as the real CLI makes it
			"/home/rachel/rachel8":           "rachel:rachel 755",
			"/home/rachel/shared":            "rachel:rachel 755",
		} {
			assert.Equal(t, want+"\n", srv.root("stat -c '%U:%G %a' "+path), path)
		}
		assert.Equal(t, "rachel:rachel 755\n", srv.root("stat -L -c '%U:%G %a' /home/rachel/.local/bin/claude"))
		assert.Empty(t, srv.root("find /home/rachel/rachel8 /home/rachel/.bun /home/rachel/.local /home/rachel/.claude ! -user rachel"), "files of the checkout and the installers that are not the user's")
		assert.Equal(t, mirror.StandInBunVersion+"\n", srv.root("runuser -u rachel -- /home/rachel/.bun/bin/bun --version"))
		assert.Equal(t, mirror.StandInClaudeVersion+" (Claude Code)\n", srv.root("runuser -u rachel -- bash -lc 'claude --version'"), "claude on the user's PATH")
		assert.Equal(t, "Rachel8 stand-in checkout\n", srv.root("runuser -u rachel -- git -C /home/rachel/rachel8 log -1 --format=%s"))
		assert.Equal(t, "directory\n", srv.root("stat -c %F /home/rachel/rachel8/node_modules"))

		// gh from the mirror's repository.
		assert.Equal(t, mirror.StandInGHVersion, srv.root("dpkg-query -W -f '${Version}' gh"))
		assert.Contains(t, srv.root("gh --version"), "hatchery test mirror")
		assert.Regexp(t, `\*\*\* `+strings.ReplaceAll(mirror.StandInGHVersion, "+", `\+`)+` 500\n +500 `+opts.GitHubCLI.URL+` stable/main`, srv.root("apt-cache policy gh"))

		// The secrets, 0600, the user's, in the seed's format.
		wantCreds, err := json.Marshal(map[string]any{"claudeAiOauth": map[string]any{
			"accessToken": s.ClaudeAccessToken, "refreshToken": s.ClaudeRefreshToken,
			"expiresAt": s.ClaudeExpiresAt.UnixMilli(), "scopes": []string{"user:inference", "user:profile"},
		}})
		require.NoError(t, err)
		assert.Equal(t, "600 rachel:rachel\n", srv.root("stat -c '%a %U:%G' /home/rachel/.claude/.credentials.json"))
		assert.Equal(t, "700 rachel:rachel\n", srv.root("stat -c '%a %U:%G' /home/rachel/.claude"))
		assert.JSONEq(t, string(wantCreds), srv.root("cat /home/rachel/.claude/.credentials.json"))
		assert.Equal(t, `{"claudeAiOauth":{"accessToken":"`+s.ClaudeAccessToken+`","refreshToken":"`+s.ClaudeRefreshToken+`","expiresAt":`+strconv.FormatInt(s.ClaudeExpiresAt.UnixMilli(), 10)+`,"scopes":["user:inference","user:profile"]}}`,
			srv.root("cat /home/rachel/.claude/.credentials.json"))
		wantEnv := "TELEGRAM_BOT_TOKEN=" + s.TelegramBotToken + "\n" +
			"OWNER_TELEGRAM_USER_ID=" + s.OwnerTelegramUserID + "\n" +
			"SHARED_FOLDER_PATH=/home/rachel/shared\n" +
			"NODE_ENV=production\n" +
			"LOG_LEVEL=info\n"
		for _, v := range opts.Env {
			wantEnv += v.Name + "=" + extra[v.Name] + "\n"
		}
		for _, k := range opts.SecretEnv {
			wantEnv += k + "=" + extra[k] + "\n"
		}
		assert.Equal(t, "600 rachel:rachel\n", srv.root("stat -c '%a %U:%G' /home/rachel/rachel8/.env"))
		assert.Equal(t, wantEnv, srv.root("cat /home/rachel/rachel8/.env"))

		// The unit: rendered, enabled, active under systemd, as the user,
		// in the checkout, and the stand-in's words in its journal.
		unit, err := rachel8.Unit(opts)
		require.NoError(t, err)
		installed := srv.root("cat /etc/systemd/system/rachel8.service")
		assert.Equal(t, string(unit), installed)
		assert.NotContains(t, installed, "__")
		assert.Equal(t, "enabled\n", srv.root("systemctl is-enabled rachel8.service"))
		assert.Equal(t, "active\n", srv.root("systemctl is-active rachel8.service"))
		pid := strings.TrimSpace(srv.root("systemctl show -p MainPID --value rachel8.service"))
		require.NotEqual(t, "0", pid)
		assert.Equal(t, "rachel\n", srv.root("ps -o user= -p "+pid))
		assert.Equal(t, "/home/rachel/rachel8\n", srv.root("readlink /proc/"+pid+"/cwd"))
		names := []string{"TELEGRAM_BOT_TOKEN", "OWNER_TELEGRAM_USER_ID", "SHARED_FOLDER_PATH", "NODE_ENV", "LOG_LEVEL"}
		for _, v := range opts.Env {
			names = append(names, v.Name)
		}
		names = append(names, opts.SecretEnv...)
		journal := srv.root("journalctl -u rachel8.service --no-pager -o cat")
		assert.Contains(t, journal, mirror.StandInBanner+": bun run src/index.ts as rachel in /home/rachel/rachel8; .env sets "+strings.Join(names, " ")+"\n")

		// No secret in what cloud-init and the journal keep (every field
		// of every entry). The values travel on stdin: a command line
		// run through sudo is logged, COMMAND= and all.
		values := s.Values()
		if v := extra["AI_API_KEY"]; v != "" {
			values = append(values, v)
		}
		assert.Empty(t, srv.withStdin(strings.Join(values, "\n")+"\n",
			`p=$(mktemp); trap 'rm -f "$p"' EXIT; cat >"$p"; `+
				`grep -rlF -f "$p" /var/lib/cloud /var/log/cloud-init.log /var/log/cloud-init-output.log; `+
				`journalctl --no-pager -o export | grep -caF -f "$p" | grep -v '^0$'; true`), "a secret in the server's logs")
	}
}

// checkInstallerFails: a failed installer fails runcmd (set -e), cloud-init
// says so, and the record carries cloud-init's own report; no secret was
// written.
func checkInstallerFails(t *testing.T, w *realRecipe, r store.Record) {
	require.Equal(t, store.StatusFailed, r.Status)
	t.Logf("Record.Error:\n%s", r.Error)
	assert.Contains(t, r.Error, rachel8.StepWaitCloudInit)
	assert.Contains(t, r.Error, "status: error", "cloud-init's own status")
	assert.Contains(t, r.Error, "scripts-user", "the module that failed, in cloud-init's words")
	srv := w.dial(t, r)
	assert.Contains(t, srv.root("cat /var/log/cloud-init-output.log"), mirror.FailBanner)
	srv.fails("test -e /home/rachel/.claude/.credentials.json")
	srv.fails("test -e /home/rachel/rachel8")
}

// checkGHRefused: with a key that did not sign the repository, apt only
// warns and installs Debian's own gh; the recipe's last check fails the
// boot.
func checkGHRefused(t *testing.T, w *realRecipe, r store.Record) {
	require.Equal(t, store.StatusFailed, r.Status)
	t.Logf("Record.Error:\n%s", r.Error)
	assert.Contains(t, r.Error, "status: error")
	srv := w.dial(t, r)
	v := srv.root("dpkg-query -W -f '${Version}' gh")
	assert.NotEqual(t, mirror.StandInGHVersion, v, "gh from the repository that apt refused")
	assert.Contains(t, srv.root("apt-cache policy gh"), "deb.debian.org", "Debian's gh, installed in its place")
	out := srv.root("cat /var/log/cloud-init-output.log")
	assert.Contains(t, out, "rachel8: gh "+v+" is not from "+w.mirror.AptRepo())
	assert.Contains(t, out, "NO_PUBKEY", "apt's complaint, a warning only")
	assert.Contains(t, srv.root("test -x /home/rachel/.bun/bin/bun && echo installed"), "installed", "the rest of the bootstrap ran: only the gh check failed")
}

// checkGHUnreachable: when the repository cannot be reached, apt only
// warns (cloud-init reports nothing about apt) and installs Debian's own
// gh; the recipe's last check fails the boot.
func checkGHUnreachable(t *testing.T, w *realRecipe, r store.Record) {
	require.Equal(t, store.StatusFailed, r.Status)
	t.Logf("Record.Error:\n%s", r.Error)
	assert.Contains(t, r.Error, "status: error")
	assert.Contains(t, r.Error, "scripts-user")
	assert.NotContains(t, r.Error, "apt-configure", "apt only warned")
	srv := w.dial(t, r)
	v := srv.root("dpkg-query -W -f '${Version}' gh")
	assert.NotEqual(t, mirror.StandInGHVersion, v)
	out := srv.root("cat /var/log/cloud-init-output.log")
	assert.Contains(t, out, "rachel8: gh "+v+" is not from https://127.0.0.1:1/apt")
	assert.Regexp(t, `(?m)^(W|Err): .*https://127\.0\.0\.1:1/apt`, out, "apt's warning")
}

// checkNoSecrets: a tenant without secrets is ready with the unit
// installed and enabled, not started; starting it (as a boot would) is
// skipped by ConditionPathExists, .env being absent.
func checkNoSecrets(t *testing.T, w *realRecipe, r store.Record) {
	require.Equal(t, store.StatusReady, r.Status, "error: %s", r.Error)
	srv := w.dial(t, r)
	srv.fails("test -e /home/rachel/rachel8/.env")
	srv.fails("test -e /home/rachel/.claude/.credentials.json")
	assert.Equal(t, "enabled\n", srv.root("systemctl is-enabled rachel8.service"))
	assert.Equal(t, "inactive\n", srv.fails("systemctl is-active rachel8.service"))
	srv.root("systemctl start rachel8.service")
	assert.Equal(t, "inactive\n", srv.fails("systemctl is-active rachel8.service"))
	assert.Equal(t, "no\n", srv.root("systemctl show -p ConditionResult --value rachel8.service"))
	assert.Contains(t, srv.root("journalctl -u rachel8.service --no-pager -o cat"), "ConditionPathExists=/home/rachel/rachel8/.env")
}

// newTenantID returns a random (version 4) UUID.
func newTenantID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
