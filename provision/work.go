package provision

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/store"
)

// phoneHomePost is the phone_home post list the Provisioner sets: the
// host keys to pin and the names the callback records. ECDSA is posted
// besides ed25519 so that whichever key type the SSH handshake settles on
// is pinned (injection also offers only the pinned types).
func phoneHomePost() []string {
	return []string{"pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"}
}

// create runs the creating phase of r, whose lease this replica holds:
// delete a server left by an attempt that never phoned home, build the
// cloud-config, create (or adopt, by name) the server and record
// cloud_init. When the server phoned home before it was recorded, the
// injection follows under the same lease.
func (p *Provisioner) create(ctx context.Context, r store.Record) (err error) {
	ctx, ph := p.startPhase(ctx, phaseCreate, r)
	defer func() { ph.end(ctx, err) }()
	if r.ServerID != "" {
		// A retry after a server that never phoned home, or whose
		// phone_home's host keys were not its own: delete it, or creating
		// by name would adopt it again; and wait until it is gone, since
		// the provider may hold its name while it is being deleted
		// (Hetzner does), which would make the create fail.
		dctx, cancel := context.WithTimeout(ctx, p.cfg.CreateTimeout)
		err := p.deleteAndWait(dctx, r.ServerID)
		cancel()
		if err != nil {
			return p.fail(ctx, r, phaseCreate, overdue(ctx, dctx, "deleting the failed attempt's server", p.cfg.CreateTimeout,
				fmt.Errorf("the failed attempt's server: %w", err)), nil)
		}
		p.log.InfoContext(ctx, "deleted the failed attempt's server", "tenant", r.ID, "server", r.ServerID)
		rec, err := p.own(ctx, r.ID, []store.Status{store.StatusCreating}, func(cur *store.Record) error {
			cur.ServerID, cur.IPv4, cur.IPv6 = "", "", ""
			cur.ServerType, cur.Location = "", ""
			cur.Hostname, cur.InstanceID, cur.HostKeys = "", "", nil
			// A new server: a new nonce, so that the deleted server's
			// phone_home token (readable on it, in its user-data) is
			// refused.
			return newNonce(cur)
		})
		if err != nil {
			return p.stopped(ctx, r, phaseCreate, err)
		}
		r = rec
		p.forgetAddr(r.ID)
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.CreateTimeout)
	srv, secrets, err := p.createServer(cctx, r)
	cancel()
	if err != nil {
		return p.fail(ctx, r, phaseCreate, overdue(ctx, cctx, "creating the server", p.cfg.CreateTimeout, err), secrets)
	}
	p.rememberCreateSpan(ctx, r.ID) // for the link from its phone_home's span
	_, err = store.Transition(ctx, p.store, r.ID, []store.Status{store.StatusCreating}, store.StatusCloudInit,
		func(cur *store.Record) error {
			if cur.LeaseOwner != p.cfg.Replica {
				return errLeaseLost
			}
			setServer(cur, srv)
			cur.LeaseOwner, cur.LeaseUntil = "", time.Time{}
			cur.Error = ""
			return nil
		})
	if err == nil {
		p.emit(ctx, Event{Tenant: r.ID, From: store.StatusCreating, To: store.StatusCloudInit, RetiringServer: r.RetiringServerID})
		p.log.InfoContext(ctx, "server created", "tenant", r.ID, "server", srv.ID, "name", srv.Name)
		return nil
	}
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce) && ce.Status == store.StatusInjectingSecrets:
		// The server phoned home before the create was recorded. This
		// replica's lease carried over: record the server and inject.
		rec, err := p.own(ctx, r.ID, []store.Status{store.StatusInjectingSecrets}, func(cur *store.Record) error {
			setServer(cur, srv)
			return nil
		})
		if err != nil {
			return p.stopped(ctx, r, phaseCreate, err)
		}
		p.emit(ctx, Event{Tenant: r.ID, From: store.StatusCreating, To: store.StatusInjectingSecrets, RetiringServer: r.RetiringServerID})
		return p.inject(ctx, rec, false, phaseInject, true)
	case errors.As(err, &ce) && ce.Status == store.StatusDeleted:
		// Deprovisioned while the server was being created.
		p.forgetAddr(r.ID)
		// Whatever ctx says (the server must go), but not forever: the
		// deletion is part of the attempt, bounded like the create.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.CreateTimeout)
		defer cancel()
		if err := p.prov.Delete(dctx, srv.ID); err != nil {
			p.log.ErrorContext(ctx, "tenant deleted during create; cannot delete its new server", "tenant", r.ID, "server", srv.ID, "err", err)
			return err
		}
		return nil
	}
	return p.stopped(ctx, r, phaseCreate, err)
}

// Polling for a deleted server to be gone (deleteAndWait).
const (
	goneFirstPoll = 100 * time.Millisecond
	goneMaxPoll   = 5 * time.Second
)

// deleteAndWait deletes server id and waits, until ctx ends, for the
// provider to report it gone (ErrNotFound): a provider may keep a
// server, and its name, for a while after accepting the deletion.
func (p *Provisioner) deleteAndWait(ctx context.Context, id string) error {
	if err := p.prov.Delete(ctx, id); err != nil {
		return err
	}
	delay := goneFirstPoll
	for {
		srv, err := p.prov.Get(ctx, id)
		switch {
		case errors.Is(err, provider.ErrNotFound):
			return nil
		case ctx.Err() != nil:
			if err == nil {
				err = fmt.Errorf("server %s still there (status %q)", id, srv.Status)
			}
			return fmt.Errorf("waiting for the deleted server to be gone: %w: %w", ctx.Err(), err)
		case err != nil:
			p.log.DebugContext(ctx, "deleted server: lookup failed; trying again", "server", id, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		delay = min(2*delay, goneMaxPoll)
	}
}

// stopped handles a store write of the work that failed: a lost lease or
// a record that moved on end the work quietly; a store failure leaves the
// lease to expire (another replica retries, adopting by name) and is
// returned.
func (p *Provisioner) stopped(ctx context.Context, r store.Record, phase string, err error) error {
	if errors.Is(err, errLeaseLost) || errors.Is(err, store.ErrConflict) {
		p.log.InfoContext(ctx, "work stopped: the tenant moved on", "tenant", r.ID, "phase", phase, "err", err)
		phaseOf(ctx).stoppedBy()
		return nil
	}
	if ctx.Err() != nil {
		return p.fail(ctx, r, phase, err, nil)
	}
	return fmt.Errorf("provision: %s %s: %w", phase, r.ID, err)
}

func setServer(r *store.Record, srv provider.Server) {
	r.ServerID, r.ServerName, r.IPv4, r.IPv6 = srv.ID, srv.Name, srv.IPv4, srv.IPv6
	r.ServerType, r.Location = srv.ServerType, srv.Location
}

// createServer builds r's user-data and creates (or adopts) its server.
// It returns the tenant's secret values too, for redaction.
func (p *Provisioner) createServer(ctx context.Context, r store.Record) (provider.Server, []string, error) {
	secrets, err := p.secretsOf(ctx, r.ID)
	values := secretValues(secrets)
	if err != nil {
		return provider.Server{}, values, err
	}
	name := p.serverName(r)
	userData, err := p.userData(ctx, r, name, secrets)
	if err != nil {
		return provider.Server{}, values, err
	}
	var place Placement
	if p.cfg.PlacementFunc != nil {
		if place, err = p.cfg.PlacementFunc(ctx, r.Clone()); err != nil {
			return provider.Server{}, values, fmt.Errorf("placement: %w", err)
		}
	}
	labels := maps.Clone(p.cfg.Labels)
	labels[LabelTenant] = r.ID
	labels[LabelControlPlane] = p.cfg.ControlPlane
	req := provider.CreateRequest{Name: name, UserData: userData, Labels: labels,
		ServerType: place.ServerType, Image: place.Image}
	if err := req.Validate(); err != nil {
		return provider.Server{}, values, fmt.Errorf("server name from ServerNameFunc: %w", err)
	}
	// Capacity in one location is tried in the next, within the attempt.
	// A server that a dead replica's create brought up is adopted by name
	// wherever it is (names are unique per provider account): the first
	// location that answers the create adopts it, and the server reports
	// where it is (Server.Location), unless the driver cannot tell.
	locations := place.Locations
	if len(locations) == 0 {
		locations = []string{""}
	}
	var srv provider.Server
	for i, loc := range locations {
		req.Location = loc
		srv, err = p.prov.Create(ctx, req)
		if err == nil || !errors.Is(err, provider.ErrUnavailable) || i == len(locations)-1 || ctx.Err() != nil {
			break
		}
		p.log.InfoContext(ctx, "no capacity in this location; trying the next", "tenant", r.ID,
			"location", loc, "next", locations[i+1], "err", err)
	}
	if err != nil {
		// The driver's error names itself, the operation and the server
		// (see provider.Provider); the location is what provision chose.
		if req.Location != "" {
			err = fmt.Errorf("%w (location %s)", err, req.Location)
		}
		return provider.Server{}, values, err
	}
	if srv.ID == "" {
		return provider.Server{}, values, fmt.Errorf("create server %s: provider returned no server ID", name)
	}
	if srv.ID == r.RetiringServerID {
		// The new name is the retiring server's (a 2^-32 chance, see
		// claimReplace): never take the old server for the new one.
		return provider.Server{}, values, fmt.Errorf("%w: create server %s: the provider adopted the retiring server %s by name; Replace again",
			ErrConfig, name, srv.ID)
	}
	srv.ServerType = cmp.Or(srv.ServerType, req.ServerType)
	srv.Location = cmp.Or(srv.Location, req.Location)
	p.rememberAddr(r.ID, srv.Addr())
	return srv, values, nil
}

// userData renders the tenant's cloud-config: the bootstrap plus the
// phone_home module, the SSH user and key, the host name, and the secret
// values listed so that Build refuses a leaked one (see leakCheck).
func (p *Provisioner) userData(ctx context.Context, r store.Record, name string, secrets map[string]string) ([]byte, error) {
	cfg, err := p.cfg.BootstrapFunc(ctx, r.Clone())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = name
	}
	url := p.callbackURL(r)
	ph := cloudinit.PhoneHome{}
	if cfg.PhoneHome != nil {
		ph = *cfg.PhoneHome
		ph.Post = slices.Clone(ph.Post)
	}
	switch {
	case ph.URL == "":
		ph.URL = url
	case ph.URL != url:
		return nil, fmt.Errorf("%w: the bootstrap sets its own phone_home URL; leave it empty, the Provisioner sets it from CallbackBase", ErrConfig)
	}
	if len(ph.Post) == 0 {
		ph.Post = phoneHomePost()
	} else if !slices.ContainsFunc(ph.Post, func(s string) bool { return strings.HasPrefix(s, "pub_key_") }) {
		ph.Post = append(ph.Post, "pub_key_ed25519") // a callback without host keys cannot be pinned
	}
	if ph.Tries == 0 {
		ph.Tries = p.cfg.PhoneHomeTries
	}
	cfg.PhoneHome = &ph
	if err := p.withReporter(&cfg, r); err != nil {
		return nil, err
	}
	cfg.Users = p.withSSHUser(cfg.Users)
	if err := noPasswordLogin(&cfg); err != nil {
		return nil, err
	}
	cfg.Secrets = append(slices.Clone(cfg.Secrets), p.checkedSecrets(ctx, r, name, secrets)...)
	if ul, ok := p.cfg.Provider.(provider.UserDataLimiter); ok {
		if limit := ul.MaxUserData(); limit > 0 && (cfg.MaxSize == 0 || cfg.MaxSize > limit) {
			cfg.MaxSize = limit // the provider's limit, unless the bootstrap's is smaller
		}
	}
	data, err := cloudinit.Build(cfg)
	if err != nil {
		return nil, fmt.Errorf("build cloud-config: %w", err)
	}
	return data, nil
}

// lockRoot is the command that locks root's password, first in runcmd.
var lockRoot = cloudinit.Command{"passwd", "-l", "root"}

// noPasswordLogin makes sure no server of ours can be logged into with a
// password: sshd refuses password authentication (ssh_pwauth: false, set
// by cloud-init's config stage), and root's password is locked (passwd -l,
// first thing in the final stage, after whatever the provider's vendor
// data set, such as the root password Hetzner generates for a server
// created without an SSH key). Key logins are unaffected. A bootstrap that
// asks for password logins is a configuration error.
func noPasswordLogin(cfg *cloudinit.Config) error {
	if cfg.SSHPwauth != nil && *cfg.SSHPwauth {
		return fmt.Errorf("%w: the bootstrap sets ssh_pwauth: true; Hatchery's servers never accept password logins", ErrConfig)
	}
	no := false
	cfg.SSHPwauth = &no
	if !slices.ContainsFunc(cfg.RunCmd, func(c cloudinit.Command) bool { return slices.Equal(c, lockRoot) }) {
		cfg.RunCmd = append([]cloudinit.Command{lockRoot}, cfg.RunCmd...)
	}
	return nil
}

// checkedSecrets returns the secret values of tenant r, whose server is
// named name, that must not appear in its user-data nor on a command line
// of its steps (Build's
// Secrets, inject.WithRedact): every distinct value of secrets, and the
// value without its leading and trailing white space when it has some (a
// file or a vault read often ends in a newline, which a bootstrap or a
// step may drop), longest first, except
//
//   - values shorter than inject.MinRedactLen bytes (leading and trailing
//     space not counted), which inject does not redact either: "80",
//     "on", "1" match everywhere and are no secrets worth the name;
//   - values found in what the Provisioner itself writes into every
//     user-data or command (the phone_home URL with its token, the server
//     name, the SSH user and key, cloud-config's keys and booleans, see
//     newVocabulary): they are not secret from the server anyway, and a
//     port such as "8080" or a word such as "true" would otherwise fail
//     the tenant, for good, at random.
//
// Each secret left out is logged once per Provisioner and reason, by
// name, never its value. Errors are still redacted of every value of at
// least inject.MinRedactLen bytes (see redact).
func (p *Provisioner) checkedSecrets(ctx context.Context, r store.Record, name string, secrets map[string]string) []string {
	if len(secrets) == 0 {
		return nil
	}
	url := p.callbackURL(r)
	if p.cfg.BootProgress {
		url += "\n" + p.EventsURL(r)
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		v := secrets[k]
		switch {
		case v == "":
			continue
		case len(strings.TrimSpace(v)) < inject.MinRedactLen:
			p.warnOnce(ctx, "short", k, "secret value too short to look for in the user-data and on command lines; not checked there, nor redacted",
				"min_len", inject.MinRedactLen)
			continue
		}
		for _, form := range secretForms(v) {
			if bytes.Contains(p.vocab, []byte(form)) || strings.Contains(url, form) || strings.Contains(name, form) {
				p.warnOnce(ctx, "common", k, "secret value found in what the Provisioner writes itself (callback URL, server name, SSH user or key, cloud-config keys); not checked in the user-data nor on command lines")
				continue
			}
			if !slices.Contains(out, form) {
				out = append(out, form)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return out
}

// newVocabulary renders what the Provisioner writes into every tenant's
// user-data, for a placeholder tenant, with cloud-config's common keys
// and booleans: the words a secret value must not be, to be checked.
func (p *Provisioner) newVocabulary() ([]byte, error) {
	no := false
	users := append(p.withSSHUser(nil), cloudinit.User{Name: "x", Groups: []string{"sudo"}, LockPasswd: &no})
	var reporting map[string]cloudinit.Reporter
	if p.cfg.BootProgress {
		reporting = map[string]cloudinit.Reporter{ReporterName: {Type: cloudinit.ReporterWebhook, Endpoint: p.cfg.CallbackBase}}
	}
	return cloudinit.Build(cloudinit.Config{
		Reporting:      reporting,
		Hostname:       "x",
		Users:          users,
		PackageUpdate:  true,
		PackageUpgrade: true,
		WriteFiles:     []cloudinit.File{{Path: "/x", Content: "x", Owner: "root:root", Permissions: "0644", Append: true, Defer: true}},
		SSHPwauth:      &no,
		RunCmd:         []cloudinit.Command{lockRoot, {"x"}},
		PhoneHome:      &cloudinit.PhoneHome{URL: p.cfg.CallbackBase, Post: phoneHomePost(), Tries: p.cfg.PhoneHomeTries},
	})
}

// warnOnce logs msg at Warn level for secret name, once per reason and
// name in the life of the Provisioner.
func (p *Provisioner) warnOnce(ctx context.Context, reason, name, msg string, args ...any) {
	if _, seen := p.warned.LoadOrStore(reason+"\x00"+name, true); seen {
		return
	}
	p.log.WarnContext(ctx, msg, append([]any{"secret", name}, args...)...)
}

// withSSHUser returns users with Config.SSHUser holding the Signer's
// public key: added to the bootstrap's entry for that user, or as a new
// user with passwordless sudo.
func (p *Provisioner) withSSHUser(users []cloudinit.User) []cloudinit.User {
	users = slices.Clone(users)
	for i, u := range users {
		if u.Name != p.cfg.SSHUser {
			continue
		}
		for _, k := range u.SSHAuthorizedKeys {
			if keyBody(k) == keyBody(p.pubKey) {
				return users
			}
		}
		users[i].SSHAuthorizedKeys = append(slices.Clone(u.SSHAuthorizedKeys), p.pubKey)
		return users
	}
	return append(users, cloudinit.User{
		Name:              p.cfg.SSHUser,
		Shell:             "/bin/bash",
		Sudo:              "ALL=(ALL) NOPASSWD:ALL",
		SSHAuthorizedKeys: []string{p.pubKey},
	})
}

// keyBody returns "type base64" of an authorized_keys line.
func keyBody(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line
	}
	return f[0] + " " + f[1]
}

func authorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// secretsOf returns the tenant's secrets; none is an empty map.
func (p *Provisioner) secretsOf(ctx context.Context, id string) (map[string]string, error) {
	s, err := p.cfg.Secrets.Secrets(ctx, id)
	switch {
	case errors.Is(err, inject.ErrNoSecrets):
		return map[string]string{}, nil
	case err != nil:
		return nil, &secretsError{err}
	case s == nil:
		return map[string]string{}, nil
	}
	return s, nil
}

// secretForms returns v, and v without its leading and trailing white
// space when that differs and is not empty: the forms of a secret value
// that are looked for and redacted.
func secretForms(v string) []string {
	if t := strings.TrimSpace(v); t != v && t != "" {
		return []string{v, t}
	}
	return []string{v}
}

// secretValues returns the distinct non-empty values of s, and their
// forms without surrounding white space (secretForms), longest first: what
// redact replaces.
func secretValues(s map[string]string) []string {
	var vs []string
	for _, v := range s {
		if v == "" {
			continue
		}
		for _, form := range secretForms(v) {
			if !slices.Contains(vs, form) {
				vs = append(vs, form)
			}
		}
	}
	slices.SortFunc(vs, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return vs
}

// inject runs the injection of r, whose lease this replica holds in
// injecting_secrets: dial SSH pinned to the host keys posted at
// phone_home, wait for cloud-init, run the caller's steps, record ready.
//
// first says that the injection, when it succeeds, ends a first
// provisioning (not a rotation's, nor a replacement's: see
// hatchery.provision.duration), when the caller knows.
func (p *Provisioner) inject(ctx context.Context, r store.Record, rotate bool, phase string, first bool) (err error) {
	ctx, ph := p.startPhase(ctx, phase, r)
	defer func() { ph.end(ctx, err) }()
	if len(r.HostKeys) == 0 {
		return p.fail(ctx, r, phase, errNoHostKeys, nil)
	}
	ictx, cancel := context.WithTimeout(ctx, p.cfg.InjectTimeout)
	defer cancel()
	err = p.injectSteps(ictx, r, rotate)
	if err != nil {
		var vs []string
		var fe *injectError
		if errors.As(err, &fe) {
			err, vs = fe.err, fe.secrets
		}
		return p.fail(ctx, r, phase, overdue(ctx, ictx, "the injection", p.cfg.InjectTimeout, err), vs)
	}
	if r.RetiringServerID != "" {
		// A replacement: the new server is injected, the old one goes
		// before ready is recorded (see Replace).
		if err := p.retire(ctx, r); err != nil {
			return p.fail(ctx, r, phaseRetire, err, nil)
		}
	}
	ready, err := store.Transition(ctx, p.store, r.ID, []store.Status{store.StatusInjectingSecrets}, store.StatusReady,
		func(cur *store.Record) error {
			if cur.LeaseOwner != p.cfg.Replica || cur.RetiringServerID != r.RetiringServerID {
				return errLeaseLost
			}
			cur.LeaseOwner, cur.LeaseUntil = "", time.Time{}
			cur.Error = ""
			cur.RetiringServerID = ""
			// Injected and checked: whatever a drift check saw is over.
			cur.Drift, cur.DriftAt = "", time.Time{}
			return nil
		})
	if err != nil {
		return p.stopped(ctx, r, phase, err)
	}
	p.forgetAddr(r.ID)
	p.emit(ctx, Event{Tenant: r.ID, From: store.StatusInjectingSecrets, To: store.StatusReady, RetiringServer: r.RetiringServerID})
	if first && r.RetiringServerID == "" {
		p.tel.provisioned(ctx, ready)
	}
	return nil
}

// injectError carries an injection failure and the secret values to
// redact from it.
type injectError struct {
	err     error
	secrets []string
}

func (e *injectError) Error() string { return e.err.Error() }

// overdue explains an error that came from tctx's deadline (a timeout of
// the attempt) rather than from ctx.
func overdue(ctx, tctx context.Context, what string, d time.Duration, err error) error {
	if ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s took longer than %v: %w", what, d, err)
	}
	return err
}

// injectSteps connects to r's server and runs the cloud-init wait and the
// caller's steps. Its errors are *injectError or store errors from
// adopting the server.
func (p *Provisioner) injectSteps(ctx context.Context, r store.Record, rotate bool) error {
	fail := func(err error, values []string) error { return &injectError{err: err, secrets: values} }
	secrets, err := p.secretsOf(ctx, r.ID)
	values := secretValues(secrets)
	if err != nil {
		return fail(err, values)
	}
	if r.ServerID == "" {
		// Phoned home, but the replica that created the server died
		// before recording it: adopt it by name.
		srv, vs, err := p.createServer(ctx, r)
		if err != nil {
			return fail(fmt.Errorf("adopt server: %w", err), append(values, vs...))
		}
		r, err = p.own(ctx, r.ID, []store.Status{store.StatusInjectingSecrets}, func(cur *store.Record) error {
			setServer(cur, srv)
			return nil
		})
		if err != nil {
			return fail(fmt.Errorf("record adopted server: %w", err), values)
		}
	}
	addr, srv, err := p.sshAddr(ctx, r)
	if err != nil {
		return fail(err, values)
	}
	if r.IPv4 == "" && r.IPv6 == "" && (srv.IPv4 != "" || srv.IPv6 != "") {
		// The provider did not know the addresses at create: record them
		// now that they are known.
		r, err = p.own(ctx, r.ID, []store.Status{store.StatusInjectingSecrets}, func(cur *store.Record) error {
			if cur.ServerID != r.ServerID {
				return errLeaseLost
			}
			cur.IPv4, cur.IPv6 = srv.IPv4, srv.IPv6
			return nil
		})
		if err != nil {
			return fail(fmt.Errorf("record the server's addresses: %w", err), values)
		}
	}
	if err := p.verifySource(ctx, r, r.IPv4, r.IPv6); err != nil {
		return fail(err, values)
	}
	steps, err := p.cfg.StepsFunc(ctx, StepsInput{Record: r.Clone(), Secrets: maps.Clone(secrets), Rotate: rotate})
	if err != nil {
		return fail(fmt.Errorf("steps: %w", err), values)
	}
	wait, steps := p.splitCloudInitWait(steps)
	checked := p.checkedSecrets(ctx, r, cmp.Or(r.ServerName, p.serverName(r)), secrets)
	conn, err := p.dialServer(ctx, r, addr)
	if err != nil {
		return fail(err, values)
	}
	defer conn.Close()
	// Two runs on one connection: cloud-init first, alone, so that no
	// secret leaves the control plane for a server whose bootstrap
	// failed; then the caller's steps, as one pipelined script.
	phase := phaseOf(ctx).name(phaseInject)
	for i, part := range [][]inject.Step{{wait}, steps} {
		// The wait is step index 0 (step 1 in messages); the caller's
		// steps follow, numbered on by inject itself, so that errors,
		// logs and events agree.
		sctx, span := p.tel.startSpan(ctx, "hatchery.ssh.session", "", trace.SpanKindClient)
		if span.IsRecording() {
			span.SetAttributes(attribute.Int(attrSSHSteps, len(part)), attribute.Int(attrStepIndex, i))
		}
		events, finish := p.tel.steps(sctx, phase, values, func(e inject.Event) {
			p.emit(sctx, Event{Tenant: r.ID, Step: e.Step, StepIndex: e.Index, StepDone: e.Done, Err: e.Err})
		})
		err = inject.Run(sctx, conn, part,
			inject.WithFirstIndex(i),
			inject.WithRedact(checked...),
			inject.WithLogger(p.log.With("tenant", r.ID)),
			inject.WithEvents(events))
		finish()
		endSpanRedacted(span, err, values)
		if err != nil {
			return fail(err, values)
		}
	}
	return nil
}

// dialServer connects to r's server at addr over SSH, pinned to the host
// keys r's phone_home posted (offering only their key types), through the
// bastion when there is one, within dialBudget SSHTimeouts. Closing the
// connection closes the bastion's too.
func (p *Provisioner) dialServer(ctx context.Context, r store.Record, addr string) (*serverConn, error) {
	ctx, span := p.tel.startSpan(ctx, "hatchery.ssh.connect", "", trace.SpanKindClient)
	if span.IsRecording() {
		span.SetAttributes(attribute.String(attrServerAddress, addr), attribute.Bool(attrSSHJump, p.cfg.SSHJump != nil))
	}
	conn, err := p.dialServerSpan(ctx, r, addr)
	endSpan(span, err)
	return conn, err
}

// dialServerSpan is dialServer, in its span.
func (p *Provisioner) dialServerSpan(ctx context.Context, r store.Record, addr string) (*serverConn, error) {
	hostKeys, err := inject.PinnedHostKeys(r.HostKeys)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoHostKeys, err)
	}
	algos, err := inject.PinnedHostKeyAlgorithms(r.HostKeys)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoHostKeys, err)
	}
	dialCtx, cancelDial := context.WithTimeout(ctx, dialBudget*p.cfg.SSHTimeout)
	defer cancelDial()
	jump, err := p.dialJump(dialCtx, r.ID)
	if err != nil {
		return nil, err
	}
	conn, err := inject.Dial(dialCtx, addr, inject.SSHConfig{
		User:              p.cfg.SSHUser,
		Signer:            p.cfg.Signer,
		Agent:             p.cfg.SSHAgent,
		AgentSocket:       p.cfg.SSHAgentSocket,
		Jump:              jump,
		HostKeyCallback:   hostKeys,
		HostKeyAlgorithms: algos,
		Timeout:           p.cfg.SSHTimeout,
		Logger:            p.log.With("tenant", r.ID),
	})
	if err != nil {
		if jump != nil {
			jump.Close()
		}
		return nil, err // inject.Dial's error names the address
	}
	return &serverConn{SSH: conn, jump: jump}, nil
}

// serverConn is an SSH connection to a tenant's server, and the bastion
// connection it goes through, if any.
type serverConn struct {
	*inject.SSH
	jump *inject.SSH
}

// Close closes the connection, then the bastion's.
func (c *serverConn) Close() error {
	err := c.SSH.Close()
	if c.jump != nil {
		c.jump.Close()
	}
	return err
}

// splitCloudInitWait returns the cloud-init wait and the other steps:
// the steps' own first step when it is a cloud-init wait (as
// inject.WaitCloudInit builds it), else inject.WaitCloudInit with
// Config.AllowRecoverableCloudInit.
func (p *Provisioner) splitCloudInitWait(steps []inject.Step) (inject.Step, []inject.Step) {
	if len(steps) > 0 {
		first := steps[0].Cmd
		if first == inject.WaitCloudInit(true).Cmd || first == inject.WaitCloudInit(false).Cmd {
			return steps[0], steps[1:]
		}
	}
	return inject.WaitCloudInit(p.cfg.AllowRecoverableCloudInit), steps
}

// dialBudget bounds a whole Dial, retries included, in SSHTimeouts: the
// server has phoned home, so its SSH daemon is up or coming.
const dialBudget = 5

// sshAddr returns where r's server listens for SSH: what Create returned
// in this process, else what the provider reports now (one Get, which
// also gives the addresses of a server whose provider did not know them
// at create; the server has phoned home, so it is up). srv is the Get's
// answer, zero when there was none.
func (p *Provisioner) sshAddr(ctx context.Context, r store.Record) (addr string, srv provider.Server, err error) {
	if a := p.knownAddr(r.ID); a != "" {
		return a, provider.Server{}, nil
	}
	srv, err = p.prov.Get(ctx, r.ServerID)
	if err != nil {
		return "", provider.Server{}, err // the driver's error names the server
	}
	addr = srv.Addr()
	if addr == "" {
		return "", provider.Server{}, fmt.Errorf("server %s has no address", r.ServerID)
	}
	p.rememberAddr(r.ID, addr)
	return addr, srv, nil
}

// dialJump connects to the bastion (Config.SSHJump) for one injection;
// nil without one. Its errors wrap errJump: a host key failure there is
// the bastion's, not the tenant server's (see badPin).
func (p *Provisioner) dialJump(ctx context.Context, id string) (*inject.SSH, error) {
	j := p.cfg.SSHJump
	if j == nil {
		return nil, nil
	}
	conn, err := inject.Dial(ctx, j.Addr, inject.SSHConfig{
		User:            j.User,
		Signer:          j.Signer,
		Agent:           j.Agent,
		AgentSocket:     p.cfg.SSHAgentSocket,
		HostKeyCallback: j.HostKeyCallback,
		Timeout:         p.cfg.SSHTimeout,
		Logger:          p.log.With("tenant", id, "jump", j.Addr),
	})
	if err != nil {
		return nil, fmt.Errorf("ssh %w %s: %w", errJump, j.Addr, err)
	}
	return conn, nil
}
