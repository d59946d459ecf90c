package providertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
)

// Harness tells Run how to get a driver and what it accepts.
type Harness struct {
	// Open returns a fresh driver, with no server, and arranges with
	// t.Cleanup to close it. It is called once per test; tests run in
	// parallel.
	Open func(t *testing.T) Driver
	// UserData returns user-data the driver accepts for a server named
	// name; nil means "#cloud-config\n".
	UserData func(t *testing.T, name string) []byte
	// Concurrency is how many servers the concurrency test creates at
	// once; 0 means 8.
	Concurrency int
	// Timeout bounds each test, the wait for a deleted server to be gone
	// included; 0 means 2 minutes.
	Timeout time.Duration
}

// Driver is one driver instance, and what its test double can tell.
type Driver struct {
	// Provider is the driver under test.
	Provider provider.Provider
	// Calls returns how many requests the driver has sent to its cloud so
	// far; nil when it cannot tell. Invalid requests must send none.
	Calls func() int
	// Foreign makes, in the driver's account, a server named name with
	// labels that the driver did not create (someone else's); nil when
	// the driver cannot have one. Create of that name must fail with
	// provider.ErrConflict, and List must never return it.
	Foreign func(t *testing.T, name string, labels map[string]string)
	// Unauthorized returns the same driver with credentials its cloud
	// refuses; nil when it cannot. Used for provider.CredentialChecker.
	Unauthorized func(t *testing.T) provider.Provider
}

// Run runs the conformance suite, each test in its own parallel subtest
// on its own driver.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("providertest: Harness.Open is nil")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"CreateGetDelete", testCreateGetDelete},
		{"Adopt", testAdopt},
		{"Conflict", testConflict},
		{"Labels", testLabels},
		{"Invalid", testInvalid},
		{"Concurrent", testConcurrent},
		{"ContextDone", testContextDone},
		{"List", testList},
		{"InstanceID", testInstanceID},
		{"Credentials", testCredentials},
		{"UserDataLimit", testUserDataLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, h.setup(t))
		})
	}
}

// suite is one test's world: a fresh driver, a label that marks the
// servers of this test, and a context bounded by the harness's timeout.
type suite struct {
	t   *testing.T
	h   Harness
	d   Driver
	p   provider.Provider
	ctx context.Context
	run string // value of runLabel on every server this test makes
}

// runLabel marks the servers a test makes, so that a driver on a shared
// account lists only them.
const runLabel = "conformance-run"

func (h Harness) setup(t *testing.T) *suite {
	t.Helper()
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	d := h.Open(t)
	require.NotNil(t, d.Provider, "Harness.Open returned no Provider")
	return &suite{t: t, h: h, d: d, p: d.Provider, ctx: ctx, run: randHex(6)}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// name returns a fresh server name with a prefix.
func (s *suite) name(prefix string) string { return prefix + "-" + randHex(4) }

func (s *suite) userData(name string) []byte {
	if s.h.UserData == nil {
		return []byte("#cloud-config\n")
	}
	return s.h.UserData(s.t, name)
}

// request is a valid request for name, with the test's run label and
// extra labels.
func (s *suite) request(name string, labels map[string]string) provider.CreateRequest {
	l := map[string]string{runLabel: s.run}
	for k, v := range labels {
		l[k] = v
	}
	return provider.CreateRequest{Name: name, UserData: s.userData(name), Labels: l}
}

// create creates a server and deletes it at the end of the test.
func (s *suite) create(req provider.CreateRequest) provider.Server {
	s.t.Helper()
	srv, err := s.p.Create(s.ctx, req)
	require.NoError(s.t, err, "Create %q", req.Name)
	require.NotEmpty(s.t, srv.ID, "Create %q returned no ID", req.Name)
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), time.Minute)
		defer cancel()
		if err := s.p.Delete(ctx, srv.ID); err != nil {
			s.t.Errorf("cleanup: Delete %s: %v", srv.ID, err)
		}
	})
	return srv
}

// gone waits until Get of id wraps provider.ErrNotFound.
func (s *suite) gone(id string) {
	s.t.Helper()
	for {
		_, err := s.p.Get(s.ctx, id)
		if errors.Is(err, provider.ErrNotFound) {
			return
		}
		if s.ctx.Err() != nil {
			s.t.Fatalf("Get %s after Delete: got %v, want an error wrapping provider.ErrNotFound", id, err)
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			s.t.Logf("Get %s after Delete: %v (waiting for ErrNotFound)", id, err)
		}
		select {
		case <-s.ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// requireLabels checks that have carries every label of want.
func requireLabels(t *testing.T, want, have map[string]string, what string) {
	t.Helper()
	for k, v := range want {
		got, ok := have[k]
		require.True(t, ok, "%s: label %q missing (labels %v)", what, k, have)
		require.Equal(t, v, got, "%s: label %q", what, k)
	}
}

// calls returns the driver's request count, or -1 when it cannot tell.
func (s *suite) calls() int {
	if s.d.Calls == nil {
		return -1
	}
	return s.d.Calls()
}

// addressed polls Get until server id has an address, within the test's
// timeout, and returns it.
func (s *suite) addressed(id string) provider.Server {
	s.t.Helper()
	delay := 10 * time.Millisecond
	for {
		got, err := s.p.Get(s.ctx, id)
		require.NoError(s.t, err, "Get")
		if got.Addr() != "" {
			return got
		}
		select {
		case <-s.ctx.Done():
			s.t.Fatalf("server %s has no address yet: %v", id, s.ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

func testCreateGetDelete(t *testing.T, s *suite) {
	name := s.name("cgd")
	req := s.request(name, nil)
	before := time.Now()
	srv := s.create(req)
	after := time.Now()
	assert.Equal(t, name, srv.Name)
	requireLabels(t, req.Labels, srv.Labels, "Create")
	if !srv.Created.IsZero() {
		// A cloud's clock is not ours: allow some skew.
		assert.WithinRange(t, srv.Created, before.Add(-5*time.Minute), after.Add(5*time.Minute), "Created")
	}

	got, err := s.p.Get(s.ctx, srv.ID)
	require.NoError(t, err, "Get")
	assert.Equal(t, srv.ID, got.ID)
	assert.Equal(t, name, got.Name)
	if srv.Addr() != "" {
		assert.Equal(t, srv.Addr(), got.Addr(), "Get reports the address Create did")
	} else {
		// A server may get its address after Create returns (a
		// DigitalOcean droplet has none until it is active): Get
		// reports it then.
		got = s.addressed(srv.ID)
	}
	assert.NotEmpty(t, got.Addr(), "a server has an address (IPv4, IPv6 or SSHAddr), from Create or later from Get")
	requireLabels(t, req.Labels, got.Labels, "Get")
	if !srv.Created.IsZero() {
		assert.True(t, got.Created.Equal(srv.Created), "Get's Created %v is Create's %v", got.Created, srv.Created)
	}

	require.NoError(t, s.p.Delete(s.ctx, srv.ID), "Delete")
	s.gone(srv.ID)
	require.NoError(t, s.p.Delete(s.ctx, srv.ID), "Delete of a deleted server succeeds")

	// The name is free again: a new server, not the old one.
	again := s.create(req)
	assert.NotEqual(t, srv.ID, again.ID, "a server created after the delete is a new one")
}

func testAdopt(t *testing.T, s *suite) {
	req := s.request(s.name("adopt"), map[string]string{"role": "web"})
	first := s.create(req)
	before := s.calls()
	second, err := s.p.Create(s.ctx, req)
	require.NoError(t, err, "Create of a name that is ours adopts it")
	assert.Equal(t, first.ID, second.ID, "adoption returns the existing server")
	assert.Equal(t, first.Name, second.Name)
	if before >= 0 {
		t.Logf("adoption cost %d request(s)", s.calls()-before)
	}
	if l, ok := s.p.(provider.Lister); ok {
		all, err := l.List(s.ctx, map[string]string{runLabel: s.run})
		require.NoError(t, err)
		assert.Len(t, all, 1, "adoption makes no second server")
	}
}

func testConflict(t *testing.T, s *suite) {
	if s.d.Foreign == nil {
		t.Skip("the driver cannot have a server it did not create (Driver.Foreign is nil)")
	}
	name := s.name("foreign")
	s.d.Foreign(t, name, map[string]string{runLabel: s.run})
	_, err := s.p.Create(s.ctx, s.request(name, nil))
	require.ErrorIs(t, err, provider.ErrConflict, "Create of a name taken by a server that is not ours")
}

func testLabels(t *testing.T, s *suite) {
	req := s.request(s.name("labels"), map[string]string{"role": "web", "tier": "a-1_b.c"})
	srv := s.create(req)
	requireLabels(t, req.Labels, srv.Labels, "Create")
	got, err := s.p.Get(s.ctx, srv.ID)
	require.NoError(t, err)
	requireLabels(t, req.Labels, got.Labels, "Get")

	// The provider keeps its own copy.
	req.Labels["role"] = "changed"
	got, err = s.p.Get(s.ctx, srv.ID)
	require.NoError(t, err)
	assert.Equal(t, "web", got.Labels["role"], "changing the request's map afterwards changes nothing")
}

func testInvalid(t *testing.T, s *suite) {
	before := s.calls()
	for _, name := range []string{"", "-lead", "trail-", "Upper", "under_score", "dot.ted", "sp ace", strings.Repeat("a", 64)} {
		req := s.request(s.name("valid"), nil)
		req.Name = name
		_, err := s.p.Create(s.ctx, req)
		require.ErrorIs(t, err, provider.ErrInvalid, "Create %q", name)
	}
	if before >= 0 {
		assert.Equal(t, before, s.calls(), "invalid requests must be refused before any request to the cloud")
	}
	if l, ok := s.p.(provider.Lister); ok {
		all, err := l.List(s.ctx, map[string]string{runLabel: s.run})
		require.NoError(t, err)
		assert.Empty(t, all, "invalid requests make no server")
	}
}

func testConcurrent(t *testing.T, s *suite) {
	n := s.h.Concurrency
	if n <= 0 {
		n = 8
	}
	reqs := make([]provider.CreateRequest, n)
	for i := range reqs {
		reqs[i] = s.request(fmt.Sprintf("%s-%d", s.name("conc"), i), nil)
	}
	servers := make([]provider.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { servers[i], errs[i] = s.p.Create(s.ctx, reqs[i]) })
	}
	wg.Wait()
	ids := map[string]bool{}
	for i, srv := range servers {
		if errs[i] == nil {
			t.Cleanup(func() { _ = s.p.Delete(context.WithoutCancel(s.ctx), srv.ID) })
		}
	}
	for i, srv := range servers {
		require.NoError(t, errs[i], "Create %q", reqs[i].Name)
		require.False(t, ids[srv.ID], "ID %s returned twice", srv.ID)
		ids[srv.ID] = true
		got, err := s.p.Get(s.ctx, srv.ID)
		require.NoError(t, err)
		assert.Equal(t, reqs[i].Name, got.Name)
	}
	for _, srv := range servers {
		wg.Go(func() { assert.NoError(t, s.p.Delete(s.ctx, srv.ID)) })
	}
	wg.Wait()
	for _, srv := range servers {
		s.gone(srv.ID)
	}
}

func testContextDone(t *testing.T, s *suite) {
	srv := s.create(s.request(s.name("ctx"), nil))
	cancelled, cancel := context.WithCancel(s.ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(s.ctx, time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		name := s.name("never")
		_, err := s.p.Create(c.ctx, s.request(name, nil))
		require.ErrorIs(t, err, c.want, "Create")
		_, err = s.p.Get(c.ctx, srv.ID)
		require.ErrorIs(t, err, c.want, "Get")
		err = s.p.Delete(c.ctx, srv.ID)
		require.ErrorIs(t, err, c.want, "Delete")
		if l, ok := s.p.(provider.Lister); ok {
			_, err = l.List(c.ctx, nil)
			require.ErrorIs(t, err, c.want, "List")
		}
	}
	got, err := s.p.Get(s.ctx, srv.ID)
	require.NoError(t, err, "a Delete with a done context deletes nothing")
	assert.Equal(t, srv.ID, got.ID)
	if l, ok := s.p.(provider.Lister); ok {
		all, err := l.List(s.ctx, map[string]string{runLabel: s.run})
		require.NoError(t, err)
		assert.Equal(t, []string{srv.ID}, serverIDs(all), "a Create with a done context creates nothing")
	}
}

func serverIDs(servers []provider.Server) []string {
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

func testList(t *testing.T, s *suite) {
	l, ok := s.p.(provider.Lister)
	if !ok {
		t.Skip("the driver does not implement provider.Lister")
	}
	a := s.create(s.request(s.name("list-a"), map[string]string{"role": "web"}))
	b := s.create(s.request(s.name("list-b"), map[string]string{"role": "db"}))
	c := s.create(s.request(s.name("list-c"), map[string]string{"role": "web"}))
	if s.d.Foreign != nil {
		s.d.Foreign(t, s.name("list-foreign"), map[string]string{runLabel: s.run, "role": "web"})
	}
	require.NoError(t, s.p.Delete(s.ctx, c.ID))
	s.gone(c.ID)

	list := func(sel map[string]string) []string {
		t.Helper()
		for {
			all, err := l.List(s.ctx, sel)
			require.NoError(t, err, "List %v", sel)
			ids := serverIDs(all)
			if !slices.Contains(ids, c.ID) || s.ctx.Err() != nil {
				for _, srv := range all {
					requireLabels(t, sel, srv.Labels, "List")
				}
				return ids
			}
			time.Sleep(100 * time.Millisecond) // a deleted server may linger
		}
	}
	assert.Equal(t, serverIDs([]provider.Server{a, b}), list(map[string]string{runLabel: s.run}),
		"ours with the label; not the deleted one, not the foreign one")
	assert.Equal(t, []string{a.ID}, list(map[string]string{runLabel: s.run, "role": "web"}))
	assert.Empty(t, list(map[string]string{runLabel: s.run, "role": "none"}))
	assert.Empty(t, list(map[string]string{runLabel: "x" + s.run}))
	all := list(nil)
	assert.Subset(t, all, []string{a.ID, b.ID}, "an empty selector lists every server of the driver")
}

func testInstanceID(t *testing.T, s *suite) {
	ider, ok := s.p.(provider.InstanceIDer)
	if !ok {
		t.Skip("the driver does not implement provider.InstanceIDer")
	}
	a := s.create(s.request(s.name("iid-a"), nil))
	b := s.create(s.request(s.name("iid-b"), nil))
	ia, ib := ider.InstanceID(a.ID), ider.InstanceID(b.ID)
	assert.NotEmpty(t, ia)
	assert.NotEmpty(t, ib)
	assert.NotEqual(t, ia, ib, "two servers have two instance IDs")
	assert.Equal(t, ia, ider.InstanceID(a.ID), "stable")
}

func testCredentials(t *testing.T, s *suite) {
	cc, ok := s.p.(provider.CredentialChecker)
	if !ok {
		t.Skip("the driver does not implement provider.CredentialChecker")
	}
	require.NoError(t, cc.CheckCredentials(s.ctx), "the driver's own credentials")
	if s.d.Unauthorized == nil {
		return
	}
	bad, ok := s.d.Unauthorized(t).(provider.CredentialChecker)
	require.True(t, ok, "Driver.Unauthorized returned a provider that cannot check credentials")
	require.ErrorIs(t, bad.CheckCredentials(s.ctx), provider.ErrUnauthorized, "refused credentials")
}

func testUserDataLimit(t *testing.T, s *suite) {
	lim, ok := s.p.(provider.UserDataLimiter)
	if !ok {
		t.Skip("the driver does not implement provider.UserDataLimiter")
	}
	n := lim.MaxUserData()
	require.Positive(t, n, "MaxUserData")
	req := s.request(s.name("big"), nil)
	// A YAML comment pads the document to one byte over the limit.
	req.UserData = append(req.UserData, "\n#"...)
	req.UserData = append(req.UserData, bytes.Repeat([]byte("#"), max(n+1-len(req.UserData), 0))...)
	before := s.calls()
	_, err := s.p.Create(s.ctx, req)
	require.ErrorIs(t, err, provider.ErrInvalid, "user-data of %d bytes, one over the limit", len(req.UserData))
	if before >= 0 {
		assert.Equal(t, before, s.calls(), "user-data over the limit must be refused before any request")
	}
}
