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
//	POST   /servers          create (name unique, user_data <= 32 KiB, labels,
//	                         location and SSH keys checked; capacity per location)
//	GET    /servers          list, ?name= and ?label_selector= filters, paginated
//	GET    /servers/{id}     one server
//	DELETE /servers/{id}     delete
//	GET    /ssh_keys         list, ?name= filter, paginated
//
// Errors are hcloud error bodies ({"error":{"code":...,"message":...}}) with
// the status codes Hetzner uses. Anything else is a not_found error.
//
// Servers carry what hcloud-go v2.52 reads of them: ID, name, status,
// created (to the second), public IPv4 and IPv6 network, server type,
// location, image and labels. (hcloud-go v2.52's schema.Server has no
// datacenter: the location is where a server is.) A create without
// ssh_keys is answered with a generated root_password, as Hetzner does
// (RootPassword returns it, for tests that check it goes nowhere);
// with ssh_keys, root_password is null.
//
// # Lists
//
// Lists are paginated as Hetzner does: per_page defaults to 25 and is at
// most 50 (Options.MaxPerPage lowers the maximum to test pagination with
// few items); the answer's meta.pagination has next_page until the last.
// label_selector takes Hetzner's (Kubernetes') syntax, requirements joined
// by commas, all of which must hold: k=v (or k==v), k!=v (true when k is
// absent), k (present), !k (absent), k in (v1,v2), k notin (v1,v2). A
// selector that does not parse is answered 400 invalid_input.
//
// # Credentials
//
// With Options.Token set, a request without "Authorization: Bearer TOKEN"
// is answered 401 unauthorized; with Options.ReadOnly (or SetReadOnly), a
// request other than GET is answered 403 forbidden, as for a read-only
// token. Both take effect before the request does anything.
//
// # Capacity
//
// SetUnavailable makes creates of a server type (or any) in a location
// fail with resource_unavailable (412, "error during placement", what
// Hetzner answers when a location is out of a server type) or another
// code such as placement_error (422).
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
	"crypto/rand"
	"encoding/base64"
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
	// MaxPerPage is the largest per_page a list honours; 0 means 50, as
	// Hetzner. The default page size is 25, or MaxPerPage when smaller.
	MaxPerPage int
	// Token, when set, is the only API token accepted: any other request
	// is answered 401 unauthorized.
	Token string
	// ReadOnly answers every request but GET with 403 forbidden, as
	// Hetzner does for a read-only token.
	ReadOnly bool
	// Locations are the location names creates accept; nil means
	// Hetzner's: fsn1, nbg1, hel1, ash, hil, sin. A create naming another
	// is answered 400 invalid_input; one naming none lands in the first.
	Locations []string
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
	// Route is the endpoint the request reached, as the package
	// documentation lists it ("GET /servers/{id}"); "" when none (an
	// unknown endpoint, or one refused before routing: rate limited,
	// unauthorized, forbidden, or answered by a Fault without After).
	Route  string
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

	mu          sync.Mutex
	servers     map[int64]schema.Server
	keys        []schema.SSHKey
	created     []schema.ServerCreateRequest
	passwords   map[int64]string // root passwords of servers created without SSH keys
	unavailable map[[2]string]string
	token       string
	readOnly    bool
	nextID      int64
	faults      []Fault
	requests    []Request
	throttled   int
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
	if opts.MaxPerPage <= 0 || opts.MaxPerPage > 50 {
		opts.MaxPerPage = 50
	}
	if opts.Locations == nil {
		opts.Locations = []string{"fsn1", "nbg1", "hel1", "ash", "hil", "sin"}
	}
	opts.Locations = slices.Clone(opts.Locations)
	a := &API{
		opts:        opts,
		done:        make(chan struct{}),
		servers:     make(map[int64]schema.Server),
		passwords:   make(map[int64]string),
		unavailable: make(map[[2]string]string),
		token:       opts.Token,
		readOnly:    opts.ReadOnly,
		nextID:      1000000,
		tokens:      float64(opts.RateLimit),
		last:        time.Now(),
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

// AddServers stores n running servers named prefix-0 ... prefix-(n-1),
// each with labels, and returns their IDs in order.
func (a *API) AddServers(prefix string, n int, labels map[string]string) []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]int64, n)
	for i := range n {
		s := a.newServerLocked(prefix+"-"+strconv.Itoa(i), labels)
		a.servers[s.ID] = s
		ids[i] = s.ID
	}
	return ids
}

// RemoveServer deletes a server behind the client's back, as someone in
// Hetzner's console would, and reports whether it existed. It is not
// counted as a request.
func (a *API) RemoveServer(id int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.servers[id]
	delete(a.servers, id)
	return ok
}

// SetStatus sets a stored server's status ("running", "off",
// "deleting", ...) and reports whether the server exists.
func (a *API) SetStatus(id int64, status string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.servers[id]
	if ok {
		s.Status = status
		a.servers[id] = s
	}
	return ok
}

// SetCreated sets when a stored server was created (to the second, UTC)
// and reports whether the server exists.
func (a *API) SetCreated(id int64, t time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.servers[id]
	if ok {
		s.Created = t.UTC().Truncate(time.Second)
		a.servers[id] = s
	}
	return ok
}

// RootPassword returns the root password generated for the server with
// the given ID, "" when it was created with SSH keys (or not by a create).
func (a *API) RootPassword(id int64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.passwords[id]
}

// SetUnavailable makes creates of serverType ("" for any) in location fail
// with the hcloud error code ("" stops it): resource_unavailable is
// answered 412, placement_error 422, any other code 412 as well.
func (a *API) SetUnavailable(location, serverType, code string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := [2]string{location, serverType}
	if code == "" {
		delete(a.unavailable, key)
		return
	}
	a.unavailable[key] = code
}

// SetToken changes the only token accepted ("" accepts any), as when a
// token is revoked.
func (a *API) SetToken(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.token = token
}

// SetReadOnly makes the API answer every request but GET with 403
// forbidden, or stops it.
func (a *API) SetReadOnly(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.readOnly = on
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

// Calls returns how many requests reached the route, as Request.Route
// names it ("GET /servers", "GET /servers/{id}").
func (a *API) Calls(route string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.requests {
		if r.Route == route {
			n++
		}
	}
	return n
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
	var refused func(http.ResponseWriter)
	switch {
	case !ok:
	case a.token != "" && r.Header.Get("Authorization") != "Bearer "+a.token:
		refused = func(w http.ResponseWriter) {
			writeError(w, http.StatusUnauthorized, string(hcloud.ErrorCodeUnauthorized), "unable to authenticate")
		}
	case a.readOnly && r.Method != http.MethodGet:
		refused = func(w http.ResponseWriter) {
			writeError(w, http.StatusForbidden, string(hcloud.ErrorCodeForbidden), "insufficient permissions for this request")
		}
	}
	var fault *Fault
	if ok && refused == nil {
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
	route := ""
	defer func() {
		a.mu.Lock()
		a.requests[idx].Status = sw.status
		a.requests[idx].Route = route
		a.mu.Unlock()
	}()
	serve := func(w http.ResponseWriter) {
		a.mux.ServeHTTP(w, r)
		if r.Pattern != "" && r.Pattern != "/" {
			route = strings.Replace(r.Pattern, " /v1/", " /", 1)
		}
	}

	switch {
	case !ok:
		writeError(sw, http.StatusTooManyRequests, string(hcloud.ErrorCodeRateLimitExceeded), "limit of requests per hour reached")
	case refused != nil:
		refused(sw)
	case fault == nil:
		serve(sw)
	case fault.Hang:
		serve(httptest.NewRecorder())
		select {
		case <-r.Context().Done():
		case <-a.done:
		}
	case fault.After && fault.Status == 0:
		serve(sw)
	default:
		if fault.After {
			serve(httptest.NewRecorder())
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
		Location:   a.location(a.opts.Locations[0]),
		Image:      &schema.Image{ID: 1, Name: ptr("ubuntu-24.04"), Type: "system", Status: "available"},
		Labels:     cloneLabels(labels),
	}
}

// location returns the location schema of a name, with a stable ID.
func (a *API) location(name string) schema.Location {
	i := slices.Index(a.opts.Locations, name)
	return schema.Location{ID: int64(i + 1), Name: name}
}

func ptr[T any](v T) *T { return &v }

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
	location := cmp.Or(req.Location, a.opts.Locations[0])
	if !slices.Contains(a.opts.Locations, location) {
		fields = append(fields, "location")
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
	serverType := cmp.Or(req.ServerType.Name, "cx22")
	if code := cmp.Or(a.unavailable[[2]string{location, serverType}], a.unavailable[[2]string{location, ""}]); code != "" {
		status, msg := http.StatusPreconditionFailed, "error during placement"
		if code == string(hcloud.ErrorCodePlacementError) {
			status = http.StatusUnprocessableEntity
		}
		writeError(w, status, code, msg)
		return
	}
	var labels map[string]string
	if req.Labels != nil {
		labels = *req.Labels
	}
	s := a.newServerLocked(req.Name, labels)
	s.Location = a.location(location)
	s.ServerType.Name = serverType
	if req.Image.Name != "" {
		s.Image.Name = ptr(req.Image.Name)
	} else {
		s.Image.ID, s.Image.Name = req.Image.ID, nil
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
	if len(req.SSHKeys) == 0 {
		// Hetzner generates a root password when no SSH key is given.
		b := make([]byte, 15)
		_, _ = rand.Read(b)
		pw := base64.RawURLEncoding.EncodeToString(b)
		a.passwords[s.ID] = pw
		resp.RootPassword = &pw
	}
	writeJSON(w, http.StatusCreated, resp)
}

// page returns the slice of items for the page asked and the pagination
// meta;
// per_page is at most maxPer.
func page[T any](r *http.Request, items []T, maxPer int) ([]T, schema.MetaResponse) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 25
	}
	per = min(per, maxPer)
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
	sel, err := ParseSelector(r.URL.Query().Get("label_selector"))
	if err != nil {
		writeError(w, http.StatusBadRequest, string(hcloud.ErrorCodeInvalidInput), "invalid label_selector: "+err.Error())
		return
	}
	var all []schema.Server
	for _, s := range a.Servers() {
		if (name == "" || s.Name == name) && sel.Matches(s.Labels) {
			all = append(all, s)
		}
	}
	items, meta := page(r, all, a.opts.MaxPerPage)
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
	items, meta := page(r, all, a.opts.MaxPerPage)
	writeJSON(w, http.StatusOK, struct {
		schema.SSHKeyListResponse
		schema.MetaResponse
	}{schema.SSHKeyListResponse{SSHKeys: append([]schema.SSHKey{}, items...)}, meta})
}
