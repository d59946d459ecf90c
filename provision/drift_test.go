package provision_test

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/hcloudtest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// lookups is a provider that counts Get calls and can report a server in
// another status than the fake's (a cloud's "off", then "running"
// again). It does not list.
type lookups struct {
	*countingProvider
	mu     sync.Mutex
	gets   int
	status map[string]string // by server ID
}

func (l *lookups) Get(ctx context.Context, id string) (provider.Server, error) {
	l.mu.Lock()
	l.gets++
	st, ok := l.status[id]
	l.mu.Unlock()
	srv, err := l.countingProvider.Get(ctx, id)
	if err == nil && ok {
		srv.Status = st
	}
	return srv, err
}

func (l *lookups) setStatus(id, status string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status == nil {
		l.status = map[string]string{}
	}
	if status == "" {
		delete(l.status, id)
	} else {
		l.status[id] = status
	}
}

func (l *lookups) calls() (gets int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gets
}

// listing is lookups with the fake's List (provider.Lister), counted.
type listing struct {
	*lookups
	lists int
}

func (l *listing) List(ctx context.Context, selector map[string]string) ([]provider.Server, error) {
	servers, err := l.countingProvider.Provider.(provider.Lister).List(ctx, selector)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	for i, s := range servers {
		if st, ok := l.status[s.ID]; ok {
			servers[i].Status = st
		}
	}
	return servers, err
}

func (l *listing) listCalls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lists
}

// readyTenants provisions n tenants through p and returns their records.
func readyTenants(t *testing.T, p *provision.Provisioner, n int) []store.Record {
	t.Helper()
	tenants := ids(n)
	for _, id := range tenants {
		require.NoError(t, p.Provision(context.Background(), id))
	}
	recs := waitAll(t, p, tenants, 60*time.Second)
	out := make([]store.Record, 0, n)
	for _, id := range tenants {
		require.Equal(t, store.StatusReady, recs[id].Status)
		out = append(out, recs[id])
	}
	return out
}

// driftEvents returns the drift events of tenant id, as strings.
func (e *events) drifts(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		if ev.Tenant == id && (ev.Drift != "" || ev.DriftCleared) {
			out = append(out, ev.String())
		}
	}
	return out
}

func get(t testing.TB, st store.Store, id string) store.Record {
	t.Helper()
	r, err := st.Get(context.Background(), id)
	require.NoError(t, err)
	return r
}

// A drift check lists the servers once and looks up only those the list
// left out: a server deleted behind the library's back is reported gone,
// one powered off is reported off, each once (an Event, Record.Drift and
// DriftAt); a report is cleared when the server is seen fine again.
func TestDriftReported(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cloud := &listing{lookups: &lookups{countingProvider: b.cloud}}
	cfg := b.config("r1", nil)
	cfg.Provider = cloud
	cfg.DriftInterval = -1 // checked by hand here
	p := b.replica(cfg)
	recs := readyTenants(t, p, 3)
	gone, off, fine := recs[0], recs[1], recs[2]
	require.True(t, b.fake.Vanish(gone.ServerID))
	require.True(t, b.fake.PowerOff(off.ServerID))

	ctx := context.Background()
	require.NoError(t, p.CheckDrift(ctx))
	assert.Equal(t, 1, cloud.listCalls())
	assert.Equal(t, 1, cloud.calls(), "one Get: the server the list left out")
	r := get(t, b.store, gone.ID)
	assert.Equal(t, store.StatusReady, r.Status, "reported, not replaced")
	assert.True(t, strings.HasPrefix(r.Drift, "server gone: "), r.Drift)
	assert.False(t, r.DriftAt.IsZero())
	r = get(t, b.store, off.ID)
	assert.True(t, strings.HasPrefix(r.Drift, "server powered off: "), r.Drift)
	assert.Empty(t, get(t, b.store, fine.ID).Drift)
	assert.Len(t, b.events.drifts(gone.ID), 1)
	assert.Len(t, b.events.drifts(off.ID), 1)
	assert.Empty(t, b.events.drifts(fine.ID))

	// Seen the same again: no write, no event.
	before := get(t, b.store, gone.ID)
	require.NoError(t, p.CheckDrift(ctx))
	assert.Equal(t, before.UpdatedAt, get(t, b.store, gone.ID).UpdatedAt)
	assert.Len(t, b.events.drifts(gone.ID), 1)

	// Off, then running again: reported, then cleared.
	cloud.setStatus(fine.ServerID, "off")
	require.NoError(t, p.CheckDrift(ctx))
	require.NotEmpty(t, get(t, b.store, fine.ID).Drift)
	cloud.setStatus(fine.ServerID, "")
	require.NoError(t, p.CheckDrift(ctx))
	r = get(t, b.store, fine.ID)
	assert.Empty(t, r.Drift)
	assert.True(t, r.DriftAt.IsZero())
	ev := b.events.drifts(fine.ID)
	require.Len(t, ev, 2)
	assert.Contains(t, ev[0], "drift: server powered off")
	assert.Contains(t, ev[1], "drift cleared")
}

// Without a provider.Lister, a drift check looks up at most DriftBatch
// servers, going round the tenants: every tenant is checked within
// ceil(n/DriftBatch) checks.
func TestDriftWithoutLister(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cloud := &lookups{countingProvider: b.cloud}
	cfg := b.config("r1", nil)
	cfg.Provider = cloud
	cfg.DriftInterval = -1
	cfg.DriftBatch = 2
	p := b.replica(cfg)
	recs := readyTenants(t, p, 5)
	for _, r := range recs {
		require.True(t, b.fake.Vanish(r.ServerID))
	}
	gets := cloud.calls()
	for i := range 3 {
		require.NoError(t, p.CheckDrift(context.Background()))
		n := cloud.calls() - gets
		gets = cloud.calls()
		assert.LessOrEqual(t, n, 2, "check %d", i)
	}
	for _, r := range recs {
		assert.True(t, strings.HasPrefix(get(t, b.store, r.ID).Drift, "server gone"), "%s checked within 3 checks", r.ID)
	}
}

// With ReplaceOnDrift, Run's drift checks replace a tenant whose server
// was deleted behind the library's back; a server powered off is
// reported, not replaced.
func TestReplaceOnDrift(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cloud := &listing{lookups: &lookups{countingProvider: b.cloud}}
	cfg := b.config("r1", nil)
	cfg.Provider = cloud
	cfg.DriftInterval = 100 * time.Millisecond
	cfg.ReplaceOnDrift = true
	p := b.replica(cfg)
	recs := readyTenants(t, p, 2)
	gone, off := recs[0], recs[1]
	require.True(t, b.fake.Vanish(gone.ServerID))
	require.True(t, b.fake.PowerOff(off.ServerID))
	b.run(p)

	require.Eventually(t, func() bool {
		r := get(t, b.store, gone.ID)
		return r.Status == store.StatusReady && r.ServerID != gone.ServerID
	}, 30*time.Second, 20*time.Millisecond, "replaced")
	r := get(t, b.store, gone.ID)
	assert.Empty(t, r.Drift, "the new server is fine")
	assert.Empty(t, r.RetiringServerID)
	srv := liveServer(t, b, r)
	assert.Equal(t, "API_TOKEN="+b.secrets.token(gone.ID)+"\n", readFile(t, srv.Path(envPath)))
	statuses := b.events.statuses(gone.ID)
	assert.Equal(t, []store.Status{store.StatusCreating, store.StatusCloudInit, store.StatusInjectingSecrets, store.StatusReady},
		statuses[len(statuses)-4:])
	ev := b.events.drifts(gone.ID)
	require.NotEmpty(t, ev)
	assert.Contains(t, ev[0], "server gone")

	// Powered off: reported, kept, however many checks pass.
	require.Eventually(t, func() bool { return get(t, b.store, off.ID).Drift != "" }, 10*time.Second, 20*time.Millisecond)
	lists := cloud.listCalls()
	require.Eventually(t, func() bool { return cloud.listCalls() >= lists+3 }, 10*time.Second, 20*time.Millisecond)
	r = get(t, b.store, off.ID)
	assert.Equal(t, off.ServerID, r.ServerID)
	assert.Equal(t, store.StatusReady, r.Status)
	assert.Len(t, b.fake.Servers(), 2, "the replacement and the powered-off server")
}

// stopUnit stops the tenant's unit behind the library's back, as a
// person with a shell on the server would.
func stopUnit(t *testing.T, b *bundle, s *fake.Server, verb string) {
	t.Helper()
	ctx := ctxTimeout(t, 20*time.Second)
	conn, err := inject.Dial(ctx, s.Addr(), inject.SSHConfig{
		User: sshUser, Signer: b.signer, HostKeyCallback: ssh.FixedHostKey(s.HostKey()), Timeout: 10 * time.Second,
	})
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, inject.Run(ctx, conn, []inject.Step{{Name: verb, Cmd: "sudo -n systemctl " + verb + " " + unit}}))
}

// A probe (the unit is active) that fails is reported as drift, redacted,
// and cleared when it passes again; probes run at most ProbeConcurrency
// at once.
func TestProbe(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cloud := &listing{lookups: &lookups{countingProvider: b.cloud}}
	cfg := b.config("r1", nil)
	cfg.Provider = cloud
	cfg.DriftInterval = -1
	cfg.ProbeConcurrency = 2
	var slow sync.Map // tenant -> true: a probe that takes a while and logs when
	cfg.ProbeSteps = func(r store.Record) []inject.Step {
		if _, ok := slow.Load(r.ID); ok {
			return []inject.Step{inject.Command("sh", "-c", "date +%s.%N >>probe.log; sleep 0.3; date +%s.%N >>probe.log")}
		}
		return []inject.Step{inject.CheckActive(unit, 0)}
	}
	p := b.replica(cfg)
	recs := readyTenants(t, p, 6)
	ctx := context.Background()
	require.NoError(t, p.Probe(ctx))
	for _, r := range recs {
		assert.Empty(t, get(t, b.store, r.ID).Drift)
	}

	victim := recs[0]
	stopUnit(t, b, liveServer(t, b, victim), "stop")
	require.NoError(t, p.Probe(ctx))
	r := get(t, b.store, victim.ID)
	assert.True(t, strings.HasPrefix(r.Drift, "probe: "), r.Drift)
	// The step, and the end of the unit's journal. (Not CheckActive's own
	// "is inactive" line: it comes before the journal, and a StepError
	// keeps the last 512 bytes of stderr, which a journal with the unit's
	// own lines, as real ones have, fills.)
	assert.Contains(t, r.Drift, `"check app.service active" failed with exit code 3`)
	assert.Contains(t, r.Drift, "Stopped app.service")
	assert.NotContains(t, r.Drift, b.secrets.token(victim.ID))
	assert.Equal(t, store.StatusReady, r.Status, "reported only")
	for _, o := range recs[1:] {
		assert.Empty(t, get(t, b.store, o.ID).Drift)
	}
	stopUnit(t, b, liveServer(t, b, victim), "start")
	require.NoError(t, p.Probe(ctx))
	assert.Empty(t, get(t, b.store, victim.ID).Drift)
	ev := b.events.drifts(victim.ID)
	require.Len(t, ev, 2)
	assert.Contains(t, ev[1], "drift cleared")

	// Concurrency: six probes of 0.3 s, two at a time.
	for _, r := range recs {
		slow.Store(r.ID, true)
	}
	require.NoError(t, p.Probe(ctx))
	type span struct{ from, to float64 }
	var spans []span
	for _, r := range recs {
		lines := strings.Fields(readFile(t, liveServer(t, b, r).Path("/home/"+sshUser+"/probe.log")))
		require.Len(t, lines, 2)
		from, err := strconv.ParseFloat(lines[0], 64)
		require.NoError(t, err)
		to, err := strconv.ParseFloat(lines[1], 64)
		require.NoError(t, err)
		spans = append(spans, span{from, to})
	}
	most := 0
	for _, s := range spans {
		n := 0
		for _, o := range spans {
			if o.from <= s.from && s.from < o.to {
				n++
			}
		}
		most = max(most, n)
	}
	assert.LessOrEqual(t, most, 2, "at most ProbeConcurrency probes at once: %v", spans)
	t.Logf("most probes at once: %d", most)
}

// hetznerWorld is a Provisioner on the fake Hetzner API, with the
// hetzner driver, and records made directly in a memory store (no
// server runs: nothing but the API calls are measured).
type hetznerWorld struct {
	api *hcloudtest.API
	st  store.Store
	p   *provision.Provisioner
}

func newHetznerWorld(t *testing.T, mod func(*provision.Config)) *hetznerWorld {
	t.Helper()
	b := setup(t, bundleOpts{store: memory.New()})
	api := hcloudtest.New(hcloudtest.Options{})
	t.Cleanup(api.Close)
	drv := hetzner.New(hetzner.NewClient("token", hcloud.WithEndpoint(api.URL())),
		hetzner.Options{ServerType: "cx22", Image: "debian-12"})
	cfg := b.config("r1", nil)
	cfg.Provider = drv
	cfg.DriftInterval = -1
	if mod != nil {
		mod(&cfg)
	}
	p, err := provision.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return &hetznerWorld{api: api, st: b.store, p: p}
}

// addTenants stores n ready tenants, each on a server of the fake API
// labelled as the Provisioner labels its servers.
func (w *hetznerWorld) addTenants(t *testing.T, n int, controlPlane string) map[string]int64 {
	t.Helper()
	out := make(map[string]int64, n)
	for _, id := range ids(n) {
		sid := w.api.AddServer(provision.DefaultServerName(id), map[string]string{
			hetzner.ManagedLabel: "true", provision.LabelTenant: id, provision.LabelControlPlane: controlPlane,
		})
		out[id] = sid
		require.NoError(t, w.st.Create(context.Background(), store.Record{
			ID: id, Status: store.StatusReady, ServerID: strconv.FormatInt(sid, 10),
			ServerName: provision.DefaultServerName(id), HostKeys: []string{"ssh-ed25519 AAAA"},
		}))
	}
	return out
}

// Drift checking 1,000 ready tenants on Hetzner costs ceil(1000/50) = 20
// list calls (Hetzner's largest page is 50 servers), not 1,000 lookups;
// three servers deleted behind the library's back cost three lookups
// more, to confirm.
func TestDriftCallCountHetzner(t *testing.T) {
	t.Parallel()
	w := newHetznerWorld(t, nil)
	const n = 1000
	tenants := w.addTenants(t, n, provision.DefaultControlPlane)
	// Another control plane's servers in the same project are not listed.
	w.api.AddServers("other", 120, map[string]string{hetzner.ManagedLabel: "true", provision.LabelControlPlane: "staging"})
	ctx := context.Background()

	require.NoError(t, w.p.CheckDrift(ctx))
	lists := w.api.Calls("GET /servers")
	assert.Equal(t, int(math.Ceil(n/50.0)), lists)
	assert.Zero(t, w.api.Calls("GET /servers/{id}"))

	gone := slices.Sorted(maps.Keys(tenants))[:3]
	for _, id := range gone {
		require.True(t, w.api.RemoveServer(tenants[id]))
	}
	require.NoError(t, w.p.CheckDrift(ctx))
	assert.Equal(t, 2*lists, w.api.Calls("GET /servers"))
	assert.Equal(t, 3, w.api.Calls("GET /servers/{id}"), "the three missing servers, confirmed")
	recs, err := w.st.List(ctx, store.StatusReady)
	require.NoError(t, err)
	drifted := 0
	for _, r := range recs {
		if r.Drift != "" {
			drifted++
			assert.Contains(t, gone, r.ID)
		}
	}
	assert.Equal(t, 3, drifted)
	t.Logf("drift check of %d ready tenants: %d GET /servers, then %d more and %d GET /servers/{id} with 3 gone",
		n, lists, lists, w.api.Calls("GET /servers/{id}"))
}

// Sweep on Hetzner: one list pass over this control plane's servers, one
// DELETE per orphan; live tenants' servers and another control plane's
// are untouched.
func TestSweepCallCountHetzner(t *testing.T) {
	t.Parallel()
	w := newHetznerWorld(t, func(c *provision.Config) { c.SweepGrace = time.Hour })
	const n = 1000
	tenants := w.addTenants(t, n, provision.DefaultControlPlane)
	orphans := w.api.AddServers("orphan", 5, map[string]string{
		hetzner.ManagedLabel: "true", provision.LabelTenant: newID(), provision.LabelControlPlane: provision.DefaultControlPlane,
	})
	young := w.api.AddServer("young", map[string]string{
		hetzner.ManagedLabel: "true", provision.LabelTenant: newID(), provision.LabelControlPlane: provision.DefaultControlPlane,
	})
	for _, id := range orphans {
		require.True(t, w.api.SetCreated(id, time.Now().Add(-2*time.Hour)))
	}
	for _, id := range tenants {
		require.True(t, w.api.SetCreated(id, time.Now().Add(-2*time.Hour)))
	}
	others := w.api.AddServers("staging", 50, map[string]string{
		hetzner.ManagedLabel: "true", provision.LabelTenant: newID(), provision.LabelControlPlane: "staging",
	})
	for _, id := range others {
		require.True(t, w.api.SetCreated(id, time.Now().Add(-2*time.Hour)))
	}

	res, err := w.p.Sweep(context.Background(), false)
	require.NoError(t, err)
	lists := w.api.Calls("GET /servers")
	assert.Equal(t, int(math.Ceil((n+6)/50.0)), lists)
	assert.Equal(t, n+6, res.Listed)
	assert.Equal(t, 5, w.api.Calls("DELETE /servers/{id}"))
	require.Len(t, res.Orphans, 6)
	deleted := 0
	for _, o := range res.Orphans {
		if o.Deleted {
			deleted++
			assert.Equal(t, "no record", o.Reason)
		} else {
			assert.Equal(t, strconv.FormatInt(young, 10), o.Server.ID)
			assert.Equal(t, "younger than SweepGrace", o.Kept)
		}
	}
	assert.Equal(t, 5, deleted)
	for _, id := range append(slices.Collect(maps.Values(tenants)), others...) {
		_, ok := w.api.Server(id)
		assert.True(t, ok, "server %d untouched", id)
	}
	t.Logf("sweep of %d servers (%d tenants, 6 orphans): %d GET /servers, %d DELETE /servers/{id}",
		res.Listed, n, lists, w.api.Calls("DELETE /servers/{id}"))
}

// A failing probe whose output holds the tenant's secret (a unit's
// journal may) puts it nowhere: not in Record.Drift, not in the logs.
func TestProbeRedactsLogs(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{store: memory.New()})
	cfg := b.config("r1", nil)
	cfg.DriftInterval = -1
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.ProbeSteps = func(store.Record) []inject.Step {
		return []inject.Step{{Name: "leaky", Cmd: "cat " + envPath + " >&2; exit 3"}}
	}
	p := b.replica(cfg)
	recs := readyTenants(t, p, 1)
	require.NoError(t, p.Probe(context.Background()))
	r := get(t, b.store, recs[0].ID)
	tok := b.secrets.token(r.ID)
	assert.Contains(t, r.Drift, "[REDACTED]")
	assert.NotContains(t, r.Drift, tok)
	assert.Contains(t, logs.String(), "inject: step failed", "the probe's step was logged")
	assert.NotContains(t, logs.String(), tok)
}
