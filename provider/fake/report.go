package fake

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/internal/pyjson"
)

// The boot of a simulated server follows what cloud-init 22.4.2 does on
// Debian 12 (bookworm) with Debian's /etc/cloud/cloud.cfg: three stages
// that report (init-local reads the user-data, and so the reporting
// configuration, only at its end), each running its module list in order,
// a module skipped when the cloud-config has none of the keys that
// activate it (the module's meta "activate_by_schema_keys") or when it
// does not run on Debian. Captured from provider/nspawn servers; see
// testdata/nspawn-events-*.json and TestBootEventsLikeNspawn.

// bootModule is one config module of Debian's cloud.cfg.
type bootModule struct {
	name string // as cloud.cfg names it: "package-update-upgrade-install", "set_hostname"
	freq string // its frequency, in the start event's description
	// active reports whether the cloud-config activates the module; nil
	// means always.
	active func(c cloudinit.Config) bool
	// weight is the module's share of the boot time before phone_home,
	// against 1 for a module that takes no time worth counting.
	weight float64
}

// Frequencies as cloud-init writes them in a start event's description.
const (
	perInstance = "once-per-instance"
	perAlways   = "always"
	perOnce     = "once"
)

// bootStage is one stage of the boot that reports events.
type bootStage struct {
	name, desc string // its own finish event's name and description
	gap        float64
	modules    []bootModule
}

// bootStages are the stages and modules of Debian 12's cloud.cfg that run
// on a simulated server (cloud_init_modules, cloud_config_modules,
// cloud_final_modules), without those that only run on Ubuntu (snap, fan,
// landscape, lxd) or on keys the typed cloud-config does not have (bootcmd,
// disk_setup, rsyslog, keyboard, apt_pipelining, ntp, timezone,
// disable_ec2_metadata, puppet, chef, mcollective, salt_minion,
// power_state). update_etc_hosts runs because the image sets
// manage_etc_hosts, as provider/nspawn's does. The weights follow a real
// boot's timing (ssh generates the host keys, package installation
// dominates when it runs); gap is the stage's process start.
var bootStages = []bootStage{
	{name: "init-network", desc: "searching for network datasources", gap: 2, modules: []bootModule{
		{name: "migrator", freq: perAlways},
		{name: "seed_random", freq: perInstance},
		{name: "write-files", freq: perInstance, active: func(c cloudinit.Config) bool { return len(c.WriteFiles) > 0 }},
		{name: "growpart", freq: perAlways},
		{name: "resizefs", freq: perAlways},
		{name: "mounts", freq: perInstance},
		{name: "set_hostname", freq: perInstance},
		{name: "update_hostname", freq: perAlways},
		{name: "update_etc_hosts", freq: perAlways},
		{name: "ca-certs", freq: perInstance, active: func(c cloudinit.Config) bool { return c.CACerts != nil }, weight: 3},
		{name: "users-groups", freq: perInstance, weight: 4},
		{name: "ssh", freq: perInstance, weight: 10},
	}},
	{name: "modules-config", desc: "running modules for config", gap: 8, modules: []bootModule{
		{name: "ssh-import-id", freq: perInstance},
		{name: "locale", freq: perInstance},
		{name: "set-passwords", freq: perInstance},
		{name: "grub-dpkg", freq: perInstance, weight: 2},
		{name: "apt-configure", freq: perInstance, weight: 2},
		{name: "runcmd", freq: perInstance, active: func(c cloudinit.Config) bool { return len(c.RunCmd) > 0 }},
		{name: "byobu", freq: perInstance},
	}},
	{name: "modules-final", desc: "running modules for final", gap: 6, modules: []bootModule{
		{name: "package-update-upgrade-install", freq: perInstance, weight: 60, active: func(c cloudinit.Config) bool {
			return c.PackageUpdate || c.PackageUpgrade || len(c.Packages) > 0
		}},
		{name: "write-files-deferred", freq: perInstance, active: func(c cloudinit.Config) bool { return len(c.WriteFiles) > 0 }},
		{name: "reset_rmc", freq: perInstance},
		{name: "refresh_rmc_and_interface", freq: perAlways},
		{name: "rightscale_userdata", freq: perInstance},
		{name: "scripts-vendor", freq: perInstance},
		{name: "scripts-per-once", freq: perOnce},
		{name: "scripts-per-boot", freq: perAlways},
		{name: "scripts-per-instance", freq: perInstance},
		{name: "scripts-user", freq: perInstance, weight: 3},
		{name: "ssh-authkey-fingerprints", freq: perInstance},
		{name: "keys-to-console", freq: perInstance, weight: 2},
		{name: "install-hotplug", freq: perInstance},
		{name: modPhoneHome, freq: perInstance},
		{name: "final-message", freq: perAlways},
	}},
}

// modPhoneHome is the phone_home module's name in cloud.cfg, and in the
// failures `cloud-init status --long` lists.
const modPhoneHome = "phone-home"

// modScriptsUser runs runcmd's script: a failing command fails it.
const modScriptsUser = "scripts-user"

// bootStep is one module of the simulated boot: when it starts and ends,
// as fractions of the time from Create to phone_home.
type bootStep struct {
	stage   int
	mod     bootModule
	at, end float64
}

// bootPlan returns the modules cfg makes run, in order, each with when it
// starts and ends: fractions of the time from Create to the phone-home
// module, which starts at 1; the modules after it take no time.
func bootPlan(cfg cloudinit.Config) []bootStep {
	var steps []bootStep
	total, after := 0.0, false
	for i, st := range bootStages {
		total += st.gap
		for _, m := range st.modules {
			if m.active != nil && !m.active(cfg) {
				continue
			}
			step := bootStep{stage: i, mod: m, at: total}
			if m.name == modPhoneHome {
				after = true
			}
			if !after {
				total += max(m.weight, 1)
			}
			step.end = total
			steps = append(steps, step)
		}
	}
	phone := steps[slices.IndexFunc(steps, func(s bootStep) bool { return s.mod.name == modPhoneHome })].at
	for i := range steps {
		steps[i].at /= phone
		steps[i].end /= phone
	}
	return steps
}

// bootEvent is one event of cloud-init's reporting, as
// ReportingEvent.as_dict() has it.
type bootEvent struct {
	name, description, eventType, result string
	at                                   time.Time
}

// json renders the event as cloud-init posts it: json.dumps of the dict,
// in its order, with Python's separators and float repr.
func (e bootEvent) json() []byte {
	ts := strconv.FormatFloat(float64(e.at.UnixNano())/1e9, 'f', -1, 64)
	if !strings.Contains(ts, ".") {
		ts += ".0"
	}
	var b strings.Builder
	b.WriteString(`{"name": ` + pyjson.Quote(e.name) + `, "description": ` + pyjson.Quote(e.description) +
		`, "event_type": ` + pyjson.Quote(e.eventType) + `, "origin": "cloudinit", "timestamp": ` + ts)
	if e.eventType == "finish" {
		b.WriteString(`, "result": ` + pyjson.Quote(e.result))
	}
	b.WriteString("}")
	return []byte(b.String())
}

// webhook is one reporting handler of type webhook, as cloud-init's
// WebHookHandler works: events are queued and posted one at a time by a
// worker of their own, each waiting for its answer (a POST of the JSON
// without a Content-Type, the reporter's timeout, retries a second
// apart); a failed post is logged; at the end of each stage the boot
// waits for the queue (flush), and the worker then drops what is queued
// once three posts in a row have failed.
type webhook struct {
	s        *Server
	name     string
	endpoint string
	timeout  time.Duration
	retries  int

	mu       sync.Mutex
	cond     *sync.Cond
	queue    [][]byte
	pending  int  // queued or being posted
	flushing bool // the boot waits for the queue
	failed   int  // consecutive failed posts
	closed   bool
}

// startWebhooks starts a worker for each webhook of the cloud-config, in
// the order of their names; the caller must hold a count of s.wg.
func (s *Server) startWebhooks(ctx context.Context) []*webhook {
	var hooks []*webhook
	for _, name := range slices.Sorted(maps.Keys(s.spec.cfg.Reporting)) {
		r := s.spec.cfg.Reporting[name]
		if r.Type != cloudinit.ReporterWebhook || r.Endpoint == "" {
			continue
		}
		h := &webhook{s: s, name: name, endpoint: r.Endpoint,
			timeout: time.Duration(r.Timeout) * time.Second, retries: max(r.Retries, 0)}
		h.cond = sync.NewCond(&h.mu)
		hooks = append(hooks, h)
		s.wg.Add(1)
		go h.work(ctx)
	}
	return hooks
}

// publish queues an event.
func (h *webhook) publish(body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.queue = append(h.queue, body)
	h.pending++
	h.cond.Broadcast()
}

// flush waits until the queue is posted or dropped (or the worker ends).
func (h *webhook) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flushing = true
	h.cond.Broadcast()
	for h.pending > 0 && !h.closed {
		h.cond.Wait()
	}
	h.flushing = false
	// Each stage is a process of its own, with a handler of its own: the
	// next stage counts failures from 0.
	h.failed = 0
}

// close ends the worker once it is idle.
func (h *webhook) close() {
	h.mu.Lock()
	h.closed = true
	h.cond.Broadcast()
	h.mu.Unlock()
}

// work posts the queued events until ctx ends or close.
func (h *webhook) work(ctx context.Context) {
	defer h.s.wg.Done()
	stop := context.AfterFunc(ctx, h.close)
	defer stop()
	for {
		h.mu.Lock()
		for {
			if h.flushing && h.failed > 2 && len(h.queue) > 0 {
				h.s.log.Warn("fake: reporting: multiple consecutive failures in WebHookHandler; cancelling all queued events",
					"reporter", h.name, "dropped", len(h.queue))
				h.pending -= len(h.queue)
				h.queue = nil
				h.failed = 0
				h.cond.Broadcast()
			}
			if len(h.queue) > 0 || h.closed {
				break
			}
			h.cond.Wait()
		}
		if len(h.queue) == 0 || ctx.Err() != nil {
			h.pending = 0
			h.queue = nil
			h.cond.Broadcast()
			h.mu.Unlock()
			return
		}
		body := h.queue[0]
		h.queue = h.queue[1:]
		h.mu.Unlock()

		ok := h.post(ctx, body)

		h.mu.Lock()
		if ok {
			h.failed = 0
		} else {
			h.failed++
		}
		h.pending--
		h.cond.Broadcast()
		h.mu.Unlock()
	}
}

// post sends one event, with the reporter's retries, and reports whether
// it was answered below 400.
func (h *webhook) post(ctx context.Context, body []byte) bool {
	var (
		code int
		err  error
	)
	for i := range h.retries + 1 {
		if i > 0 {
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if h.timeout > 0 {
			rctx, cancel = context.WithTimeout(ctx, h.timeout)
		}
		code, err = h.s.post(rctx, http.MethodPost, h.endpoint, body, "")
		cancel()
		h.s.mu.Lock()
		h.s.eventPosts++
		h.s.mu.Unlock()
		if err == nil && code < 400 {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
	if err != nil {
		h.s.log.Info("fake: reporting: failed posting event", "reporter", h.name, "err", err)
	} else {
		h.s.log.Info("fake: reporting: failed posting event", "reporter", h.name, "status", code)
	}
	return false
}
