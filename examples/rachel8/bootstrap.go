package rachel8

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
)

// Defaults and fixed values of the recipe.
const (
	DefaultUser = "rachel"                                   // the account Rachel8 runs as
	DefaultRepo = "https://github.com/polly3223/Rachel8.git" // what is cloned into ~/rachel8
	AppDirName  = "rachel8"                                  // the checkout, under the user's home
	UnitName    = "rachel8.service"                          // the systemd unit Steps installs

	BunInstaller    = "https://bun.sh/install"       // Bun's installer, run as the user
	ClaudeInstaller = "https://claude.ai/install.sh" // the Claude CLI's installer, run as the user

	// GitHubCLIRepo is the GitHub CLI's apt repository, and GitHubCLIKeyID
	// the full fingerprint of the key that signs it since 2026 (the former
	// key, 23F3D4EA75716059, expired on 2026-09-05 and must not be used).
	GitHubCLIRepo      = "https://cli.github.com/packages"
	GitHubCLIKeyID     = "7F38BBB59D064DBCB3D84D725612B36462313325"
	GitHubCLIKeyServer = "keyserver.ubuntu.com"

	// DefaultSettle is how long CheckActive waits before asking whether the
	// unit stayed up: longer than Bun's start-up, so a unit that crashes at
	// once is not reported active.
	DefaultSettle = 5 * time.Second
)

// phoneHomePost is what the bootstrap's phone_home posts: the ed25519 host
// key (pinned for the SSH connection), the instance ID and the names.
var phoneHomePost = []string{"pub_key_ed25519", "instance_id", "hostname", "fqdn"}

// PhoneHomeTries is how many times cloud-init tries to phone home.
const PhoneHomeTries = 10

// ErrOptions is wrapped by every error about Options.
var ErrOptions = errors.New("rachel8: invalid options")

// Options configure the recipe: both Bootstrap and Steps take them, so the
// cloud-config and the injection agree on user, paths and unit. The zero
// value of every field but PublicKey is a working default.
type Options struct {
	// User is the account that owns the checkout and runs the service;
	// "" means DefaultUser. It is also the SSH user of the injection.
	User string
	// PublicKey is the control plane's SSH key, authorized for User.
	// Bootstrap requires it; under provision (BootstrapFunc) it may be nil,
	// the Provisioner adding its Signer's key. Steps does not use it.
	PublicKey ssh.PublicKey
	// Repo is the git URL cloned into ~/rachel8; "" means DefaultRepo.
	// It must be an https URL.
	Repo string
	// Hostname is cloud-config's hostname; "" leaves it to the provider.
	Hostname string
	// PhoneHomeURL is where cloud-init posts when it is done. "" leaves
	// phone_home's URL empty for the orchestrator to fill in; under
	// provision it must be "" (the Provisioner puts its tokened callback
	// URL there). Post fields and tries are set either way.
	PhoneHomeURL string
	// UnitTemplate replaces the embedded rachel8.service template (e.g. a
	// copy read from the repository). It must use only the placeholders
	// __USER__, __WORKING_DIR__ and __BUN_PATH__.
	UnitTemplate []byte
	// Settle is how long CheckActive waits before checking the unit;
	// 0 means DefaultSettle.
	Settle time.Duration
}

var (
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// repoURL admits what can go into a shell line unquoted.
	repoURL = regexp.MustCompile(`^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)+/?$`)
)

// withDefaults fills in defaults and validates what ends up in a path,
// a YAML document or a shell line.
func (o Options) withDefaults() (Options, error) {
	if o.User == "" {
		o.User = DefaultUser
	}
	if !userName.MatchString(o.User) || o.User == "root" {
		return o, fmt.Errorf("%w: User %q is not a lowercase account name other than root", ErrOptions, o.User)
	}
	if o.Repo == "" {
		o.Repo = DefaultRepo
	}
	if !repoURL.MatchString(o.Repo) {
		return o, fmt.Errorf("%w: Repo %q is not a plain https URL (letters, digits and . _ ~ / - in the path)", ErrOptions, o.Repo)
	}
	if o.Settle < 0 {
		return o, fmt.Errorf("%w: negative Settle", ErrOptions)
	}
	if o.Settle == 0 {
		o.Settle = DefaultSettle
	}
	return o, nil
}

// Home is the user's home directory, /home/USER.
func (o Options) Home() string { return "/home/" + o.user() }

// Dir is the checkout and the service's working directory, ~/rachel8.
func (o Options) Dir() string { return o.Home() + "/" + AppDirName }

// SharedDir is Rachel8's shared folder, ~/shared (SHARED_FOLDER_PATH).
func (o Options) SharedDir() string { return o.Home() + "/shared" }

// BunPath is the bun binary Bun's installer puts in ~/.bun/bin.
func (o Options) BunPath() string { return o.Home() + "/.bun/bin/bun" }

func (o Options) user() string {
	if o.User == "" {
		return DefaultUser
	}
	return o.User
}

// pathSnippet is appended to the user's ~/.profile and ~/.bashrc so that
// login and interactive shells find bun and claude.
const pathSnippet = `# Added by the Rachel8 bootstrap: Bun and the Claude CLI live in the home directory.
export BUN_INSTALL="$HOME/.bun"
case ":$PATH:" in *":$HOME/.bun/bin:"*) ;; *) PATH="$HOME/.bun/bin:$PATH" ;; esac
case ":$PATH:" in *":$HOME/.local/bin:"*) ;; *) PATH="$HOME/.local/bin:$PATH" ;; esac
export PATH
`

// Bootstrap returns the cloud-config that prepares a server for Rachel8,
// with nothing secret in it:
//
//   - the user (sudo "ALL=(ALL) NOPASSWD:ALL", /bin/bash, PublicKey);
//   - packages git, curl, unzip and gh, the last from the GitHub CLI's apt
//     repository, its key pinned by fingerprint (GitHubCLIKeyID);
//   - ~/.bun/bin and ~/.local/bin on the user's PATH (~/.profile and
//     ~/.bashrc, written after the user exists);
//   - Bun and the Claude CLI installed by their installers run as the user
//     (both write into the invoking user's home), the repository cloned
//     into ~/rachel8 and its dependencies installed with bun, as the user;
//   - ~/shared owned by the user;
//   - runcmd stops at its first failing command, and a last entry fails
//     unless all of the above is in place, so `cloud-init status` reports
//     an error that the injection's first step stops on (runcmd otherwise
//     reports only its last command's status);
//   - phone_home posting pub_key_ed25519, instance_id, hostname and fqdn,
//     10 tries.
//
// Render it with cloudinit.Build (provision does, after filling in the
// phone_home URL when PhoneHomeURL is empty).
func Bootstrap(opts Options) (cloudinit.Config, error) {
	if opts.PublicKey == nil {
		return cloudinit.Config{}, fmt.Errorf("%w: PublicKey is required", ErrOptions)
	}
	return bootstrap(opts)
}

// bootstrap builds the cloud-config; a nil PublicKey leaves the user
// without a key, for an orchestrator that adds its own (see BootstrapFunc).
func bootstrap(opts Options) (cloudinit.Config, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return cloudinit.Config{}, err
	}
	var keys []string
	if o.PublicKey != nil {
		keys = []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(o.PublicKey)))}
	}
	owner := o.User + ":" + o.User

	// asUser runs script with bash as the user (runuser sets HOME, USER
	// and LOGNAME to the user's), pipefail making a failed download fail
	// the installer's pipeline.
	asUser := func(script string) cloudinit.Command {
		return cloudinit.RunAs(o.User, cloudinit.Command{"bash", "-c", "set -euo pipefail; " + script})
	}
	check := strings.Join([]string{
		"test -x " + o.BunPath(),
		"test -x " + o.Home() + "/.local/bin/claude",
		"test -f " + o.Dir() + "/package.json",
		"test -d " + o.Dir() + "/node_modules",
		"test -d " + o.SharedDir(),
		"command -v gh >/dev/null",
	}, " && ")

	return cloudinit.Config{
		Hostname: o.Hostname,
		Users: []cloudinit.User{{
			Name:              o.User,
			Shell:             "/bin/bash",
			Sudo:              "ALL=(ALL) NOPASSWD:ALL",
			SSHAuthorizedKeys: keys,
		}},
		PackageUpdate: true,
		Apt: &cloudinit.Apt{Sources: map[string]cloudinit.AptSource{
			"github-cli": {
				Source:    "deb [signed-by=$KEY_FILE] " + GitHubCLIRepo + " stable main",
				KeyID:     GitHubCLIKeyID,
				KeyServer: GitHubCLIKeyServer,
			},
		}},
		Packages: []string{"git", "curl", "unzip", "gh"},
		WriteFiles: []cloudinit.File{
			{Path: o.Home() + "/.profile", Content: pathSnippet, Owner: owner, Permissions: "0644", Append: true, Defer: true},
			{Path: o.Home() + "/.bashrc", Content: pathSnippet, Owner: owner, Permissions: "0644", Append: true, Defer: true},
		},
		RunCmd: []cloudinit.Command{
			cloudinit.StopOnError(),
			asUser("curl -fsSL " + BunInstaller + " | bash"),
			asUser("curl -fsSL " + ClaudeInstaller + " | bash"),
			asUser("test -d " + o.Dir() + "/.git || git clone " + o.Repo + " " + o.Dir()),
			asUser("cd " + o.Dir() + " && " + o.BunPath() + " install"),
			{"install", "-d", "-o", o.User, "-g", o.User, "-m", "0755", o.SharedDir()},
			cloudinit.Shell(check),
		},
		PhoneHome: &cloudinit.PhoneHome{
			URL:   o.PhoneHomeURL,
			Post:  append([]string(nil), phoneHomePost...),
			Tries: PhoneHomeTries,
		},
	}, nil
}
