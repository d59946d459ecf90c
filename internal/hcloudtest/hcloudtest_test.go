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
