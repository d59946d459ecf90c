package hetzner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
)

// ManagedLabel is the label Create puts on every server, with the value
// "true": a server with the same name and this label is ours to adopt.
const ManagedLabel = "hatchery.dev/managed"

var (
	_ provider.Provider          = (*Provider)(nil)
	_ provider.Lister            = (*Provider)(nil)
	_ provider.CredentialChecker = (*Provider)(nil)
	_ provider.InstanceIDer      = (*Provider)(nil)
	_ provider.UserDataLimiter   = (*Provider)(nil)
)

// Options describe the servers a Provider creates. ServerType, Image and
// Location are defaults: a CreateRequest that names its own wins.
type Options struct {
	ServerType string // required: a server type name, e.g. "cx22"
	Image      string // required: an image name or ID, e.g. "ubuntu-24.04"
	Location   string // a location name, e.g. "fsn1"; "" lets Hetzner choose
	// SSHKeys are names (or IDs) of SSH keys registered in the Hetzner
	// project, resolved to IDs once and installed for root on every
	// server. With at least one, Hetzner generates no root password;
	// with none, it generates one for every server (see the package
	// documentation, "Root password").
	SSHKeys   []string
	Firewalls []int64 // IDs of firewalls applied at creation
	Networks  []int64 // IDs of private networks the server joins
	// Labels go on every server, besides the request's labels (which win)
	// and ManagedLabel. Keys and values must follow Hetzner's label syntax.
	Labels map[string]string
	// Logger gets a line for every adopted server; nil means quiet.
	Logger *slog.Logger
}

// Validate checks the options without any API call. Errors wrap
// provider.ErrInvalid.
func (o Options) Validate() error {
	if err := o.validate(); err != nil {
		return fmt.Errorf("hetzner: options: %w", err)
	}
	return nil
}

// validate is Validate without the driver's name: errors of the helpers
// below say what is wrong, their callers say where (see Validate, Create).
func (o Options) validate() error {
	if o.ServerType == "" {
		return fmt.Errorf("%w: empty ServerType", provider.ErrInvalid)
	}
	if o.Image == "" {
		return fmt.Errorf("%w: empty Image", provider.ErrInvalid)
	}
	if err := checkNames("", o.ServerType, o.Location, o.Image); err != nil {
		return err
	}
	for i, k := range o.SSHKeys {
		if k == "" {
			return fmt.Errorf("%w: SSHKeys[%d] is empty", provider.ErrInvalid, i)
		}
	}
	for i, id := range o.Firewalls {
		if id <= 0 {
			return fmt.Errorf("%w: Firewalls[%d] is not an ID: %d", provider.ErrInvalid, i, id)
		}
	}
	for i, id := range o.Networks {
		if id <= 0 {
			return fmt.Errorf("%w: Networks[%d] is not an ID: %d", provider.ErrInvalid, i, id)
		}
	}
	return checkLabels("Labels", o.Labels)
}

// checkNames checks a server type, location and image name ("" is fine)
// without any API call: Hetzner's names and IDs are letters, digits, '.',
// '_' and '-', at most 63 bytes. prefix starts the field names.
func checkNames(prefix, serverType, location, image string) error {
	for _, f := range []struct{ field, v string }{
		{"ServerType", serverType}, {"Location", location}, {"Image", image},
	} {
		if len(f.v) > 63 || strings.IndexFunc(f.v, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
		}) >= 0 {
			return fmt.Errorf("%w: %s%s %q is not a Hetzner name", provider.ErrInvalid, prefix, f.field, f.v)
		}
	}
	return nil
}

// checkLabels checks labels against Hetzner's syntax, and that they leave
// ManagedLabel alone.
func checkLabels(field string, labels map[string]string) error {
	m := make(map[string]any, len(labels))
	for k, v := range labels {
		m[k] = v
	}
	if _, err := hcloud.ValidateResourceLabels(m); err != nil {
		return fmt.Errorf("%w: %s: %w", provider.ErrInvalid, field, err)
	}
	if v, ok := labels[ManagedLabel]; ok && v != "true" {
		return fmt.Errorf("%w: %s: label %s is the driver's own", provider.ErrInvalid, field, ManagedLabel)
	}
	return nil
}

// Provider creates, inspects and deletes Hetzner Cloud servers. It is safe
// for concurrent use.
type Provider struct {
	client  *hcloud.Client
	opts    Options
	optsErr error
	log     *slog.Logger

	keyLock chan struct{} // a one-slot lock that honours contexts
	keys    []*hcloud.SSHKey
	keysOK  bool

	warnOnce sync.Once // the warning about root passwords

	rateLeft atomic.Int64 // RateLimit-Remaining of the last answer that had it, plus 1; 0: none yet
}

// New returns a Provider that creates servers as opts describe through
// client (see NewClient for one that paces requests). New makes no API call
// and does not fail: invalid options are reported by Init and by every
// Create; call opts.Validate first to fail early.
func New(client *hcloud.Client, opts Options) *Provider {
	opts.SSHKeys = slices.Clone(opts.SSHKeys)
	opts.Firewalls = slices.Clone(opts.Firewalls)
	opts.Networks = slices.Clone(opts.Networks)
	opts.Labels = maps.Clone(opts.Labels)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{client: client, opts: opts, optsErr: opts.validate(), log: log, keyLock: make(chan struct{}, 1)}
}

// Init validates the options and resolves the SSH key names to IDs with
// one request per 50 keys of the project (none when Options.SSHKeys is
// empty). Calling it is optional: the first Create does the same. Once it
// succeeded, the IDs are kept and Create costs one API request.
func (p *Provider) Init(ctx context.Context) error {
	if p.optsErr != nil {
		return fmt.Errorf("hetzner: options: %w", p.optsErr)
	}
	p.warnPassword(ctx)
	if _, err := p.sshKeys(ctx); err != nil {
		return fmt.Errorf("hetzner: %w", err)
	}
	return nil
}

// warnPassword logs once, at the first Init or Create, that servers get a
// root password when Options.SSHKeys is empty.
func (p *Provider) warnPassword(ctx context.Context) {
	if len(p.opts.SSHKeys) > 0 {
		return
	}
	p.warnOnce.Do(func() {
		p.log.LogAttrs(ctx, slog.LevelWarn, "hetzner: no SSHKeys: Hetzner generates a root password for every server "+
			"(the driver discards it); set Options.SSHKeys so that none is made")
	})
}

// sshKeys returns the resolved SSH keys, resolving them on first use. A
// failed resolution is not kept: the next call tries again.
func (p *Provider) sshKeys(ctx context.Context) ([]*hcloud.SSHKey, error) {
	if len(p.opts.SSHKeys) == 0 {
		return nil, nil
	}
	select {
	case p.keyLock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.keyLock }()
	if p.keysOK {
		return p.keys, nil
	}
	all, err := p.client.SSHKey.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("list ssh keys: %w", mapError(err, nil))
	}
	keys := make([]*hcloud.SSHKey, 0, len(p.opts.SSHKeys))
	for _, want := range p.opts.SSHKeys {
		i := slices.IndexFunc(all, func(k *hcloud.SSHKey) bool { return k.Name == want })
		if i < 0 {
			i = slices.IndexFunc(all, func(k *hcloud.SSHKey) bool { return strconv.FormatInt(k.ID, 10) == want })
		}
		if i < 0 {
			return nil, fmt.Errorf("%w: ssh key %q not found in the project", provider.ErrInvalid, want)
		}
		keys = append(keys, &hcloud.SSHKey{ID: all[i].ID, Name: all[i].Name})
	}
	p.keys, p.keysOK = keys, true
	return keys, nil
}

// Create creates the server with one POST /servers and returns it as the
// answer describes it (status "initializing", its addresses), without
// waiting for the create action: readiness comes from cloud-init's
// phone_home. The labels are Options.Labels, then req.Labels, then
// ManagedLabel=true.
//
// If the name is taken (hcloud-go retried a POST whose answer was lost, or
// the caller crashed between Create and recording its result), Create looks
// the server up by name once and adopts it when it carries ManagedLabel and
// every label of req.Labels; otherwise the error wraps provider.ErrConflict.
//
// User-data over cloudinit.MaxSize is never sent: the error wraps
// provider.ErrInvalid.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	if p.optsErr != nil {
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: options: %w", req.Name, p.optsErr)
	}
	if err := req.Validate(); err != nil {
		return provider.Server{}, fmt.Errorf("hetzner: create server: %w", err)
	}
	if n := len(req.UserData); n > MaxUserData {
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: %w: user_data is %d bytes, over Hetzner's limit of %d",
			req.Name, provider.ErrInvalid, n, MaxUserData)
	}
	if err := checkLabels("request labels", req.Labels); err != nil {
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: %w", req.Name, err)
	}
	if err := checkNames("request ", req.ServerType, req.Location, req.Image); err != nil {
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: %w", req.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: %w", req.Name, err)
	}
	p.warnPassword(ctx)
	keys, err := p.sshKeys(ctx)
	if err != nil {
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: %w", req.Name, err)
	}

	labels := maps.Clone(p.opts.Labels)
	if labels == nil {
		labels = make(map[string]string, len(req.Labels)+1)
	}
	maps.Copy(labels, req.Labels)
	labels[ManagedLabel] = "true"

	opts := hcloud.ServerCreateOpts{
		Name:       req.Name,
		ServerType: &hcloud.ServerType{Name: cmp.Or(req.ServerType, p.opts.ServerType)},
		Image:      imageRef(cmp.Or(req.Image, p.opts.Image)),
		SSHKeys:    keys,
		UserData:   string(req.UserData),
		Labels:     labels,
	}
	if loc := cmp.Or(req.Location, p.opts.Location); loc != "" {
		opts.Location = &hcloud.Location{Name: loc}
	}
	for _, id := range p.opts.Firewalls {
		opts.Firewalls = append(opts.Firewalls, &hcloud.ServerCreateFirewall{Firewall: hcloud.Firewall{ID: id}})
	}
	for _, id := range p.opts.Networks {
		opts.Networks = append(opts.Networks, &hcloud.Network{ID: id})
	}

	// res.RootPassword, set when no SSH key was given, is dropped here
	// with res: never logged, returned or kept.
	res, resp, err := p.client.Server.Create(ctx, opts)
	p.noteRate(resp)
	switch {
	case hcloud.IsError(err, hcloud.ErrorCodeUniquenessError):
		return p.adopt(ctx, req, err)
	case err != nil:
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: %w", req.Name, mapError(err, resp))
	case res.Server == nil || res.Server.ID == 0:
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: the answer names no server", req.Name)
	}
	return toServer(res.Server), nil
}

// List returns the servers that carry ManagedLabel=true and every label of
// selector, with one GET /servers per 50 servers (Hetzner's largest page;
// one for none): Hetzner filters them by label selector. Options.Labels are not added to the selector; pass them in
// selector to narrow the list. Servers being deleted are left out, as Get
// reports them not found. A selector that is not valid label syntax
// wraps provider.ErrInvalid, before any request.
func (p *Provider) List(ctx context.Context, selector map[string]string) ([]provider.Server, error) {
	if err := checkLabels("selector", selector); err != nil {
		return nil, fmt.Errorf("hetzner: list servers: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("hetzner: list servers: %w", err)
	}
	opts := hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{LabelSelector: labelSelector(selector), PerPage: 50, Page: 1}}
	var out []provider.Server
	for {
		// Paging as hcloud-go's AllWithOpts does, keeping each answer for
		// mapError.
		page, resp, err := p.client.Server.List(ctx, opts)
		p.noteRate(resp)
		if err != nil {
			return nil, fmt.Errorf("hetzner: list servers (page %d): %w", opts.Page, mapError(err, resp))
		}
		for _, s := range page {
			// Hetzner filtered already; checking again costs nothing and
			// keeps a foreign server out whatever the API does.
			if ours(s.Labels, selector) && s.Status != hcloud.ServerStatusDeleting {
				out = append(out, toServer(s))
			}
		}
		pg := resp.Meta.Pagination
		if pg == nil || pg.NextPage <= opts.Page {
			return out, nil
		}
		opts.Page = pg.NextPage
	}
}

// labelSelector renders ManagedLabel=true and the labels of selector as a
// Hetzner label selector, keys sorted.
func labelSelector(selector map[string]string) string {
	terms := []string{ManagedLabel + "=true"}
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		if k != ManagedLabel {
			terms = append(terms, k+"="+selector[k])
		}
	}
	return strings.Join(terms, ",")
}

// CheckCredentials asks for one server of ours (GET /servers?per_page=1):
// nil when Hetzner accepts the token, an error wrapping
// provider.ErrUnauthorized when it refuses it (401 unauthorized, 403
// forbidden), another error when it could not tell. A read-only token
// passes: Hetzner says no more than that without a write, and the first
// Create then fails with provider.ErrUnauthorized (forbidden).
func (p *Provider) CheckCredentials(ctx context.Context) error {
	_, resp, err := p.client.Server.List(ctx, hcloud.ServerListOpts{
		ListOpts: hcloud.ListOpts{LabelSelector: labelSelector(nil), PerPage: 1},
	})
	p.noteRate(resp)
	if err != nil {
		return fmt.Errorf("hetzner: check credentials: %w", mapError(err, resp))
	}
	return nil
}

// InstanceID returns the instance ID cloud-init reports on a Hetzner
// server: its datasource reads instance-id from the metadata service,
// which is the numeric server ID (and checks it against the SMBIOS
// serial), so it is the server ID itself.
func (p *Provider) InstanceID(serverID string) string { return serverID }

// MaxUserData is Hetzner's user_data limit, in bytes.
const MaxUserData = cloudinit.MaxSize

// MaxUserData returns Hetzner's user_data limit, MaxUserData bytes.
func (p *Provider) MaxUserData() int { return MaxUserData }

// adopt looks up the server named req.Name after the create request found
// the name taken (cause), and returns it if it is ours.
func (p *Provider) adopt(ctx context.Context, req provider.CreateRequest, cause error) (provider.Server, error) {
	s, resp, err := p.client.Server.GetByName(ctx, req.Name)
	p.noteRate(resp)
	switch {
	case err != nil:
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: name taken, lookup failed: %w", req.Name, mapError(err, resp))
	case s == nil:
		// Gone between the two requests (or not listed yet): trying again
		// will tell, so this is not a conflict.
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: name taken but no server by that name found: %w", req.Name, cause)
	case !ours(s.Labels, req.Labels):
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: %w (server %d): %w", req.Name, provider.ErrConflict, s.ID, cause)
	case s.Status == hcloud.ServerStatusDeleting:
		return provider.Server{}, fmt.Errorf("hetzner: create server %q: our server %d by that name is being deleted: %w", req.Name, s.ID, cause)
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "hetzner: adopted existing server",
		slog.String("name", s.Name), slog.Int64("id", s.ID))
	return toServer(s), nil
}

// ours reports whether a server's labels mark it as created by this driver
// for the request with the labels want.
func ours(have, want map[string]string) bool {
	if have[ManagedLabel] != "true" {
		return false
	}
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// RateLimitRemaining returns how many requests the project's budget had
// left by the last answer of the Hetzner API that said (its
// RateLimit-Remaining header, counted per project), and false before any
// did: what a metric shows (provision's
// hatchery.provider.rate_limit.remaining gauge). It makes no request.
func (p *Provider) RateLimitRemaining() (int, bool) {
	v := p.rateLeft.Load()
	return int(v - 1), v > 0
}

// noteRate keeps the budget an answer reports, for RateLimitRemaining.
func (p *Provider) noteRate(resp *hcloud.Response) {
	if resp != nil && resp.Response != nil && resp.Meta.Ratelimit.Limit > 0 {
		p.rateLeft.Store(int64(max(resp.Meta.Ratelimit.Remaining, 0)) + 1)
	}
}

// Get returns the server with the given ID, or an error wrapping
// provider.ErrNotFound, also for a server being deleted (status
// "deleting": Hetzner lists it until the delete action ends). It costs one
// API request.
func (p *Provider) Get(ctx context.Context, id string) (provider.Server, error) {
	n, err := parseID(id)
	if err != nil {
		return provider.Server{}, fmt.Errorf("hetzner: get server %q: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return provider.Server{}, fmt.Errorf("hetzner: get server %d: %w", n, err)
	}
	s, resp, err := p.client.Server.GetByID(ctx, n)
	p.noteRate(resp)
	switch {
	case err != nil:
		return provider.Server{}, fmt.Errorf("hetzner: get server %d: %w", n, mapError(err, resp))
	case s == nil:
		return provider.Server{}, fmt.Errorf("hetzner: get server %d: %w", n, provider.ErrNotFound)
	case s.Status == hcloud.ServerStatusDeleting:
		return provider.Server{}, fmt.Errorf("hetzner: get server %d: being deleted: %w", n, provider.ErrNotFound)
	}
	return toServer(s), nil
}

// Delete deletes the server with the given ID with one API request,
// without waiting for the delete action. A server that does not exist
// counts as deleted.
func (p *Provider) Delete(ctx context.Context, id string) error {
	n, err := parseID(id)
	if err != nil {
		return fmt.Errorf("hetzner: delete server %q: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("hetzner: delete server %d: %w", n, err)
	}
	_, resp, err := p.client.Server.DeleteWithResult(ctx, &hcloud.Server{ID: n})
	p.noteRate(resp)
	if err != nil {
		err = mapError(err, resp)
		if errors.Is(err, provider.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("hetzner: delete server %d: %w", n, err)
	}
	return nil
}

func parseID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: not a Hetzner server ID", provider.ErrInvalid)
	}
	return n, nil
}

// imageRef refers to an image by ID when ref is a number, else by name.
func imageRef(ref string) *hcloud.Image {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && id > 0 {
		return &hcloud.Image{ID: id}
	}
	return &hcloud.Image{Name: ref}
}

// toServer converts an hcloud server. IPv6 is the ::1 address of the
// server's /64, the one Hetzner's images configure.
func toServer(s *hcloud.Server) provider.Server {
	out := provider.Server{
		ID:      strconv.FormatInt(s.ID, 10),
		Name:    s.Name,
		Status:  string(s.Status),
		Labels:  maps.Clone(s.Labels),
		Created: s.Created,
	}
	if s.ServerType != nil {
		out.ServerType = s.ServerType.Name
	}
	if s.Location != nil {
		out.Location = s.Location.Name
	}
	if ip := s.PublicNet.IPv4; !ip.IsUnspecified() {
		out.IPv4 = ip.IP.String()
	}
	if n := s.PublicNet.IPv6.Network; n != nil && n.IP.To16() != nil && n.IP.To4() == nil {
		ip := slices.Clone(n.IP.To16())
		ip[15] |= 1
		out.IPv6 = net.IP(ip).String()
	}
	return out
}

// mapError translates an hcloud error to the provider error callers act on,
// keeping the cause: errors.Is works for both. resp is the answer that
// carried err, if any; a 429 without an hcloud error body counts as
// rate limiting, a 401 without one as refused credentials. Other errors
// are returned as they are.
func mapError(err error, resp *hcloud.Response) error {
	var kind error
	switch {
	case err == nil:
		return nil
	case hcloud.IsError(err, hcloud.ErrorCodeNotFound):
		kind = provider.ErrNotFound
	case hcloud.IsError(err, hcloud.ErrorCodeResourceLimitExceeded):
		kind = provider.ErrQuota
	case hcloud.IsError(err, hcloud.ErrorCodeResourceUnavailable, hcloud.ErrorCodePlacementError):
		kind = provider.ErrUnavailable
	case hcloud.IsError(err, hcloud.ErrorCodeUniquenessError):
		kind = provider.ErrConflict
	case hcloud.IsError(err, hcloud.ErrorCodeRateLimitExceeded):
		kind = provider.ErrRateLimited
	case hcloud.IsError(err, hcloud.ErrorCodeInvalidInput):
		kind = provider.ErrInvalid
	case hcloud.IsError(err, hcloud.ErrorCodeUnauthorized, hcloud.ErrorCodeForbidden):
		kind = provider.ErrUnauthorized
	case errors.Is(err, hcloud.ErrStatusCode) && resp != nil && resp.Response != nil &&
		resp.StatusCode == http.StatusTooManyRequests:
		kind = provider.ErrRateLimited
	case errors.Is(err, hcloud.ErrStatusCode) && resp != nil && resp.Response != nil &&
		resp.StatusCode == http.StatusUnauthorized:
		kind = provider.ErrUnauthorized
	default:
		return err
	}
	return fmt.Errorf("%w: %w", kind, err)
}
