// Package cloud chooses and configures the provider of an example from its
// command line, so that examples/quickstart and examples/controlplane take
// the same flags and build providers the same way:
//
//	-provider      fake (simulated servers, the default), nspawn (real local
//	               Debian servers), hetzner or digitalocean
//	-boot-delay    fake: how long a simulated server boots
//	-server-type   hetzner: cx22;            digitalocean: s-1vcpu-2gb (a size slug)
//	-location      hetzner: fsn1;            digitalocean: fra1 (a region slug)
//	-image         nspawn: bookworm (or trixie);
//	               hetzner: ubuntu-24.04;    digitalocean: ubuntu-24-04-x64
//	-ssh-key       hetzner: a project key name, optional;
//	               digitalocean: an account key fingerprint, required
//
// The token comes from the provider's environment variable: HCLOUD_TOKEN,
// DIGITALOCEAN_TOKEN. An empty -server-type, -location or -image means the
// provider's default.
//
// nspawn's servers are real Debian systems on this machine
// (provider/nspawn): they need root, systemd-nspawn and debootstrap, and
// Open's error then wraps nspawn.ErrRequirements. Each Open uses a state
// directory of its own, and its closeFn deletes the servers, as fake's
// end with it; the image is cached as nspawn caches it (built once, about
// two minutes).
//
//	f := cloud.Register(fs, cloud.Defaults{BootDelay: time.Second})
//	fs.Parse(args)
//	if err := f.Check(os.Getenv); err != nil { ... } // usage error
//	p, closeFn, err := f.Open(ctx, cloud.Env{Logger: log})
//
// Each provider is one entry of the table in kinds: its name, whether its
// servers are real, its token variable and defaults, a check and a
// constructor. Adding one adds an entry, and a flag only if it needs one
// the others do not have (nspawn needed none: -image names its suite).
package cloud

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/digitalocean/godo"
	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
)

// Defaults are an example's own defaults for the provider flags.
type Defaults struct {
	BootDelay time.Duration // -boot-delay
}

// Flags are the provider flags of an example, filled by the FlagSet they
// were registered on and completed by Check.
type Flags struct {
	Provider   string        // -provider
	BootDelay  time.Duration // -boot-delay (fake)
	ServerType string        // -server-type; Check fills in the provider's default
	Location   string        // -location; Check fills in the provider's default
	Image      string        // -image; Check fills in the provider's default
	SSHKeys    []string      // -ssh-key, repeatable
	Token      string        // the API token, from the environment (Check)

	kind *kind
}

// Env is what Open needs besides the flags.
type Env struct {
	Logger *slog.Logger // nil: quiet
	// PhoneHomeInterval is the pause between a simulated server's
	// phone_home tries (fake); 0 means fake's default.
	PhoneHomeInterval time.Duration
	// Faults injects failures into simulated servers (fake); nil: none.
	Faults func(name string) fake.Faults
	// Endpoint replaces the cloud API's URL (tests); "" means the real one.
	Endpoint string
	// NewNspawn replaces nspawn.New (tests: a machine without the
	// requirements); nil means nspawn.New.
	NewNspawn func(nspawn.Options) (*nspawn.Provider, error)
}

// kind is one provider an example can use.
type kind struct {
	name  string // the -provider value
	title string // what Describe says, e.g. "Hetzner Cloud"
	real  bool   // real servers: they cost money, need a public callback URL and real secrets
	local bool   // real servers on this machine: free, they reach its 127.0.0.1
	needs string // what -provider's help says it needs besides a token, e.g. "root"
	// token is the environment variable of the API token ("": none) and
	// what it must be.
	token, tokenHelp string
	// Defaults of -server-type, -location and -image ("": none).
	serverType, location, image string
	// keyHelp says what -ssh-key is for this provider ("": not used).
	keyHelp string
	// leftovers says where servers left running are found.
	leftovers string
	check     func(f *Flags) error  // after defaults are filled in; nil: nothing more
	describe  func(f *Flags) string // what Describe says; nil: the title and the placement
	open      func(ctx context.Context, f *Flags, env Env) (provider.Provider, func() error, error)
}

// kinds is every provider, the default first.
func kinds() []kind {
	return []kind{
		{
			name: "fake", title: "simulated servers (provider/fake)",
			open: openFake,
		},
		{
			name: "nspawn", title: "real local Debian servers (provider/nspawn)", local: true, needs: "root",
			image:    nspawn.DefaultSuite,
			check:    checkNspawn,
			describe: func(f *Flags) string { return "real local Debian " + f.Image + " servers (provider/nspawn)" },
			open:     openNspawn,
		},
		{
			name: "hetzner", title: "Hetzner Cloud", real: true,
			token: "HCLOUD_TOKEN", tokenHelp: "an API token of the Hetzner Cloud project, read & write",
			serverType: "cx22", location: "fsn1", image: "ubuntu-24.04",
			keyHelp:   "a project key name, optional",
			leftovers: "in the Hetzner console (label hatchery-tenant)",
			check:     func(f *Flags) error { return hetznerOptions(f, nil).Validate() },
			open:      openHetzner,
		},
		{
			name: "digitalocean", title: "DigitalOcean", real: true,
			token: "DIGITALOCEAN_TOKEN", tokenHelp: "a DigitalOcean API token with droplet and tag access",
			serverType: "s-1vcpu-2gb", location: "fra1", image: "ubuntu-24-04-x64",
			keyHelp:   "the fingerprint of an account key, required: without one DigitalOcean emails a root password",
			leftovers: "in the DigitalOcean control panel (tag " + digitalocean.ManagedTag + ")",
			check:     checkDigitalOcean,
			open:      openDigitalOcean,
		},
	}
}

// Register defines the provider flags on fs and returns where they land.
func Register(fs *flag.FlagSet, d Defaults) *Flags {
	f := &Flags{}
	ks := kinds()
	var names, types, locations, images, keys []string
	for i, k := range ks {
		name := k.name
		if i == 0 {
			name = "`" + name + "`"
		}
		if need := cmp.Or(k.token, k.needs); need != "" {
			name += " (" + need + ")"
		}
		names = append(names, name)
		if k.serverType != "" {
			types = append(types, k.name+": "+k.serverType)
			locations = append(locations, k.name+": "+k.location)
		}
		if k.image != "" {
			images = append(images, k.name+": "+k.image)
		}
		if k.keyHelp != "" {
			keys = append(keys, k.name+": "+k.keyHelp)
		}
	}
	fs.StringVar(&f.Provider, "provider", ks[0].name, "where the servers are: "+orList(names))
	fs.DurationVar(&f.BootDelay, "boot-delay", d.BootDelay, "fake: how long a simulated server boots before it phones home")
	fs.StringVar(&f.ServerType, "server-type", "", "server `type` (default "+strings.Join(types, ", ")+")")
	fs.StringVar(&f.Location, "location", "", "`location` (default "+strings.Join(locations, ", ")+")")
	fs.StringVar(&f.Image, "image", "", "`image` (default "+strings.Join(images, ", ")+")")
	fs.Func("ssh-key", "an SSH `key` for the servers, for your own access; repeatable ("+strings.Join(keys, "; ")+")", func(s string) error {
		f.SSHKeys = append(f.SSHKeys, s)
		return nil
	})
	return f
}

// orList joins "a", "b", "c" as "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Check completes the flags after parsing: it finds the provider, reads
// its token from getenv, fills in its defaults and checks what can be
// checked without a request. Its errors are usage errors.
func (f *Flags) Check(getenv func(string) string) error {
	ks := kinds()
	var names []string
	for i := range ks {
		names = append(names, ks[i].name)
		if ks[i].name == f.Provider {
			f.kind = &ks[i]
		}
	}
	k := f.kind
	switch {
	case k == nil:
		return fmt.Errorf("-provider %q: want %s", f.Provider, orList(names))
	case f.BootDelay < 0:
		return errors.New("-boot-delay must not be negative")
	}
	if k.token != "" {
		f.Token = getenv(k.token)
		if f.Token == "" {
			return fmt.Errorf("-provider %s needs %s (%s)", k.name, k.token, k.tokenHelp)
		}
	}
	f.ServerType = cmp.Or(f.ServerType, k.serverType)
	f.Location = cmp.Or(f.Location, k.location)
	f.Image = cmp.Or(f.Image, k.image)
	if k.check != nil {
		if err := k.check(f); err != nil {
			return fmt.Errorf("-provider %s: %w", k.name, err)
		}
	}
	return nil
}

// Real reports whether the provider makes real servers: they cost money,
// must reach a public callback URL and get real secrets.
func (f *Flags) Real() bool { return f.kind != nil && f.kind.real }

// Local reports whether the provider makes real servers on this machine
// (nspawn): free, reaching this machine's 127.0.0.1 (the callback needs no
// public URL) and whatever it reaches; they run the recipe for real.
func (f *Flags) Local() bool { return f.kind != nil && f.kind.local }

// Describe says which provider makes the servers, with what, e.g.
// "DigitalOcean (s-1vcpu-2gb, ubuntu-24-04-x64, fra1)".
func (f *Flags) Describe() string {
	switch {
	case f.kind == nil:
		return f.Provider
	case f.kind.describe != nil:
		return f.kind.describe(f)
	case f.kind.serverType == "":
		return f.kind.title
	}
	return fmt.Sprintf("%s (%s, %s, %s)", f.kind.title, f.ServerType, f.Image, f.Location)
}

// Leftovers says where the servers of a real provider that are left
// running can be found and deleted; "" for simulated ones.
func (f *Flags) Leftovers() string {
	if f.kind == nil {
		return ""
	}
	return f.kind.leftovers
}

// Open builds the provider the flags chose and checks it can work (the
// token and the SSH keys of a cloud, with a request or two). closeFn
// releases it (simulated servers end with it); call it after the last use.
func (f *Flags) Open(ctx context.Context, env Env) (p provider.Provider, closeFn func() error, err error) {
	if f.kind == nil {
		return nil, nil, errors.New("cloud: Open before a successful Check")
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	return f.kind.open(ctx, f, env)
}

func noClose() error { return nil }

func openFake(_ context.Context, f *Flags, env Env) (provider.Provider, func() error, error) {
	p := fake.New(fake.Options{
		BootDelay:         f.BootDelay,
		PhoneHomeInterval: env.PhoneHomeInterval,
		Logger:            env.Logger.With("component", "fake"),
		Faults:            env.Faults,
	})
	return p, p.Close, nil
}

func checkNspawn(f *Flags) error {
	switch {
	case f.ServerType != "" || f.Location != "":
		return errors.New("-server-type and -location do not apply: every server is a container on this machine")
	case len(f.SSHKeys) > 0:
		return errors.New("-ssh-key does not apply: the servers are on this machine")
	}
	switch f.Image {
	case "bookworm", "trixie":
		return nil
	case "debian-12":
		f.Image = "bookworm"
		return nil
	case "debian-13":
		f.Image = "trixie"
		return nil
	}
	return fmt.Errorf("-image %q: want bookworm or trixie", f.Image)
}

// openNspawn starts a Provider on a state directory of its own; closeFn
// deletes its servers and the directory. The image is built or found by
// Prepare, so that a first run's build happens here, not at the first
// Create.
func openNspawn(ctx context.Context, f *Flags, env Env) (provider.Provider, func() error, error) {
	newNspawn := env.NewNspawn
	if newNspawn == nil {
		newNspawn = nspawn.New
	}
	dir, err := os.MkdirTemp("", "hatchery-nspawn-")
	if err != nil {
		return nil, nil, err
	}
	p, err := newNspawn(nspawn.Options{StateDir: dir, Suite: f.Image, Logger: env.Logger.With("component", "nspawn")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	closeFn := func() error {
		if err := p.Close(); err != nil {
			return err // the directory stays: a server may still use it
		}
		return os.RemoveAll(dir)
	}
	if err := p.Prepare(ctx); err != nil {
		closeFn()
		return nil, nil, err
	}
	return p, closeFn, nil
}

func hetznerOptions(f *Flags, log *slog.Logger) hetzner.Options {
	return hetzner.Options{ServerType: f.ServerType, Image: f.Image, Location: f.Location, SSHKeys: f.SSHKeys, Logger: log}
}

func openHetzner(ctx context.Context, f *Flags, env Env) (provider.Provider, func() error, error) {
	var opts []hcloud.ClientOption
	if env.Endpoint != "" {
		opts = append(opts, hcloud.WithEndpoint(env.Endpoint))
	}
	p := hetzner.New(hetzner.NewClient(f.Token, opts...), hetznerOptions(f, env.Logger.With("component", "hetzner")))
	if err := p.Init(ctx); err != nil {
		return nil, nil, err
	}
	return p, noClose, nil
}

func digitalOceanOptions(f *Flags, log *slog.Logger) digitalocean.Options {
	return digitalocean.Options{Size: f.ServerType, Image: f.Image, Region: f.Location, SSHKeys: f.SSHKeys, Logger: log}
}

func checkDigitalOcean(f *Flags) error {
	if len(f.SSHKeys) == 0 {
		return errors.New("-ssh-key is required: the fingerprint of an SSH key of the DigitalOcean account (without one, DigitalOcean emails a root password for every droplet)")
	}
	return digitalOceanOptions(f, nil).Validate()
}

func openDigitalOcean(ctx context.Context, f *Flags, env Env) (provider.Provider, func() error, error) {
	var opts []godo.ClientOpt
	if env.Endpoint != "" {
		opts = append(opts, godo.SetBaseURL(env.Endpoint))
	}
	client, err := digitalocean.NewClient(f.Token, opts...)
	if err != nil {
		return nil, nil, err
	}
	p := digitalocean.New(client, digitalOceanOptions(f, env.Logger.With("component", "digitalocean")))
	if err := p.Init(ctx); err != nil {
		return nil, nil, err
	}
	return p, noClose, nil
}
