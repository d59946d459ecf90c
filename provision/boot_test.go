package provision_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// bootEvents returns the boot steps tenant id's server reported, in the
// order they were reported, and the index in e.all of each.
func (e *events) boot(id string) (steps []provision.BootProgress, at []int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, ev := range e.all {
		if ev.Tenant == id && ev.Boot != nil {
			steps = append(steps, *ev.Boot)
			at = append(at, i)
		}
	}
	return steps, at
}

// index returns the index in e.all of tenant id's first change to status
// to, -1 when there is none.
func (e *events) index(id string, to store.Status) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.IndexFunc(e.all, func(ev provision.Event) bool {
		return ev.Tenant == id && ev.Boot == nil && ev.Step == "" && ev.To == to
	})
}

// get returns the i-th event.
func (e *events) get(i int) provision.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.all[i]
}

// withPackages is the tests' bootstrap with a package to install, so that
// the boot has its longest module.
var withPackages = bootstrapWith(func(c *cloudinit.Config) { c.Packages = []string{"jq"} })

// With BootProgress, the server's boot is reported step by step while it
// boots, as Events with Boot set, in cloud-init's order: its stages,
// the modules an operator waits for by their phrase, phone_home last; and
// the tenant gets ready as without.
func TestBootProgress(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{bootDelay: 100 * time.Millisecond})
	cfg := b.config("r1", nil)
	cfg.BootProgress = true
	cfg.BootstrapFunc = withPackages
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r := waitReady(t, p, id)

	// The user-data carries the webhook, with the server's token.
	ud, err := cloudinit.Parse(b.cloud.lastUserData(provision.DefaultServerName(id)))
	require.NoError(t, err)
	assert.Equal(t, map[string]cloudinit.Reporter{provision.ReporterName: {
		Type: cloudinit.ReporterWebhook, Endpoint: p.EventsURL(r), Timeout: cloudinit.DefaultReporterTimeout,
	}}, ud.Reporting)
	assert.Contains(t, p.EventsURL(r), r.CallbackNonce+".")

	steps, at := b.events.boot(id)
	require.NotEmpty(t, steps)
	srv := b.server(id)
	assert.Equal(t, srv.EventPosts(), len(steps), "every event the server posted was taken, none refused")
	stages := []string{"init-network", "modules-config", "modules-final"}
	last := 0
	var activities []string
	for i, s := range steps {
		stage := slices.Index(stages, s.Stage)
		require.GreaterOrEqual(t, stage, last, "stages in order: %s after %s", s.Name, stages[last])
		last = stage
		assert.Equal(t, callback.ResultSuccess == s.Result, s.Type == callback.EventFinish, "%d: %s", i, s.Name)
		assert.False(t, s.Failed())
		assert.WithinDuration(t, time.Now(), s.Time, time.Minute, "the server's clock")
		if s.Type == callback.EventStart && s.Activity != "" && (len(activities) == 0 || activities[len(activities)-1] != s.Activity) {
			activities = append(activities, s.Activity)
		}
	}
	assert.Equal(t, []string{"writing files", "growing the root file system", "creating users", "setting up SSH",
		"setting the locale", "configuring apt sources", "installing packages", "writing files", "running runcmd",
		"phoning home"}, activities)
	assert.Equal(t, provision.BootProgress{
		Name: "modules-final", Stage: "modules-final", Type: callback.EventFinish, Result: callback.ResultSuccess,
		Description: "running modules for final", Time: steps[len(steps)-1].Time,
	}, steps[len(steps)-1], "the final stage's own finish comes last")

	// While the server boots: every event of the first two stages before
	// phone_home (cloud-init waits for its queue at the end of each stage),
	// the final stage's up to phone-home made by then, by the server's
	// clock; none after ready (the handler refuses them then).
	injecting := b.events.index(id, store.StatusInjectingSecrets)
	require.Positive(t, injecting)
	injectingAt := b.events.get(injecting).Time
	for i, s := range steps {
		if s.Stage != "modules-final" {
			assert.Less(t, at[i], injecting, "%s before phone_home", s.Name)
		}
		if s.Module == "phone-home" {
			break
		}
		assert.True(t, s.Time.Before(injectingAt), "%s made before phone_home", s.Name)
	}
	assert.Less(t, at[len(at)-1], b.events.index(id, store.StatusReady))
}

// A module that fails is seen at once: a Boot event with FAIL, logged at
// Warn with what it was doing, before the server phones home; the tenant
// then fails with cloud-init's own error, as without BootProgress.
func TestBootProgressFailure(t *testing.T) {
	t.Parallel()
	// (A boot long enough that runcmd fails well before phone_home.)
	b := setup(t, bundleOpts{bootDelay: 2 * time.Second,
		faults: func(string) fake.Faults { return fake.Faults{CloudInitError: true} }})
	cfg := b.config("r1", nil)
	cfg.BootProgress = true
	cfg.MaxAttempts = 1
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p := b.replica(cfg)
	id := newID()
	require.NoError(t, p.Provision(context.Background(), id))
	r, err := p.Wait(ctxTimeout(t, 30*time.Second), id)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Contains(t, r.Error, "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))")

	steps, at := b.events.boot(id)
	i := slices.IndexFunc(steps, func(s provision.BootProgress) bool { return s.Failed() })
	require.GreaterOrEqual(t, i, 0, "a FAIL was reported")
	assert.Equal(t, provision.BootProgress{
		Name: "modules-final/config-scripts-user", Stage: "modules-final", Module: "scripts-user", Activity: "running runcmd",
		Type: callback.EventFinish, Result: callback.ResultFail,
		Description: "running config-scripts-user with frequency once-per-instance", Time: steps[i].Time,
	}, steps[i])
	injecting := b.events.index(id, store.StatusInjectingSecrets)
	assert.True(t, steps[i].Time.Before(b.events.get(injecting).Time), "made before phone_home")
	assert.Less(t, at[i], injecting, "reported before phone_home")
	assert.Less(t, at[i], b.events.index(id, store.StatusFailed))
	assert.Equal(t, id+": boot modules-final/config-scripts-user finished FAIL (running runcmd)",
		provision.Event{Tenant: id, Boot: &steps[i]}.String())

	var warn string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "config-scripts-user") {
			warn += l
		}
	}
	assert.Equal(t, 1, strings.Count(warn, "\n"), "one warning, not the handler's and the Provisioner's: %s", warn)
	assert.Contains(t, warn, `msg="boot step did not succeed"`)
	assert.Contains(t, warn, "tenant="+id)
	assert.Contains(t, warn, `activity="running runcmd"`)
	assert.Contains(t, warn, "result=FAIL")
}

// Events that are bad, forged, oversized, another server's or late are
// answered by the Provisioner's Handler as the callback handler answers
// them, change nothing and report nothing; the end of the final stage,
// posted while the secrets are injected, is taken.
func TestBootEventsRefused(t *testing.T) {
	t.Parallel()
	const event = `{"name": "modules-final/config-scripts-user", "description": "running config-scripts-user with frequency once-per-instance", "event_type": "start", "origin": "cloudinit", "timestamp": 1733400000.5}`
	b := setup(t, bundleOpts{})
	cfg := b.config("r1", nil)
	cfg.BootProgress = true
	p := b.replica(cfg)
	h := p.Handler()
	nonce := callback.NewNonce()
	for _, c := range []struct {
		name   string
		status store.Status
		url    func(r store.Record) string
		ctype  string
		body   string
		code   int
	}{
		{name: "accepted", status: store.StatusCloudInit, code: 200},
		{name: "while creating", status: store.StatusCreating, code: 200},
		{name: "after phone_home", status: store.StatusInjectingSecrets, code: 200},
		{name: "late: ready", status: store.StatusReady, code: 409},
		{name: "failed", status: store.StatusFailed, code: 409},
		{name: "deleted", status: store.StatusDeleted, code: 409},
		{name: "forged token", status: store.StatusCloudInit, code: 401, url: func(r store.Record) string {
			return strings.Replace(p.EventsURL(r), "token="+nonce+".", "token="+nonce+".00", 1)
		}},
		{name: "another server's token", status: store.StatusCloudInit, code: 401, url: func(r store.Record) string {
			r.CallbackNonce = callback.NewNonce()
			return p.EventsURL(r)
		}},
		{name: "the phone_home URL is no events URL", status: store.StatusCloudInit, code: 400, url: p.CallbackURL},
		{name: "oversized", status: store.StatusCloudInit, code: 413,
			body: strings.Replace(event, "running config", strings.Repeat("x", callback.MaxEventSize), 1)},
		{name: "not JSON", status: store.StatusCloudInit, code: 400, body: "name=x"},
		{name: "unknown member", status: store.StatusCloudInit, code: 400, body: strings.Replace(event, `"origin"`, `"x": 1, "origin"`, 1)},
		{name: "not JSON's media type", status: store.StatusCloudInit, code: 415, ctype: "text/plain"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			id := newID()
			require.NoError(t, b.store.Create(context.Background(), store.Record{ID: id, Status: c.status, CallbackNonce: nonce}))
			before, err := b.store.Get(context.Background(), id)
			require.NoError(t, err)
			target := p.EventsURL(before)
			if c.url != nil {
				target = c.url(before)
			}
			body := event
			if c.body != "" {
				body = c.body
			}
			req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			assert.Equal(t, c.code, w.Code, w.Body.String())
			after, err := b.store.Get(context.Background(), id)
			require.NoError(t, err)
			assert.Equal(t, before, after, "an event never changes the record")
			steps, _ := b.events.boot(id)
			if c.code != 200 {
				assert.Empty(t, steps, "a refused event is not reported")
				return
			}
			require.Len(t, steps, 1)
			assert.Equal(t, provision.BootProgress{
				Name: "modules-final/config-scripts-user", Stage: "modules-final", Module: "scripts-user", Activity: "running runcmd",
				Type: callback.EventStart, Description: "running config-scripts-user with frequency once-per-instance",
				Time: time.Date(2024, 12, 5, 12, 0, 0, 500000000, time.UTC),
			}, steps[0])
		})
	}
}

// The user-data has the webhook only with BootProgress; the bootstrap's
// own reporters are kept, a reporter of the Provisioner's name is the
// bootstrap's mistake. The webhook costs a few hundred bytes.
func TestBootProgressUserData(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	other := cloudinit.Reporter{Type: cloudinit.ReporterWebhook, Endpoint: "https://logs.example.com/cloud-init"}
	withOther := bootstrapWith(func(c *cloudinit.Config) { c.Reporting = map[string]cloudinit.Reporter{"mine": other} })
	size := map[bool]int{}
	for _, on := range []bool{false, true} {
		cfg := b.config("bootprogress-"+strconv.FormatBool(on), nil)
		cfg.BootProgress = on
		p := b.replica(cfg)
		id := newID()
		require.NoError(t, p.Provision(context.Background(), id))
		waitReady(t, p, id)
		ud := b.cloud.lastUserData(provision.DefaultServerName(id))
		size[on] = len(ud)
		parsed, err := cloudinit.Parse(ud)
		require.NoError(t, err)
		if !on {
			assert.Empty(t, parsed.Reporting)
			assert.NotContains(t, string(ud), "reporting")
			continue
		}
		assert.Len(t, parsed.Reporting, 1)

		cfg.Replica = "other-reporter"
		cfg.BootstrapFunc = withOther
		p = b.replica(cfg)
		id = newID()
		require.NoError(t, p.Provision(context.Background(), id))
		r := waitReady(t, p, id)
		parsed, err = cloudinit.Parse(b.cloud.lastUserData(provision.DefaultServerName(id)))
		require.NoError(t, err)
		other.Timeout = cloudinit.DefaultReporterTimeout
		assert.Equal(t, map[string]cloudinit.Reporter{"mine": other, provision.ReporterName: {
			Type: cloudinit.ReporterWebhook, Endpoint: p.EventsURL(r), Timeout: cloudinit.DefaultReporterTimeout,
		}}, parsed.Reporting)

		cfg.Replica = "reporter-of-our-name"
		cfg.MaxAttempts = 1
		cfg.BootstrapFunc = bootstrapWith(func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{provision.ReporterName: other}
		})
		p = b.replica(cfg)
		err = p.Provision(context.Background(), newID())
		require.ErrorIs(t, err, provision.ErrConfig)
		assert.Contains(t, err.Error(), `reporter named "hatchery"`)
	}
	growth := size[true] - size[false]
	t.Logf("the webhook adds %d bytes to the user-data (%d -> %d)", growth, size[false], size[true])
	assert.Positive(t, growth)
	assert.Less(t, growth, 300)
}

func TestBootActivity(t *testing.T) {
	t.Parallel()
	for module, want := range map[string]string{
		"package-update-upgrade-install": "installing packages",
		"scripts-user":                   "running runcmd",
		"scripts_user":                   "running runcmd",
		"phone-home":                     "phoning home",
		"phone_home":                     "phoning home",
		"ca-certs":                       "installing CA certificates",
		"ca_certs":                       "installing CA certificates",
		"write-files":                    "writing files",
		"write-files-deferred":           "writing files",
		"users-groups":                   "creating users",
		"apt-configure":                  "configuring apt sources",
		"ssh":                            "setting up SSH",
		"resizefs":                       "growing the root file system",
		"set_hostname":                   "",
		"migrator":                       "",
		"final-message":                  "",
		"":                               "",
	} {
		assert.Equal(t, want, provision.BootActivity(module), module)
	}
}

func TestBootEventString(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		boot provision.BootProgress
		want string
	}{
		{provision.BootProgress{Name: "modules-final/config-package-update-upgrade-install", Stage: "modules-final",
			Module: "package-update-upgrade-install", Activity: "installing packages", Type: callback.EventStart, Time: at},
			"t: boot modules-final/config-package-update-upgrade-install started (installing packages)"},
		{provision.BootProgress{Name: "modules-final/config-package-update-upgrade-install", Stage: "modules-final",
			Module: "package-update-upgrade-install", Activity: "installing packages", Type: callback.EventFinish, Result: callback.ResultSuccess},
			"t: boot modules-final/config-package-update-upgrade-install finished SUCCESS (installing packages)"},
		{provision.BootProgress{Name: "init-network/activate-datasource", Stage: "init-network", Type: callback.EventStart},
			"t: boot init-network/activate-datasource started"},
		{provision.BootProgress{Name: "modules-final", Stage: "modules-final", Type: callback.EventFinish, Result: callback.ResultFail},
			"t: boot modules-final finished FAIL"},
	} {
		assert.Equal(t, c.want, provision.Event{Tenant: "t", Boot: &c.boot, Time: at}.String())
	}
}
