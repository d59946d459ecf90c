package hetzner_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/internal/hcloudtest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
)

const userData = "#cloud-config\nhostname: t-1\n"

type bundle struct {
	api *hcloudtest.API
	tr  *hetzner.Transport
	p   *hetzner.Provider
	log *bytes.Buffer
}

type config struct {
	api  hcloudtest.Options
	opts hetzner.Options
	tr   func(*hetzner.Transport)
	// headerTimeout is how long the client waits for an answer before
	// hcloud-go retries; 0 means 10 s.
	headerTimeout time.Duration
}

func defaultOptions() hetzner.Options {
	return hetzner.Options{ServerType: "cx22", Image: "ubuntu-24.04", Location: "fsn1"}
}

// setup starts a fake API and a Provider on a client whose retries and
// timeouts are short enough for tests.
func setup(t *testing.T, cfg config) *bundle {
	t.Helper()
	api := hcloudtest.New(cfg.api)
	t.Cleanup(api.Close)
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = cmp.Or(cfg.headerTimeout, 10*time.Second)
	t.Cleanup(base.CloseIdleConnections)
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr := &hetzner.Transport{Base: base, RetryDelay: 50 * time.Millisecond, Logger: logger}
	if cfg.tr != nil {
		cfg.tr(tr)
	}
	client := hetzner.NewClient("secret-token",
		hcloud.WithEndpoint(api.URL()),
		hcloud.WithHTTPClient(&http.Client{Transport: tr}),
		hcloud.WithRetryOpts(hcloud.RetryOpts{BackoffFunc: hcloud.ConstantBackoff(10 * time.Millisecond), MaxRetries: 5}),
	)
	opts := cfg.opts
	if opts.ServerType == "" && opts.Image == "" {
		opts = defaultOptions()
	}
	opts.Logger = logger
	return &bundle{api: api, tr: tr, p: hetzner.New(client, opts), log: &log}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

func request(name string) provider.CreateRequest {
	return provider.CreateRequest{
		Name:     name,
		UserData: []byte(userData),
		Labels:   map[string]string{"hatchery.dev/tenant": name},
	}
}

func TestCreateSendsOneRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, config{opts: hetzner.Options{
		ServerType: "cx22", Image: "ubuntu-24.04", Location: "nbg1",
		SSHKeys:   []string{"ops", "deploy"},
		Firewalls: []int64{7}, Networks: []int64{9},
		Labels: map[string]string{"env": "test", "hatchery.dev/tenant": "overridden"},
	}})
	ops := b.api.AddSSHKey("ops", "ssh-ed25519 AAAA ops")
	deploy := b.api.AddSSHKey("deploy", "ssh-ed25519 AAAA deploy")
	b.api.AddSSHKey("other", "ssh-ed25519 AAAA other")
	ctx := context.Background()

	require.NoError(t, b.p.Init(ctx))
	assert.Equal(t, 1, b.api.Count(http.MethodGet, "/ssh_keys"))
	b.api.Reset()

	srv, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	reqs := b.api.Requests()
	require.Len(t, reqs, 1, "the happy path costs one request")
	assert.Equal(t, http.MethodPost, reqs[0].Method)
	assert.Equal(t, "/servers", reqs[0].Path)

	created := b.api.Created()
	require.Len(t, created, 1)
	body := created[0]
	assert.Equal(t, "t-1", body.Name)
	assert.Equal(t, "cx22", body.ServerType.Name)
	assert.Equal(t, "ubuntu-24.04", body.Image.Name)
	assert.Equal(t, "nbg1", body.Location)
	assert.Equal(t, userData, body.UserData)
	assert.Equal(t, []int64{ops, deploy}, body.SSHKeys)
	assert.Equal(t, []int64{9}, body.Networks)
	require.Len(t, body.Firewalls, 1)
	assert.Equal(t, int64(7), body.Firewalls[0].Firewall)
	require.NotNil(t, body.Labels)
	assert.Equal(t, map[string]string{
		"env": "test", "hatchery.dev/tenant": "t-1", hetzner.ManagedLabel: "true",
	}, *body.Labels)

	stored := b.api.Servers()
	require.Len(t, stored, 1)
	assert.Equal(t, provider.Server{
		ID:         "1000004",
		Name:       "t-1",
		IPv4:       "203.0.113.5",
		IPv6:       "2001:db8:4::1",
		Status:     "initializing",
		Labels:     map[string]string{"env": "test", "hatchery.dev/tenant": "t-1", hetzner.ManagedLabel: "true"},
		ServerType: "cx22",
		Location:   "nbg1",
		Created:    stored[0].Created,
	}, srv)
	assert.False(t, srv.Created.IsZero())
	assert.Equal(t, net.JoinHostPort(srv.IPv4, "22"), srv.Addr())

	// Further creates cost one request each too.
	for _, name := range []string{"t-2", "t-3"} {
		_, err := b.p.Create(ctx, request(name))
		require.NoError(t, err)
	}
	assert.Equal(t, 3, b.api.Count("", ""))
	assert.Equal(t, 3, b.api.Count(http.MethodPost, "/servers"))
}

func TestCreateResolvesKeysOnce(t *testing.T) {
	t.Parallel()
	opts := defaultOptions()
	opts.SSHKeys = []string{"ops"}
	b := setup(t, config{opts: opts})
	ctx := context.Background()

	// A missing key fails, changes nothing, and is looked up again next time.
	_, err := b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, provider.ErrInvalid)
	assert.Contains(t, err.Error(), `ssh key "ops" not found`)
	assert.Equal(t, 0, b.api.Count(http.MethodPost, "/servers"))
	b.api.AddSSHKey("ops", "ssh-ed25519 AAAA ops")
	b.api.Reset()

	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = b.p.Create(ctx, request("t-"+strconv.Itoa(i)))
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 1, b.api.Count(http.MethodGet, "/ssh_keys"), "keys resolved once")
	assert.Equal(t, 10, b.api.Count(http.MethodPost, "/servers"))
}

func TestCreateKeyByID(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	id := b.api.AddSSHKey("ops", "ssh-ed25519 AAAA ops")
	opts := defaultOptions()
	opts.SSHKeys = []string{"1000001"}
	client := hetzner.NewClient("t", hcloud.WithEndpoint(b.api.URL()))
	p := hetzner.New(client, opts)
	_, err := p.Create(context.Background(), request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, []int64{id}, b.api.Created()[0].SSHKeys)
}

func TestCreateAdoptsAfterLostResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault hcloudtest.Fault
	}{
		// The answer never comes: the client times out, hcloud-go retries
		// the POST and gets uniqueness_error.
		{"hang", hcloudtest.Fault{Method: http.MethodPost, Path: "/servers", Hang: true}},
		// A gateway answers 504 after the server was created.
		{"gateway timeout", hcloudtest.Fault{Method: http.MethodPost, Path: "/servers", After: true, Status: http.StatusGatewayTimeout}},
		{"timeout code", hcloudtest.Fault{Method: http.MethodPost, Path: "/servers", After: true, Status: http.StatusGatewayTimeout, Code: "timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{headerTimeout: 300 * time.Millisecond})
			b.api.Inject(tc.fault)
			srv, err := b.p.Create(context.Background(), request("t-1"))
			require.NoError(t, err)

			stored := b.api.Servers()
			require.Len(t, stored, 1, "one server, not two")
			assert.Equal(t, "1000001", srv.ID)
			assert.Equal(t, stored[0].PublicNet.IPv4.IP, srv.IPv4)
			assert.Equal(t, "running", srv.Status)
			assert.Equal(t, 2, b.api.Count(http.MethodPost, "/servers"))
			assert.Equal(t, 1, b.api.Count(http.MethodGet, "/servers"))
			assert.Equal(t, 3, b.api.Count("", ""))
			assert.Contains(t, b.log.String(), "adopted existing server")
		})
	}
}

func TestCreateAdoptsAfterCrash(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	first, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)

	// The caller crashed before recording first; it creates again.
	again, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Equal(t, first.IPv4, again.IPv4)
	assert.Len(t, b.api.Servers(), 1)
	assert.Equal(t, 2, b.api.Count(http.MethodPost, "/servers"))
	assert.Equal(t, 1, b.api.Count(http.MethodGet, "/servers"))
}

func TestCreateConflict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"foreign server", nil},
		{"not marked", map[string]string{"hatchery.dev/tenant": "t-1"}},
		{"other tenant", map[string]string{hetzner.ManagedLabel: "true", "hatchery.dev/tenant": "t-2"}},
		{"no tenant label", map[string]string{hetzner.ManagedLabel: "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{})
			b.api.AddServer("t-1", tc.labels)
			_, err := b.p.Create(context.Background(), request("t-1"))
			require.ErrorIs(t, err, provider.ErrConflict)
			assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeUniquenessError), "cause kept: %v", err)
			assert.Equal(t, 1, b.api.Count(http.MethodPost, "/servers"))
			assert.Equal(t, 1, b.api.Count(http.MethodGet, "/servers"))
			assert.Len(t, b.api.Servers(), 1)
		})
	}
}

func TestCreateNameTakenButGone(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	// The API says the name is taken, but the lookup finds nothing: not a
	// conflict, the caller may try again.
	b.api.Inject(hcloudtest.Fault{Method: http.MethodPost, Path: "/servers", Status: http.StatusConflict, Code: "uniqueness_error"})
	_, err := b.p.Create(context.Background(), request("t-1"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, provider.ErrConflict)
	assert.True(t, hcloud.IsError(err, hcloud.ErrorCodeUniquenessError))
	assert.Contains(t, err.Error(), "no server by that name")
}

func TestCreateRefusesBeforeSending(t *testing.T) {
	t.Parallel()
	big := append([]byte("#cloud-config\n"), bytes.Repeat([]byte("#"), cloudinit.MaxSize)...)
	for _, tc := range []struct {
		name string
		req  provider.CreateRequest
		msg  string
	}{
		{"user_data over 32 KiB", provider.CreateRequest{Name: "t-1", UserData: big[:cloudinit.MaxSize+1]}, "32769 bytes, over Hetzner's limit of 32768"},
		{"bad name", provider.CreateRequest{Name: "T_1"}, "hostname"},
		{"bad label key", provider.CreateRequest{Name: "t-1", Labels: map[string]string{"-x": "y"}}, "label key"},
		{"bad label value", provider.CreateRequest{Name: "t-1", Labels: map[string]string{"x": "a b"}}, "label value"},
		{"marker overridden", provider.CreateRequest{Name: "t-1", Labels: map[string]string{hetzner.ManagedLabel: "false"}}, "driver's own"},
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

	t.Run("exactly 32 KiB is sent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, config{})
		_, err := b.p.Create(context.Background(), provider.CreateRequest{Name: "t-1", UserData: big[:cloudinit.MaxSize]})
		require.NoError(t, err)
		assert.Len(t, b.api.Created()[0].UserData, cloudinit.MaxSize)
	})
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*hetzner.Options)
		msg  string
	}{
		{"ok", func(*hetzner.Options) {}, ""},
		{"no server type", func(o *hetzner.Options) { o.ServerType = "" }, "ServerType"},
		{"no image", func(o *hetzner.Options) { o.Image = "" }, "Image"},
		{"empty key", func(o *hetzner.Options) { o.SSHKeys = []string{"ops", ""} }, "SSHKeys[1]"},
		{"bad firewall", func(o *hetzner.Options) { o.Firewalls = []int64{0} }, "Firewalls[0]"},
		{"bad network", func(o *hetzner.Options) { o.Networks = []int64{-1} }, "Networks[0]"},
		{"bad label", func(o *hetzner.Options) { o.Labels = map[string]string{"a/b/c": "x"} }, "label key"},
		{"marker", func(o *hetzner.Options) { o.Labels = map[string]string{hetzner.ManagedLabel: "no"} }, "driver's own"},
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
			assert.Contains(t, err.Error(), tc.msg)

			// New does not fail, Init and Create report the error.
			b := setup(t, config{opts: o})
			require.ErrorIs(t, b.p.Init(context.Background()), provider.ErrInvalid)
			_, err = b.p.Create(context.Background(), request("t-1"))
			require.ErrorIs(t, err, provider.ErrInvalid)
			assert.Equal(t, 0, b.api.Count("", ""))
		})
	}
}

func TestGetAndDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	created, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)

	got, err := b.p.Get(ctx, created.ID)
	require.NoError(t, err)
	assert.Equal(t, created.ID, got.ID)
	assert.Equal(t, created.IPv4, got.IPv4)
	assert.Equal(t, created.IPv6, got.IPv6)
	assert.Equal(t, "running", got.Status)
	assert.Equal(t, "true", got.Labels[hetzner.ManagedLabel])

	require.NoError(t, b.p.Delete(ctx, created.ID))
	assert.Empty(t, b.api.Servers())
	_, err = b.p.Get(ctx, created.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
	require.NoError(t, b.p.Delete(ctx, created.ID), "deleting a missing server succeeds")
	assert.Equal(t, 5, b.api.Count("", ""), "one request per call")

	for _, id := range []string{"", "abc", "-1", "0"} {
		_, err = b.p.Get(ctx, id)
		require.ErrorIs(t, err, provider.ErrInvalid, "id %q", id)
		require.ErrorIs(t, b.p.Delete(ctx, id), provider.ErrInvalid, "id %q", id)
	}
	assert.Equal(t, 5, b.api.Count("", ""))
}

// TestErrorsMapped checks every hcloud error the driver translates, the
// cause kept.
func TestErrorsMapped(t *testing.T) {
	t.Parallel()
	post := func(status int, code string, n int) []hcloudtest.Fault {
		f := make([]hcloudtest.Fault, n)
		for i := range f {
			f[i] = hcloudtest.Fault{Method: http.MethodPost, Path: "/servers", Status: status, Code: code}
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		faults []hcloudtest.Fault
		op     func(context.Context, *bundle) error
		want   error  // provider error; nil: none of them
		code   string // the hcloud code kept; "" when the cause is no hcloud error
	}{
		{"resource_limit_exceeded", post(403, "resource_limit_exceeded", 1), nil, provider.ErrQuota, "resource_limit_exceeded"},
		{"resource_unavailable", post(412, "resource_unavailable", 1), nil, provider.ErrUnavailable, "resource_unavailable"},
		{"placement_error", post(412, "placement_error", 1), nil, provider.ErrUnavailable, "placement_error"},
		{"uniqueness_error", post(409, "uniqueness_error", 1), func(ctx context.Context, b *bundle) error {
			b.api.AddServer("t-1", nil)
			_, err := b.p.Create(ctx, request("t-1"))
			return err
		}, provider.ErrConflict, "uniqueness_error"},
		// hcloud-go retries rate_limit_exceeded 5 times, then gives up.
		{"rate_limit_exceeded", post(429, "rate_limit_exceeded", 6), nil, provider.ErrRateLimited, "rate_limit_exceeded"},
		// The Transport retries a bare 429 5 times, then gives up.
		{"bare 429", post(429, "", 6), nil, provider.ErrRateLimited, ""},
		{"not_found", nil, func(ctx context.Context, b *bundle) error {
			_, err := b.p.Get(ctx, "42")
			return err
		}, provider.ErrNotFound, ""},
		{"not_found on delete is success", nil, func(ctx context.Context, b *bundle) error {
			return b.p.Delete(ctx, "42")
		}, nil, ""},
		{"invalid_input", post(400, "invalid_input", 1), nil, provider.ErrInvalid, "invalid_input"},
		{"forbidden", post(403, "forbidden", 1), nil, provider.ErrUnauthorized, "forbidden"},
		{"unauthorized", post(401, "unauthorized", 1), nil, provider.ErrUnauthorized, "unauthorized"},
		{"bare 401", post(401, "", 1), nil, provider.ErrUnauthorized, ""},
		{"500 is not retried", post(500, "server_error", 1), nil, nil, "server_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{tr: func(tr *hetzner.Transport) { tr.RetryDelay = 5 * time.Millisecond }})
			b.api.Inject(tc.faults...)
			op := tc.op
			if op == nil {
				op = func(ctx context.Context, b *bundle) error {
					_, err := b.p.Create(ctx, request("t-1"))
					return err
				}
			}
			err := op(context.Background(), b)
			if tc.want == nil && tc.code == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, e := range []error{provider.ErrNotFound, provider.ErrQuota, provider.ErrUnavailable,
				provider.ErrRateLimited, provider.ErrConflict, provider.ErrInvalid, provider.ErrUnauthorized} {
				assert.Equal(t, e == tc.want, errors.Is(err, e), "errors.Is(%v, %v)", err, e)
			}
			if tc.code != "" {
				assert.True(t, hcloud.IsError(err, hcloud.ErrorCode(tc.code)), "cause kept: %v", err)
			}
		})
	}
}

func TestRetryAfterReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault hcloudtest.Fault
	}{
		// hcloud-go retries after its 10 ms backoff; the Transport holds the
		// retry until RateLimit-Reset.
		{"429 rate_limit_exceeded", hcloudtest.Fault{Status: 429, Code: "rate_limit_exceeded", Reset: time.Second}},
		// hcloud-go does not retry these; the Transport does, after the reset.
		{"bare 429 with RateLimit-Reset", hcloudtest.Fault{Status: 429, Reset: time.Second}},
		{"bare 429 with Retry-After", hcloudtest.Fault{Status: 429, RetryAfter: time.Second}},
		{"503 with Retry-After", hcloudtest.Fault{Status: 503, RetryAfter: time.Second}},
		{"503 maintenance with Retry-After", hcloudtest.Fault{Status: 503, Code: "maintenance", RetryAfter: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{})
			tc.fault.Method, tc.fault.Path = http.MethodPost, "/servers"
			b.api.Inject(tc.fault)
			_, err := b.p.Create(context.Background(), request("t-1"))
			require.NoError(t, err)
			reqs := b.api.Requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, tc.fault.Status, reqs[0].Status)
			assert.Equal(t, http.StatusCreated, reqs[1].Status)
			var notBefore time.Time
			if tc.fault.Reset > 0 {
				// RateLimit-Reset is the Unix second, rounded up.
				notBefore = reqs[0].Time.Add(tc.fault.Reset).Truncate(time.Second)
			} else {
				notBefore = reqs[0].Time.Add(tc.fault.RetryAfter)
			}
			assert.False(t, reqs[1].Time.Before(notBefore), "retried at %v, before %v", reqs[1].Time, notBefore)
		})
	}
}

func TestServerErrorsRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    hcloudtest.Fault
	}{
		{"502 bare (hcloud-go)", hcloudtest.Fault{Status: 502}},
		{"502 bad_gateway (hcloud-go)", hcloudtest.Fault{Status: 502, Code: "bad_gateway"}},
		{"504 bare (hcloud-go)", hcloudtest.Fault{Status: 504}},
		{"503 bare (transport, backoff)", hcloudtest.Fault{Status: 503}},
		{"409 conflict (hcloud-go)", hcloudtest.Fault{Status: 409, Code: "conflict"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{})
			tc.f.Method, tc.f.Path = http.MethodPost, "/servers"
			b.api.Inject(tc.f, tc.f)
			srv, err := b.p.Create(context.Background(), request("t-1"))
			require.NoError(t, err)
			assert.NotEmpty(t, srv.ID)
			assert.Equal(t, 3, b.api.Count(http.MethodPost, "/servers"))
			assert.Len(t, b.api.Servers(), 1)
		})
	}
}

// TestGradualRefill checks Hetzner's documented budget: 3,600 requests an
// hour, one back per second, RateLimit-Reset when it is full again. With
// none left, the next request is due in about a second, not an hour.
func TestGradualRefill(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	b.api.Inject(hcloudtest.Fault{Method: http.MethodPost, Status: 429, Code: "rate_limit_exceeded", Reset: time.Hour, Limit: 3600})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	reqs := b.api.Requests()
	require.Len(t, reqs, 2)
	gap := reqs[1].Time.Sub(reqs[0].Time)
	assert.GreaterOrEqual(t, gap, 990*time.Millisecond)
	assert.Less(t, gap, 3*time.Second)
}

func TestRateLimitedWithinDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	b.api.Inject(hcloudtest.Fault{Method: http.MethodPost, Status: 429, Code: "rate_limit_exceeded", Reset: 60 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, provider.ErrRateLimited)
	var rl *hetzner.RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.WithinDuration(t, start.Add(60*time.Second), rl.Until, 2*time.Second)
	assert.Less(t, time.Since(start), 10*time.Second, "fails at once instead of waiting for the deadline")
	assert.Equal(t, 1, b.api.Count("", ""))

	// A bare 503 whose retry would outlast the deadline is returned as it is.
	b2 := setup(t, config{tr: func(tr *hetzner.Transport) { tr.RetryDelay = time.Minute }})
	b2.api.Inject(hcloudtest.Fault{Method: http.MethodPost, Status: 503})
	_, err = b2.p.Create(ctx, request("t-1"))
	require.Error(t, err)
	assert.ErrorIs(t, err, hcloud.ErrStatusCode)
	assert.Equal(t, 1, b2.api.Count("", ""))
}

func TestCanceledWhileWaiting(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	b.api.Inject(hcloudtest.Fault{Method: http.MethodPost, Status: 429, Reset: 30 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.p.Create(ctx, request("t-1"))
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestPacing sends bursts of concurrent creates at an API with a small
// budget: the Transport must keep every request within it.
func TestPacing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		api   hcloudtest.Options
		fixed bool
	}{
		// Hetzner's bucket: 20 requests, one back every 25 ms.
		{"bucket", hcloudtest.Options{RateLimit: 20, RefillInterval: 25 * time.Millisecond}, false},
		// Fixed windows: 25 requests per second, with WaitForReset.
		{"fixed windows", hcloudtest.Options{RateLimit: 25, Window: time.Second}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, config{api: tc.api, tr: func(tr *hetzner.Transport) { tr.WaitForReset = tc.fixed }})
			const n = 50
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := time.Now()
			for i := range n {
				wg.Go(func() {
					_, errs[i] = b.p.Create(context.Background(), request("t-"+strconv.Itoa(i)))
				})
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			assert.Equal(t, 0, b.api.Throttled(), "429s seen by the API")
			assert.Equal(t, n, b.api.Count(http.MethodPost, "/servers"))
			assert.Len(t, b.api.Servers(), n)
			t.Logf("%d creates in %v", n, time.Since(start))
		})
	}
}

// TestNoSecretsLogged checks that neither the user-data nor the token
// reaches the logs, even with debug logging and retries.
func TestNoSecretsLogged(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	b.api.Inject(hcloudtest.Fault{Method: http.MethodPost, Status: 503})
	b.api.Inject(hcloudtest.Fault{Method: http.MethodPost, Status: 429})
	req := request("t-1")
	req.UserData = []byte("#cloud-config\nhostname: very-distinctive-user-data\n")
	_, err := b.p.Create(context.Background(), req)
	require.NoError(t, err)
	log := b.log.String()
	assert.Contains(t, log, "hetzner: retrying")
	assert.NotContains(t, log, "very-distinctive-user-data")
	assert.NotContains(t, log, "secret-token")
	assert.False(t, strings.Contains(log, "cloud-config"))
}
