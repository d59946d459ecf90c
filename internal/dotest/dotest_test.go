package dotest_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/dotest"
)

const fingerprint = "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"

func client(t *testing.T, api *dotest.API, token string) *godo.Client {
	t.Helper()
	c, err := godo.New(&http.Client{Timeout: 10 * time.Second},
		godo.SetBaseURL(api.URL()), godo.SetRequestHeaders(map[string]string{"Authorization": "Bearer " + token}))
	require.NoError(t, err)
	return c
}

// newAPI starts an API holding the SSH key fingerprint.
func newAPI(t *testing.T, opts dotest.Options) *dotest.API {
	t.Helper()
	api := dotest.New(opts)
	t.Cleanup(api.Close)
	api.AddSSHKey("ops", fingerprint)
	return api
}

func create(name string, tags ...string) *godo.DropletCreateRequest {
	return &godo.DropletCreateRequest{
		Name: name, Region: "fra1", Size: "s-1vcpu-1gb", Image: godo.DropletCreateImage{Slug: "ubuntu-24-04-x64"},
		SSHKeys: []godo.DropletCreateSSHKey{{Fingerprint: fingerprint}}, IPv6: true,
		UserData: "#cloud-config\n", Tags: tags,
	}
}

func status(err error) int {
	var er *godo.ErrorResponse
	if errors.As(err, &er) {
		return er.Response.StatusCode
	}
	return 0
}

// Droplets are new without networks, then active with addresses; names
// are not unique.
func TestDroplets(t *testing.T) {
	t.Parallel()
	api := dotest.New(dotest.Options{ActiveAfter: 200 * time.Millisecond})
	defer api.Close()
	api.AddSSHKey("ops", fingerprint)
	c := client(t, api, "t")
	ctx := context.Background()

	d, resp, err := c.Droplets.Create(ctx, create("a", "x:y"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, "new", d.Status)
	require.NotNil(t, d.Networks)
	assert.Empty(t, d.Networks.V4)
	assert.Equal(t, []string{"x:y"}, d.Tags)
	assert.Equal(t, "fra1", d.Region.Slug)
	assert.Equal(t, "s-1vcpu-1gb", d.SizeSlug)
	require.NotNil(t, resp.Links)
	require.Len(t, resp.Links.Actions, 1)
	assert.Equal(t, "create", resp.Links.Actions[0].Rel)

	again, _, err := c.Droplets.Create(ctx, create("a"))
	require.NoError(t, err, "names are not unique")
	assert.Greater(t, again.ID, d.ID)
	assert.Len(t, api.Droplets(), 2)

	got, _, err := c.Droplets.Get(ctx, d.ID)
	require.NoError(t, err)
	assert.Equal(t, "new", got.Status)
	ip, err := got.PublicIPv4()
	require.NoError(t, err)
	assert.Empty(t, ip)

	time.Sleep(250 * time.Millisecond)
	got, _, err = c.Droplets.Get(ctx, d.ID)
	require.NoError(t, err)
	assert.Equal(t, "active", got.Status)
	ip, _ = got.PublicIPv4()
	assert.Equal(t, "127.0.1.2", ip)
	priv, _ := got.PrivateIPv4()
	assert.NotEmpty(t, priv)
	ip6, _ := got.PublicIPv6()
	assert.Equal(t, "fd00::0:0", ip6)

	_, err = c.Droplets.Delete(ctx, d.ID)
	require.NoError(t, err)
	_, _, err = c.Droplets.Get(ctx, d.ID)
	assert.Equal(t, http.StatusNotFound, status(err))
	_, err = c.Droplets.Delete(ctx, d.ID)
	assert.Equal(t, http.StatusNotFound, status(err))
	assert.Equal(t, 0, api.PasswordEmails())

	// No SSH key: the real API would email a root password.
	req := create("b")
	req.SSHKeys = nil
	_, _, err = c.Droplets.Create(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, 1, api.PasswordEmails())
}

func TestCreateRefused(t *testing.T) {
	t.Parallel()
	api := dotest.New(dotest.Options{DropletLimit: 2})
	defer api.Close()
	api.AddSSHKey("ops", fingerprint)
	c := client(t, api, "t")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		mod  func(*godo.DropletCreateRequest)
		msg  string
	}{
		{"no size", func(r *godo.DropletCreateRequest) { r.Size = "" }, dotest.MsgInvalidSize},
		{"no image", func(r *godo.DropletCreateRequest) { r.Image = godo.DropletCreateImage{} }, dotest.MsgInvalidImage},
		{"bad region", func(r *godo.DropletCreateRequest) { r.Region = "mars1" }, "invalid region"},
		{"unknown key", func(r *godo.DropletCreateRequest) { r.SSHKeys = []godo.DropletCreateSSHKey{{ID: 7}} }, "no SSH key 7"},
		{"bad tag", func(r *godo.DropletCreateRequest) { r.Tags = []string{"a b"} }, "Tag names"},
		{"long tag", func(r *godo.DropletCreateRequest) { r.Tags = []string{strings.Repeat("a", 256)} }, "Tag names"},
		{"user_data", func(r *godo.DropletCreateRequest) { r.UserData = strings.Repeat("#", dotest.MaxUserData+1) }, "64 KiB"},
	} {
		req := create("a")
		tc.mod(req)
		_, _, err := c.Droplets.Create(ctx, req)
		assert.Equal(t, http.StatusUnprocessableEntity, status(err), tc.name)
		assert.ErrorContains(t, err, tc.msg, tc.name)
	}
	req := create("a")
	req.UserData = strings.Repeat("#", dotest.MaxUserData)
	_, _, err := c.Droplets.Create(ctx, req)
	require.NoError(t, err, "exactly 64 KiB")
	_, _, err = c.Droplets.Create(ctx, create("b"))
	require.NoError(t, err)
	_, _, err = c.Droplets.Create(ctx, create("c"))
	assert.Equal(t, http.StatusUnprocessableEntity, status(err))
	assert.ErrorContains(t, err, dotest.MsgDropletLimit)
	assert.Len(t, api.Created(), 2)
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	api := dotest.New(dotest.Options{})
	defer api.Close()
	c := client(t, api, "t")
	ctx := context.Background()
	for i := range 45 {
		tags := []string{"all"}
		if i%3 == 0 {
			tags = append(tags, "Third")
		}
		api.AddDroplet("d-"+strconv.Itoa(i%5), tags...)
	}

	var ids []int
	opt := &godo.ListOptions{PerPage: 10}
	for page := 1; ; page++ {
		opt.Page = page
		ds, resp, err := c.Droplets.ListByTag(ctx, "third", opt) // tags match without regard to case
		require.NoError(t, err)
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		assert.Equal(t, 15, resp.Meta.Total)
		if resp.Links.IsLastPage() {
			break
		}
	}
	assert.Len(t, ids, 15)
	assert.Equal(t, 2, api.Count(http.MethodGet, "/v2/droplets"))

	ds, _, err := c.Droplets.ListByName(ctx, "D-2", &godo.ListOptions{PerPage: 200})
	require.NoError(t, err)
	assert.Len(t, ds, 9, "names match exactly, without regard to case")

	_, _, err = c.Droplets.List(ctx, &godo.ListOptions{PerPage: 500})
	require.NoError(t, err, "per_page is capped at 200")
	req, err := c.NewRequest(ctx, http.MethodGet, "v2/droplets?name=a&tag_name=b", nil)
	require.NoError(t, err)
	_, err = c.Do(ctx, req, nil)
	assert.Equal(t, http.StatusUnprocessableEntity, status(err))
}

func TestAccountKeysAndToken(t *testing.T) {
	t.Parallel()
	api := dotest.New(dotest.Options{Token: "right"})
	defer api.Close()
	id := api.AddSSHKey("ops", fingerprint)
	ctx := context.Background()

	good := client(t, api, "right")
	acct, _, err := good.Account.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "active", acct.Status)
	k, _, err := good.Keys.GetByFingerprint(ctx, fingerprint)
	require.NoError(t, err)
	assert.Equal(t, id, k.ID)
	_, _, err = good.Keys.GetByID(ctx, id)
	require.NoError(t, err)
	_, _, err = good.Keys.GetByID(ctx, id+1)
	assert.Equal(t, http.StatusNotFound, status(err))

	bad := client(t, api, "wrong")
	_, _, err = bad.Account.Get(ctx)
	assert.Equal(t, http.StatusUnauthorized, status(err))
	assert.ErrorContains(t, err, dotest.MsgUnauthorized)
}

// The sliding window: RateLimit-Remaining counts the requests of the last
// Window, RateLimit-Reset is when the oldest of them expires, and a
// request beyond the limit is a 429.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	api := dotest.New(dotest.Options{RateLimit: 3, Window: time.Second})
	defer api.Close()
	c := client(t, api, "t")
	ctx := context.Background()
	start := time.Now()
	for i := range 3 {
		_, resp, err := c.Account.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, 3, resp.Rate.Limit)
		assert.Equal(t, 2-i, resp.Rate.Remaining)
		assert.False(t, resp.Rate.Reset.Before(start.Truncate(time.Second)))
	}
	_, resp, err := c.Account.Get(ctx)
	assert.Equal(t, http.StatusTooManyRequests, status(err))
	assert.Equal(t, 0, resp.Rate.Remaining)
	assert.Equal(t, 1, api.Throttled())
	time.Sleep(time.Until(start.Add(1100 * time.Millisecond)))
	_, _, err = c.Account.Get(ctx)
	require.NoError(t, err, "the oldest request expired")

	burst := dotest.New(dotest.Options{RateLimit: 100, Burst: 2, BurstWindow: time.Hour})
	defer burst.Close()
	bc := client(t, burst, "t")
	for range 2 {
		_, _, err := bc.Account.Get(ctx)
		require.NoError(t, err)
	}
	_, resp, err = bc.Account.Get(ctx)
	assert.Equal(t, http.StatusTooManyRequests, status(err))
	assert.Equal(t, 98, resp.Rate.Remaining, "the burst limit does not show in the headers")
}

func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("after", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t, dotest.Options{})
		api.Inject(dotest.Fault{Method: http.MethodPost, Path: "/v2/droplets", Status: http.StatusBadGateway, After: true})
		_, _, err := client(t, api, "t").Droplets.Create(ctx, create("a"))
		assert.Equal(t, http.StatusBadGateway, status(err))
		assert.Len(t, api.Droplets(), 1, "the request took effect")
	})
	t.Run("error body", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t, dotest.Options{})
		api.Inject(dotest.Fault{Path: "/v2/droplets", Status: 422, ID: "unprocessable_entity", Message: dotest.MsgSizeUnavailable, Reset: time.Minute, Limit: 5000})
		_, resp, err := client(t, api, "t").Droplets.Create(ctx, create("a"))
		assert.ErrorContains(t, err, dotest.MsgSizeUnavailable)
		assert.Equal(t, 0, resp.Rate.Remaining)
		assert.Equal(t, 5000, resp.Rate.Limit)
		assert.Empty(t, api.Droplets())
	})
	t.Run("lost", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t, dotest.Options{})
		api.Inject(dotest.Fault{Method: http.MethodPost, Lost: true})
		_, _, err := client(t, api, "t").Droplets.Create(ctx, create("a"))
		require.Error(t, err)
		assert.Equal(t, 0, status(err), "no answer at all")
		assert.Len(t, api.Droplets(), 1)
		assert.Equal(t, 0, api.Requests()[0].Status)
	})
	t.Run("hang", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t, dotest.Options{})
		api.Inject(dotest.Fault{Method: http.MethodPost, Hang: true})
		c := client(t, api, "t")
		c.HTTPClient.Timeout = 200 * time.Millisecond
		_, _, err := c.Droplets.Create(ctx, create("a"))
		require.Error(t, err)
		assert.Len(t, api.Droplets(), 1)
	})
	t.Run("hold", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t, dotest.Options{})
		hold := make(chan struct{})
		api.Inject(dotest.Fault{Method: http.MethodPost, Hold: hold})
		c := client(t, api, "t")
		c.HTTPClient.Timeout = 200 * time.Millisecond
		_, _, err := c.Droplets.Create(ctx, create("a"))
		require.Error(t, err)
		assert.Empty(t, api.Droplets(), "not yet")
		close(hold)
		require.Eventually(t, func() bool { return len(api.Droplets()) == 1 }, 5*time.Second, 10*time.Millisecond,
			"held requests take effect when released, client or not")

		// A client still waiting gets the answer.
		hold2 := make(chan struct{})
		api.Inject(dotest.Fault{Method: http.MethodPost, Hold: hold2})
		c.HTTPClient.Timeout = 10 * time.Second
		time.AfterFunc(100*time.Millisecond, func() { close(hold2) })
		d, _, err := c.Droplets.Create(ctx, create("b"))
		require.NoError(t, err)
		assert.Equal(t, "b", d.Name)
	})
	t.Run("unknown path", func(t *testing.T) {
		t.Parallel()
		api := newAPI(t, dotest.Options{})
		_, _, err := client(t, api, "t").Sizes.List(ctx, nil)
		assert.Equal(t, http.StatusNotFound, status(err))
		assert.Equal(t, 1, api.Count(http.MethodGet, "/v2/sizes"))
	})
}

func TestStatusAndAddresses(t *testing.T) {
	t.Parallel()
	api := dotest.New(dotest.Options{Addresses: func(id int) (string, string) { return "127.0.0.9", "::1" }})
	defer api.Close()
	id := api.AddDroplet("x", "a")
	d, ok := api.Droplet(id)
	require.True(t, ok)
	assert.Equal(t, "active", d.Status)
	ip, _ := d.PublicIPv4()
	assert.Equal(t, "127.0.0.9", ip)
	api.SetStatus(id, "off")
	d, _ = api.Droplet(id)
	assert.Equal(t, "off", d.Status)
	_, ok = api.Droplet(id + 1)
	assert.False(t, ok)
}
