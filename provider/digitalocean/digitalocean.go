package digitalocean

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/godo"

	"github.com/hatchery-dev/hatchery/provider"
)

// MaxUserData is DigitalOcean's user_data limit, in bytes.
const MaxUserData = 64 << 10

// DefaultLookupDelay is how long Create waits, after a create request
// whose outcome it cannot know, before it looks the name up.
const DefaultLookupDelay = 5 * time.Second

// createAttempts bounds the create requests of one Create call: the first,
// and one more after a failure that made no droplet as far as a lookup
// can tell.
const createAttempts = 2

// statusArchive is the status of a droplet being destroyed.
const statusArchive = "archive"

// listPageSize is the largest page DigitalOcean serves.
const listPageSize = 200

// maxPages bounds a listing, against an API that never says "last page".
const maxPages = 1000

var (
	_ provider.Provider          = (*Provider)(nil)
	_ provider.Lister            = (*Provider)(nil)
	_ provider.CredentialChecker = (*Provider)(nil)
	_ provider.InstanceIDer      = (*Provider)(nil)
	_ provider.UserDataLimiter   = (*Provider)(nil)
)

// Options describe the droplets a Provider creates. Region, Size and
// Image are the defaults of provider.CreateRequest's Location, ServerType
// and Image.
type Options struct {
	Size   string // required: a size slug, e.g. "s-1vcpu-2gb"
	Image  string // required: an image slug or ID, e.g. "ubuntu-24-04-x64"
	Region string // a region slug, e.g. "fra1"; "" lets DigitalOcean choose
	// SSHKeys are fingerprints (MD5, "aa:bb:...") or IDs of SSH keys of
	// the account. At least one is required: DigitalOcean emails a root
	// password for a droplet created without one.
	SSHKeys []string
	VPC     string // UUID of the VPC to join; "" means the region's default
	// Tags go on every droplet as they are, besides the driver's own
	// (letters, digits, ':', '-', '_'; none starting with "hatchery:").
	Tags []string
	// Labels go on every droplet as tags (see LabelTag), besides the
	// request's labels (which win).
	Labels     map[string]string
	Monitoring bool // install DigitalOcean's metrics agent
	IPv6       bool // give droplets a public IPv6 address
	// LookupDelay is how long Create waits after a create request whose
	// outcome it cannot know before it looks the name up; 0 means
	// DefaultLookupDelay.
	LookupDelay time.Duration
	// Logger gets a line for every adopted droplet and every duplicate
	// deleted; nil means quiet.
	Logger *slog.Logger
}

// Validate checks the options without any API call. Errors wrap
// provider.ErrInvalid.
func (o Options) Validate() error {
	if err := o.validate(); err != nil {
		return fmt.Errorf("digitalocean: options: %w", err)
	}
	return nil
}

// validate is Validate without the driver's name: errors of the helpers
// say what is wrong, their callers say where (see Validate, Create).
func (o Options) validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{provider.ErrInvalid}, args...)...)
	}
	if err := checkSize("Size", o.Size); err != nil {
		return err
	}
	if o.Image == "" {
		return invalid("empty Image")
	}
	if len(o.SSHKeys) == 0 {
		return invalid("no SSH key in SSHKeys: DigitalOcean would email a root password for every droplet; add the fingerprint of an SSH key of the account")
	}
	for i, k := range o.SSHKeys {
		if !sshKeyRef(k) {
			return invalid("SSHKeys[%d] %q is neither an MD5 fingerprint (aa:bb:...:ff) nor a key ID", i, k)
		}
	}
	if o.Region != "" && !slug(o.Region) {
		return invalid("Region %q is not a region slug", o.Region)
	}
	if o.VPC != "" && !uuid(o.VPC) {
		return invalid("VPC %q is not a VPC UUID", o.VPC)
	}
	for i, t := range o.Tags {
		if err := checkTag(t); err != nil {
			return invalid("Tags[%d]: %v", i, err)
		}
	}
	if _, err := labelTags("Labels", o.Labels); err != nil {
		return err
	}
	if o.LookupDelay < 0 {
		return invalid("negative LookupDelay")
	}
	return nil
}

// checkSize checks a size slug. GPU sizes are refused: DigitalOcean lists
// GPU droplets only when asked for them alone (type=gpus), which cannot be
// combined with a name or tag filter, so Create could not find one to
// adopt.
func checkSize(field, size string) error {
	switch {
	case size == "":
		return fmt.Errorf("%w: empty %s", provider.ErrInvalid, field)
	case !slug(size):
		return fmt.Errorf("%w: %s %q is not a size slug", provider.ErrInvalid, field, size)
	case strings.HasPrefix(size, "gpu-"):
		return fmt.Errorf("%w: %s %q: GPU droplets are not listed with the others, so Create could not adopt them", provider.ErrInvalid, field, size)
	}
	return nil
}

// slug reports whether s looks like a DigitalOcean slug.
func slug(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return s != ""
}

// sshKeyRef reports whether s is an SSH key ID or MD5 fingerprint.
func sshKeyRef(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n > 0
	}
	parts := strings.Split(s, ":")
	if len(parts) != 16 {
		return false
	}
	for _, p := range parts {
		if len(p) != 2 || strings.Trim(strings.ToLower(p), "0123456789abcdef") != "" {
			return false
		}
	}
	return true
}

func uuid(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Provider creates, inspects, lists and deletes DigitalOcean droplets. It
// is safe for concurrent use.
type Provider struct {
	client  *godo.Client
	opts    Options
	optsErr error
	log     *slog.Logger
	delay   time.Duration

	mu    sync.Mutex
	names map[string]*nameLock // Creates in progress, by name
}

// nameLock is a one-slot lock that honours contexts, with the number of
// Creates holding or waiting for it.
type nameLock struct {
	slot chan struct{}
	refs int
}

// New returns a Provider that creates droplets as opts describe through
// client (see NewClient for one that paces and retries safely). New makes
// no API call and does not fail: invalid options, and a client that
// retries creates on its own (godo.NewFromToken's), are reported by Init
// and by every Create; call opts.Validate first to fail early.
func New(client *godo.Client, opts Options) *Provider {
	opts.SSHKeys = slices.Clone(opts.SSHKeys)
	opts.Tags = slices.Clone(opts.Tags)
	opts.Labels = maps.Clone(opts.Labels)
	err := opts.validate()
	switch {
	case err != nil:
	case client == nil:
		err = fmt.Errorf("%w: nil client", provider.ErrInvalid)
	case client.RetryConfig.RetryMax > 0:
		err = fmt.Errorf("%w: the client retries creates (godo.NewFromToken, godo.WithRetryAndBackoffs), which makes duplicate droplets; use NewClient",
			provider.ErrInvalid)
	}
	return &Provider{
		client:  client,
		opts:    opts,
		optsErr: err,
		log:     cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		delay:   cmp.Or(opts.LookupDelay, DefaultLookupDelay),
		names:   make(map[string]*nameLock),
	}
}

// Init validates the options and checks the token and the SSH keys with
// one request for the account and one per key. Calling it is optional:
// Create needs nothing it does, but a bad token or key then fails the
// first Create instead of the start.
func (p *Provider) Init(ctx context.Context) error {
	if p.optsErr != nil {
		return fmt.Errorf("digitalocean: options: %w", p.optsErr)
	}
	if err := p.CheckCredentials(ctx); err != nil {
		return err
	}
	for _, k := range p.opts.SSHKeys {
		var err error
		if id, aerr := strconv.Atoi(k); aerr == nil {
			_, _, err = p.client.Keys.GetByID(ctx, id)
		} else {
			_, _, err = p.client.Keys.GetByFingerprint(ctx, k)
		}
		mapped := mapError(err)
		switch {
		case errors.Is(mapped, provider.ErrNotFound):
			// A missing key is a bad option, not a missing server.
			return fmt.Errorf("digitalocean: %w: SSH key %s is not in the account: %w", provider.ErrInvalid, k, err)
		case err != nil:
			return fmt.Errorf("digitalocean: look up SSH key %s: %w", k, mapped)
		}
	}
	return nil
}

// CheckCredentials checks the token with one request (GET /v2/account).
func (p *Provider) CheckCredentials(ctx context.Context) error {
	if p.client == nil {
		return fmt.Errorf("digitalocean: check credentials: options: %w", p.optsErr)
	}
	_, _, err := p.client.Account.Get(ctx)
	if err != nil {
		return fmt.Errorf("digitalocean: check credentials: %w", mapError(err))
	}
	return nil
}

// RateLimitRemaining returns how many requests the account's hourly
// budget had left by the last answer of the DigitalOcean API (its
// RateLimit-Remaining header, which godo keeps: Client.GetRate), and false
// before any answer said it: what a metric shows (provision's
// hatchery.provider.rate_limit.remaining gauge). It makes no request.
func (p *Provider) RateLimitRemaining() (int, bool) {
	if p.client == nil {
		return 0, false
	}
	r := p.client.GetRate()
	return r.Remaining, r.Limit > 0
}

// InstanceID returns the instance ID cloud-init reports on the droplet
// with the given ID: its DigitalOcean datasource takes droplet_id from the
// metadata service (or the DMI system serial number, which holds the same
// number), so it is the droplet ID itself.
func (p *Provider) InstanceID(serverID string) string { return serverID }

// MaxUserData returns DigitalOcean's user_data limit, 64 KiB.
func (p *Provider) MaxUserData() int { return MaxUserData }

// lock takes the lock of name, so that two Creates of one name in this
// process never overlap; it returns the unlock function.
func (p *Provider) lock(ctx context.Context, name string) (func(), error) {
	p.mu.Lock()
	l := p.names[name]
	if l == nil {
		l = &nameLock{slot: make(chan struct{}, 1)}
		p.names[name] = l
	}
	l.refs++
	p.mu.Unlock()
	release := func() {
		p.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(p.names, name)
		}
		p.mu.Unlock()
	}
	select {
	case l.slot <- struct{}{}:
		return func() { <-l.slot; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// request builds the create request of req, checking everything that can
// be checked without the API. Errors wrap provider.ErrInvalid.
func (p *Provider) request(req provider.CreateRequest) (*godo.DropletCreateRequest, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if n := len(req.UserData); n > MaxUserData {
		return nil, fmt.Errorf("%w: user_data is %d bytes, over DigitalOcean's limit of %d",
			provider.ErrInvalid, n, MaxUserData)
	}
	size := cmp.Or(req.ServerType, p.opts.Size)
	if err := checkSize("server type", size); err != nil {
		return nil, err
	}
	region := cmp.Or(req.Location, p.opts.Region)
	if region != "" && !slug(region) {
		return nil, fmt.Errorf("%w: location %q is not a region slug", provider.ErrInvalid, region)
	}
	labels := maps.Clone(p.opts.Labels)
	if labels == nil {
		labels = make(map[string]string, len(req.Labels))
	}
	maps.Copy(labels, req.Labels)
	if _, err := labelTags("request labels", req.Labels); err != nil {
		return nil, err
	}
	tags, err := labelTags("labels", labels)
	if err != nil {
		return nil, err
	}
	tags = append(tags, ManagedTag, NameTag(req.Name))
	tags = append(tags, p.opts.Tags...)
	slices.Sort(tags)
	tags = slices.Compact(tags)

	keys := make([]godo.DropletCreateSSHKey, len(p.opts.SSHKeys))
	for i, k := range p.opts.SSHKeys {
		if id, err := strconv.Atoi(k); err == nil {
			keys[i] = godo.DropletCreateSSHKey{ID: id}
		} else {
			keys[i] = godo.DropletCreateSSHKey{Fingerprint: k}
		}
	}
	image := godo.DropletCreateImage{Slug: cmp.Or(req.Image, p.opts.Image)}
	if id, err := strconv.Atoi(image.Slug); err == nil && id > 0 {
		image = godo.DropletCreateImage{ID: id}
	}
	return &godo.DropletCreateRequest{
		Name:       req.Name,
		Region:     region,
		Size:       size,
		Image:      image,
		SSHKeys:    keys,
		IPv6:       p.opts.IPv6,
		Monitoring: p.opts.Monitoring,
		UserData:   string(req.UserData),
		Tags:       tags,
		VPCUUID:    p.opts.VPC,
	}, nil
}

// Create creates the droplet req describes, or adopts the droplet of ours
// by that name, and returns it as DigitalOcean reports it: a new droplet
// has status "new" and no address yet (Get reports them once it is
// active). It never waits for the droplet to become active.
//
// Create first looks the name up (one request). A droplet by that name
// that is ours (ManagedTag, NameTag(req.Name) and every label of
// req.Labels) is adopted; one that is not is provider.ErrConflict; with
// none, Create sends the create request. When the outcome of that request
// cannot be known (its answer was lost, or a 5xx came back), Create waits
// Options.LookupDelay and looks the name up again, adopting what the lost
// request made; only when that lookup finds nothing does it send one more
// create request, and then looks once more, after the same delay, for a
// droplet the first request made late. Whenever a lookup finds more than
// one droplet of ours by the name, Create keeps the one with the lowest ID
// and deletes the others (see the package documentation).
//
// Requests: 2 when all goes well (lookup, create), 1 to adopt, 3 when the
// answer to the create was lost after the droplet was made, 5 when a
// failed create made nothing; one more per duplicate deleted.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	if p.optsErr != nil {
		return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: options: %w", req.Name, p.optsErr)
	}
	spec, err := p.request(req)
	if err != nil {
		return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: %w", req.Name, err)
	}
	unlock, err := p.lock(ctx, req.Name)
	if err != nil {
		return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: %w", req.Name, err)
	}
	defer unlock()

	ours, foreign, err := p.lookup(ctx, req)
	switch {
	case err != nil:
		return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: look up the name: %w", req.Name, err)
	case len(ours) > 0:
		return p.converge(ctx, req, ours, "digitalocean: adopted existing droplet")
	case len(foreign) > 0:
		return provider.Server{}, conflict(req, foreign)
	}

	var created *godo.Droplet
	for attempt := 1; created == nil; attempt++ {
		d, _, err := p.client.Droplets.Create(ctx, spec)
		if err == nil && (d == nil || d.ID <= 0) {
			err = errors.New("the answer names no droplet")
		}
		switch {
		case err == nil && attempt == 1:
			return toServer(*d), nil
		case err == nil:
			created = d
			continue
		case !ambiguous(err):
			return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: %w", req.Name, mapError(err))
		case ctx.Err() != nil || attempt >= createAttempts:
			return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: outcome unknown after %d request(s), the next Create adopts what they made: %w",
				req.Name, attempt, mapError(err))
		}
		p.log.LogAttrs(ctx, slog.LevelWarn, "digitalocean: create request failed, outcome unknown; looking the name up before trying again",
			slog.String("name", req.Name), slog.Any("err", err))
		if err := p.sleep(ctx); err != nil {
			return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: outcome unknown: %w", req.Name, err)
		}
		ours, foreign, err := p.lookup(ctx, req)
		switch {
		case err != nil:
			return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: outcome unknown, and the lookup failed: %w", req.Name, err)
		case len(ours) > 0:
			return p.converge(ctx, req, ours, "digitalocean: adopted the droplet of a create request whose answer was lost")
		case len(foreign) > 0:
			return provider.Server{}, conflict(req, foreign)
		}
	}

	// The first request failed and made nothing visible, the second made
	// created. Look once more, for a droplet the first request made late.
	if err := p.sleep(ctx); err != nil {
		return toServer(*created), nil
	}
	ours, _, err = p.lookup(ctx, req)
	if err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "digitalocean: could not check for a late duplicate",
			slog.String("name", req.Name), slog.Int("id", created.ID), slog.Any("err", err))
		return toServer(*created), nil
	}
	if !slices.ContainsFunc(ours, func(d godo.Droplet) bool { return d.ID == created.ID }) {
		ours = append(ours, *created)
		slices.SortFunc(ours, func(a, b godo.Droplet) int { return cmp.Compare(a.ID, b.ID) })
	}
	return p.converge(ctx, req, ours, "")
}

func conflict(req provider.CreateRequest, foreign []godo.Droplet) error {
	return fmt.Errorf("digitalocean: create droplet %q: %w (droplet %d)", req.Name, provider.ErrConflict, foreign[0].ID)
}

// sleep waits LookupDelay, or until ctx ends.
func (p *Provider) sleep(ctx context.Context) error {
	t := time.NewTimer(p.delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// converge returns the droplet of ours (sorted by ID, not empty) with the
// lowest ID and deletes the others, logging msg unless it is empty. When a
// duplicate cannot be deleted, the error says so and the next Create of
// the name tries again.
func (p *Provider) converge(ctx context.Context, req provider.CreateRequest, ours []godo.Droplet, msg string) (provider.Server, error) {
	keep := ours[0]
	var errs []error
	for _, d := range ours[1:] {
		if err := p.deleteDroplet(ctx, d.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		p.log.LogAttrs(ctx, slog.LevelWarn, "digitalocean: deleted duplicate droplet",
			slog.String("name", req.Name), slog.Int("id", d.ID), slog.Int("kept", keep.ID))
	}
	if len(errs) > 0 {
		return provider.Server{}, fmt.Errorf("digitalocean: create droplet %q: kept droplet %d, could not delete its duplicates: %w",
			req.Name, keep.ID, errors.Join(errs...))
	}
	if msg != "" {
		p.log.LogAttrs(ctx, slog.LevelInfo, msg, slog.String("name", keep.Name), slog.Int("id", keep.ID))
	}
	return toServer(keep), nil
}

// lookup lists the droplets named req.Name (GET /v2/droplets?name=, exact
// but without regard to case), in one request unless there are more than
// 200 of them, and sorts them into ours, by ID, and others. Droplets being
// destroyed ("archive") are left out.
func (p *Provider) lookup(ctx context.Context, req provider.CreateRequest) (ours, foreign []godo.Droplet, err error) {
	want := []string{ManagedTag, NameTag(req.Name)}
	for _, k := range slices.Sorted(maps.Keys(req.Labels)) {
		want = append(want, LabelTag(k, req.Labels[k]))
	}
	err = p.pages(ctx, func(opt *godo.ListOptions) ([]godo.Droplet, *godo.Response, error) {
		return p.client.Droplets.ListByName(ctx, req.Name, opt)
	}, func(d godo.Droplet) {
		switch {
		case d.Status == statusArchive || !strings.EqualFold(d.Name, req.Name):
		case !slices.ContainsFunc(want, func(t string) bool { return !hasTag(d.Tags, t) }):
			ours = append(ours, d)
		default:
			foreign = append(foreign, d)
		}
	})
	slices.SortFunc(ours, func(a, b godo.Droplet) int { return cmp.Compare(a.ID, b.ID) })
	return ours, foreign, err
}

// pages calls list for every page of a listing, 200 droplets a page, and
// each for every droplet.
func (p *Provider) pages(ctx context.Context, list func(*godo.ListOptions) ([]godo.Droplet, *godo.Response, error), each func(godo.Droplet)) error {
	for page := 1; ; page++ {
		ds, resp, err := list(&godo.ListOptions{Page: page, PerPage: listPageSize})
		if err != nil {
			return mapError(err)
		}
		for _, d := range ds {
			each(d)
		}
		if len(ds) == 0 || resp == nil || resp.Links == nil || resp.Links.IsLastPage() {
			return nil
		}
		if page >= maxPages {
			return fmt.Errorf("listing longer than %d pages", maxPages)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Get returns the droplet with the given ID, or an error wrapping
// provider.ErrNotFound, with one request. Its addresses are empty until
// the droplet is active. A droplet being destroyed (status "archive") is
// not found: it is gone as far as callers are concerned.
func (p *Provider) Get(ctx context.Context, id string) (provider.Server, error) {
	n, err := parseID(id)
	if err != nil {
		return provider.Server{}, fmt.Errorf("digitalocean: get droplet %q: %w", id, err)
	}
	d, _, err := p.client.Droplets.Get(ctx, n)
	switch {
	case err != nil:
		return provider.Server{}, fmt.Errorf("digitalocean: get droplet %d: %w", n, mapError(err))
	case d == nil:
		return provider.Server{}, fmt.Errorf("digitalocean: get droplet %d: %w", n, provider.ErrNotFound)
	case d.Status == statusArchive:
		return provider.Server{}, fmt.Errorf("digitalocean: get droplet %d: %w (being destroyed)", n, provider.ErrNotFound)
	}
	return toServer(*d), nil
}

// Delete deletes the droplet with the given ID with one request. A droplet
// that does not exist counts as deleted. DigitalOcean may refuse to delete
// a droplet still busy with its creation ("pending event"); that error is
// returned as it is, and a later Delete succeeds.
func (p *Provider) Delete(ctx context.Context, id string) error {
	n, err := parseID(id)
	if err != nil {
		return fmt.Errorf("digitalocean: delete droplet %q: %w", id, err)
	}
	if err := p.deleteDroplet(ctx, n); err != nil {
		return fmt.Errorf("digitalocean: %w", err)
	}
	return nil
}

func (p *Provider) deleteDroplet(ctx context.Context, id int) error {
	_, err := p.client.Droplets.Delete(ctx, id)
	if err != nil {
		err = mapError(err)
		if errors.Is(err, provider.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("delete droplet %d: %w", id, err)
	}
	return nil
}

// List returns the droplets of the driver (ManagedTag) that carry every
// label of selector, by ID. It lists by one tag (GET
// /v2/droplets?tag_name=, 200 droplets a page): the tag of the selector's
// first label other than ManagedLabel in key order, else ManagedTag; the
// other labels are checked on the droplets it returns. So List costs one
// request per 200 droplets carrying that tag. A selector label whose tag
// would be too long is an error wrapping provider.ErrInvalid. Droplets
// being destroyed are left out. DigitalOcean numbers the pages: a droplet
// created or deleted while List runs may shift them, so a sweep should
// not take a droplet's absence from one List as proof.
func (p *Provider) List(ctx context.Context, selector map[string]string) ([]provider.Server, error) {
	if p.client == nil {
		return nil, fmt.Errorf("digitalocean: list droplets: options: %w", p.optsErr)
	}
	want, err := labelTags("selector", selector)
	if err != nil {
		return nil, fmt.Errorf("digitalocean: list droplets: %w", err)
	}
	filter := ManagedTag
	for _, t := range want {
		if t != ManagedTag {
			filter = t
			break
		}
	}
	want = append(want, ManagedTag)
	var out []provider.Server
	err = p.pages(ctx, func(opt *godo.ListOptions) ([]godo.Droplet, *godo.Response, error) {
		return p.client.Droplets.ListByTag(ctx, filter, opt)
	}, func(d godo.Droplet) {
		if d.Status != statusArchive && !slices.ContainsFunc(want, func(t string) bool { return !hasTag(d.Tags, t) }) {
			out = append(out, toServer(d))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("digitalocean: list droplets tagged %s: %w", filter, err)
	}
	slices.SortFunc(out, func(a, b provider.Server) int {
		x, _ := strconv.Atoi(a.ID)
		y, _ := strconv.Atoi(b.ID)
		return cmp.Compare(x, y)
	})
	out = slices.CompactFunc(out, func(a, b provider.Server) bool { return a.ID == b.ID })
	return out, nil
}

func parseID(id string) (int, error) {
	n, err := strconv.Atoi(id)
	if err != nil || n <= 0 || strconv.Itoa(n) != id {
		return 0, fmt.Errorf("%w: not a droplet ID", provider.ErrInvalid)
	}
	return n, nil
}

// toServer converts a droplet: its public addresses (none before it is
// active), its labels (from its tags), size, region and creation time.
func toServer(d godo.Droplet) provider.Server {
	s := provider.Server{
		ID:         strconv.Itoa(d.ID),
		Name:       d.Name,
		Status:     d.Status,
		Labels:     Labels(d.Tags),
		ServerType: d.SizeSlug,
	}
	s.IPv4, _ = d.PublicIPv4()
	s.IPv6, _ = d.PublicIPv6()
	if s.ServerType == "" && d.Size != nil {
		s.ServerType = d.Size.Slug
	}
	if d.Region != nil {
		s.Location = d.Region.Slug
	}
	if t, err := time.Parse(time.RFC3339, d.Created); err == nil {
		s.Created = t
	}
	return s
}
