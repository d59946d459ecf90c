package fake_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

// eventsPath is where the tests' reporting webhook posts, on the
// receiver.
const eventsPath = "/ev"

// reportingDoc is a cloud-config with a reporting webhook to the
// bundle's receiver: the users, runcmd and phone_home of the capture
// TestBootEventsLikeNspawn compares with, and what more returns.
func reportingDoc(t testing.TB, b *bundle, more func(*cloudinit.Config)) []byte {
	t.Helper()
	cfg := cloudinit.Config{
		Hostname: "cap",
		Users: []cloudinit.User{
			{Name: "hatchery", Shell: "/bin/bash", Sudo: "ALL=(ALL) NOPASSWD:ALL", SSHAuthorizedKeys: []string{b.key.line}},
			{Name: "plain", Shell: "/bin/bash", SSHAuthorizedKeys: []string{b.key.line}},
		},
		RunCmd:    []cloudinit.Command{{"sh", "-c", "echo runcmd-ran"}},
		PhoneHome: &cloudinit.PhoneHome{URL: b.rc.srv.URL + "/cb", Post: []string{"pub_key_ed25519", "instance_id", "hostname"}},
		Reporting: map[string]cloudinit.Reporter{"hatchery": {Type: cloudinit.ReporterWebhook, Endpoint: b.rc.srv.URL + eventsPath + "?token=t&event=1"}},
	}
	if more != nil {
		more(&cfg)
	}
	ud, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	return ud
}

func createDoc(t testing.TB, b *bundle, name string, ud []byte) *fake.Server {
	t.Helper()
	ps, err := b.p.Create(context.Background(), provider.CreateRequest{Name: name, UserData: ud})
	require.NoError(t, err)
	s, ok := b.p.Server(ps.ID)
	require.True(t, ok)
	return s
}

// eventHits returns the receiver's requests to the webhook.
func eventHits(rc *receiver) []hit {
	var out []hit
	for _, h := range rc.Hits() {
		if h.Path == eventsPath {
			out = append(out, h)
		}
	}
	return out
}

// step is an event without its timestamp: what a boot of a given
// cloud-config posts, whatever the clock.
type step struct {
	EventType   string `json:"event_type"`
	Name        string `json:"name"`
	Result      string `json:"result"`
	Description string `json:"description"`
	Origin      string `json:"origin"`
}

func steps(t *testing.T, bodies []string) []step {
	t.Helper()
	out := make([]step, len(bodies))
	for i, b := range bodies {
		require.NoError(t, json.Unmarshal([]byte(b), &out[i]), b)
	}
	return out
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	require.NoError(t, sc.Err())
	return out
}

// TestBootEventsLikeNspawn: the events a simulated server posts are the
// ones a real Debian 12 server (cloud-init 22.4.2, provider/nspawn) posted
// for the same cloud-config, in the same order, with the same names,
// descriptions and results: the testdata files are those real boots'
// requests, verbatim.
func TestBootEventsLikeNspawn(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, golden string
		more         func(*cloudinit.Config)
		faults       fake.Faults
	}{
		// users, runcmd, phone_home: the modules that always run, runcmd.
		{"runcmd", "testdata/nspawn-events-runcmd.jsonl", nil, fake.Faults{}},
		// write_files (one deferred), package_update and packages, and a
		// runcmd whose command fails (`false`; the fault here).
		{"packages, runcmd fails", "testdata/nspawn-events-packages-runcmd-fails.jsonl", func(c *cloudinit.Config) {
			c.RunCmd = append(c.RunCmd, cloudinit.Command{"false"})
			c.PackageUpdate = true
			c.Packages = []string{"jq"}
			c.WriteFiles = []cloudinit.File{{Path: "/etc/x.conf", Content: "x"}, {Path: "/home/plain/y", Content: "y", Defer: true}}
		}, fake.Faults{CloudInitError: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fake.Options{Faults: func(string) fake.Faults { return c.faults }}, nil)
			s := createDoc(t, b, "cap", reportingDoc(t, b, c.more))
			waitBooted(t, s)
			var bodies []string
			for _, h := range eventHits(b.rc) {
				bodies = append(bodies, h.Body)
			}
			want := readLines(t, c.golden)
			assert.Equal(t, steps(t, want), steps(t, bodies))
			assert.Equal(t, len(want), s.EventPosts())
		})
	}
}

// eventJSON is the shape of json.dumps(ReportingEvent.as_dict()): the
// members in their order, Python's separators, a float timestamp, result
// on a finish only.
var eventJSON = regexp.MustCompile(`^\{"name": "[a-z_-]+(/[a-z_-]+)?", "description": "[^"\\]+", "event_type": "(start|finish)", "origin": "cloudinit", "timestamp": [0-9]{10}\.[0-9]{1,7}(, "result": "(SUCCESS|FAIL)")?\}$`)

// TestBootEventsRequests: each event is a POST as cloud-init 22.4.2 sends
// it through python-requests (no Content-Type, its User-Agent and
// headers), the JSON shaped as Python writes it; the real requests
// (testdata) have the same shape; timestamps go forward and are the
// server's clock.
func TestBootEventsRequests(t *testing.T) {
	t.Parallel()
	for _, l := range readLines(t, "testdata/nspawn-events-packages-runcmd-fails.jsonl") {
		require.Regexp(t, eventJSON, l, "the pattern holds for real events")
	}
	b := setup(t, fake.Options{}, nil)
	before := time.Now()
	s := createDoc(t, b, "srv", reportingDoc(t, b, nil))
	waitBooted(t, s)
	hits := eventHits(b.rc)
	require.NotEmpty(t, hits)
	var last float64
	for _, h := range hits {
		assert.Equal(t, http.MethodPost, h.Method)
		assert.Equal(t, "token=t&event=1", h.Query)
		assert.Empty(t, h.ContentType, "python-requests sets no Content-Type for a str body")
		assert.Equal(t, "Cloud-Init/22.4.2", h.UserAgent)
		assert.Equal(t, "gzip, deflate", h.Header.Get("Accept-Encoding"))
		assert.Equal(t, "*/*", h.Header.Get("Accept"))
		assert.Equal(t, []string{"keep-alive"}, h.Header.Values("Connection"))
		require.Regexp(t, eventJSON, h.Body)
		var ev struct{ Timestamp float64 }
		require.NoError(t, json.Unmarshal([]byte(h.Body), &ev))
		assert.GreaterOrEqual(t, ev.Timestamp, last)
		assert.InDelta(t, float64(before.UnixNano())/1e9, ev.Timestamp, 10)
		last = ev.Timestamp
	}
}

// TestBootEventsSequential: one event at a time, each waiting for the
// answer, as cloud-init's single worker thread posts them; the boot waits
// for the queue at the end of each stage, so the last stage's finish is
// answered before the boot is over.
func TestBootEventsSequential(t *testing.T) {
	t.Parallel()
	var inFlight, most atomic.Int32
	b := setup(t, fake.Options{}, func(_ int, _ http.ResponseWriter, r *http.Request) int {
		if r.URL.Path == eventsPath {
			n := inFlight.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(2 * time.Millisecond)
			inFlight.Add(-1)
		}
		return http.StatusOK
	})
	s := createDoc(t, b, "srv", reportingDoc(t, b, nil))
	waitBooted(t, s)
	assert.Equal(t, int32(1), most.Load())
	hits := eventHits(b.rc)
	require.NotEmpty(t, hits)
	assert.Contains(t, hits[len(hits)-1].Body, `"name": "modules-final", "description": "running modules for final", "event_type": "finish"`)
}

// TestBootEventsSpread: the events come while the server boots, spread
// over the boot delay as the modules' work is (installing packages takes
// most of it), phone_home when the phone-home module runs. Timers fire
// late under load, never early: the server's timestamps are checked
// against lower bounds only.
func TestBootEventsSpread(t *testing.T) {
	t.Parallel()
	const delay = 400 * time.Millisecond
	b := setup(t, fake.Options{BootDelay: delay}, nil)
	start := time.Now()
	s := createDoc(t, b, "srv", reportingDoc(t, b, func(c *cloudinit.Config) { c.Packages = []string{"jq"} }))
	waitBooted(t, s)
	at := map[string]time.Duration{}
	for _, h := range eventHits(b.rc) {
		var e struct {
			Name      string  `json:"name"`
			Type      string  `json:"event_type"`
			Timestamp float64 `json:"timestamp"`
		}
		require.NoError(t, json.Unmarshal([]byte(h.Body), &e))
		at[e.Type+" "+e.Name] = time.Unix(0, int64(e.Timestamp*1e9)).Sub(start)
	}
	pkgs := at["start modules-final/config-package-update-upgrade-install"]
	pkgsDone := at["finish modules-final/config-package-update-upgrade-install"]
	phone := at["start modules-final/config-phone-home"]
	assert.Less(t, at["start init-network/config-users-groups"], pkgs)
	assert.GreaterOrEqual(t, pkgs, delay/3, "what comes before takes a third of the boot")
	assert.GreaterOrEqual(t, pkgsDone, delay*8/10, "installing packages takes about half of it")
	assert.GreaterOrEqual(t, phone, delay-time.Millisecond)
	var phoned time.Time
	for _, h := range b.rc.Hits() {
		if h.Path == "/cb" {
			phoned = h.At
		}
	}
	assert.GreaterOrEqual(t, phoned.Sub(start), delay, "phone_home after the boot delay")
}

// TestBootEventsFailures: a fault that fails a module fails it in the
// events (FAIL, with the start's description, as cloud-init's
// ReportEventStack does for an exception), and its stage; `cloud-init
// status --long` names the module as cloud.cfg does.
func TestBootEventsFailures(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		faults fake.Faults
		url    string // phone_home URL suffix
		module string
		stage  string
		detail string
		posted bool // phone_home was posted
	}{
		{name: "runcmd fails", faults: fake.Faults{CloudInitError: true}, module: "scripts-user", stage: "modules-final", posted: true,
			detail: "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"},
		{name: "phone_home url with an unknown variable", url: "/$HOSTNAME", module: "phone-home", stage: "modules-final",
			detail: "('phone-home', KeyError('HOSTNAME'))"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fake.Options{Faults: func(string) fake.Faults { return c.faults }}, nil)
			// (Build refuses such a URL: the fake takes what it is given.)
			ud := bytes.Replace(reportingDoc(t, b, nil), []byte("/cb\n"), []byte("/cb"+c.url+"\n"), 1)
			s := createDoc(t, b, "srv", ud)
			waitBooted(t, s)
			var got []step
			for _, h := range eventHits(b.rc) {
				got = append(got, steps(t, []string{h.Body})...)
			}
			desc := "running config-" + c.module + " with frequency once-per-instance"
			assert.Contains(t, got, step{EventType: "finish", Name: c.stage + "/config-" + c.module, Result: "FAIL", Description: desc, Origin: "cloudinit"})
			assert.Equal(t, step{EventType: "finish", Name: c.stage, Result: "FAIL", Description: "running modules for final", Origin: "cloudinit"}, got[len(got)-1])
			for _, g := range got {
				if g.Result == "FAIL" {
					assert.Contains(t, []string{c.stage, c.stage + "/config-" + c.module}, g.Name)
				}
			}
			assert.Equal(t, c.posted, s.PhoneHomes() > 0)

			conn := dial(t, s, "hatchery", b.key)
			r := run(t, conn, "cloud-init status --long", "")
			assert.Equal(t, 1, r.Code)
			assert.Contains(t, r.Stdout, "status: error\n")
			assert.Contains(t, r.Stdout, "detail:\n"+c.detail+"\n")
		})
	}
}

// TestBootEventsGiveUp: when posts fail three times in a row, the queue
// is dropped at the end of the stage, as cloud-init's WebHookHandler does
// (the boot then goes on): a control plane that refuses every event,
// slowly, sees three per stage, the boot having queued the stage's other
// events meanwhile; a failure now and then drops nothing.
func TestBootEventsGiveUp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		answer   func(n int) int // n-th event request, from 1
		min, max func(total int) int
	}{
		// Three per stage, unless the boot was slower at queueing a
		// stage than the control plane at refusing three events (30ms
		// each): some more then, never the whole boot.
		{"every post refused", func(int) int { time.Sleep(30 * time.Millisecond); return http.StatusUnauthorized },
			func(int) int { return 3 * 3 }, func(total int) int { return total / 2 }},
		{"every other post refused", func(n int) int {
			if n%2 == 0 {
				return http.StatusConflict
			}
			return http.StatusOK
		}, func(total int) int { return total }, func(total int) int { return total }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			n := 0
			b := setup(t, fake.Options{}, func(_ int, _ http.ResponseWriter, r *http.Request) int {
				if r.URL.Path != eventsPath {
					return http.StatusOK
				}
				mu.Lock()
				n++
				i := n
				mu.Unlock()
				return c.answer(i)
			})
			s := createDoc(t, b, "srv", reportingDoc(t, b, nil))
			waitBooted(t, s)
			total := len(readLines(t, "testdata/nspawn-events-runcmd.jsonl"))
			posts := len(eventHits(b.rc))
			assert.GreaterOrEqual(t, posts, c.min(total))
			assert.LessOrEqual(t, posts, c.max(total))
			assert.Equal(t, posts, s.EventPosts())
			assert.Equal(t, 1, s.PhoneHomes(), "the boot goes on")
			conn := dial(t, s, "hatchery", b.key)
			assert.Equal(t, "status: done\n", run(t, conn, "cloud-init status", "").Stdout, "failed posts are no error")
		})
	}
}

// TestBootEventsRetries: a reporter's retries retry a failed post, a
// second apart, and each try counts.
func TestBootEventsRetries(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	n := 0
	b := setup(t, fake.Options{}, func(_ int, _ http.ResponseWriter, r *http.Request) int {
		if r.URL.Path != eventsPath {
			return http.StatusOK
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	start := time.Now()
	s := createDoc(t, b, "srv", reportingDoc(t, b, func(c *cloudinit.Config) {
		r := c.Reporting["hatchery"]
		r.Retries = 2
		c.Reporting["hatchery"] = r
	}))
	waitBooted(t, s)
	hits := eventHits(b.rc)
	total := len(readLines(t, "testdata/nspawn-events-runcmd.jsonl"))
	require.Len(t, hits, total+1)
	assert.Equal(t, hits[0].Body, hits[1].Body, "the same event again")
	assert.GreaterOrEqual(t, hits[1].At.Sub(hits[0].At), 900*time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), time.Second)
}

// TestBootEventsOnlyWithWebhook: without a reporting webhook, nothing but
// phone_home is posted; several webhooks each get every event.
func TestBootEventsOnlyWithWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "plain", doc{})
	waitBooted(t, s)
	assert.Zero(t, s.EventPosts())
	for _, h := range b.rc.Hits() {
		assert.NotEqual(t, eventsPath, h.Path)
	}

	b2 := setup(t, fake.Options{}, nil)
	s2 := createDoc(t, b2, "two", reportingDoc(t, b2, func(c *cloudinit.Config) {
		c.Reporting["other"] = cloudinit.Reporter{Type: cloudinit.ReporterWebhook, Endpoint: b2.rc.srv.URL + eventsPath + "?token=o&event=1"}
	}))
	waitBooted(t, s2)
	counts := map[string]int{}
	for _, h := range eventHits(b2.rc) {
		counts[h.Query]++
	}
	total := len(readLines(t, "testdata/nspawn-events-runcmd.jsonl"))
	assert.Equal(t, map[string]int{"token=t&event=1": total, "token=o&event=1": total}, counts)
}

// TestBootEventsStopWithServer: deleting a server whose webhook hangs
// ends its posts at once.
func TestBootEventsStopWithServer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := setup(t, fake.Options{}, func(_ int, _ http.ResponseWriter, r *http.Request) int {
		if r.URL.Path == eventsPath {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return http.StatusOK
	})
	t.Cleanup(func() { close(release) })
	s := createDoc(t, b, "srv", reportingDoc(t, b, func(c *cloudinit.Config) {
		r := c.Reporting["hatchery"]
		r.Timeout = 60
		c.Reporting["hatchery"] = r
	}))
	require.Eventually(t, func() bool { return len(eventHits(b.rc)) > 0 }, 5*time.Second, time.Millisecond)
	start := time.Now()
	require.NoError(t, b.p.Delete(context.Background(), s.ID()))
	assert.Less(t, time.Since(start), 5*time.Second)
	waitBooted(t, s)
	assert.Zero(t, s.PhoneHomes(), "the boot never got to phone_home")
}
