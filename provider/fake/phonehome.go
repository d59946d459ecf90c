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

// UserAgent is the User-Agent of the simulated phone_home.
const UserAgent = "Cloud-Init/22.4"

// postAll is cloud-init's list for `post: all`, in its order; also what a
// phone_home without post sends.
var postAll = []string{"pub_key_dsa", "pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"}

// templateVar is cloud-init's basic template variable ($a, ${a}, $a.b).
var templateVar = regexp.MustCompile(`\$\{([A-Za-z0-9_.]+)\}|\$([A-Za-z0-9_.]+)`)

// cloudInit waits for the boot delay, phones home and records cloud-init's
// final status.
func (s *Server) cloudInit() {
	defer s.wg.Done()
	defer close(s.booted)
	ctx, cancel := s.untilStop(context.Background())
	defer cancel()
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	s.setStatus("running")
	var errs []string
	if s.faults.CloudInitError {
		errs = append(errs, "('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))")
	}
	if s.faults.NoPhoneHome {
		s.log.Info("fake: fault NoPhoneHome: not phoning home")
	} else if err := s.phoneHome(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	if ctx.Err() != nil {
		return
	}
	s.finishCloudInit(errs, time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
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
		code, err := s.postOnce(ctx, method, target, body)
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

func (s *Server) postOnce(ctx context.Context, method, target, body string) (int, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, withoutQuery(err)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "*/*")
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.client.Do(req)
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
// order, each once, "N/A" for what the server does not have. An empty
// (not absent) post list gives "": a GET without body.
func (s *Server) phoneHomeForm() string {
	post := s.spec.cfg.PhoneHome.Post
	if post == nil {
		post = postAll
	}
	values := map[string]string{
		"pub_key_ed25519": keyLine(s.postedKey, s.name),
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
				bad = fmt.Errorf("('phone_home', KeyError('%s'))", name)
			}
			return m
		}
		return instanceID
	})
	return strings.TrimLeft(out, " \t\n"), bad
}
