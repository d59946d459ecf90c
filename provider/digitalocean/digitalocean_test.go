package digitalocean_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/dotest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
)

// The happy path: one lookup, one create, and the droplet as the answer
// describes it, without an address yet.
func TestCreateSendsTwoRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, config{opts: digitalocean.Options{
		Size: "s-1vcpu-2gb", Image: "ubuntu-24-04-x64", Region: "fra1",
		SSHKeys: []string{fingerprint}, VPC: "c1d2e3f4-a5b6-4789-8abc-def012345678",
		Tags:       []string{"team:ops", "billing_42"},
		Labels:     map[string]string{"env": "Test", tenantLabel: "overridden"},
		Monitoring: true, IPv6: true,
	}})
	ctx := context.Background()

	srv, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, []string{lookup, post}, calls(b.api), "the happy path costs two requests")
	q := b.api.Requests()[0].Query
	assert.Equal(t, "t-1", q.Get("name"))
	assert.Equal(t, "200", q.Get("per_page"))

	created := b.api.Created()
	require.Len(t, created, 1)
	body := created[0]
	assert.Equal(t, "t-1", body.Name)
	assert.Equal(t, "fra1", body.Region)
	assert.Equal(t, "s-1vcpu-2gb", body.Size)
	assert.Equal(t, "ubuntu-24-04-x64", body.Image)
	assert.Equal(t, []string{fingerprint}, body.SSHKeys)
	assert.Equal(t, userData, body.UserData)
	assert.Equal(t, "c1d2e3f4-a5b6-4789-8abc-def012345678", body.VPCUUID)
	assert.True(t, body.IPv6)
	assert.True(t, body.Monitoring)
	assert.False(t, body.Backups)
	assert.Equal(t, []string{
		"billing_42",
		"hatchery:label:env:_54est",
		"hatchery:label:hatchery-tenant:" + tenantID,
		"hatchery:managed",
		"hatchery:name:t-1",
		"team:ops",
	}, body.Tags)
	assert.Equal(t, 0, b.api.PasswordEmails())

	stored := b.api.Droplets()
	require.Len(t, stored, 1)
	created0, err := time.Parse(time.RFC3339, stored[0].Created)
	require.NoError(t, err)
	assert.Equal(t, provider.Server{
		ID:         strconv.Itoa(stored[0].ID),
		Name:       "t-1",
		Status:     "new",
		Labels:     map[string]string{"env": "Test", tenantLabel: tenantID, digitalocean.ManagedLabel: "true"},
		ServerType: "s-1vcpu-2gb",
		Location:   "fra1",
		Created:    created0,
	}, srv)
	assert.Empty(t, srv.Addr(), "no address until the droplet is active")

	for _, name := range []string{"t-2", "t-3"} {
		_, err := b.p.Create(ctx, request(name))
		require.NoError(t, err)
	}
	assert.Equal(t, 6, b.api.Count("", ""))
	assert.Equal(t, 3, b.api.Count(http.MethodPost, "/v2/droplets"))
}

// The request's server type, location and image win over the options; a
// numeric image is an image ID.
func TestCreateRequestChoosesServer(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	req := request("t-1")
	req.ServerType, req.Location, req.Image = "s-2vcpu-4gb", "ams3", "123456"
	srv, err := b.p.Create(context.Background(), req)
	require.NoError(t, err)
	body := b.api.Created()[0]
	assert.Equal(t, "s-2vcpu-4gb", body.Size)
	assert.Equal(t, "ams3", body.Region)
	assert.Equal(t, "123456", body.Image)
	assert.Equal(t, "s-2vcpu-4gb", srv.ServerType)
	assert.Equal(t, "ams3", srv.Location)
}

// A droplet has no address until it is active; Get reports it then.
func TestAddressesComeLater(t *testing.T) {
	t.Parallel()
	opts := defaultOptions()
	opts.IPv6 = true
	b := setup(t, config{opts: opts, api: dotest.Options{ActiveAfter: 300 * time.Millisecond}})
	ctx := context.Background()
	srv, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, "new", srv.Status)
	assert.Empty(t, srv.IPv4)
	assert.Empty(t, srv.IPv6)

	got, err := b.p.Get(ctx, srv.ID)
	require.NoError(t, err)
	assert.Equal(t, "new", got.Status)
	assert.Empty(t, got.Addr())

	time.Sleep(350 * time.Millisecond)
	got, err = b.p.Get(ctx, srv.ID)
	require.NoError(t, err)
	assert.Equal(t, "active", got.Status)
	assert.Equal(t, "127.0.1.2", got.IPv4, "the public address, not the private one")
	assert.Equal(t, "fd00::0:0", got.IPv6)
	assert.Equal(t, "127.0.1.2:22", got.Addr())
	assert.Equal(t, srv.Created, got.Created)
	assert.Equal(t, 4, b.api.Count("", ""), "Create never polls")
}

// A caller that crashed between Create and recording it creates again:
// one lookup adopts the droplet.
func TestCreateAdoptsAfterCrash(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	first, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	b.api.Reset()

	again, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Len(t, b.api.Droplets(), 1)
	assert.Equal(t, []string{lookup}, calls(b.api), "adoption costs one request")
	assert.Contains(t, b.log.String(), "adopted existing droplet")
}

// The answer to the create is lost after the droplet was made: Create
// looks the name up and adopts it, in three requests, and never sends the
// create again.
func TestCreateAdoptsAfterLostResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault dotest.Fault
	}{
		{"connection closed", dotest.Fault{Lost: true}},
		{"no answer until the client gives up", dotest.Fault{Hang: true}},
		{"500 after the work", dotest.Fault{After: true, Status: 500, ID: "server_error"}},
		{"502 after the work", dotest.Fault{After: true, Status: 502}},
		{"503 after the work", dotest.Fault{After: true, Status: 503}},
		{"504 after the work", dotest.Fault{After: true, Status: 504}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{headerTimeout: 300 * time.Millisecond})
			tc.fault.Method, tc.fault.Path = http.MethodPost, "/v2/droplets"
			b.api.Inject(tc.fault)
			srv, err := b.p.Create(context.Background(), request("t-1"))
			require.NoError(t, err)

			stored := b.api.Droplets()
			require.Len(t, stored, 1, "one droplet, not two")
			assert.Equal(t, strconv.Itoa(stored[0].ID), srv.ID)
			assert.Equal(t, "t-1", srv.Name)
			assert.Equal(t, []string{lookup, post, lookup}, calls(b.api))
			assert.Contains(t, b.log.String(), "whose answer was lost")
		})
	}
}

// A create that failed without making anything is sent once more after a
// lookup found nothing, and a last lookup checks for a late droplet:
// five requests.
func TestCreateRetriesWhenNothingWasMade(t *testing.T) {
	t.Parallel()
	for _, status := range []int{500, 502, 503, 504} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{})
			b.api.Inject(dotest.Fault{Method: http.MethodPost, Status: status})
			srv, err := b.p.Create(context.Background(), request("t-1"))
			require.NoError(t, err)
			stored := b.api.Droplets()
			require.Len(t, stored, 1)
			assert.Equal(t, strconv.Itoa(stored[0].ID), srv.ID)
			assert.Equal(t, []string{lookup, post, lookup, post, lookup}, calls(b.api))
		})
	}
}

// Two failed creates whose outcome is unknown: Create gives up, saying so,
// and the next Create starts over.
func TestCreateGivesUpWhenOutcomeUnknown(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	b.api.Inject(dotest.Fault{Method: http.MethodPost, Status: 500}, dotest.Fault{Method: http.MethodPost, Status: 502})
	ctx := context.Background()
	_, err := b.p.Create(ctx, request("t-1"))
	require.Error(t, err)
	assert.ErrorContains(t, err, "outcome unknown after 2 request(s)")
	assert.NotErrorIs(t, err, provider.ErrInvalid)
	assert.Equal(t, []string{lookup, post, lookup, post}, calls(b.api))
	assert.Empty(t, b.api.Droplets())

	b.api.Reset()
	_, err = b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, []string{lookup, post}, calls(b.api))
	assert.Len(t, b.api.Droplets(), 1)
}

// The backend is still working on the first create when the client gives
// up; it makes the droplet after Create sent the second one. The last
// lookup finds both and keeps the lowest ID; or, when the first comes
// later still, the next Create of the name does.
func TestCreateLateDuplicate(t *testing.T) {
	t.Parallel()
	t.Run("caught by the last lookup", func(t *testing.T) {
		t.Parallel()
		b := setup(t, config{headerTimeout: 200 * time.Millisecond,
			opts: withDelay(defaultOptions(), 500*time.Millisecond)})
		hold := make(chan struct{})
		b.api.Inject(dotest.Fault{Method: http.MethodPost, Hold: hold})
		done := make(chan struct{})
		var srv provider.Server
		var err error
		go func() {
			defer close(done)
			srv, err = b.p.Create(context.Background(), request("t-1"))
		}()
		require.Eventually(t, func() bool { return b.api.Count(http.MethodPost, "") == 2 }, 10*time.Second, 5*time.Millisecond)
		close(hold) // the first request takes effect now, long before the last lookup
		<-done
		require.NoError(t, err)

		stored := b.api.Droplets()
		require.Len(t, stored, 1, "the duplicate is deleted")
		assert.Equal(t, strconv.Itoa(stored[0].ID), srv.ID, "Create returns the droplet it kept")
		assert.Equal(t, []string{lookup, post, lookup, post, lookup, "DELETE /v2/droplets/" + strconv.Itoa(stored[0].ID+1)}, calls(b.api))
		assert.Contains(t, b.log.String(), "deleted duplicate droplet")
	})
	t.Run("caught by the next Create", func(t *testing.T) {
		t.Parallel()
		b := setup(t, config{headerTimeout: 200 * time.Millisecond})
		hold := make(chan struct{})
		b.api.Inject(dotest.Fault{Method: http.MethodPost, Hold: hold})
		ctx := context.Background()
		first, err := b.p.Create(ctx, request("t-1"))
		require.NoError(t, err)
		close(hold)
		require.Eventually(t, func() bool { return len(b.api.Droplets()) == 2 }, 10*time.Second, 5*time.Millisecond,
			"the residual window: a create carried out after every lookup")

		again, err := b.p.Create(ctx, request("t-1"))
		require.NoError(t, err)
		assert.Equal(t, first.ID, again.ID, "the droplet returned first has the lowest ID and is kept")
		stored := b.api.Droplets()
		require.Len(t, stored, 1)
		assert.Equal(t, first.ID, strconv.Itoa(stored[0].ID))
	})
}

func withDelay(o digitalocean.Options, d time.Duration) digitalocean.Options {
	o.LookupDelay = d
	return o
}

// Two replicas create the same name at once (both lookups see nothing):
// two droplets. The next Create of either converges on the lowest ID, and
// both agree.
func TestReplicasConverge(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	_, client2 := newClient(t, b.api, config{}, b.log)
	opts := defaultOptions()
	opts.Logger = b.log.logger()
	p2 := digitalocean.New(client2, opts)

	hold := make(chan struct{})
	b.api.Inject(dotest.Fault{Method: http.MethodPost, Hold: hold}, dotest.Fault{Method: http.MethodPost, Hold: hold})
	ctx := context.Background()
	var wg sync.WaitGroup
	var s1, s2 provider.Server
	var e1, e2 error
	wg.Go(func() { s1, e1 = b.p.Create(ctx, request("t-1")) })
	wg.Go(func() { s2, e2 = p2.Create(ctx, request("t-1")) })
	require.Eventually(t, func() bool { return b.api.Count(http.MethodPost, "") == 2 }, 10*time.Second, 5*time.Millisecond)
	close(hold)
	wg.Wait()
	require.NoError(t, e1)
	require.NoError(t, e2)
	require.NotEqual(t, s1.ID, s2.ID)
	require.Len(t, b.api.Droplets(), 2)
	low := min(atoi(t, s1.ID), atoi(t, s2.ID))

	a, err := p2.Create(ctx, request("t-1"))
	require.NoError(t, err)
	c, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(low), a.ID)
	assert.Equal(t, a.ID, c.ID)
	stored := b.api.Droplets()
	require.Len(t, stored, 1)
	assert.Equal(t, low, stored[0].ID)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// When a duplicate cannot be deleted yet, Create fails and the next Create
// deletes it.
func TestConvergeRetriesDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	tags := []string{digitalocean.ManagedTag, digitalocean.NameTag("t-1"), digitalocean.LabelTag(tenantLabel, tenantID)}
	keep := b.api.AddDroplet("t-1", tags...)
	dup := b.api.AddDroplet("t-1", tags...)
	b.api.Inject(dotest.Fault{Method: http.MethodDelete, Status: 422, ID: "unprocessable_entity", Message: dotest.MsgPendingEvent})
	ctx := context.Background()
	_, err := b.p.Create(ctx, request("t-1"))
	require.Error(t, err)
	assert.ErrorContains(t, err, "kept droplet "+strconv.Itoa(keep))
	assert.ErrorContains(t, err, "pending event")
	assert.NotErrorIs(t, err, provider.ErrInvalid, "a busy droplet is not an invalid request")
	assert.Len(t, b.api.Droplets(), 2)

	srv, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(keep), srv.ID)
	_, ok := b.api.Droplet(dup)
	assert.False(t, ok)
	assert.Equal(t, 0, b.api.Count(http.MethodPost, ""))
}

// Creates of one name in one process are serialized: one droplet.
func TestConcurrentCreatesOfOneName(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	var wg sync.WaitGroup
	ids := make([]string, 10)
	for i := range ids {
		wg.Go(func() {
			srv, err := b.p.Create(context.Background(), request("t-1"))
			assert.NoError(t, err)
			ids[i] = srv.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
	assert.Len(t, b.api.Droplets(), 1)
	assert.Equal(t, 1, b.api.Count(http.MethodPost, ""))
}

// Creates of different names run concurrently: one droplet each.
func TestConcurrentCreatesOfDifferentNames(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	const n = 30
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			srv, err := b.p.Create(context.Background(), request("t-"+strconv.Itoa(i)))
			assert.NoError(t, err)
			assert.Equal(t, "t-"+strconv.Itoa(i), srv.Name)
			ids[i] = srv.ID
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	assert.Len(t, seen, n)
	assert.Len(t, b.api.Droplets(), n)
	assert.Equal(t, 2*n, b.api.Count("", ""))
}

// A name taken by a droplet that is not ours is a conflict, found by the
// lookup: nothing is created.
func TestCreateConflict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tags []string
	}{
		{"foreign droplet", nil},
		{"not marked", []string{digitalocean.NameTag("t-1"), digitalocean.LabelTag(tenantLabel, tenantID)}},
		{"other name tag", []string{digitalocean.ManagedTag, digitalocean.NameTag("t-2"), digitalocean.LabelTag(tenantLabel, tenantID)}},
		{"other tenant", []string{digitalocean.ManagedTag, digitalocean.NameTag("t-1"), digitalocean.LabelTag(tenantLabel, "x")}},
		{"no tenant tag", []string{digitalocean.ManagedTag, digitalocean.NameTag("t-1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{})
			id := b.api.AddDroplet("t-1", tc.tags...)
			_, err := b.p.Create(context.Background(), request("t-1"))
			require.ErrorIs(t, err, provider.ErrConflict)
			assert.ErrorContains(t, err, strconv.Itoa(id))
			assert.Equal(t, []string{lookup}, calls(b.api))
			assert.Len(t, b.api.Droplets(), 1)
		})
	}

	t.Run("upper-case name and tags are the same", func(t *testing.T) {
		t.Parallel()
		b := setup(t, config{})
		id := b.api.AddDroplet("T-1", "HATCHERY:MANAGED", "Hatchery:Name:T-1", strings.ToUpper(digitalocean.LabelTag(tenantLabel, tenantID)))
		srv, err := b.p.Create(context.Background(), request("t-1"))
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(id), srv.ID)
	})
	t.Run("a droplet being destroyed is not in the way", func(t *testing.T) {
		t.Parallel()
		b := setup(t, config{})
		old := b.api.AddDroplet("t-1")
		b.api.SetStatus(old, "archive")
		srv, err := b.p.Create(context.Background(), request("t-1"))
		require.NoError(t, err)
		assert.NotEqual(t, strconv.Itoa(old), srv.ID)
	})
}

// Everything that can be checked without the API is, before any request.
func TestCreateRefusesBeforeSending(t *testing.T) {
	t.Parallel()
	big := append([]byte("#cloud-config\n"), bytes.Repeat([]byte("#"), digitalocean.MaxUserData)...)
	long := strings.Repeat("k", 240)
	for _, tc := range []struct {
		name string
		req  provider.CreateRequest
		msg  string
	}{
		{"user_data over 64 KiB", provider.CreateRequest{Name: "t-1", UserData: big[:digitalocean.MaxUserData+1]}, "65537 bytes, over DigitalOcean's limit of 65536"},
		{"bad name", provider.CreateRequest{Name: "T_1"}, "hostname"},
		{"empty name", provider.CreateRequest{}, "empty server name"},
		{"label too long as a tag", provider.CreateRequest{Name: "t-1", Labels: map[string]string{long: "value/with/slashes"}}, "over DigitalOcean's limit of 255"},
		{"empty label key", provider.CreateRequest{Name: "t-1", Labels: map[string]string{"": "x"}}, "empty label key"},
		{"marker overridden", provider.CreateRequest{Name: "t-1", Labels: map[string]string{digitalocean.ManagedLabel: "false"}}, "driver's own"},
		{"GPU size", provider.CreateRequest{Name: "t-1", ServerType: "gpu-h100x1-80gb"}, "GPU droplets"},
		{"bad size", provider.CreateRequest{Name: "t-1", ServerType: "S 1"}, "not a size slug"},
		{"bad location", provider.CreateRequest{Name: "t-1", Location: "FRA1"}, "not a region slug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{})
			_, err := b.p.Create(context.Background(), tc.req)
			require.ErrorIs(t, err, provider.ErrInvalid)
			assert.ErrorContains(t, err, tc.msg)
			assert.Equal(t, 0, b.api.Count("", ""), "nothing sent")
		})
	}

	t.Run("exactly 64 KiB is sent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, config{})
		_, err := b.p.Create(context.Background(), provider.CreateRequest{Name: "t-1", UserData: big[:digitalocean.MaxUserData]})
		require.NoError(t, err)
		assert.Len(t, b.api.Created()[0].UserData, digitalocean.MaxUserData)
	})
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*digitalocean.Options)
		msg  string
	}{
		{"ok", func(*digitalocean.Options) {}, ""},
		{"key by ID", func(o *digitalocean.Options) { o.SSHKeys = []string{"512190"} }, ""},
		{"no region", func(o *digitalocean.Options) { o.Region = "" }, ""},
		{"no SSH key", func(o *digitalocean.Options) { o.SSHKeys = nil }, "root password"},
		{"bad fingerprint", func(o *digitalocean.Options) { o.SSHKeys = []string{fingerprint, "SHA256:abc"} }, "SSHKeys[1]"},
		{"short fingerprint", func(o *digitalocean.Options) { o.SSHKeys = []string{"3b:16:bf"} }, "SSHKeys[0]"},
		{"zero key ID", func(o *digitalocean.Options) { o.SSHKeys = []string{"0"} }, "SSHKeys[0]"},
		{"no size", func(o *digitalocean.Options) { o.Size = "" }, "empty Size"},
		{"GPU size", func(o *digitalocean.Options) { o.Size = "gpu-h100x1-80gb" }, "GPU droplets"},
		{"no image", func(o *digitalocean.Options) { o.Image = "" }, "empty Image"},
		{"bad region", func(o *digitalocean.Options) { o.Region = "Frankfurt 1" }, "region slug"},
		{"bad VPC", func(o *digitalocean.Options) { o.VPC = "default" }, "VPC UUID"},
		{"bad tag", func(o *digitalocean.Options) { o.Tags = []string{"a b"} }, "letters, digits"},
		{"reserved tag", func(o *digitalocean.Options) { o.Tags = []string{"Hatchery:Managed"} }, "driver's own"},
		{"bad label", func(o *digitalocean.Options) { o.Labels = map[string]string{"": "x"} }, "empty label key"},
		{"marker", func(o *digitalocean.Options) { o.Labels = map[string]string{digitalocean.ManagedLabel: "no"} }, "driver's own"},
		{"negative delay", func(o *digitalocean.Options) { o.LookupDelay = -time.Second }, "LookupDelay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := defaultOptions()
			tc.mod(&o)
			err := o.Validate()
			if tc.msg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, provider.ErrInvalid)
			assert.ErrorContains(t, err, tc.msg)

			// New does not fail; Init and Create report the error.
			b := setup(t, config{opts: o})
			require.ErrorIs(t, b.p.Init(context.Background()), provider.ErrInvalid)
			_, err = b.p.Create(context.Background(), request("t-1"))
			require.ErrorIs(t, err, provider.ErrInvalid)
			assert.Equal(t, 0, b.api.Count("", ""))
		})
	}
}

// A client that retries creates on its own would make duplicates: New
// refuses it, NewClient refuses the option.
func TestRetryingClientRefused(t *testing.T) {
	t.Parallel()
	p := digitalocean.New(godo.NewFromToken("t"), defaultOptions())
	_, err := p.Create(context.Background(), request("t-1"))
	require.ErrorIs(t, err, provider.ErrInvalid)
	assert.ErrorContains(t, err, "retries creates")
	require.ErrorIs(t, p.Init(context.Background()), provider.ErrInvalid)

	_, err = digitalocean.NewClient("t", godo.WithRetryAndBackoffs(godo.RetryConfig{RetryMax: 3}))
	require.ErrorIs(t, err, provider.ErrInvalid)
	_, err = digitalocean.NewClient("t", godo.SetBaseURL(":bad"))
	require.Error(t, err)

	p = digitalocean.New(nil, defaultOptions())
	_, err = p.Create(context.Background(), request("t-1"))
	require.ErrorIs(t, err, provider.ErrInvalid)
	require.ErrorIs(t, p.CheckCredentials(context.Background()), provider.ErrInvalid)
	_, err = p.List(context.Background(), nil)
	require.ErrorIs(t, err, provider.ErrInvalid)
}

// NewClient's client sends the token and works with the driver.
func TestNewClient(t *testing.T) {
	t.Parallel()
	api := dotest.New(dotest.Options{Token: token})
	defer api.Close()
	api.AddSSHKey("ops", fingerprint)
	client, err := digitalocean.NewClient(" "+token+"\n", godo.SetBaseURL(api.URL()))
	require.NoError(t, err)
	p := digitalocean.New(client, defaultOptions())
	require.NoError(t, p.Init(context.Background()))
	_, err = p.Create(context.Background(), request("t-1"))
	require.NoError(t, err)

	bad, err := digitalocean.NewClient("wrong", godo.SetBaseURL(api.URL()))
	require.NoError(t, err)
	err = digitalocean.New(bad, defaultOptions()).CheckCredentials(context.Background())
	require.ErrorIs(t, err, provider.ErrUnauthorized)
}

func TestGetAndDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	created, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	b.api.Reset()

	got, err := b.p.Get(ctx, created.ID)
	require.NoError(t, err)
	assert.Equal(t, created.ID, got.ID)
	assert.Equal(t, "active", got.Status)
	assert.Equal(t, "true", got.Labels[digitalocean.ManagedLabel])
	assert.Equal(t, tenantID, got.Labels[tenantLabel])
	assert.Equal(t, "s-1vcpu-2gb", got.ServerType)
	assert.Equal(t, "fra1", got.Location)
	assert.False(t, got.Created.IsZero())

	require.NoError(t, b.p.Delete(ctx, created.ID))
	assert.Empty(t, b.api.Droplets())
	_, err = b.p.Get(ctx, created.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
	require.NoError(t, b.p.Delete(ctx, created.ID), "deleting a missing droplet succeeds")
	assert.Equal(t, 4, b.api.Count("", ""), "one request per call")

	// A droplet being destroyed is gone.
	archived := b.api.AddDroplet("t-2", digitalocean.ManagedTag)
	b.api.SetStatus(archived, "archive")
	_, err = b.p.Get(ctx, strconv.Itoa(archived))
	require.ErrorIs(t, err, provider.ErrNotFound)
	listed, err := b.p.List(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, listed)
	b.api.Reset()

	for _, id := range []string{"", "abc", "-1", "0", "012", "1.5"} {
		_, err = b.p.Get(ctx, id)
		require.ErrorIs(t, err, provider.ErrInvalid, "id %q", id)
		require.ErrorIs(t, b.p.Delete(ctx, id), provider.ErrInvalid, "id %q", id)
	}
	assert.Equal(t, 0, b.api.Count("", ""))
}

// TestErrorsMapped checks every translation of an API error, the cause
// kept.
func TestErrorsMapped(t *testing.T) {
	t.Parallel()
	createOp := func(ctx context.Context, b *bundle) error {
		_, err := b.p.Create(ctx, request("t-1"))
		return err
	}
	getOp := func(ctx context.Context, b *bundle) error {
		_, err := b.p.Get(ctx, "42")
		return err
	}
	post := func(status int, id, msg string, n int) []dotest.Fault {
		f := make([]dotest.Fault, n)
		for i := range f {
			f[i] = dotest.Fault{Method: http.MethodPost, Status: status, ID: id, Message: msg}
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		faults []dotest.Fault
		op     func(context.Context, *bundle) error
		want   error // the provider error; nil: none of them
		posts  int   // create requests sent
		status int   // the godo status kept; 0: no ErrorResponse
	}{
		{"droplet limit", post(422, "unprocessable_entity", dotest.MsgDropletLimit, 1), createOp, provider.ErrQuota, 1, 422},
		{"size unavailable", post(422, "unprocessable_entity", dotest.MsgSizeUnavailable, 1), createOp, provider.ErrUnavailable, 1, 422},
		{"region unavailable", post(422, "unprocessable_entity", dotest.MsgRegionUnavailable, 1), createOp, provider.ErrUnavailable, 1, 422},
		{"invalid size", post(422, "unprocessable_entity", dotest.MsgInvalidSize, 1), createOp, provider.ErrInvalid, 1, 422},
		{"bad request", post(400, "bad_request", "bad JSON", 1), createOp, provider.ErrInvalid, 1, 400},
		{"401 is final", post(401, "unauthorized", dotest.MsgUnauthorized, 1), createOp, provider.ErrUnauthorized, 1, 401},
		{"403 is final", post(403, "forbidden", "You do not have access for the attempted action.", 1), createOp, provider.ErrUnauthorized, 1, 403},
		{"401 on the lookup", []dotest.Fault{{Method: http.MethodGet, Status: 401, ID: "unauthorized"}}, createOp, provider.ErrUnauthorized, 0, 401},
		// The Transport retries a 429 five times, then gives up.
		{"429", post(429, "too_many_requests", dotest.MsgRateLimited, 6), createOp, provider.ErrRateLimited, 6, 429},
		{"not found", nil, getOp, provider.ErrNotFound, 0, 404},
		{"not found on delete is success", nil, func(ctx context.Context, b *bundle) error { return b.p.Delete(ctx, "42") }, nil, 0, 0},
		{"401 on get", []dotest.Fault{{Method: http.MethodGet, Status: 401, ID: "unauthorized"}}, getOp, provider.ErrUnauthorized, 0, 401},
		{"pending event on delete", []dotest.Fault{{Method: http.MethodDelete, Status: 422, ID: "unprocessable_entity", Message: dotest.MsgPendingEvent}},
			func(ctx context.Context, b *bundle) error {
				return b.p.Delete(ctx, strconv.Itoa(b.api.AddDroplet("x")))
			}, nil, 0, 422},
		// A GET is retried five times after a 5xx, then the error is passed on.
		{"500 on get", []dotest.Fault{{Method: http.MethodGet, Status: 500}, {Method: http.MethodGet, Status: 500}, {Method: http.MethodGet, Status: 500},
			{Method: http.MethodGet, Status: 500}, {Method: http.MethodGet, Status: 500}, {Method: http.MethodGet, Status: 500}}, getOp, nil, 0, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{tr: func(tr *digitalocean.Transport) { tr.RetryDelay = 2 * time.Millisecond }})
			b.api.Inject(tc.faults...)
			err := tc.op(context.Background(), b)
			if tc.want == nil && tc.status == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, e := range []error{provider.ErrNotFound, provider.ErrQuota, provider.ErrUnavailable,
				provider.ErrRateLimited, provider.ErrConflict, provider.ErrInvalid, provider.ErrUnauthorized} {
				assert.Equal(t, e == tc.want, errors.Is(err, e), "errors.Is(%v, %v)", err, e)
			}
			var er *godo.ErrorResponse
			require.ErrorAs(t, err, &er, "cause kept")
			assert.Equal(t, tc.status, er.Response.StatusCode)
			assert.Equal(t, tc.posts, b.api.Count(http.MethodPost, ""))
			assert.NotContains(t, err.Error(), token)
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	tenants := []string{"aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002", "aaaaaaaa-0000-4000-8000-000000000003"}
	var ids []string
	for i, id := range tenants {
		req := request("t-" + strconv.Itoa(i))
		req.Labels = map[string]string{tenantLabel: id, "hatchery.dev/plane": "cp-1"}
		if i == 2 {
			req.Labels["hatchery.dev/plane"] = "cp-2"
		}
		srv, err := b.p.Create(ctx, req)
		require.NoError(t, err)
		ids = append(ids, srv.ID)
	}
	b.api.AddDroplet("foreign")
	b.api.AddDroplet("imposter", digitalocean.NameTag("imposter"), digitalocean.LabelTag(tenantLabel, tenants[0]))
	b.api.Reset()

	for _, tc := range []struct {
		name     string
		selector map[string]string
		want     []string
		tag      string
	}{
		{"all of ours", nil, ids, digitalocean.ManagedTag},
		{"managed", map[string]string{digitalocean.ManagedLabel: "true"}, ids, digitalocean.ManagedTag},
		{"tenant", map[string]string{tenantLabel: tenants[0]}, ids[:1], digitalocean.LabelTag(tenantLabel, tenants[0])},
		{"plane", map[string]string{"hatchery.dev/plane": "cp-1"}, ids[:2], digitalocean.LabelTag("hatchery.dev/plane", "cp-1")},
		// The first label in key order chooses the tag ("hatchery-" < "hatchery.").
		{"both", map[string]string{"hatchery.dev/plane": "cp-1", tenantLabel: tenants[2]}, nil, digitalocean.LabelTag(tenantLabel, tenants[2])},
		{"both, one match", map[string]string{"hatchery.dev/plane": "cp-2", tenantLabel: tenants[2]}, ids[2:], digitalocean.LabelTag(tenantLabel, tenants[2])},
		{"nobody", map[string]string{tenantLabel: "none"}, nil, digitalocean.LabelTag(tenantLabel, "none")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.api.Reset()
			got, err := b.p.List(ctx, tc.selector)
			require.NoError(t, err)
			var gotIDs []string
			for _, s := range got {
				gotIDs = append(gotIDs, s.ID)
				assert.Equal(t, "true", s.Labels[digitalocean.ManagedLabel])
			}
			assert.Equal(t, tc.want, gotIDs)
			reqs := b.api.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, tc.tag, reqs[0].Query.Get("tag_name"))
		})
	}

	_, err := b.p.List(ctx, map[string]string{strings.Repeat("k", 300): "v"})
	require.ErrorIs(t, err, provider.ErrInvalid)
}

// List pages through 200 droplets a request.
func TestListPages(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	for i := range 450 {
		b.api.AddDroplet("t-"+strconv.Itoa(i), digitalocean.ManagedTag, digitalocean.NameTag("t-"+strconv.Itoa(i)))
	}
	got, err := b.p.List(context.Background(), nil)
	require.NoError(t, err)
	assert.Len(t, got, 450)
	assert.Equal(t, 3, b.api.Count(http.MethodGet, "/v2/droplets"))
	for i := 1; i < len(got); i++ {
		assert.Less(t, atoi(t, got[i-1].ID), atoi(t, got[i].ID))
	}
}

func TestCheckCredentialsAndInit(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	require.NoError(t, b.p.CheckCredentials(ctx))
	assert.Equal(t, []string{account}, calls(b.api))

	b.api.Reset()
	require.NoError(t, b.p.Init(ctx))
	assert.Equal(t, []string{account, "GET /v2/account/keys/" + fingerprint}, calls(b.api))

	b.api.Inject(dotest.Fault{Path: "/v2/account", Status: 403, ID: "forbidden"})
	require.ErrorIs(t, b.p.CheckCredentials(ctx), provider.ErrUnauthorized)
	b.api.Inject(dotest.Fault{Path: "/v2/account", Status: 500}, dotest.Fault{Path: "/v2/account", Status: 503})
	require.NoError(t, b.p.CheckCredentials(ctx), "5xx retried")

	opts := defaultOptions()
	opts.SSHKeys = []string{fingerprint, "4242"}
	missing := setup(t, config{opts: opts})
	err := missing.p.Init(ctx)
	require.ErrorIs(t, err, provider.ErrInvalid)
	assert.ErrorContains(t, err, "SSH key 4242 is not in the account")
	assert.NotErrorIs(t, err, provider.ErrNotFound, "a missing key is not a missing server")
}

func TestOptionalAbilities(t *testing.T) {
	t.Parallel()
	var p provider.Provider = digitalocean.New(nil, defaultOptions())
	assert.Equal(t, "3000001", p.(provider.InstanceIDer).InstanceID("3000001"))
	assert.Equal(t, 65536, p.(provider.UserDataLimiter).MaxUserData())
	assert.Equal(t, dotest.MaxUserData, digitalocean.MaxUserData)
	_, ok := p.(provider.Lister)
	assert.True(t, ok)
	_, ok = p.(provider.CredentialChecker)
	assert.True(t, ok)
}

// A Create waiting for its name's lock or for the lookup delay ends with
// its context.
func TestCreateCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t, config{opts: withDelay(defaultOptions(), time.Hour)})
	b.api.Inject(dotest.Fault{Method: http.MethodPost, Status: 500})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, context.Canceled)
	assert.ErrorContains(t, err, "outcome unknown")
	assert.Less(t, time.Since(start), 5*time.Second)

	// Canceled before anything: nothing sent.
	b.api.Reset()
	_, err = b.p.Create(ctx, request("t-2"))
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, b.api.Count(http.MethodPost, ""))
}

// A Create waiting for another Create of its name gives up with its
// context, having sent nothing; the lock is free again afterwards.
func TestCreateWaitingForItsNameCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	hold := make(chan struct{})
	b.api.Inject(dotest.Fault{Method: http.MethodPost, Hold: hold})
	first := make(chan error, 1)
	go func() {
		_, err := b.p.Create(context.Background(), request("t-1"))
		first <- err
	}()
	require.Eventually(t, func() bool { return b.api.Count(http.MethodPost, "") == 1 }, 10*time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 2, b.api.Count("", ""), "the second Create sent nothing")

	close(hold)
	require.NoError(t, <-first)
	srv, err := b.p.Create(context.Background(), request("t-1"))
	require.NoError(t, err)
	assert.Len(t, b.api.Droplets(), 1)
	assert.Equal(t, strconv.Itoa(b.api.Droplets()[0].ID), srv.ID)
}

// TestRateLimitRemaining checks that the Provider reports the budget that
// the API's last answer gave, and nothing before any did or when the API
// sends no RateLimit headers.
func TestRateLimitRemaining(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, config{api: dotest.Options{RateLimit: 100}})
	_, ok := b.p.RateLimitRemaining()
	assert.False(t, ok, "no answer yet")
	_, err := b.p.Get(ctx, "424242")
	require.ErrorIs(t, err, provider.ErrNotFound)
	left, ok := b.p.RateLimitRemaining()
	require.True(t, ok)
	assert.Equal(t, 99, left, "an error answer counts too")
	_, err = b.p.List(ctx, nil)
	require.NoError(t, err)
	left, _ = b.p.RateLimitRemaining()
	assert.Equal(t, 98, left)

	unmetered := setup(t, config{})
	_, err = unmetered.p.Get(ctx, "424242")
	require.ErrorIs(t, err, provider.ErrNotFound)
	_, ok = unmetered.p.RateLimitRemaining()
	assert.False(t, ok, "no RateLimit headers: unknown")
}
