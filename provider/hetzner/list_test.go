package hetzner_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/hcloudtest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
)

func names(servers []provider.Server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.Name)
	}
	slices.Sort(out)
	return out
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	for _, name := range []string{"t-1", "t-2"} {
		_, err := b.p.Create(ctx, request(name))
		require.NoError(t, err)
	}
	// Not ours: no ManagedLabel, or ManagedLabel with another value.
	b.api.AddServer("foreign", map[string]string{"hatchery.dev/tenant": "t-1"})
	b.api.AddServer("fake-marker", map[string]string{hetzner.ManagedLabel: "yes", "hatchery.dev/tenant": "t-1"})
	// Ours but being deleted.
	gone := b.api.AddServer("t-3", map[string]string{hetzner.ManagedLabel: "true", "hatchery.dev/tenant": "t-3"})
	require.True(t, b.api.SetStatus(gone, "deleting"))
	old := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	mine := b.api.AddServer("t-4", map[string]string{hetzner.ManagedLabel: "true", "hatchery.dev/tenant": "t-4", "plane": "a"})
	require.True(t, b.api.SetCreated(mine, old))
	b.api.Reset()

	all, err := b.p.List(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"t-1", "t-2", "t-4"}, names(all))
	assert.Equal(t, 1, b.api.Calls("GET /servers"))
	assert.Equal(t, "label_selector=hatchery.dev%2Fmanaged%3Dtrue&page=1&per_page=50", b.api.Requests()[0].Query)

	one, err := b.p.List(ctx, map[string]string{"hatchery.dev/tenant": "t-1"})
	require.NoError(t, err)
	require.Len(t, one, 1)
	assert.Equal(t, "t-1", one[0].Name)
	assert.Equal(t, "cx22", one[0].ServerType)
	assert.Equal(t, "fsn1", one[0].Location)
	assert.NotEmpty(t, one[0].IPv4)
	assert.Equal(t, "true", one[0].Labels[hetzner.ManagedLabel])

	four, err := b.p.List(ctx, map[string]string{"plane": "a", hetzner.ManagedLabel: "true"})
	require.NoError(t, err)
	require.Len(t, four, 1)
	assert.Equal(t, old, four[0].Created)

	none, err := b.p.List(ctx, map[string]string{"plane": "b"})
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Equal(t, 4, b.api.Count("", ""), "one request per List")

	for _, bad := range []map[string]string{{"a b": "c"}, {"k": "a b"}, {hetzner.ManagedLabel: "false"}} {
		_, err := b.p.List(ctx, bad)
		require.ErrorIs(t, err, provider.ErrInvalid, "%v", bad)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.p.List(ctx2, nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 4, b.api.Count("", ""), "refused before any request")
}

// TestListCost checks what drift checks and orphan sweeps pay: one request
// per 50 servers, however many tenants.
func TestListCost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		api     hcloudtest.Options
		servers int
		calls   int
	}{
		{"1000 servers", hcloudtest.Options{}, 1000, 20},
		{"50 servers", hcloudtest.Options{}, 50, 1},
		{"51 servers", hcloudtest.Options{}, 51, 2},
		{"none", hcloudtest.Options{}, 0, 1},
		{"pages of 3", hcloudtest.Options{MaxPerPage: 3}, 10, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{api: tc.api})
			b.api.AddServers("t", tc.servers, map[string]string{hetzner.ManagedLabel: "true", "plane": "a"})
			b.api.AddServers("other", 7, map[string]string{hetzner.ManagedLabel: "true", "plane": "b"})
			b.api.AddServers("foreign", 7, map[string]string{"plane": "a"})
			all, err := b.p.List(context.Background(), map[string]string{"plane": "a"})
			require.NoError(t, err)
			assert.Len(t, all, tc.servers)
			assert.Equal(t, tc.calls, b.api.Calls("GET /servers"))
			assert.Equal(t, tc.calls, b.api.Count("", ""))
			t.Logf("%d servers: %d requests", tc.servers, b.api.Count("", ""))
		})
	}
}

func TestListErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, config{api: hcloudtest.Options{MaxPerPage: 2}})
	b.api.AddServers("t", 5, map[string]string{hetzner.ManagedLabel: "true"})
	// The first page is answered, the second refused: no partial list.
	b.api.Inject(
		hcloudtest.Fault{Method: http.MethodGet, Path: "/servers", After: true},
		hcloudtest.Fault{Method: http.MethodGet, Path: "/servers", Status: 401, Code: "unauthorized"},
	)
	all, err := b.p.List(context.Background(), nil)
	require.ErrorIs(t, err, provider.ErrUnauthorized)
	assert.Nil(t, all)
	assert.Contains(t, err.Error(), "page 2")
	assert.Equal(t, 2, b.api.Count("", ""), "not retried")
}

func TestGetBeingDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	srv, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	id := b.api.Servers()[0].ID
	require.True(t, b.api.SetStatus(id, "deleting"))
	_, err = b.p.Get(ctx, srv.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
	assert.Contains(t, err.Error(), "being deleted")
	require.True(t, b.api.SetStatus(id, "off"))
	got, err := b.p.Get(ctx, srv.ID)
	require.NoError(t, err)
	assert.Equal(t, "off", got.Status)

	// Deleted behind the driver's back.
	require.True(t, b.api.RemoveServer(id))
	_, err = b.p.Get(ctx, srv.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
	all, err := b.p.List(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, all)
}
