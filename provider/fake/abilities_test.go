package fake_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

func (b *bundle) request(name string, labels map[string]string) provider.CreateRequest {
	return provider.CreateRequest{
		Name:     name,
		UserData: userData(doc{URL: b.url(), Key: b.key.line}),
		Labels:   labels,
	}
}

func TestAbilities(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	var p provider.Provider = b.p
	_, ok := p.(provider.Lister)
	assert.True(t, ok)
	_, ok = p.(provider.CredentialChecker)
	assert.True(t, ok)
	lim, ok := p.(provider.UserDataLimiter)
	require.True(t, ok)
	assert.Equal(t, cloudinit.MaxSize, lim.MaxUserData())
	ider, ok := p.(provider.InstanceIDer)
	require.True(t, ok)

	// The instance ID is what the server posts at phone_home.
	ps, s := b.create(t, "t-1", doc{Post: allPost})
	assert.Equal(t, s.InstanceID(), ider.InstanceID(ps.ID))
	h := b.rc.wait(t, 1)[0]
	assert.Equal(t, "/cb/"+ider.InstanceID(ps.ID), h.Path)
	assert.Contains(t, h.Body, "instance_id="+ider.InstanceID(ps.ID))
}

func TestCreatePlacement(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	before := time.Now()
	req := b.request("t-1", nil)
	srv, err := b.p.Create(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, fake.DefaultLocation, srv.Location)
	assert.Equal(t, fake.DefaultServerType, srv.ServerType)
	assert.False(t, srv.Created.Before(before))
	assert.False(t, srv.Created.After(time.Now()))

	req = b.request("t-2", nil)
	req.Location, req.ServerType, req.Image = "fsn1", "cx32", "debian-12"
	srv, err = b.p.Create(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, "fsn1", srv.Location)
	assert.Equal(t, "cx32", srv.ServerType)
	got, err := b.p.Get(ctx, srv.ID)
	require.NoError(t, err)
	assert.Equal(t, srv.Created, got.Created)
	assert.Equal(t, "fsn1", got.Location)

	b2 := setup(t, fake.Options{Location: "eu", ServerType: "small"}, nil)
	srv, err = b2.p.Create(ctx, b2.request("t-1", nil))
	require.NoError(t, err)
	assert.Equal(t, "eu", srv.Location)
	assert.Equal(t, "small", srv.ServerType)
}

func TestCreateRefusedBeforeBoot(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	big := b.request("t-1", nil)
	big.UserData = append(big.UserData, bytes.Repeat([]byte("#"), cloudinit.MaxSize)...)
	for _, req := range []provider.CreateRequest{
		big,
		func() provider.CreateRequest { r := b.request("t-1", nil); r.Location = "fsn 1"; return r }(),
		func() provider.CreateRequest { r := b.request("t-1", nil); r.ServerType = "a/b"; return r }(),
		func() provider.CreateRequest { r := b.request("t-1", nil); r.Image = "x\n"; return r }(),
	} {
		_, err := b.p.Create(ctx, req)
		require.ErrorIs(t, err, provider.ErrInvalid)
	}
	assert.Empty(t, b.p.Servers())

	small := setup(t, fake.Options{MaxUserData: 100}, nil)
	_, err := small.p.Create(ctx, small.request("t-1", nil))
	require.ErrorIs(t, err, provider.ErrInvalid)
	assert.Equal(t, 100, small.p.MaxUserData())
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	for _, tc := range []struct{ name, plane string }{{"t-1", "a"}, {"t-2", "a"}, {"t-3", "b"}} {
		_, err := b.p.Create(ctx, b.request(tc.name, map[string]string{"plane": tc.plane, "tenant": tc.name}))
		require.NoError(t, err)
	}
	b.p.AddForeign("other", map[string]string{"plane": "a"})

	list := func(sel map[string]string) []string {
		t.Helper()
		servers, err := b.p.List(ctx, sel)
		require.NoError(t, err)
		var out []string
		for _, s := range servers {
			out = append(out, s.Name)
		}
		return out
	}
	assert.Equal(t, []string{"t-1", "t-2", "t-3"}, list(nil))
	assert.Equal(t, []string{"t-1", "t-2"}, list(map[string]string{"plane": "a"}))
	assert.Equal(t, []string{"t-2"}, list(map[string]string{"plane": "a", "tenant": "t-2"}))
	assert.Empty(t, list(map[string]string{"plane": "c"}))

	s, ok := b.p.ServerByName("t-2")
	require.True(t, ok)
	require.True(t, b.p.Vanish(s.ID()))
	assert.False(t, b.p.Vanish(s.ID()))
	assert.Equal(t, []string{"t-1"}, list(map[string]string{"plane": "a"}))

	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	_, err := b.p.List(ctx2, nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestAdoptionAndConflict(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	first, err := b.p.Create(ctx, b.request("t-1", map[string]string{"tenant": "t-1", "plane": "a"}))
	require.NoError(t, err)

	// Adopted: the request's labels are the server's (or a subset).
	again, err := b.p.Create(ctx, b.request("t-1", map[string]string{"tenant": "t-1"}))
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)

	// Another tenant's server by that name: a conflict.
	_, err = b.p.Create(ctx, b.request("t-1", map[string]string{"tenant": "t-2"}))
	require.ErrorIs(t, err, provider.ErrConflict)
	_, err = b.p.Create(ctx, b.request("t-1", map[string]string{"tenant": "t-1", "extra": "x"}))
	require.ErrorIs(t, err, provider.ErrConflict)

	// A foreign server by that name: a conflict, and it stays.
	id := b.p.AddForeign("t-9", nil)
	_, err = b.p.Create(ctx, b.request("t-9", nil))
	require.ErrorIs(t, err, provider.ErrConflict)
	f, err := b.p.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "t-9", f.Name)
	assert.Len(t, b.p.Servers(), 1)
	require.NoError(t, b.p.Delete(ctx, id))
	_, err = b.p.Get(ctx, id)
	require.ErrorIs(t, err, provider.ErrNotFound)
	_, err = b.p.Create(ctx, b.request("t-9", nil))
	require.NoError(t, err)
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	srv, err := b.p.Create(ctx, b.request("t-1", nil))
	require.NoError(t, err)
	require.NoError(t, b.p.CheckCredentials(ctx))

	b.p.SetUnauthorized(true)
	require.ErrorIs(t, b.p.CheckCredentials(ctx), provider.ErrUnauthorized)
	_, err = b.p.Create(ctx, b.request("t-2", nil))
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	_, err = b.p.Get(ctx, srv.ID)
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	require.ErrorIs(t, b.p.Delete(ctx, srv.ID), provider.ErrUnauthorized)
	_, err = b.p.List(ctx, nil)
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	assert.Len(t, b.p.Servers(), 1, "nothing created or deleted")

	b.p.SetUnauthorized(false)
	_, err = b.p.Get(ctx, srv.ID)
	require.NoError(t, err)
}

func TestUnavailableLocation(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	b.p.SetUnavailable("fsn1", true)
	b.p.SetUnavailable(fake.DefaultLocation, true)

	req := b.request("t-1", nil)
	for _, loc := range []string{"fsn1", ""} {
		req.Location = loc
		_, err := b.p.Create(ctx, req)
		require.ErrorIs(t, err, provider.ErrUnavailable, "location %q", loc)
	}
	assert.Empty(t, b.p.Servers())
	req.Location = "nbg1"
	srv, err := b.p.Create(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, "nbg1", srv.Location)

	// Adoption needs no capacity.
	b.p.SetUnavailable("nbg1", true)
	again, err := b.p.Create(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, srv.ID, again.ID)

	b.p.SetUnavailable("fsn1", false)
	req = b.request("t-2", nil)
	req.Location = "fsn1"
	_, err = b.p.Create(ctx, req)
	require.NoError(t, err)
}

func TestPowerOff(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	ps, s := b.create(t, "t-1", doc{})
	waitBooted(t, s)
	dial(t, s, "rachel", b.key).Close()

	require.True(t, b.p.PowerOff(ps.ID))
	got, err := b.p.Get(ctx, ps.ID)
	require.NoError(t, err)
	assert.Equal(t, "off", got.Status)
	listed, err := b.p.List(ctx, nil)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, "off", listed[0].Status)
	_, err = dialErr(s, "rachel", b.key)
	require.Error(t, err, "SSH is gone")

	require.NoError(t, b.p.Delete(ctx, ps.ID))
	_, err = b.p.Get(ctx, ps.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
	assert.False(t, b.p.PowerOff(ps.ID))
}

func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Go(func() {
			srv, err := b.p.Create(context.Background(), b.request("t-"+string(rune('a'+i)), nil))
			ids[i], errs[i] = srv.ID, err
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range ids {
		require.NoError(t, errs[i])
		assert.False(t, seen[ids[i]])
		seen[ids[i]] = true
	}
	all, err := b.p.List(context.Background(), nil)
	require.NoError(t, err)
	assert.Len(t, all, 8)
}
