package cloud_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/examples/internal/cloud"
	"github.com/hatchery-dev/hatchery/internal/dotest"
	"github.com/hatchery-dev/hatchery/internal/hcloudtest"
	"github.com/hatchery-dev/hatchery/internal/nspawntest"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
)

var update = flag.Bool("update", false, "rewrite testdata/usage.golden")

const fingerprint = "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

var tokens = env(map[string]string{"HCLOUD_TOKEN": "h-token", "DIGITALOCEAN_TOKEN": "do-token"})

// parse registers the flags on a new FlagSet, parses args and checks.
func parse(args []string, getenv func(string) string) (*cloud.Flags, error) {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := cloud.Register(fs, cloud.Defaults{BootDelay: 3 * time.Second})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f, f.Check(getenv)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		getenv  func(string) string
		want    cloud.Flags // Provider, ServerType, Location, Image, SSHKeys, Token, BootDelay
		real    bool
		local   bool
		desc    string
		wantErr string
	}{
		{name: "default", want: cloud.Flags{Provider: "fake", BootDelay: 3 * time.Second},
			desc: "simulated servers (provider/fake)"},
		{name: "fake boot delay", args: []string{"-boot-delay", "10ms"}, want: cloud.Flags{Provider: "fake", BootDelay: 10 * time.Millisecond},
			desc: "simulated servers (provider/fake)"},
		{name: "hetzner defaults", args: []string{"-provider", "hetzner"}, getenv: tokens, real: true,
			want: cloud.Flags{Provider: "hetzner", ServerType: "cx22", Location: "fsn1", Image: "ubuntu-24.04", Token: "h-token", BootDelay: 3 * time.Second},
			desc: "Hetzner Cloud (cx22, ubuntu-24.04, fsn1)"},
		{name: "hetzner chosen", args: []string{"-provider", "hetzner", "-server-type", "cx32", "-location", "hel1", "-image", "debian-12", "-ssh-key", "ops", "-ssh-key", "me"},
			getenv: tokens, real: true,
			want: cloud.Flags{Provider: "hetzner", ServerType: "cx32", Location: "hel1", Image: "debian-12", SSHKeys: []string{"ops", "me"}, Token: "h-token", BootDelay: 3 * time.Second},
			desc: "Hetzner Cloud (cx32, debian-12, hel1)"},
		{name: "digitalocean defaults", args: []string{"-provider", "digitalocean", "-ssh-key", fingerprint}, getenv: tokens, real: true,
			want: cloud.Flags{Provider: "digitalocean", ServerType: "s-1vcpu-2gb", Location: "fra1", Image: "ubuntu-24-04-x64", SSHKeys: []string{fingerprint}, Token: "do-token", BootDelay: 3 * time.Second},
			desc: "DigitalOcean (s-1vcpu-2gb, ubuntu-24-04-x64, fra1)"},
		{name: "digitalocean chosen", args: []string{"-provider", "digitalocean", "-ssh-key", "512190", "-server-type", "s-2vcpu-4gb", "-location", "ams3", "-image", "debian-12-x64"},
			getenv: tokens, real: true,
			want: cloud.Flags{Provider: "digitalocean", ServerType: "s-2vcpu-4gb", Location: "ams3", Image: "debian-12-x64", SSHKeys: []string{"512190"}, Token: "do-token", BootDelay: 3 * time.Second},
			desc: "DigitalOcean (s-2vcpu-4gb, debian-12-x64, ams3)"},

		{name: "nspawn defaults", args: []string{"-provider", "nspawn"}, local: true,
			want: cloud.Flags{Provider: "nspawn", Image: "bookworm", BootDelay: 3 * time.Second},
			desc: "real local Debian bookworm servers (provider/nspawn)"},
		{name: "nspawn trixie", args: []string{"-provider", "nspawn", "-image", "debian-13"}, local: true,
			want: cloud.Flags{Provider: "nspawn", Image: "trixie", BootDelay: 3 * time.Second},
			desc: "real local Debian trixie servers (provider/nspawn)"},
		{name: "nspawn image", args: []string{"-provider", "nspawn", "-image", "ubuntu-24.04"}, wantErr: `-provider nspawn: -image "ubuntu-24.04": want bookworm or trixie`},
		{name: "nspawn server type", args: []string{"-provider", "nspawn", "-server-type", "cx22"}, wantErr: "do not apply"},
		{name: "nspawn ssh key", args: []string{"-provider", "nspawn", "-ssh-key", "ops"}, wantErr: "-ssh-key does not apply"},

		{name: "unknown provider", args: []string{"-provider", "aws"}, wantErr: `-provider "aws": want fake, nspawn, hetzner or digitalocean`},
		{name: "hetzner without token", args: []string{"-provider", "hetzner"}, wantErr: "-provider hetzner needs HCLOUD_TOKEN"},
		{name: "digitalocean without token", args: []string{"-provider", "digitalocean", "-ssh-key", fingerprint}, getenv: env(map[string]string{"HCLOUD_TOKEN": "x"}),
			wantErr: "-provider digitalocean needs DIGITALOCEAN_TOKEN"},
		{name: "digitalocean without key", args: []string{"-provider", "digitalocean"}, getenv: tokens, wantErr: "-ssh-key is required"},
		{name: "digitalocean with a key name", args: []string{"-provider", "digitalocean", "-ssh-key", "ops"}, getenv: tokens, wantErr: "neither an MD5 fingerprint"},
		{name: "digitalocean GPU", args: []string{"-provider", "digitalocean", "-ssh-key", fingerprint, "-server-type", "gpu-h100x1-80gb"}, getenv: tokens, wantErr: "GPU"},
		{name: "hetzner empty key", args: []string{"-provider", "hetzner", "-ssh-key", ""}, getenv: tokens, wantErr: "SSHKeys[0]"},
		{name: "negative boot delay", args: []string{"-boot-delay", "-1s"}, wantErr: "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			getenv := tc.getenv
			if getenv == nil {
				getenv = env(nil)
			}
			f, err := parse(tc.args, getenv)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			got := cloud.Flags{Provider: f.Provider, ServerType: f.ServerType, Location: f.Location, Image: f.Image,
				SSHKeys: f.SSHKeys, Token: f.Token, BootDelay: f.BootDelay}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.real, f.Real())
			assert.Equal(t, tc.local, f.Local())
			assert.Equal(t, tc.desc, f.Describe())
			assert.Equal(t, tc.real, f.Leftovers() != "")
		})
	}
}

// The flags' help, as -h prints it: one set of flags for every provider.
func TestUsage(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(&out)
	cloud.Register(fs, cloud.Defaults{BootDelay: time.Second})
	fs.PrintDefaults()
	golden := filepath.Join("testdata", "usage.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, out.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), out.String())
}

func TestOpenFake(t *testing.T) {
	t.Parallel()
	f, err := parse([]string{"-boot-delay", "1h"}, env(nil))
	require.NoError(t, err)
	p, closeFn, err := f.Open(context.Background(), cloud.Env{Faults: func(string) fake.Faults { return fake.Faults{NoPhoneHome: true} }})
	require.NoError(t, err)
	require.IsType(t, &fake.Provider{}, p)
	_, err = p.Get(context.Background(), "1")
	require.ErrorIs(t, err, provider.ErrNotFound)
	require.NoError(t, closeFn())
}

func TestOpenHetzner(t *testing.T) {
	t.Parallel()
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	api.AddSSHKey("ops", "ssh-ed25519 AAAA ops")
	f, err := parse([]string{"-provider", "hetzner", "-ssh-key", "ops"}, tokens)
	require.NoError(t, err)
	p, closeFn, err := f.Open(context.Background(), cloud.Env{Endpoint: api.URL()})
	require.NoError(t, err)
	defer closeFn()
	require.IsType(t, &hetzner.Provider{}, p)
	assert.Equal(t, 1, api.Count("GET", "/ssh_keys"), "Open checks the keys")

	_, err = p.Create(context.Background(), provider.CreateRequest{Name: "t-1"})
	require.NoError(t, err)
	body := api.Created()[0]
	assert.Equal(t, "cx22", body.ServerType.Name)
	assert.Equal(t, "fsn1", body.Location)

	bad, err := parse([]string{"-provider", "hetzner", "-ssh-key", "missing"}, tokens)
	require.NoError(t, err)
	_, _, err = bad.Open(context.Background(), cloud.Env{Endpoint: api.URL()})
	require.ErrorIs(t, err, provider.ErrInvalid)
}

func TestOpenDigitalOcean(t *testing.T) {
	t.Parallel()
	api := dotest.New(dotest.Options{Token: "do-token"})
	defer api.Close()
	api.AddSSHKey("ops", fingerprint)
	f, err := parse([]string{"-provider", "digitalocean", "-ssh-key", fingerprint, "-location", "ams3"}, tokens)
	require.NoError(t, err)
	p, closeFn, err := f.Open(context.Background(), cloud.Env{Endpoint: api.URL()})
	require.NoError(t, err)
	defer closeFn()
	require.IsType(t, &digitalocean.Provider{}, p)
	assert.Equal(t, 2, api.Count("", ""), "Open checks the token and the key")
	limiter, ok := p.(provider.UserDataLimiter)
	require.True(t, ok, "the optional abilities survive the helper")
	assert.Equal(t, 64<<10, limiter.MaxUserData())

	_, err = p.Create(context.Background(), provider.CreateRequest{Name: "t-1"})
	require.NoError(t, err)
	body := api.Created()[0]
	assert.Equal(t, "s-1vcpu-2gb", body.Size)
	assert.Equal(t, "ams3", body.Region)
	assert.Equal(t, []string{fingerprint}, body.SSHKeys)
	assert.Equal(t, 0, api.PasswordEmails())

	wrong, err := parse([]string{"-provider", "digitalocean", "-ssh-key", fingerprint}, env(map[string]string{"DIGITALOCEAN_TOKEN": "wrong"}))
	require.NoError(t, err)
	_, _, err = wrong.Open(context.Background(), cloud.Env{Endpoint: api.URL()})
	require.ErrorIs(t, err, provider.ErrUnauthorized)
}

func TestOpenBeforeCheck(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	f := cloud.Register(fs, cloud.Defaults{})
	_, _, err := f.Open(context.Background(), cloud.Env{})
	require.ErrorContains(t, err, "before a successful Check")
	assert.False(t, f.Real())
	assert.Equal(t, "fake", f.Describe())
}

// TestOpenNspawn opens real local servers: the image is ready after Open,
// a server boots, and closeFn deletes it with the state directory. A
// machine without the requirements gets an error wrapping
// nspawn.ErrRequirements.
func TestOpenNspawn(t *testing.T) {
	t.Parallel()
	f, err := parse([]string{"-provider", "nspawn"}, env(nil))
	require.NoError(t, err)

	missing := func(nspawn.Options) (*nspawn.Provider, error) {
		return nil, fmt.Errorf("%w: debootstrap is not installed", nspawn.ErrRequirements)
	}
	_, _, err = f.Open(t.Context(), cloud.Env{NewNspawn: missing})
	require.ErrorIs(t, err, nspawn.ErrRequirements)

	var stateDir string
	opened := func(o nspawn.Options) (*nspawn.Provider, error) {
		stateDir = o.StateDir
		assert.Equal(t, "bookworm", o.Suite)
		return nspawn.New(o)
	}
	ctx, cancel := context.WithTimeout(t.Context(), nspawntest.ImageTimeout)
	defer cancel()
	p, closeFn, err := f.Open(ctx, cloud.Env{NewNspawn: opened})
	if errors.Is(err, nspawn.ErrRequirements) {
		testenv.Missing(t, err.Error())
	}
	require.NoError(t, err)
	require.IsType(t, &nspawn.Provider{}, p)
	srv, err := p.Create(ctx, provider.CreateRequest{Name: "open-nspawn", UserData: []byte("#cloud-config\n")})
	require.NoError(t, err)
	require.NoError(t, closeFn())
	assert.NoDirExists(t, stateDir, "closeFn removes the state directory")
	again, err := nspawn.New(nspawn.Options{StateDir: t.TempDir()})
	require.NoError(t, err)
	defer again.Close()
	_, err = again.Get(ctx, srv.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
}
