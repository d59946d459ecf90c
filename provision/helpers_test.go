package provision_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

// The tenant's service, as the test steps install it.
const (
	appUser = "tenant"
	appDir  = "/home/tenant/app"
	envPath = appDir + "/.env"
	unit    = "app.service"
	sshUser = "hatchery"
)

var unitFile = []byte(`[Unit]
Description=the tenant's app
ConditionPathExists=` + envPath + `

[Service]
User=tenant
EnvironmentFile=` + envPath + `
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
`)

// bootstrap is the tenant's cloud-config: a user for the app. The
// Provisioner adds phone_home and the SSH user.
func bootstrap(_ context.Context, r store.Record) (cloudinit.Config, error) {
	return cloudinit.Config{
		Users: []cloudinit.User{{Name: appUser, Shell: "/bin/bash"}},
		WriteFiles: []cloudinit.File{{
			Path: "/etc/motd", Content: "tenant " + r.ID + "\n", Permissions: "0644",
		}},
	}, nil
}

// bootstrapWith is bootstrap, with edit applied to its cloud-config.
func bootstrapWith(edit func(c *cloudinit.Config)) func(context.Context, store.Record) (cloudinit.Config, error) {
	return func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
		c, err := bootstrap(ctx, r)
		edit(&c)
		return c, err
	}
}

// steps writes the .env (the secret), installs and starts the unit.
func steps(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
	return slowSteps(0)(ctx, in)
}

// slowSteps are steps with a pause of d after the .env is written, so
// that a test can act in the middle of an injection.
func slowSteps(d time.Duration) func(context.Context, provision.StepsInput) ([]inject.Step, error) {
	return func(_ context.Context, in provision.StepsInput) ([]inject.Step, error) {
		return appSteps(in, d)
	}
}

func appSteps(in provision.StepsInput, pause time.Duration) ([]inject.Step, error) {
	tok, ok := in.Secrets["API_TOKEN"]
	if !ok {
		return nil, errors.New("no API_TOKEN")
	}
	owner := inject.Owner(appUser + ":" + appUser)
	start := inject.StartUnit(unit)
	if in.Rotate {
		start = inject.RestartUnit(unit)
	}
	out := []inject.Step{
		inject.Mkdir(appDir, 0o750, owner, inject.AsRoot()),
		inject.WriteFile(envPath, []byte("API_TOKEN="+tok+"\n"), 0o600, owner, inject.AsRoot()),
	}
	if pause > 0 {
		out = append(out, inject.Command("sleep", fmt.Sprintf("%.3f", pause.Seconds())))
	}
	return append(out,
		inject.InstallUnit(unit, unitFile),
		inject.DaemonReload(),
		inject.EnableUnit(unit),
		start,
		inject.CheckActive(unit, 0),
	), nil
}

// secretBox is a SecretSource whose secrets can change (for Rotate).
type secretBox struct {
	mu sync.Mutex
	m  map[string]string // tenant -> API_TOKEN
}

func (s *secretBox) Secrets(_ context.Context, id string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	if _, ok := s.m[id]; !ok {
		s.m[id] = "tok-" + randHex(12)
	}
	return map[string]string{"API_TOKEN": s.m[id]}, nil
}

func (s *secretBox) token(id string) string {
	v, _ := s.Secrets(context.Background(), id)
	return v["API_TOKEN"]
}

func (s *secretBox) set(id, tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = tok
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newID returns a random canonical UUID (version 4).
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return s
}

// front is the control plane's public address: it forwards each callback
// to one of the live replicas' handlers, at random, and holds requests
// while none is live (as a load balancer's retry would).
type front struct {
	srv     *httptest.Server
	mu      sync.Mutex
	targets map[string]http.Handler
	live    chan struct{} // closed while at least one target is live
}

func newFront(t testing.TB) *front {
	f := &front{targets: map[string]http.Handler{}, live: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *front) base() string { return f.srv.URL + "/api/provision/callback" }

func (f *front) add(name string, h http.Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets[name] = h
	if len(f.targets) == 1 {
		close(f.live)
	}
}

func (f *front) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.targets[name]; !ok {
		return
	}
	delete(f.targets, name)
	if len(f.targets) == 0 {
		f.live = make(chan struct{})
	}
}

func (f *front) serve(w http.ResponseWriter, r *http.Request) {
	for {
		f.mu.Lock()
		live := f.live
		var hs []http.Handler
		for _, h := range f.targets {
			hs = append(hs, h)
		}
		f.mu.Unlock()
		if len(hs) > 0 {
			hs[randInt(len(hs))].ServeHTTP(w, r)
			return
		}
		select {
		case <-live:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
			http.Error(w, "no replica", http.StatusServiceUnavailable)
			return
		}
	}
}

func randInt(n int) int {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return int(b[0]) % n
}

// countingProvider wraps a Provider and counts what it does.
type countingProvider struct {
	provider.Provider
	mu        sync.Mutex
	creates   map[string]int            // Create calls that succeeded, by name
	ids       map[string]map[string]int // server IDs returned, by name
	userData  map[string][]byte         // the last user-data, by name
	afterFunc func(name string)         // called after a successful Create
}

func newCounting(p provider.Provider) *countingProvider {
	return &countingProvider{Provider: p, creates: map[string]int{}, ids: map[string]map[string]int{}, userData: map[string][]byte{}}
}

func (c *countingProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	srv, err := c.Provider.Create(ctx, req)
	if err != nil {
		return srv, err
	}
	c.mu.Lock()
	c.creates[req.Name]++
	if c.ids[req.Name] == nil {
		c.ids[req.Name] = map[string]int{}
	}
	c.ids[req.Name][srv.ID]++
	c.userData[req.Name] = req.UserData
	after := c.afterFunc
	c.mu.Unlock()
	if after != nil {
		after(req.Name)
	}
	return srv, nil
}

// MaxUserData and InstanceID pass the wrapped provider's abilities on, so
// that the tests run with them as a user of provider/fake does.
func (c *countingProvider) MaxUserData() int {
	if l, ok := c.Provider.(provider.UserDataLimiter); ok {
		return l.MaxUserData()
	}
	return 1 << 30
}

func (c *countingProvider) InstanceID(serverID string) string {
	if i, ok := c.Provider.(provider.InstanceIDer); ok {
		return i.InstanceID(serverID)
	}
	return ""
}

// distinctServers returns how many different servers Create returned for name.
func (c *countingProvider) distinctServers(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids[name])
}

func (c *countingProvider) lastUserData(name string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userData[name]
}

// errKilled is what a killed replica's store answers.
var errKilled = errors.New("test: replica killed")

// killable is a Store that dies: after kill, or right after a successful
// write for which killIf is true (the write happened, the answer never
// arrived, as when a process crashes after commit), every call fails.
type killable struct {
	store.Store
	mu     sync.Mutex
	dead   bool
	killIf func(r store.Record) bool
	onKill func()
}

func (k *killable) isDead() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dead
}

func (k *killable) kill() {
	k.mu.Lock()
	if k.dead {
		k.mu.Unlock()
		return
	}
	k.dead = true
	onKill := k.onKill
	k.mu.Unlock()
	if onKill != nil {
		onKill()
	}
}

// after reports whether the write that produced r kills the replica.
func (k *killable) after(r store.Record) bool {
	k.mu.Lock()
	f := k.killIf
	k.mu.Unlock()
	if f != nil && f(r) {
		k.kill()
		return true
	}
	return false
}

func (k *killable) Create(ctx context.Context, r store.Record) error {
	if k.isDead() {
		return errKilled
	}
	if err := k.Store.Create(ctx, r); err != nil {
		return err
	}
	if got, err := k.Store.Get(ctx, r.ID); err == nil && k.after(got) {
		return errKilled
	}
	return nil
}

func (k *killable) Get(ctx context.Context, id string) (store.Record, error) {
	if k.isDead() {
		return store.Record{}, errKilled
	}
	return k.Store.Get(ctx, id)
}

func (k *killable) Update(ctx context.Context, id string, fn func(*store.Record) error) (store.Record, error) {
	if k.isDead() {
		return store.Record{}, errKilled
	}
	r, err := k.Store.Update(ctx, id, fn)
	if err == nil && k.after(r) {
		return store.Record{}, errKilled
	}
	return r, err
}

func (k *killable) List(ctx context.Context, statuses ...store.Status) ([]store.Record, error) {
	if k.isDead() {
		return nil, errKilled
	}
	return k.Store.List(ctx, statuses...)
}

// events records a Provisioner's events.
type events struct {
	mu  sync.Mutex
	all []provision.Event
}

func (e *events) add(ev provision.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

// statuses returns the statuses tenant id went through, in order.
func (e *events) statuses(id string) []store.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []store.Status
	for _, ev := range e.all {
		if ev.Tenant == id && ev.Step == "" && ev.Boot == nil {
			out = append(out, ev.To)
		}
	}
	return out
}

// bundle is one test's world: a store, a fake cloud, the public callback
// address, and what every replica shares.
type bundle struct {
	t       testing.TB
	store   store.Store
	fake    *fake.Provider
	cloud   *countingProvider
	front   *front
	key     []byte
	signer  ssh.Signer
	secrets *secretBox
	events  *events
}

type bundleOpts struct {
	store     store.Store // nil: SQLite in t.TempDir()
	faults    func(name string) fake.Faults
	bootDelay time.Duration // 0: 20ms
	// maxUserData is the fake's user-data limit; 0: its default (32 KiB).
	maxUserData int
}

func setup(t testing.TB, o bundleOpts) *bundle {
	t.Helper()
	b := &bundle{t: t, key: []byte(randHex(32)), signer: newSigner(t), secrets: &secretBox{}, events: &events{}}
	b.store = o.store
	if b.store == nil {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hatchery.db"))
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		b.store = st
	}
	b.front = newFront(t)
	if o.bootDelay == 0 {
		o.bootDelay = 20 * time.Millisecond
	}
	b.fake = fake.New(fake.Options{
		BootDelay:         o.bootDelay,
		PhoneHomeInterval: 50 * time.Millisecond,
		Faults:            o.faults,
		MaxUserData:       o.maxUserData,
		Dir:               t.TempDir(),
		Logger:            testenv.Logger(t),
	})
	t.Cleanup(func() { b.fake.Close() })
	b.cloud = newCounting(b.fake)
	return b
}

// config returns a replica's Config; st nil means the bundle's store.
func (b *bundle) config(replica string, st store.Store) provision.Config {
	if st == nil {
		st = b.store
	}
	return provision.Config{
		Provider:         b.cloud,
		Store:            st,
		Secrets:          b.secrets,
		BootstrapFunc:    bootstrap,
		StepsFunc:        steps,
		SSHUser:          sshUser,
		Signer:           b.signer,
		SSHTimeout:       10 * time.Second,
		CallbackBase:     b.front.base(),
		CallbackKey:      b.key,
		Replica:          replica,
		PhoneHomeTimeout: 20 * time.Second,
		LeaseDuration:    3 * time.Second,
		MaxClockSkew:     200 * time.Millisecond,
		RetryBackoff:     50 * time.Millisecond,
		MaxBackoff:       200 * time.Millisecond,
		ResumeInterval:   100 * time.Millisecond,
		Logger:           testenv.Logger(b.t).With("replica", replica),
		OnEvent:          b.events.add,
	}
}

// replica starts a Provisioner with cfg, serving callbacks through the
// front; it is closed at the end of the test.
func (b *bundle) replica(cfg provision.Config) *provision.Provisioner {
	b.t.Helper()
	p, err := provision.New(cfg)
	require.NoError(b.t, err)
	b.front.add(cfg.Replica, p.Handler())
	b.t.Cleanup(func() {
		b.front.remove(cfg.Replica)
		p.Close()
	})
	return p
}

// run starts p.Run until the end of the test.
func (b *bundle) run(p *provision.Provisioner) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	b.t.Cleanup(func() { cancel(); <-done })
}

// server returns the fake server of tenant id.
func (b *bundle) server(id string) *fake.Server {
	b.t.Helper()
	s, ok := b.fake.ServerByName(provision.DefaultServerName(id))
	require.True(b.t, ok, "no server for %s", id)
	return s
}

// injections counts the injection runs a server received: each runs the
// steps' script, which installs the unit.
func injections(s *fake.Server) int {
	n := 0
	for _, c := range s.Commands() {
		if strings.Contains(c, "/etc/systemd/system/") {
			n++
		}
	}
	return n
}

// whenInjecting calls fn once srv has received an injection script and
// has been running it for 50ms (inside the pause of slowSteps), or when
// ctx ends. (The 50ms also keep clear of a race in gliderlabs/ssh v0.3.8:
// a signal that arrives before the fake server has registered for
// signals is delivered by an unsynchronized goroutine.)
func whenInjecting(ctx context.Context, srv func() (*fake.Server, bool), fn func()) {
	go func() {
		defer fn()
		for ctx.Err() == nil {
			if s, ok := srv(); ok && injections(s) > 0 {
				time.Sleep(50 * time.Millisecond)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
}

// waitAll waits until every tenant is settled and returns the records.
func waitAll(t testing.TB, p *provision.Provisioner, ids []string, d time.Duration) map[string]store.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out := make(map[string]store.Record, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Value
	sem := make(chan struct{}, 16)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := p.Wait(ctx, id)
			if err != nil {
				failed.Store(err)
			}
			mu.Lock()
			out[id] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("wait: %v", err)
	}
	return out
}

// fileMode returns the permission bits of a sandbox file.
func fileMode(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// ids returns n new tenant IDs.
func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = newID()
	}
	slices.Sort(out)
	return out
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
