package hetzner_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
)

func TestCreateChoosesTypeLocationImage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                        string
		opts                        hetzner.Options
		req                         provider.CreateRequest
		serverType, location, image string
		imageID                     int64
		wantType, wantLocation      string
	}{
		{"options", defaultOptions(), request("t-1"), "cx22", "fsn1", "ubuntu-24.04", 0, "cx22", "fsn1"},
		{"request wins", defaultOptions(),
			provider.CreateRequest{Name: "t-1", ServerType: "cpx31", Location: "hel1", Image: "debian-12"},
			"cpx31", "hel1", "debian-12", 0, "cpx31", "hel1"},
		{"only location", defaultOptions(), provider.CreateRequest{Name: "t-1", Location: "nbg1"},
			"cx22", "nbg1", "ubuntu-24.04", 0, "cx22", "nbg1"},
		{"image by ID", defaultOptions(), provider.CreateRequest{Name: "t-1", Image: "114690387"},
			"cx22", "fsn1", "", 114690387, "cx22", "fsn1"},
		{"Hetzner chooses the location", hetzner.Options{ServerType: "cx22", Image: "debian-12"}, request("t-1"),
			"cx22", "", "debian-12", 0, "cx22", "fsn1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{opts: tc.opts})
			srv, err := b.p.Create(context.Background(), tc.req)
			require.NoError(t, err)
			body := b.api.Created()[0]
			assert.Equal(t, tc.serverType, body.ServerType.Name)
			assert.Equal(t, tc.location, body.Location)
			assert.Equal(t, tc.image, body.Image.Name)
			assert.Equal(t, tc.imageID, body.Image.ID)
			assert.Equal(t, tc.wantType, srv.ServerType)
			assert.Equal(t, tc.wantLocation, srv.Location)
			assert.Equal(t, 1, b.api.Count("", ""))
		})
	}
}

func TestCreateRefusesBadNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  provider.CreateRequest
		msg  string
	}{
		{"server type", provider.CreateRequest{Name: "t-1", ServerType: "cx 22"}, `request ServerType "cx 22"`},
		{"location", provider.CreateRequest{Name: "t-1", Location: "fsn1/x"}, `request Location "fsn1/x"`},
		{"image", provider.CreateRequest{Name: "t-1", Image: "debian-12\n"}, `request Image`},
		{"long image", provider.CreateRequest{Name: "t-1", Image: string(make([]byte, 64))}, `request Image`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{})
			_, err := b.p.Create(context.Background(), tc.req)
			require.ErrorIs(t, err, provider.ErrInvalid)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Equal(t, 0, b.api.Count("", ""), "nothing sent")
		})
	}
	for _, o := range []hetzner.Options{
		{ServerType: "cx22;", Image: "debian-12"},
		{ServerType: "cx22", Image: "debian 12"},
		{ServerType: "cx22", Image: "debian-12", Location: "fsn1 "},
	} {
		require.ErrorIs(t, o.Validate(), provider.ErrInvalid, "%+v", o)
	}
}

// TestCapacity checks that a location out of capacity is
// provider.ErrUnavailable, so that the caller can try another, and that
// the next location works.
func TestCapacity(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	b.api.SetUnavailable("fsn1", "", "resource_unavailable")
	b.api.SetUnavailable("nbg1", "cx22", "placement_error")

	req := request("t-1")
	for _, loc := range []string{"", "fsn1", "nbg1"} {
		req.Location = loc
		_, err := b.p.Create(ctx, req)
		require.ErrorIs(t, err, provider.ErrUnavailable, "location %q", loc)
		assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeResourceUnavailable, hcloud.ErrorCodePlacementError), "cause kept: %v", err)
	}
	assert.Equal(t, 3, b.api.Count(http.MethodPost, "/servers"), "capacity errors are not retried")
	assert.Empty(t, b.api.Servers())

	req.ServerType = "cpx21" // nbg1 has this one
	srv, err := b.p.Create(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, "nbg1", srv.Location)
	assert.Equal(t, "cpx21", srv.ServerType)

	req = request("t-2")
	req.Location = "hel1"
	srv, err = b.p.Create(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, "hel1", srv.Location)
	assert.Equal(t, "cx22", srv.ServerType)
}

func TestAbilities(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	var p provider.Provider = b.p
	ider, ok := p.(provider.InstanceIDer)
	require.True(t, ok)
	assert.Equal(t, "1000042", ider.InstanceID("1000042"))
	lim, ok := p.(provider.UserDataLimiter)
	require.True(t, ok)
	assert.Equal(t, 32768, lim.MaxUserData())
	_, ok = p.(provider.Lister)
	assert.True(t, ok)
	_, ok = p.(provider.CredentialChecker)
	assert.True(t, ok)
}

func TestCanceledBeforeSending(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.p.Get(ctx, "42")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, b.p.Delete(ctx, "42"), context.Canceled)
	assert.Equal(t, 0, b.api.Count("", ""))
}
