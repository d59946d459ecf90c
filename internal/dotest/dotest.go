// Package dotest is a fake DigitalOcean API for tests: an httptest.Server
// that answers with godo's own types (github.com/digitalocean/godo), keeps
// droplets and SSH keys in memory, counts every request, rate-limits like
// DigitalOcean and injects faults on demand.
//
// It is honest about how DigitalOcean differs from Hetzner, since those
// differences are what a driver must get right:
//
//   - Droplet names are not unique: creating a name twice makes two
//     droplets, as the real API does.
//   - A new droplet has status "new" and no networks; it becomes "active",
//     with its addresses, Options.ActiveAfter after its creation.
//   - Labels do not exist; tags do, with their own alphabet (letters,
//     digits, ':', '-', '_', at most 255 characters), matched without
//     regard to case.
//   - user_data is limited to 64 KiB.
//   - A droplet created without an SSH key is counted in PasswordEmails:
//     the real API would email its root password to the account owner.
//
// # What it serves
//
// Under URL() (pass it to godo.SetBaseURL):
//
//	POST   /v2/droplets             create one droplet (202)
//	GET    /v2/droplets             list, ?tag_name= or ?name= filter, paginated (per_page <= 200)
//	GET    /v2/droplets/{id}        one droplet
//	DELETE /v2/droplets/{id}        delete (204)
//	GET    /v2/account              the account
//	GET    /v2/account/keys/{key}   an SSH key by ID or fingerprint
//
// Errors are DigitalOcean error bodies ({"id":...,"message":...}) with
// the status codes and messages the real API uses where they are known:
// 401 unauthorized, 404 not_found, 422 unprocessable_entity ("creating
// this/these droplet(s) will exceed your droplet limit", "You specified an
// invalid size for Droplet creation.", ...), 429 too_many_requests.
//
// # Rate limits
//
// With Options.RateLimit set, the API keeps a sliding window of requests
// as DigitalOcean does (5,000 per hour): every request counts for
// Options.Window (default one hour) after it was made. Every answer carries
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (the Unix
// second at which the oldest request in the window expires). A request
// with nothing left is answered 429 and counted in Throttled. Options.Burst
// adds DigitalOcean's second limit (250 requests per minute), which the
// headers do not show: over it, a 429 whose headers still report budget.
//
// # Faults
//
// Inject queues Faults; each matching request consumes the first one that
// matches it. A Fault answers with an error status and body, with
// Retry-After or RateLimit-* headers; or it loses the answer of a request
// that took effect (After, Lost, Hang); or it holds the request until the
// test lets it take effect (Hold), which is how a backend that is still
// working when the client gave up looks.
package dotest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/godo"
)

// MaxUserData is DigitalOcean's user_data limit, in bytes.
const MaxUserData = 64 << 10

// Error messages of the real API, as its clients report them.
const (
	MsgDropletLimit      = "creating this/these droplet(s) will exceed your droplet limit"
	MsgInvalidSize       = "You specified an invalid size for Droplet creation."
	MsgInvalidImage      = "You specified an invalid image for Droplet creation."
	MsgSizeUnavailable   = "Size is not available in this region."
	MsgRegionUnavailable = "Region is not available"
	MsgPendingEvent      = "Droplet already has a pending event."
	MsgUnauthorized      = "Unable to authenticate you"
	MsgNotFound          = "The resource you were accessing could not be found."
	MsgRateLimited       = "API Rate limit exceeded."
)

// firstID is the ID of the first droplet; later ones count up.
const firstID = 3000001

// Options configure an API. The zero value is an API without rate limits,
// droplet limit or token check, whose droplets are active at once.
type Options struct {
	// Token, when set, is the only bearer token the API accepts; others get
	// 401.
	Token string
	// RateLimit is the size of the sliding window (RateLimit-Limit). 0
	// means no limit and no RateLimit-* headers.
	RateLimit int
	// Window is how long a request counts against RateLimit; 0 means one
	// hour, as DigitalOcean.
	Window time.Duration
	// Burst, when > 0, allows at most Burst requests per BurstWindow (0:
	// one minute), on top of RateLimit and invisible in the headers.
	Burst       int
	BurstWindow time.Duration
	// DropletLimit, when > 0, is the account's droplet limit: a create
	// beyond it is answered 422 with MsgDropletLimit.
	DropletLimit int
	// ActiveAfter is how long a droplet stays "new" without networks
	// after its creation. The create answer always says "new".
	ActiveAfter time.Duration
	// Addresses returns the public IPv4 and IPv6 address of the droplet
	// with the given ID once it is active (IPv6 only when it was created
	// with ipv6). nil means 127.0.x.y and fd00::x:y, which tests never
	// dial.
	Addresses func(id int) (ipv4, ipv6 string)
	// Regions are the region slugs the API knows; nil means a handful of
	// real ones. A create in another region is answered 422.
	Regions []string
}

// Fault is an answer the API gives instead of the normal one.
type Fault struct {
	Method string // "" matches any method
	Path   string // path without query, e.g. "/v2/droplets"; "" matches any

	Status  int    // HTTP status; 0 with After means the normal answer
	ID      string // DigitalOcean error id; "" sends a bare text body
	Message string // error message; "" derives one from ID

	RetryAfter time.Duration // Retry-After header, whole seconds, when > 0
	// Reset, when > 0, sends RateLimit-Remaining: 0 and RateLimit-Reset
	// Reset from now (rounded up to the second), as an exhausted budget.
	Reset time.Duration
	// Limit, when > 0, sends RateLimit-Limit.
	Limit int

	// After: the request takes effect, then this Fault is the answer (a
	// gateway that answers 5xx after the backend did the work).
	After bool
	// Lost: the request takes effect, then the connection is closed
	// without an answer.
	Lost bool
	// Hang: the request takes effect, then the API never answers it until
	// the client gives up.
	Hang bool
	// Hold: the request is not answered and takes effect only when Hold is
	// closed, whether the client is still waiting (it then gets the normal
	// answer) or gave up long ago.
	Hold <-chan struct{}
}

// Request is one request the API received.
type Request struct {
	Method string
	Path   string // without query, e.g. "/v2/droplets/3000001"
	Query  url.Values
	Status int // the status answered; 0 if no answer was sent
	Time   time.Time
}

// CreateRequest is the body of a droplet create request, as the API read
// it.
type CreateRequest struct {
	Name       string   `json:"name"`
	Names      []string `json:"names"`
	Region     string   `json:"region"`
	Size       string   `json:"size"`
	Image      string   // the slug, or the ID in decimal
	SSHKeys    []string // fingerprints, or IDs in decimal
	Backups    bool     `json:"backups"`
	IPv6       bool     `json:"ipv6"`
	Monitoring bool     `json:"monitoring"`
	UserData   string   `json:"user_data"`
	Tags       []string `json:"tags"`
	VPCUUID    string   `json:"vpc_uuid"`
}

// droplet is a stored droplet.
type droplet struct {
	d       godo.Droplet
	created time.Time
	ipv6    bool
}

// API is a fake DigitalOcean API. It is safe for concurrent use.
type API struct {
	opts Options
	srv  *httptest.Server
	mux  *http.ServeMux
	done chan struct{}

	mu        sync.Mutex
	droplets  map[int]*droplet
	keys      []godo.Key
	created   []CreateRequest
	passwords int
	nextID    int
	nextKey   int
	faults    []Fault
	requests  []Request
	throttled int
	window    []time.Time // requests within Window, oldest first
	burst     []time.Time // requests within BurstWindow, oldest first
	closed    bool
	held      sync.WaitGroup
}

// New starts an API; Close stops it.
func New(opts Options) *API {
	if opts.Window <= 0 {
		opts.Window = time.Hour
	}
	if opts.BurstWindow <= 0 {
		opts.BurstWindow = time.Minute
	}
	if opts.Regions == nil {
		opts.Regions = []string{"ams3", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo3", "sgp1", "syd1", "tor1"}
	}
	a := &API{
		opts:     opts,
		done:     make(chan struct{}),
		droplets: make(map[int]*droplet),
		nextID:   firstID,
		nextKey:  500001,
	}
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("POST /v2/droplets", a.createDroplet)
	a.mux.HandleFunc("GET /v2/droplets", a.listDroplets)
	a.mux.HandleFunc("GET /v2/droplets/{id}", a.getDroplet)
	a.mux.HandleFunc("DELETE /v2/droplets/{id}", a.deleteDroplet)
	a.mux.HandleFunc("GET /v2/account", a.getAccount)
	a.mux.HandleFunc("GET /v2/account/keys/{key}", a.getKey)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", MsgNotFound)
	})
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	return a
}

// URL is the API's base URL, with a trailing slash, for godo.SetBaseURL.
func (a *API) URL() string { return a.srv.URL + "/" }

// Close releases held and hanging requests and stops the server.
func (a *API) Close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.done)
	}
	a.mu.Unlock()
	a.srv.Close()
	a.held.Wait()
}

// Inject queues faults; each is consumed by the first request it matches.
func (a *API) Inject(faults ...Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = append(a.faults, faults...)
}

// AddSSHKey stores an SSH key of the account and returns its ID.
func (a *API) AddSSHKey(name, fingerprint string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextKey++
	a.keys = append(a.keys, godo.Key{ID: a.nextKey, Name: name, Fingerprint: fingerprint,
		PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyOfTheDotestPackage " + name})
	return a.nextKey
}

// AddDroplet stores an active droplet, as if someone had created it with
// these tags, and returns its ID.
func (a *API) AddDroplet(name string, tags ...string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.newDropletLocked(CreateRequest{Name: name, Region: "nyc3", Size: "s-1vcpu-1gb", Image: "ubuntu-24-04-x64", Tags: tags})
	d.created = time.Now().Add(-a.opts.ActiveAfter)
	return d.d.ID
}

// Droplet returns the stored droplet with the given ID, as GET would.
func (a *API) Droplet(id int) (godo.Droplet, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.droplets[id]
	if !ok {
		return godo.Droplet{}, false
	}
	return a.viewLocked(d, time.Now()), true
}

// Droplets returns every stored droplet, by ID, as GET would.
func (a *API) Droplets() []godo.Droplet {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropletsLocked(time.Now())
}

func (a *API) dropletsLocked(now time.Time) []godo.Droplet {
	out := make([]godo.Droplet, 0, len(a.droplets))
	for _, d := range a.droplets {
		out = append(out, a.viewLocked(d, now))
	}
	slices.SortFunc(out, func(x, y godo.Droplet) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

// SetStatus sets the status of a stored droplet ("off", "archive", ...).
func (a *API) SetStatus(id int, status string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d, ok := a.droplets[id]; ok {
		d.d.Status = status
	}
}

// Created returns the bodies of the create requests that took effect, in
// order.
func (a *API) Created() []CreateRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.created)
}

// PasswordEmails returns how many droplets were created without an SSH
// key: for each, the real API would have emailed a root password.
func (a *API) PasswordEmails() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.passwords
}

// Requests returns every request received, in order.
func (a *API) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// Count returns how many requests had the method and path ("" matches
// any).
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

// Reset forgets the request log (droplets, keys, faults and budget stay).
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
	// Read the body first: a held request takes effect after its client
	// may have gone.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "unreadable body")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	a.mu.Lock()
	idx := len(a.requests)
	a.requests = append(a.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Time: now})
	ok, limitHeaders := a.takeLocked(now)
	var fault *Fault
	if ok {
		for i, f := range a.faults {
			if (f.Method == "" || f.Method == r.Method) && (f.Path == "" || f.Path == r.URL.Path) {
				fault = &f
				a.faults = slices.Delete(a.faults, i, i+1)
				break
			}
		}
	} else {
		a.throttled++
	}
	if fault != nil && fault.Hold != nil {
		a.held.Add(1)
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

	authorized := a.opts.Token == "" || r.Header.Get("Authorization") == "Bearer "+a.opts.Token
	switch {
	case !ok:
		writeError(sw, http.StatusTooManyRequests, "too_many_requests", MsgRateLimited)
	case fault != nil && fault.Hold != nil:
		defer a.held.Done()
		select {
		case <-fault.Hold:
		case <-a.done:
			return
		}
		// Whoever still waits gets the answer; the work is done either way.
		a.apply(sw, r.WithContext(context.WithoutCancel(r.Context())), authorized)
	case fault == nil:
		a.apply(sw, r, authorized)
	case fault.Hang:
		a.apply(httptest.NewRecorder(), r, authorized)
		select {
		case <-r.Context().Done():
		case <-a.done:
		}
	case fault.Lost:
		a.apply(httptest.NewRecorder(), r, authorized)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
	case fault.After && fault.Status == 0:
		a.apply(sw, r, authorized)
	default:
		if fault.After {
			a.apply(httptest.NewRecorder(), r, authorized)
		}
		fault.write(sw, now)
	}
}

// apply serves r, refusing it with 401 when its token is wrong.
func (a *API) apply(w http.ResponseWriter, r *http.Request, authorized bool) {
	if !authorized {
		writeError(w, http.StatusUnauthorized, "unauthorized", MsgUnauthorized)
		return
	}
	a.mux.ServeHTTP(w, r)
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
	status := cmp.Or(f.Status, http.StatusInternalServerError)
	if f.ID == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "%d %s\n", status, http.StatusText(status))
		return
	}
	writeError(w, status, f.ID, cmp.Or(f.Message, strings.ReplaceAll(f.ID, "_", " ")))
}

// takeLocked counts one request against the budget and returns whether it
// may proceed and the headers that describe what is left.
func (a *API) takeLocked(now time.Time) (bool, http.Header) {
	a.window = expire(a.window, now, a.opts.Window)
	a.burst = expire(a.burst, now, a.opts.BurstWindow)
	limited := a.opts.RateLimit > 0
	ok := (!limited || len(a.window) < a.opts.RateLimit) &&
		(a.opts.Burst <= 0 || len(a.burst) < a.opts.Burst)
	if ok && limited {
		a.window = append(a.window, now)
	}
	if ok && a.opts.Burst > 0 {
		a.burst = append(a.burst, now)
	}
	if !limited {
		return ok, nil
	}
	return ok, a.headersLocked(now)
}

func (a *API) headersLocked(now time.Time) http.Header {
	reset := now
	if len(a.window) > 0 {
		reset = a.window[0].Add(a.opts.Window)
	}
	h := http.Header{}
	h.Set("RateLimit-Limit", strconv.Itoa(a.opts.RateLimit))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(0, a.opts.RateLimit-len(a.window))))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilUnix(reset), 10))
	return h
}

// expire drops the times older than window before now.
func expire(times []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(times) && !times[i].Add(window).After(now) {
		i++
	}
	return times[i:]
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
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// errorBody is DigitalOcean's error body; godo.ErrorResponse reads its
// message and request_id.
type errorBody struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

func writeError(w http.ResponseWriter, status int, id, msg string) {
	writeJSON(w, status, errorBody{ID: id, Message: msg})
}

// newDropletLocked stores a droplet made from req.
func (a *API) newDropletLocked(req CreateRequest) *droplet {
	a.nextID++
	id := a.nextID - 1
	image := &godo.Image{Slug: req.Image, Name: req.Image, Distribution: "Debian", Public: true, Type: "base"}
	if n, err := strconv.Atoi(req.Image); err == nil {
		image = &godo.Image{ID: n, Name: "custom image " + req.Image, Type: "custom"}
	}
	d := &droplet{
		d: godo.Droplet{
			ID:          id,
			Name:        req.Name,
			Memory:      1024,
			Vcpus:       1,
			Disk:        25,
			Region:      &godo.Region{Slug: req.Region, Name: strings.ToUpper(req.Region), Available: true},
			Image:       image,
			Size:        &godo.Size{Slug: req.Size, Memory: 1024, Vcpus: 1, Disk: 25, Available: true},
			SizeSlug:    req.Size,
			BackupIDs:   []int{},
			SnapshotIDs: []int{},
			Features:    []string{},
			Status:      "new",
			Tags:        slices.Clone(req.Tags),
			VolumeIDs:   []string{},
			VPCUUID:     cmp.Or(req.VPCUUID, "5a4981aa-9653-4bd1-bef5-d6bff52042e4"),
		},
		created: time.Now(),
		ipv6:    req.IPv6,
	}
	if d.d.Tags == nil {
		d.d.Tags = []string{}
	}
	if req.IPv6 {
		d.d.Features = append(d.d.Features, "ipv6")
	}
	if req.Monitoring {
		d.d.Features = append(d.d.Features, "monitoring")
	}
	d.d.Created = d.created.UTC().Format(time.RFC3339)
	a.droplets[id] = d
	return d
}

// viewLocked returns the droplet as the API shows it at now: "new" without
// networks until ActiveAfter has passed.
func (a *API) viewLocked(d *droplet, now time.Time) godo.Droplet {
	out := d.d
	out.Tags = slices.Clone(d.d.Tags)
	out.Features = slices.Clone(d.d.Features)
	out.Networks = &godo.Networks{V4: []godo.NetworkV4{}, V6: []godo.NetworkV6{}}
	if now.Sub(d.created) < a.opts.ActiveAfter {
		return out
	}
	if out.Status == "new" {
		out.Status = "active"
	}
	v4, v6 := a.addresses(out.ID)
	out.Networks.V4 = []godo.NetworkV4{
		{IPAddress: fmt.Sprintf("10.110.%d.%d", out.ID/250%250, out.ID%250+2), Netmask: "255.255.240.0", Gateway: "10.110.0.1", Type: "private"},
		{IPAddress: v4, Netmask: "255.255.240.0", Gateway: "127.0.0.1", Type: "public"},
	}
	if d.ipv6 {
		out.Networks.V6 = []godo.NetworkV6{{IPAddress: v6, Netmask: 64, Gateway: "fd00::1", Type: "public"}}
	}
	return out
}

func (a *API) addresses(id int) (string, string) {
	if a.opts.Addresses != nil {
		return a.opts.Addresses(id)
	}
	n := id - firstID
	return fmt.Sprintf("127.0.%d.%d", 1+n/250%250, n%250+2), fmt.Sprintf("fd00::%x:%x", n>>16&0xffff, n&0xffff)
}

// validTag reports whether t is a tag name DigitalOcean accepts.
func validTag(t string) bool {
	if t == "" || len(t) > 255 {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// rawString reads a JSON string or number as a string.
func rawString(m json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(m, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(m, &n) == nil {
		return n.String(), true
	}
	return "", false
}

func (a *API) createDroplet(w http.ResponseWriter, r *http.Request) {
	var body struct {
		CreateRequest
		Image   json.RawMessage   `json:"image"`
		SSHKeys []json.RawMessage `json:"ssh_keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON: "+err.Error())
		return
	}
	req := body.CreateRequest
	var ok bool
	if req.Image, ok = rawString(body.Image); !ok || req.Image == "" || req.Image == "0" {
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", MsgInvalidImage)
		return
	}
	for _, k := range body.SSHKeys {
		s, ok := rawString(k)
		if !ok {
			writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "ssh_keys must be IDs or fingerprints")
			return
		}
		req.SSHKeys = append(req.SSHKeys, s)
	}
	switch {
	case len(req.Names) > 0:
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "dotest creates one droplet per request")
		return
	case req.Name == "" || len(req.Name) > 255:
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "Name is invalid")
		return
	case req.Size == "":
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", MsgInvalidSize)
		return
	case req.Region != "" && !slices.Contains(a.opts.Regions, req.Region):
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "You specified an invalid region for Droplet creation.")
		return
	case len(req.UserData) > MaxUserData:
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "user_data is too long: the limit is 64 KiB")
		return
	}
	for _, t := range req.Tags {
		if !validTag(t) {
			writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity",
				"Tag names may only contain letters, numbers, colons, dashes, and underscores, and be at most 255 characters long")
			return
		}
	}
	req.Region = cmp.Or(req.Region, "nyc3")

	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range req.SSHKeys {
		if !slices.ContainsFunc(a.keys, func(key godo.Key) bool { return key.Fingerprint == k || strconv.Itoa(key.ID) == k }) {
			writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "ssh_keys: no SSH key "+k+" in the account")
			return
		}
	}
	if a.opts.DropletLimit > 0 && len(a.droplets) >= a.opts.DropletLimit {
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", MsgDropletLimit)
		return
	}
	d := a.newDropletLocked(req)
	if len(req.SSHKeys) == 0 {
		a.passwords++
	}
	a.created = append(a.created, req)
	view := d.d
	view.Tags = slices.Clone(d.d.Tags)
	view.Networks = &godo.Networks{V4: []godo.NetworkV4{}, V6: []godo.NetworkV6{}}
	writeJSON(w, http.StatusAccepted, struct {
		Droplet godo.Droplet `json:"droplet"`
		Links   godo.Links   `json:"links"`
	}{view, godo.Links{Actions: []godo.LinkAction{{
		ID: view.ID + 700000000, Rel: "create", HREF: fmt.Sprintf("%sv2/actions/%d", a.URL(), view.ID+700000000),
	}}}})
}

func (a *API) listDroplets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tag, name := q.Get("tag_name"), q.Get("name")
	if tag != "" && name != "" {
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "tag_name can not be combined with name")
		return
	}
	per, err := strconv.Atoi(cmp.Or(q.Get("per_page"), "20"))
	if err != nil || per < 1 {
		writeError(w, http.StatusBadRequest, "bad_request", "per_page must be a positive number")
		return
	}
	per = min(per, 200)
	page, err := strconv.Atoi(cmp.Or(q.Get("page"), "1"))
	if err != nil || page < 1 {
		writeError(w, http.StatusBadRequest, "bad_request", "page must be a positive number")
		return
	}

	a.mu.Lock()
	var all []godo.Droplet
	for _, d := range a.dropletsLocked(time.Now()) {
		switch {
		case tag != "" && !slices.ContainsFunc(d.Tags, func(t string) bool { return strings.EqualFold(t, tag) }):
		case name != "" && !strings.EqualFold(d.Name, name):
		default:
			all = append(all, d)
		}
	}
	a.mu.Unlock()

	last := max(1, (len(all)+per-1)/per)
	lo := min(len(all), (page-1)*per)
	hi := min(len(all), lo+per)
	link := func(p int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(p))
		v.Set("per_page", strconv.Itoa(per))
		return a.srv.URL + "/v2/droplets?" + v.Encode()
	}
	pages := &godo.Pages{}
	if page > 1 {
		pages.First, pages.Prev = link(1), link(page-1)
	}
	if page < last {
		pages.Next, pages.Last = link(page+1), link(last)
	}
	writeJSON(w, http.StatusOK, struct {
		Droplets []godo.Droplet `json:"droplets"`
		Links    godo.Links     `json:"links"`
		Meta     godo.Meta      `json:"meta"`
	}{append([]godo.Droplet{}, all[lo:hi]...), godo.Links{Pages: pages}, godo.Meta{Total: len(all)}})
}

// lookup finds the droplet of the request's {id}, or answers 404.
func (a *API) lookup(w http.ResponseWriter, r *http.Request) (*droplet, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	a.mu.Lock()
	d, ok := a.droplets[id]
	a.mu.Unlock()
	if err != nil || !ok {
		writeError(w, http.StatusNotFound, "not_found", MsgNotFound)
		return nil, false
	}
	return d, true
}

func (a *API) getDroplet(w http.ResponseWriter, r *http.Request) {
	d, ok := a.lookup(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	view := a.viewLocked(d, time.Now())
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, struct {
		Droplet godo.Droplet `json:"droplet"`
	}{view})
}

func (a *API) deleteDroplet(w http.ResponseWriter, r *http.Request) {
	d, ok := a.lookup(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	delete(a.droplets, d.d.ID)
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) getAccount(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Account godo.Account `json:"account"`
	}{godo.Account{
		DropletLimit: cmp.Or(a.opts.DropletLimit, 25), FloatingIPLimit: 3, VolumeLimit: 100,
		Email: "owner@example.com", UUID: "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
		EmailVerified: true, Status: "active",
	}})
}

func (a *API) getKey(w http.ResponseWriter, r *http.Request) {
	want := r.PathValue("key")
	a.mu.Lock()
	i := slices.IndexFunc(a.keys, func(k godo.Key) bool { return k.Fingerprint == want || strconv.Itoa(k.ID) == want })
	var key godo.Key
	if i >= 0 {
		key = a.keys[i]
	}
	a.mu.Unlock()
	if i < 0 {
		writeError(w, http.StatusNotFound, "not_found", MsgNotFound)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		SSHKey godo.Key `json:"ssh_key"`
	}{key})
}
