package digitalocean_test

import (
	"bytes"
	"cmp"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/dotest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
)

const (
	userData    = "#cloud-config\nhostname: t-1\n"
	fingerprint = "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"
	token       = "secret-token-4f1e"
	tenantLabel = "hatchery-tenant"
	tenantID    = "0b6e2f7c-5d1a-4c3e-9f2b-8a7d6c5b4a3f"
)

type bundle struct {
	api *dotest.API
	tr  *digitalocean.Transport
	p   *digitalocean.Provider
	log *lockedBuffer
}

type config struct {
	api  dotest.Options
	opts digitalocean.Options // zero: defaultOptions()
	tr   func(*digitalocean.Transport)
	// headerTimeout is how long the client waits for an answer; 0 means
	// 10 s.
	headerTimeout time.Duration
}

func defaultOptions() digitalocean.Options {
	return digitalocean.Options{
		Size: "s-1vcpu-2gb", Image: "ubuntu-24-04-x64", Region: "fra1",
		SSHKeys: []string{fingerprint},
	}
}

// setup starts a fake API and a Provider whose client paces and retries
// with delays short enough for tests. LookupDelay is 50 ms unless set.
func setup(t *testing.T, cfg config) *bundle {
	t.Helper()
	cfg.api.Token = token
	api := dotest.New(cfg.api)
	t.Cleanup(api.Close)
	api.AddSSHKey("ops", fingerprint)
	log := &lockedBuffer{}
	tr, client := newClient(t, api, cfg, log)
	opts := cfg.opts
	if opts.Size == "" && opts.Image == "" {
		opts = defaultOptions()
	}
	opts.LookupDelay = cmp.Or(opts.LookupDelay, 50*time.Millisecond)
	opts.Logger = log.logger()
	return &bundle{api: api, tr: tr, p: digitalocean.New(client, opts), log: log}
}

// newClient returns a godo client for api through a new Transport.
func newClient(t *testing.T, api *dotest.API, cfg config, log *lockedBuffer) (*digitalocean.Transport, *godo.Client) {
	t.Helper()
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = cmp.Or(cfg.headerTimeout, 10*time.Second)
	t.Cleanup(base.CloseIdleConnections)
	tr := &digitalocean.Transport{Base: base, RetryDelay: 20 * time.Millisecond, Logger: log.logger()}
	if cfg.tr != nil {
		cfg.tr(tr)
	}
	client, err := godo.New(&http.Client{Transport: tr},
		godo.SetBaseURL(api.URL()), godo.SetRequestHeaders(map[string]string{"Authorization": "Bearer " + token}))
	require.NoError(t, err)
	return tr, client
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *lockedBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func request(name string) provider.CreateRequest {
	return provider.CreateRequest{
		Name:     name,
		UserData: []byte(userData),
		Labels:   map[string]string{tenantLabel: tenantID},
	}
}

// calls lists the requests the API received as "METHOD /path".
func calls(api *dotest.API) []string {
	var out []string
	for _, r := range api.Requests() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

const (
	lookup  = "GET /v2/droplets"
	post    = "POST /v2/droplets"
	account = "GET /v2/account"
)
