// Package hcloudtest is a fake Hetzner Cloud API for tests: an
// httptest.Server that speaks hcloud-go's own schema types
// (github.com/hetznercloud/hcloud-go/v2/hcloud/schema), keeps servers and
// SSH keys in memory, counts every request, rate-limits like Hetzner and
// injects faults on demand.
//
// # What it serves
//
// Under URL() (which ends in /v1, like hcloud.Endpoint):
//
//	POST   /servers          create (name unique, user_data <= 32 KiB, labels checked)
//	GET    /servers          list, ?name= filter, paginated
//	GET    /servers/{id}     one server
//	DELETE /servers/{id}     delete
//	GET    /ssh_keys         list, ?name= filter, paginated
//
// Errors are hcloud error bodies ({"error":{"code":...,"message":...}}) with
// the status codes Hetzner uses. Anything else is a not_found error.
//
// # Rate limits
//
// With Options.RateLimit set, every request takes one token from a bucket of
// that size that gets one token back every Options.RefillInterval, which is
// how Hetzner documents its limit (3,600 requests, one back per second).
// Every response carries RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (the Unix second at which the bucket is full again,
// rounded up, as Hetzner sends it). A request with no token left is answered
// 429 rate_limit_exceeded and counted in Throttled. Options.Window switches to
// fixed windows instead: RateLimit requests per window, all back at its end.
//
// # Faults
//
// Inject queues Faults; each matching request consumes the first one that
// matches it. A Fault answers with an error status, with or without an hcloud
// error body, with Retry-After or RateLimit-* headers; with After the request
// takes effect and its answer is replaced (a response lost on the way back),
// with Hang it takes effect and is never answered until the client gives up.
package hcloudtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// MaxUserData is the Cloud API's user_data limit, in bytes.
const MaxUserData = 32 << 10

// Options configure an API. The zero value is an API without rate limits.
type Options struct {
	// RateLimit is the size of the request budget (RateLimit-Limit). 0 means
	// no limit and no RateLimit-* headers.
	RateLimit int
	// RefillInterval is how long the bucket takes to get one request back.
	// 0 means one second, as Hetzner.
	RefillInterval time.Duration
	// Window, when set, replaces the bucket by fixed windows of this length,
	// aligned to the Unix epoch: RateLimit requests per window, all back when
	// it ends.
	Window time.Duration
}

// Fault is an answer the API gives instead of the normal one.
type Fault struct {
	Method string // "" matches any method
	Path   string // path below /v1 without query, e.g. "/servers"; "" matches any

	Status  int    // HTTP status; 0 with After or Hang means the normal one
	Code    string // hcloud error code; "" sends a bare text body
	Message string // error message; "" derives one from Code

	RetryAfter time.Duration // Retry-After header, whole seconds, when > 0
	// Reset, when > 0, sends RateLimit-Remaining: 0 and RateLimit-Reset
	// Reset from now (rounded up to the second), as a 429 from Hetzner does.
	Reset time.Duration
	// Limit, when > 0, sends RateLimit-Limit.
	Limit int

	After bool // the request takes effect, then this Fault is the answer
	Hang  bool // the request takes effect, then the API never answers it
}

// Request is one request the API received.
type Request struct {
	Method string
	Path   string // below /v1, without query
	Query  string
	Status int // the status answered; 0 if the request hung
	Time   time.Time
}

// API is a fake Hetzner Cloud API. It is safe for concurrent use.
type API struct {
	opts Options
	srv  *httptest.Server
	mux  *http.ServeMux
	done chan struct{}

	mu        sync.Mutex
	servers   map[int64]schema.Server
	keys      []schema.SSHKey
	created   []schema.ServerCreateRequest
	nextID    int64
	faults    []Fault
	requests  []Request
	throttled int
	// rate limiter
	tokens float64
	last   time.Time
	window time.Time
	used   int
	closed bool
}

// New starts an API; Close stops it.
func New(opts Options) *API {
	if opts.RefillInterval <= 0 {
		opts.RefillInterval = time.Second
	}
	a := &API{
		opts:    opts,
		done:    make(chan struct{}),
		servers: make(map[int64]schema.Server),
		nextID:  1000000,
		tokens:  float64(opts.RateLimit),
		last:    time.Now(),
	}
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("POST /v1/servers", a.createServer)
	a.mux.HandleFunc("GET /v1/servers", a.listServers)
	a.mux.HandleFunc("GET /v1/servers/{id}", a.getServer)
	a.mux.HandleFunc("DELETE /v1/servers/{id}", a.deleteServer)
	a.mux.HandleFunc("GET /v1/ssh_keys", a.listSSHKeys)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, string(hcloud.ErrorCodeNotFound), "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	return a
}

// URL is the API endpoint to pass to hcloud.WithEndpoint.
func (a *API) URL() string { return a.srv.URL + "/v1" }

// Close releases hanging requests and stops the server.
func (a *API) Close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.done)
	}
	a.mu.Unlock()
	a.srv.Close()
}

// Inject queues faults; each is consumed by the first request it matches.
func (a *API) Inject(faults ...Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = append(a.faults, faults...)
}

// AddSSHKey stores an SSH key and returns its ID.
func (a *API) AddSSHKey(name, publicKey string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextID++
	a.keys = append(a.keys, schema.SSHKey{
		ID: a.nextID, Name: name, PublicKey: publicKey,
		Fingerprint: fmt.Sprintf("00:00:%04x", a.nextID&0xffff),
		Labels:      map[string]string{}, Created: time.Now().UTC(),
	})
	return a.nextID
}

// AddServer stores a running server, as if someone else had created it, and
// returns its ID.
func (a *API) AddServer(name string, labels map[string]string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.newServerLocked(name, labels)
	a.servers[s.ID] = s
	return s.ID
}

// Server returns the stored server with the given ID.
func (a *API) Server(id int64) (schema.Server, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.servers[id]
	return s, ok
}

// Servers returns every stored server, by ID.
func (a *API) Servers() []schema.Server {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]schema.Server, 0, len(a.servers))
	for _, s := range a.servers {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y schema.Server) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

// Created returns the bodies of the create requests that took effect, in order.
func (a *API) Created() []schema.ServerCreateRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.created)
}

// Requests returns every request received, in order.
func (a *API) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// Count returns how many requests had the method and path ("" matches any).
func (a *API) Count(method, path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.requests {
		if (method == "" || r.Method == method) && (path == "" || r.Path == path) {
			n++
		}
	}
	return n
}

// Throttled returns how many requests the rate limiter refused with 429.
func (a *API) Throttled() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.throttled
}

// Reset forgets the request log (servers, keys, faults and budget stay).
func (a *API) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = nil
	a.throttled = 0
}

// statusWriter records the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	path := strings.TrimPrefix(r.URL.Path, "/v1")
	a.mu.Lock()
	idx := len(a.requests)
	a.requests = append(a.requests, Request{Method: r.Method, Path: path, Query: r.URL.RawQuery, Time: now})
	ok, limitHeaders := a.takeLocked(now)
	var fault *Fault
	if ok {
		for i, f := range a.faults {
			if (f.Method == "" || f.Method == r.Method) && (f.Path == "" || f.Path == path) {
				fault = &f
				a.faults = slices.Delete(a.faults, i, i+1)
				break
			}
		}
	} else {
		a.throttled++
	}
	a.mu.Unlock()

	for k, v := range limitHeaders {
		w.Header()[k] = v
	}
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		a.mu.Lock()
		a.requests[idx].Status = sw.status
		a.mu.Unlock()
	}()

	switch {
	case !ok:
		writeError(sw, http.StatusTooManyRequests, string(hcloud.ErrorCodeRateLimitExceeded), "limit of requests per hour reached")
	case fault == nil:
		a.mux.ServeHTTP(sw, r)
	case fault.Hang:
		a.mux.ServeHTTP(httptest.NewRecorder(), r)
		select {
		case <-r.Context().Done():
		case <-a.done:
		}
	case fault.After && fault.Status == 0:
		a.mux.ServeHTTP(sw, r)
	default:
		if fault.After {
			a.mux.ServeHTTP(httptest.NewRecorder(), r)
		}
		fault.write(sw, now)
	}
}

func (f *Fault) write(w http.ResponseWriter, now time.Time) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	if f.Reset > 0 {
		w.Header().Set("RateLimit-Remaining", "0")
		w.Header().Set("RateLimit-Reset", strconv.FormatInt(ceilUnix(now.Add(f.Reset)), 10))
	}
	if f.Limit > 0 {
		w.Header().Set("RateLimit-Limit", strconv.Itoa(f.Limit))
	}
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if f.Code == "" {
		w.Header().Del("Content-Type")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "%d %s\n", status, http.StatusText(status))
		return
	}
	msg := f.Message
	if msg == "" {
		msg = strings.ReplaceAll(f.Code, "_", " ")
	}
	writeError(w, status, f.Code, msg)
}

// takeLocked takes one request from the budget and returns the headers
// that describe what is left.
func (a *API) takeLocked(now time.Time) (bool, http.Header) {
	limit := a.opts.RateLimit
	if limit <= 0 {
		return true, nil
	}
	var ok bool
	var remaining int
	var reset time.Time
	if w := a.opts.Window; w > 0 {
		start := time.Unix(0, now.UnixNano()/int64(w)*int64(w))
		if !start.Equal(a.window) {
			a.window, a.used = start, 0
		}
		if a.used < limit {
			a.used++
			ok = true
		}
		remaining, reset = limit-a.used, start.Add(w)
	} else {
		iv := a.opts.RefillInterval
		a.tokens = min(float64(limit), a.tokens+float64(now.Sub(a.last))/float64(iv))
		a.last = now
		if a.tokens >= 1 {
			a.tokens--
			ok = true
		}
		remaining = int(a.tokens)
		reset = now.Add(time.Duration((float64(limit) - a.tokens) * float64(iv)))
	}
	h := http.Header{}
	h.Set("RateLimit-Limit", strconv.Itoa(limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilUnix(reset), 10))
	return ok, h
}

// ceilUnix returns t in Unix seconds, rounded up.
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.After(time.Unix(s, 0)) {
		s++
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, schema.ErrorResponse{Error: schema.Error{Code: code, Message: msg}})
}

func (a *API) newServerLocked(name string, labels map[string]string) schema.Server {
	a.nextID++
	id := a.nextID
	n := id - 1000000
	if labels == nil {
		labels = map[string]string{}
	}
	return schema.Server{
		ID:      id,
		Name:    name,
		Status:  string(hcloud.ServerStatusRunning),
		Created: time.Now().UTC().Truncate(time.Second),
		PublicNet: schema.ServerPublicNet{
			IPv4: schema.ServerPublicNetIPv4{ID: id, IP: fmt.Sprintf("203.0.%d.%d", 113+n/250%10, n%250+1)},
			IPv6: schema.ServerPublicNetIPv6{ID: id, IP: fmt.Sprintf("2001:db8:%x::/64", n)},
		},
		ServerType: schema.ServerType{ID: 1, Name: "cx22"},
		Location:   schema.Location{ID: 1, Name: "fsn1"},
		Labels:     cloneLabels(labels),
	}
}

func cloneLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (a *API) createServer(w http.ResponseWriter, r *http.Request) {
	var req schema.ServerCreateRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, string(hcloud.ErrorCodeJSONError), "invalid JSON: "+err.Error())
		return
	}
	var fields []string
	if req.Name == "" || len(req.Name) > 63 {
		fields = append(fields, "name")
	}
	if req.ServerType.ID == 0 && req.ServerType.Name == "" {
		fields = append(fields, "server_type")
	}
	if req.Image.ID == 0 && req.Image.Name == "" {
		fields = append(fields, "image")
	}
	if len(req.UserData) > MaxUserData {
		fields = append(fields, "user_data")
	}
	if req.Labels != nil {
		m := make(map[string]any, len(*req.Labels))
		for k, v := range *req.Labels {
			m[k] = v
		}
		if ok, _ := hcloud.ValidateResourceLabels(m); !ok {
			fields = append(fields, "labels")
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range req.SSHKeys {
		if !slices.ContainsFunc(a.keys, func(k schema.SSHKey) bool { return k.ID == id }) {
			fields = append(fields, "ssh_keys")
			break
		}
	}
	if len(fields) > 0 {
		writeError(w, http.StatusBadRequest, string(hcloud.ErrorCodeInvalidInput), "invalid input in fields '"+strings.Join(fields, "', '")+"'")
		return
	}
	for _, s := range a.servers {
		if s.Name == req.Name {
			writeError(w, http.StatusConflict, string(hcloud.ErrorCodeUniquenessError), "server name is already used")
			return
		}
	}
	var labels map[string]string
	if req.Labels != nil {
		labels = *req.Labels
	}
	s := a.newServerLocked(req.Name, labels)
	if req.Location != "" {
		s.Location.Name = req.Location
	}
	if req.ServerType.Name != "" {
		s.ServerType.Name = req.ServerType.Name
	}
	a.servers[s.ID] = s
	a.created = append(a.created, req)
	resp := schema.ServerCreateResponse{
		Server: s,
		Action: schema.Action{
			ID: s.ID, Status: "running", Command: "create_server", Started: time.Now().UTC(),
			Resources: []schema.ActionResourceReference{{ID: s.ID, Type: "server"}},
		},
		NextActions: []schema.Action{{ID: s.ID + 1, Status: "running", Command: "start_server", Started: time.Now().UTC()}},
	}
	resp.Server.Status = string(hcloud.ServerStatusInitializing)
	writeJSON(w, http.StatusCreated, resp)
}

// page returns the slice of items for the page asked and the pagination meta.
func page[T any](r *http.Request, items []T) ([]T, schema.MetaResponse) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 || per > 50 {
		per = 25
	}
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if p <= 0 {
		p = 1
	}
	last := max(1, (len(items)+per-1)/per)
	meta := schema.MetaPagination{Page: p, PerPage: per, LastPage: last, TotalEntries: len(items)}
	if p > 1 {
		meta.PreviousPage = p - 1
	}
	if p < last {
		meta.NextPage = p + 1
	}
	lo := min(len(items), (p-1)*per)
	hi := min(len(items), lo+per)
	return items[lo:hi], schema.MetaResponse{Meta: schema.Meta{Pagination: &meta}}
}

func (a *API) listServers(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	var all []schema.Server
	for _, s := range a.Servers() {
		if name == "" || s.Name == name {
			all = append(all, s)
		}
	}
	items, meta := page(r, all)
	writeJSON(w, http.StatusOK, struct {
		schema.ServerListResponse
		schema.MetaResponse
	}{schema.ServerListResponse{Servers: append([]schema.Server{}, items...)}, meta})
}

func (a *API) lookup(w http.ResponseWriter, r *http.Request) (schema.Server, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, string(hcloud.ErrorCodeInvalidInput), "invalid server id")
		return schema.Server{}, false
	}
	s, ok := a.Server(id)
	if !ok {
		writeError(w, http.StatusNotFound, string(hcloud.ErrorCodeNotFound), "server with ID '"+r.PathValue("id")+"' not found")
	}
	return s, ok
}

func (a *API) getServer(w http.ResponseWriter, r *http.Request) {
	if s, ok := a.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, schema.ServerGetResponse{Server: s})
	}
}

func (a *API) deleteServer(w http.ResponseWriter, r *http.Request) {
	s, ok := a.lookup(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	delete(a.servers, s.ID)
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, schema.ServerDeleteResponse{Action: schema.Action{
		ID: s.ID, Status: "running", Command: "delete_server", Started: time.Now().UTC(),
		Resources: []schema.ActionResourceReference{{ID: s.ID, Type: "server"}},
	}})
}

func (a *API) listSSHKeys(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	a.mu.Lock()
	var all []schema.SSHKey
	for _, k := range a.keys {
		if name == "" || k.Name == name {
			all = append(all, k)
		}
	}
	a.mu.Unlock()
	items, meta := page(r, all)
	writeJSON(w, http.StatusOK, struct {
		schema.SSHKeyListResponse
		schema.MetaResponse
	}{schema.SSHKeyListResponse{SSHKeys: append([]schema.SSHKey{}, items...)}, meta})
}
