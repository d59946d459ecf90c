package rachel8_test

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
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
)

// bootFake creates a provider/fake server from the recipe's cloud-config,
// waits for its phone_home, and returns the simulated server with an SSH
// connection as rachel pinned to the host key it posted.
func bootFake(t *testing.T, faults fake.Faults) (*fake.Server, *inject.SSH) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)

	posted := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() == nil {
			select {
			case posted <- r.PostForm:
			default:
			}
		}
	}))
	t.Cleanup(cb.Close)

	p := fake.New(fake.Options{
		PhoneHomeInterval: 50 * time.Millisecond,
		Faults:            func(string) fake.Faults { return faults },
	})
	t.Cleanup(func() { _ = p.Close() })

	signer := testSigner(t)
	cfg, err := rachel8.Bootstrap(rachel8.Options{PublicKey: signer.PublicKey(), PhoneHomeURL: cb.URL + "/callback/$INSTANCE_ID"})
	require.NoError(t, err)
	userData, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	created, err := p.Create(ctx, provider.CreateRequest{Name: "rachel8-test", UserData: userData})
	require.NoError(t, err)
	srv, ok := p.Server(created.ID)
	require.True(t, ok)

	var form url.Values
	select {
	case form = <-posted:
	case <-ctx.Done():
		t.Fatal("no phone_home")
	}
	assert.Equal(t, srv.InstanceID(), form.Get("instance_id"))
	hostKeys, err := inject.PinnedHostKeys([]string{form.Get("pub_key_ed25519")})
	require.NoError(t, err)
	conn, err := inject.Dial(ctx, created.Addr(), inject.SSHConfig{User: "rachel", Signer: signer, HostKeyCallback: hostKeys, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return srv, conn
}

// run runs steps and returns the step names in the order they started and
// finished, as inject reports them.
func run(t *testing.T, conn inject.Runner, steps []inject.Step, s rachel8.Secrets) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var order []string
	err := inject.Run(ctx, conn, steps,
		inject.WithRedact(s.Values()...),
		inject.WithEvents(func(e inject.Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.Done && e.Err == nil {
				order = append(order, e.Step)
			}
		}))
	mu.Lock()
	defer mu.Unlock()
	return order, err
}

func TestStepsOnFakeServer(t *testing.T) {
	t.Parallel()
	srv, conn := bootFake(t, fake.Faults{})
	opts := rachel8.Options{Settle: time.Second}
	s := sampleSecrets()
	steps, err := rachel8.Steps(opts, s, false)
	require.NoError(t, err)

	order, err := run(t, conn, steps, s)
	require.NoError(t, err)
	assert.Equal(t, wantOrder, order, "steps finished in this order")

	type file struct {
		path    string
		dir     bool
		mode    fs.FileMode
		owner   string
		content string
	}
	wantUnit, err := rachel8.Unit(opts)
	require.NoError(t, err)
	files := []file{
		{path: "/home/rachel/.claude", dir: true, mode: 0o700, owner: "rachel:rachel"},
		{path: "/home/rachel/.claude/.credentials.json", mode: 0o600, owner: "rachel:rachel", content: `{"claudeAiOauth":{` +
			`"accessToken":"sk-ant-oat01-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdEf",` +
			`"refreshToken":"sk-ant-ort01-ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210-_ZyXwVu",` +
			`"expiresAt":1767225600123,"scopes":["user:inference","user:profile"]}}`},
		{path: "/home/rachel/rachel8", dir: true, mode: 0o755, owner: "rachel:rachel"},
		{path: "/home/rachel/rachel8/.env", mode: 0o600, owner: "rachel:rachel", content: "" +
			"TELEGRAM_BOT_TOKEN=7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\n" +
			"OWNER_TELEGRAM_USER_ID=123456789\n" +
			"SHARED_FOLDER_PATH=/home/rachel/shared\n" +
			"NODE_ENV=production\n" +
			"LOG_LEVEL=info\n"},
		{path: "/etc/systemd/system/rachel8.service", mode: 0o644, content: string(wantUnit)},
	}
	for _, f := range files {
		fi, err := os.Stat(srv.Path(f.path))
		require.NoError(t, err, f.path)
		assert.Equal(t, f.dir, fi.IsDir(), f.path)
		assert.Equal(t, f.mode, fi.Mode().Perm(), "%s mode", f.path)
		if f.owner != "" {
			assert.Equal(t, f.owner, srv.Owner(f.path), "%s owner", f.path)
		}
		if !f.dir {
			got, err := os.ReadFile(srv.Path(f.path))
			require.NoError(t, err)
			assert.Equal(t, f.content, string(got), f.path)
		}
	}
	unit, err := os.ReadFile(srv.Path("/etc/systemd/system/rachel8.service"))
	require.NoError(t, err)
	assert.NotContains(t, string(unit), "__", "placeholder left in the installed unit")
	assert.Contains(t, string(unit), "ConditionPathExists=/home/rachel/rachel8/.env\n")

	st := srv.Unit(rachel8.UnitName)
	assert.True(t, st.Enabled, "enabled")
	assert.True(t, st.Active, "active")

	// No secret ever appears in a command line the server received.
	cmds := strings.Join(srv.Commands(), "\n")
	for _, v := range append(s.Values(), s.OwnerTelegramUserID, "1767225600123") {
		assert.NotContains(t, cmds, v)
	}

	// Rotation: new secrets replace the files and the service restarts.
	s2 := s
	s2.TelegramBotToken = "7123456789:BBnewnewnewnewnewnewnewnewnewnew"
	s2.ClaudeAccessToken = "sk-ant-oat01-rotated-rotated-rotated-rotated"
	before := len(srv.Commands())
	steps, err = rachel8.Steps(opts, s2, true)
	require.NoError(t, err)
	order, err = run(t, conn, steps, s2)
	require.NoError(t, err)
	rotated := append([]string(nil), wantOrder...)
	rotated[8] = rachel8.StepRestart
	assert.Equal(t, rotated, order)
	env, err := os.ReadFile(srv.Path("/home/rachel/rachel8/.env"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(env), "TELEGRAM_BOT_TOKEN="+s2.TelegramBotToken+"\n"))
	creds, err := os.ReadFile(srv.Path("/home/rachel/.claude/.credentials.json"))
	require.NoError(t, err)
	assert.Contains(t, string(creds), `"accessToken":"`+s2.ClaudeAccessToken+`"`)
	assert.Contains(t, strings.Join(srv.Commands()[before:], "\n"), "systemctl restart rachel8.service")
	assert.True(t, srv.Unit(rachel8.UnitName).Active)
}

// TestStepsFailOnFakeServer: a unit that does not stay up fails the last
// step with the journal's tail; a failed bootstrap stops the first step
// before any secret is written.
func TestStepsFailOnFakeServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		faults   fake.Faults
		wantStep string
		wantDone int
		noFiles  bool
	}{
		{"unit fails", fake.Faults{UnitFails: true}, rachel8.StepCheckActive, len(wantOrder) - 1, false},
		{"cloud-init failed", fake.Faults{CloudInitError: true}, rachel8.StepWaitCloudInit, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, conn := bootFake(t, tt.faults)
			s := sampleSecrets()
			steps, err := rachel8.Steps(rachel8.Options{Settle: time.Second}, s, false)
			require.NoError(t, err)
			order, err := run(t, conn, steps, s)
			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.wantStep, se.Step)
			assert.Len(t, order, tt.wantDone)
			assert.NotEmpty(t, se.Stderr, "the step's report")
			for _, v := range s.Values() {
				assert.NotContains(t, err.Error(), v)
				assert.NotContains(t, se.Stderr, v)
			}
			if tt.noFiles {
				_, err := os.Stat(srv.Path("/home/rachel/.claude/.credentials.json"))
				assert.ErrorIs(t, err, fs.ErrNotExist, "no secret written after a failed bootstrap")
			} else {
				journal := strings.TrimSpace(srv.Journal(rachel8.UnitName))
				require.NotEmpty(t, journal)
				lines := strings.Split(journal, "\n")
				assert.Contains(t, se.Stderr, lines[len(lines)-1], "the journal's tail")
				t.Logf("stderr of the failed step:\n%s", se.Stderr)
			}
		})
	}
}
