package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// UserAgent is the User-Agent of the simulated phone_home and reporting
// requests: cloud-init's url_helper sends "Cloud-Init/" and the version,
// Debian 12's 22.4.2.
const UserAgent = "Cloud-Init/22.4.2"

// postAll is cloud-init's list for `post: all`, in its order; also what a
// phone_home without post sends.
var postAll = []string{"pub_key_dsa", "pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"}

// templateVar is cloud-init's basic template variable ($a, ${a}, $a.b).
var templateVar = regexp.MustCompile(`\$\{([A-Za-z0-9_.]+)\}|\$([A-Za-z0-9_.]+)`)

// runcmdFailure is what `cloud-init status --long` lists for a runcmd that
// failed (Faults.CloudInitError): the module's name as cloud.cfg has it,
// and the exception it raised, as cloud-init 22.4.2 prints them.
const runcmdFailure = "('" + modScriptsUser + "', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"

// cloudInit runs the simulated boot: the modules of each stage in turn
// (see bootStages), posting their events to the cloud-config's reporting
// webhooks, phone_home when the phone-home module's turn comes, after the
// boot delay, and cloud-init's final status before the last stage's own
// finish event. Without a webhook it only waits for the boot delay,
// phones home and records the status.
func (s *Server) cloudInit() {
	defer s.wg.Done()
	defer close(s.booted)
	ctx, cancel := s.untilStop(context.Background())
	defer cancel()
	start := time.Now()
	hooks := s.startWebhooks(ctx)
	defer func() {
		for _, h := range hooks {
			h.close()
		}
	}()
	report := func(name, desc, typ, result string) {
		if len(hooks) == 0 {
			return
		}
		body := bootEvent{name: name, description: desc, eventType: typ, result: result, at: time.Now()}.json()
		for _, h := range hooks {
			h.publish(body)
		}
	}
	// wait waits until the fraction at of the boot delay has passed.
	wait := func(at float64) bool {
		d := time.Until(start.Add(time.Duration(at * float64(s.delay))))
		if d <= 0 {
			return ctx.Err() == nil
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	var errs []string
	stage, stageFailed := -1, false
	endStage := func() {
		st := bootStages[stage]
		if stage == len(bootStages)-1 {
			// cloud-init writes its status when the stage's work ends,
			// before the stage's own finish event and the flush.
			s.finishCloudInit(errs, time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
		}
		result := "SUCCESS"
		if stageFailed {
			result = "FAIL"
		}
		report(st.name, st.desc, "finish", result)
		for _, h := range hooks {
			h.flush()
		}
	}
	for _, step := range bootPlan(s.spec.cfg) {
		if step.stage != stage {
			if stage >= 0 {
				endStage()
			}
			stage, stageFailed = step.stage, false
			if bootStages[stage].name == "init-network" {
				report("init-network/activate-datasource", "activating datasource", "start", "")
				report("init-network/activate-datasource", "activating datasource", "finish", "SUCCESS")
			}
		}
		if (len(hooks) > 0 || step.mod.name == modPhoneHome) && !wait(step.at) {
			return
		}
		name := bootStages[stage].name + "/config-" + step.mod.name
		desc := "running config-" + step.mod.name + " with frequency " + step.mod.freq
		report(name, desc, "start", "")
		if len(hooks) > 0 && !wait(step.end) {
			return
		}
		var failure string
		switch step.mod.name {
		case modScriptsUser:
			if s.faults.CloudInitError {
				failure = runcmdFailure
			}
		case modPhoneHome:
			s.setStatus("running")
			if s.faults.NoPhoneHome {
				s.log.Info("fake: fault NoPhoneHome: not phoning home")
			} else if err := s.phoneHome(ctx); err != nil {
				failure = err.Error()
			}
			if ctx.Err() != nil {
				return
			}
		}
		if failure != "" {
			errs = append(errs, failure)
			stageFailed = true
			report(name, desc, "finish", "FAIL")
			continue
		}
		report(name, "config-"+step.mod.name+" ran successfully", "finish", "SUCCESS")
	}
	if ctx.Err() == nil {
		endStage()
	}
}

// phoneHome posts as cloud-init 22.4's cc_phone_home does. It returns an
// error only where cloud-init's module itself fails (a URL template it
// cannot render); requests that fail are logged, as cloud-init does.
func (s *Server) phoneHome(ctx context.Context) error {
	ph := s.spec.cfg.PhoneHome
	target, err := renderURL(ph.URL, s.InstanceID())
	if err != nil {
		s.log.Warn("fake: phone_home url cannot be rendered: nothing posted", "err", err)
		return err
	}
	tries := ph.Tries
	switch {
	case tries == 0:
		tries = 10
	case tries < 0:
		tries = 1
	}
	body := s.phoneHomeForm()
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	for i := range tries {
		if i > 0 {
			t := time.NewTimer(s.interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		s.mu.Lock()
		s.phoneHomes++
		s.mu.Unlock()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		code, err := s.post(ctx, method, target, b, "application/x-www-form-urlencoded")
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.log.Info("fake: phone_home failed", "try", i+1, "tries", tries, "err", err)
		case code >= 400:
			s.log.Info("fake: phone_home refused", "try", i+1, "tries", tries, "status", code)
		default:
			s.log.Info("fake: phoned home", "try", i+1, "status", code)
			return nil
		}
	}
	s.log.Warn("fake: phone_home gave up", "tries", tries)
	return nil
}

// post sends one request as cloud-init's url_helper does through
// python-requests: its User-Agent, requests' default Accept-Encoding,
// Accept and Connection headers, the body (nil: none, and no
// Content-Type) with contentType, on a connection of its own (a new
// requests.Session per request: keep-alive is asked for, never used). It
// returns the status after redirects, which are followed; the body read
// is bounded and dropped.
func (s *Server) post(ctx context.Context, method, target string, body []byte, contentType string) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, withoutQuery(err)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept-Encoding", "gzip, deflate")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Connection", "keep-alive")
	if body != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := s.client
	if client == nil {
		t := s.transport.Clone()
		defer t.CloseIdleConnections()
		client = &http.Client{Transport: t}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, withoutQuery(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// withoutQuery drops the query (the callback token) from the URL that a
// *url.Error quotes, so that a failed phone_home can be logged.
func withoutQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u := *ue
		if i := strings.IndexAny(u.URL, "?#"); i >= 0 {
			u.URL = u.URL[:i] + "?[query removed]"
		}
		return &u
	}
	return err
}

// phoneHomeForm returns the form body: the post list's fields in its
// order, each once, "N/A" for what the server does not have (an RSA and an
// ECDSA key: it has only its ed25519 and DSA host keys). An empty (not
// absent) post list gives "": a GET without body.
func (s *Server) phoneHomeForm() string {
	post := s.spec.cfg.PhoneHome.Post
	if post == nil {
		post = postAll
	}
	values := map[string]string{
		"pub_key_dsa":     s.dsaKey,
		"pub_key_ed25519": keyLine(s.postedKey, s.hostname()),
		"instance_id":     s.InstanceID(),
		"hostname":        s.name,
		"fqdn":            s.name,
	}
	var b bytes.Buffer
	seen := map[string]bool{}
	for _, k := range post {
		if seen[k] {
			continue
		}
		seen[k] = true
		v, ok := values[k]
		if !ok {
			v = "N/A"
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v))
	}
	return b.String()
}

// renderURL substitutes $INSTANCE_ID and ${INSTANCE_ID}, unencoded, as
// cloud-init's basic templater does; any other variable is an error there
// (KeyError), and so here.
func renderURL(raw, instanceID string) (string, error) {
	var bad error
	out := templateVar.ReplaceAllStringFunc(raw, func(m string) string {
		sub := templateVar.FindStringSubmatch(m)
		name := sub[1]
		if name == "" {
			name = sub[2]
		}
		if name != "INSTANCE_ID" {
			if bad == nil {
				bad = fmt.Errorf("('%s', KeyError('%s'))", modPhoneHome, name)
			}
			return m
		}
		return instanceID
	})
	return strings.TrimLeft(out, " \t\n"), bad
}
