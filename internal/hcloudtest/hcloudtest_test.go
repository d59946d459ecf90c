package hcloudtest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/hcloudtest"
)

func client(api *hcloudtest.API) *hcloud.Client {
	return hcloud.NewClient(hcloud.WithEndpoint(api.URL()), hcloud.WithToken("t"),
		hcloud.WithRetryOpts(hcloud.RetryOpts{MaxRetries: -1}))
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	return resp
}

func TestServers(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	c := client(api)
	ctx := context.Background()
	key := api.AddSSHKey("ops", "ssh-ed25519 AAAA")

	res, _, err := c.Server.Create(ctx, hcloud.ServerCreateOpts{
		Name: "a", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "ubuntu-24.04"},
		SSHKeys: []*hcloud.SSHKey{{ID: key}}, Labels: map[string]string{"k": "v"}, UserData: "#cloud-config\n",
	})
	require.NoError(t, err)
	assert.Equal(t, hcloud.ServerStatusInitializing, res.Server.Status)
	assert.Equal(t, "203.0.113.3", res.Server.PublicNet.IPv4.IP.String())
	assert.Equal(t, "2001:db8:2::/64", res.Server.PublicNet.IPv6.Network.String())
	assert.NotNil(t, res.Action)

	_, _, err = c.Server.Create(ctx, hcloud.ServerCreateOpts{
		Name: "a", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "x"},
	})
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeUniquenessError), "%v", err)

	for _, opts := range []hcloud.ServerCreateOpts{
		{Name: "b", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "x"}, SSHKeys: []*hcloud.SSHKey{{ID: 1}}},
		{Name: "b", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "x"}, Labels: map[string]string{"a b": "c"}},
		{Name: "b", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "x"}, UserData: string(make([]byte, hcloudtest.MaxUserData+1))},
	} {
		_, _, err = c.Server.Create(ctx, opts)
		assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeInvalidInput), "%v", err)
	}

	s, _, err := c.Server.GetByName(ctx, "a")
	require.NoError(t, err)
	require.NotNil(t, s)
	assert.Equal(t, hcloud.ServerStatusRunning, s.Status)
	assert.Equal(t, map[string]string{"k": "v"}, s.Labels)
	s, _, err = c.Server.GetByID(ctx, res.Server.ID)
	require.NoError(t, err)
	require.NotNil(t, s)
	_, _, err = c.Server.DeleteWithResult(ctx, s)
	require.NoError(t, err)
	_, _, err = c.Server.DeleteWithResult(ctx, s)
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeNotFound))
	s, _, err = c.Server.GetByID(ctx, res.Server.ID)
	require.NoError(t, err)
	assert.Nil(t, s)
	assert.Empty(t, api.Servers())
	assert.Len(t, api.Created(), 1)
	assert.Equal(t, 10, api.Count("", ""))
	assert.Equal(t, 5, api.Count(http.MethodPost, "/servers"))

	assert.Equal(t, http.StatusNotFound, get(t, api.URL()+"/nothing").StatusCode)
}

func TestSSHKeysPaginated(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	for i := range 60 {
		api.AddSSHKey(fmt.Sprintf("k%d", i), "ssh-ed25519 AAAA")
	}
	all, err := client(api).SSHKey.All(context.Background())
	require.NoError(t, err)
	assert.Len(t, all, 60)
	assert.Equal(t, "k59", all[59].Name)
	assert.Equal(t, 2, api.Count(http.MethodGet, "/ssh_keys"))
}

func TestBucket(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{RateLimit: 3, RefillInterval: 2 * time.Second})
	defer api.Close()
	var remaining []string
	for range 4 {
		resp := get(t, api.URL()+"/servers")
		remaining = append(remaining, resp.Header.Get("RateLimit-Remaining"))
		assert.Equal(t, "3", resp.Header.Get("RateLimit-Limit"))
		reset, err := strconv.ParseInt(resp.Header.Get("RateLimit-Reset"), 10, 64)
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now(), time.Unix(reset, 0), 8*time.Second) // full again after 3 refills of 2 s
		if len(remaining) == 4 {
			assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		}
	}
	assert.Equal(t, []string{"2", "1", "0"}, remaining[:3])
	assert.Equal(t, 1, api.Throttled())
	time.Sleep(2100 * time.Millisecond)
	assert.Equal(t, http.StatusOK, get(t, api.URL()+"/servers").StatusCode)
}

func TestWindow(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{RateLimit: 2, Window: time.Hour})
	defer api.Close()
	codes := []int{}
	for range 3 {
		codes = append(codes, get(t, api.URL()+"/servers").StatusCode)
	}
	assert.Equal(t, []int{200, 200, 429}, codes)
	assert.Equal(t, 1, api.Throttled())
	assert.Equal(t, 3, api.Count("", ""))
}

func TestFaults(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	api.Inject(
		hcloudtest.Fault{Method: http.MethodGet, Path: "/servers", Status: 503, RetryAfter: 1500 * time.Millisecond},
		hcloudtest.Fault{Path: "/ssh_keys", Status: 429, Code: "rate_limit_exceeded", Reset: time.Second, Limit: 9},
	)
	resp := get(t, api.URL()+"/ssh_keys")
	assert.Equal(t, 429, resp.StatusCode)
	assert.Equal(t, "0", resp.Header.Get("RateLimit-Remaining"))
	assert.Equal(t, "9", resp.Header.Get("RateLimit-Limit"))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	resp = get(t, api.URL()+"/servers")
	assert.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"))
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	assert.Equal(t, 200, get(t, api.URL()+"/servers").StatusCode)

	// After: the request takes effect, the answer is replaced.
	api.Inject(hcloudtest.Fault{Method: http.MethodPost, After: true, Status: 504})
	_, _, err := client(api).Server.Create(context.Background(), hcloud.ServerCreateOpts{
		Name: "a", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "x"},
	})
	require.ErrorIs(t, err, hcloud.ErrStatusCode)
	assert.Len(t, api.Servers(), 1)
	reqs := api.Requests()
	assert.Equal(t, []int{429, 503, 200, 504}, []int{reqs[0].Status, reqs[1].Status, reqs[2].Status, reqs[3].Status})

	// Hang: the request takes effect and is never answered.
	api.Inject(hcloudtest.Fault{Method: http.MethodPost, Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err = client(api).Server.Create(ctx, hcloud.ServerCreateOpts{
		Name: "b", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "x"},
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Len(t, api.Servers(), 2)
}

func TestSelector(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"hatchery.dev/managed": "true", "env": "prod", "tier": "web"}
	for _, tc := range []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"env=prod", true},
		{"env==prod", true},
		{"env = prod", true},
		{"env=dev", false},
		{"env!=dev", true},
		{"env!=prod", false},
		{"missing!=x", true},
		{"env", true},
		{"missing", false},
		{"!missing", true},
		{"!env", false},
		{"env in (dev, prod)", true},
		{"env in (dev,qa)", false},
		{"missing in (a)", false},
		{"env notin (dev,qa)", true},
		{"env notin (prod)", false},
		{"missing notin (a)", true},
		{"hatchery.dev/managed=true,env=prod,tier in (web,api),!gone", true},
		{"hatchery.dev/managed=true,env=dev", false},
	} {
		sel, err := hcloudtest.ParseSelector(tc.sel)
		require.NoError(t, err, "%q", tc.sel)
		assert.Equal(t, tc.want, sel.Matches(labels), "%q", tc.sel)
	}
	for _, bad := range []string{",", "a,,b", "env in (a", "env in a)", "env like (a)", "=v", "a=b=c", "!", "env in (a),(b)", "a b"} {
		_, err := hcloudtest.ParseSelector(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestListByLabelSelector(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	api.AddServer("a", map[string]string{"m": "true", "env": "prod"})
	api.AddServer("b", map[string]string{"m": "true", "env": "dev"})
	api.AddServer("c", map[string]string{"env": "prod"})
	c := client(api)
	ctx := context.Background()
	names := func(sel string) []string {
		t.Helper()
		all, err := c.Server.AllWithOpts(ctx, hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{LabelSelector: sel}})
		require.NoError(t, err, "%q", sel)
		var out []string
		for _, s := range all {
			out = append(out, s.Name)
		}
		return out
	}
	assert.Equal(t, []string{"a", "b"}, names("m=true"))
	assert.Equal(t, []string{"a"}, names("m=true,env=prod"))
	assert.Equal(t, []string{"c"}, names("!m"))
	assert.Equal(t, []string{"a", "b", "c"}, names("env notin (x),!nothing,env in (dev,prod),m!=false"))
	assert.Equal(t, []string{"c"}, names("m!=true,env=prod"))

	_, err := c.Server.AllWithOpts(ctx, hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{LabelSelector: "env in (a"}})
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeInvalidInput), "%v", err)
}

func TestPagination(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    hcloudtest.Options
		servers int
		calls   int
	}{
		// hcloud-go's AllWithOpts asks for per_page=50, Hetzner's maximum.
		{"1000 servers", hcloudtest.Options{}, 1000, 20},
		{"1001 servers", hcloudtest.Options{}, 1001, 21},
		{"none", hcloudtest.Options{}, 0, 1},
		{"small pages", hcloudtest.Options{MaxPerPage: 3}, 10, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := hcloudtest.New(tc.opts)
			defer api.Close()
			ids := api.AddServers("s", tc.servers, map[string]string{"m": "true"})
			api.AddServer("other", nil)
			all, err := client(api).Server.AllWithOpts(context.Background(), hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{LabelSelector: "m=true"}})
			require.NoError(t, err)
			require.Len(t, all, tc.servers)
			for i, s := range all {
				assert.Equal(t, ids[i], s.ID)
			}
			assert.Equal(t, tc.calls, api.Calls("GET /servers"))
			assert.Equal(t, tc.calls, api.Count("", ""))
		})
	}

	// Without per_page, a page has 25 entries.
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	api.AddServers("s", 30, nil)
	s, _, err := client(api).Server.List(context.Background(), hcloud.ServerListOpts{})
	require.NoError(t, err)
	assert.Len(t, s, 25)
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{Token: "good"})
	defer api.Close()
	ctx := context.Background()
	with := func(token string) *hcloud.Client {
		return hcloud.NewClient(hcloud.WithEndpoint(api.URL()), hcloud.WithToken(token),
			hcloud.WithRetryOpts(hcloud.RetryOpts{MaxRetries: -1}))
	}
	create := hcloud.ServerCreateOpts{Name: "a", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "x"}}

	_, _, err := with("bad").Server.Create(ctx, create)
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeUnauthorized), "%v", err)
	_, _, err = with("bad").Server.List(ctx, hcloud.ServerListOpts{})
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeUnauthorized), "%v", err)
	assert.Empty(t, api.Servers())

	api.SetReadOnly(true)
	_, _, err = with("good").Server.Create(ctx, create)
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeForbidden), "%v", err)
	_, _, err = with("good").Server.List(ctx, hcloud.ServerListOpts{})
	require.NoError(t, err)
	assert.Empty(t, api.Servers())
	assert.Equal(t, 0, api.Calls("POST /servers"), "refused before routing")

	api.SetReadOnly(false)
	_, _, err = with("good").Server.Create(ctx, create)
	require.NoError(t, err)
	api.SetToken("rotated")
	_, _, err = with("good").Server.List(ctx, hcloud.ServerListOpts{})
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeUnauthorized), "%v", err)
	reqs := api.Requests()
	assert.Equal(t, []int{401, 401, 403, 200, 201, 401}, func() []int {
		var s []int
		for _, r := range reqs {
			s = append(s, r.Status)
		}
		return s
	}())

	ro := hcloudtest.New(hcloudtest.Options{ReadOnly: true})
	defer ro.Close()
	_, _, err = client(ro).Server.Create(ctx, create)
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeForbidden), "%v", err)
}

func TestCapacityAndPlacement(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	c := client(api)
	ctx := context.Background()
	create := func(name, location, serverType string) (hcloud.ServerCreateResult, error) {
		opts := hcloud.ServerCreateOpts{Name: name, ServerType: &hcloud.ServerType{Name: serverType}, Image: &hcloud.Image{Name: "debian-12"}}
		if location != "" {
			opts.Location = &hcloud.Location{Name: location}
		}
		res, _, err := c.Server.Create(ctx, opts)
		return res, err
	}

	api.SetUnavailable("fsn1", "", "resource_unavailable")
	api.SetUnavailable("nbg1", "cx32", "placement_error")
	_, err := create("a", "fsn1", "cx22")
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeResourceUnavailable), "%v", err)
	_, err = create("a", "", "cx22") // the default location is the first
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeResourceUnavailable), "%v", err)
	_, err = create("a", "nbg1", "cx32")
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodePlacementError), "%v", err)
	_, err = create("a", "mars1", "cx22")
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeInvalidInput), "%v", err)
	assert.Empty(t, api.Servers())
	reqs := api.Requests()
	assert.Equal(t, []int{412, 412, 422, 400}, []int{reqs[0].Status, reqs[1].Status, reqs[2].Status, reqs[3].Status})

	res, err := create("a", "nbg1", "cx22")
	require.NoError(t, err)
	assert.Equal(t, "nbg1", res.Server.Location.Name)
	assert.Equal(t, "cx22", res.Server.ServerType.Name)
	assert.Equal(t, "debian-12", res.Server.Image.Name)
	assert.WithinDuration(t, time.Now(), res.Server.Created, 2*time.Second)

	api.SetUnavailable("fsn1", "", "")
	res, err = create("b", "", "cx42")
	require.NoError(t, err)
	assert.Equal(t, "fsn1", res.Server.Location.Name)
	assert.Equal(t, "cx42", res.Server.ServerType.Name)

	// Changed behind the client's back.
	old := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	require.True(t, api.SetCreated(res.Server.ID, old))
	require.True(t, api.SetStatus(res.Server.ID, "off"))
	s, _, err := c.Server.GetByID(ctx, res.Server.ID)
	require.NoError(t, err)
	assert.Equal(t, old.Truncate(time.Second), s.Created.UTC())
	assert.Equal(t, hcloud.ServerStatusOff, s.Status)
	assert.Equal(t, "fsn1", s.Location.Name)
	require.True(t, api.RemoveServer(res.Server.ID))
	assert.False(t, api.RemoveServer(res.Server.ID))
	assert.False(t, api.SetStatus(res.Server.ID, "off"))
	s, _, err = c.Server.GetByID(ctx, res.Server.ID)
	require.NoError(t, err)
	assert.Nil(t, s)
}

func TestRootPassword(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	c := client(api)
	ctx := context.Background()
	key := api.AddSSHKey("ops", "ssh-ed25519 AAAA")
	opts := hcloud.ServerCreateOpts{Name: "a", ServerType: &hcloud.ServerType{Name: "cx22"}, Image: &hcloud.Image{Name: "x"}}

	res, _, err := c.Server.Create(ctx, opts)
	require.NoError(t, err)
	assert.Len(t, res.RootPassword, 20)
	assert.Equal(t, api.RootPassword(res.Server.ID), res.RootPassword)

	opts.Name, opts.SSHKeys = "b", []*hcloud.SSHKey{{ID: key}}
	res, _, err = c.Server.Create(ctx, opts)
	require.NoError(t, err)
	assert.Empty(t, res.RootPassword, "no password with an SSH key")
	assert.Empty(t, api.RootPassword(res.Server.ID))
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	id := api.AddServer("a", nil)
	get(t, api.URL()+"/servers/"+strconv.FormatInt(id, 10))
	get(t, api.URL()+"/servers/42")
	get(t, api.URL()+"/servers?name=a")
	get(t, api.URL()+"/ssh_keys")
	get(t, api.URL()+"/nothing")
	api.Inject(hcloudtest.Fault{Path: "/servers", Status: 503})
	get(t, api.URL()+"/servers")
	assert.Equal(t, 2, api.Calls("GET /servers/{id}"))
	assert.Equal(t, 1, api.Calls("GET /servers"), "the faulted request reached no route")
	assert.Equal(t, 1, api.Calls("GET /ssh_keys"))
	var routes []string
	for _, r := range api.Requests() {
		routes = append(routes, r.Route)
	}
	assert.Equal(t, []string{"GET /servers/{id}", "GET /servers/{id}", "GET /servers", "GET /ssh_keys", "", ""}, routes)
}
