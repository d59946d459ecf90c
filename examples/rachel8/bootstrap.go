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

	// GitHubCLIRepo is the GitHub CLI's apt repository ("deb URL stable
	// main"), GitHubCLIKeyring the keyring that holds its signing keys,
	// fetched over HTTPS at boot and checked against
	// GitHubCLIFingerprints before apt trusts it.
	GitHubCLIRepo    = "https://cli.github.com/packages"
	GitHubCLIKeyring = "https://cli.github.com/packages/githubcli-archive-keyring.gpg"
	// GitHubCLIKeyID is the full fingerprint of the key that signs the
	// GitHub CLI's repository since 2026; GitHubCLIOldKeyID the one that
	// signed it before and expired on 2026-09-05, pinned only so that a
	// keyring that still carries it (beside or above the new one) is
	// accepted: apt refuses its expired signatures, and the boot fails
	// when gh does not come from the repository (see Bootstrap).
	GitHubCLIKeyID    = "7F38BBB59D064DBCB3D84D725612B36462313325"
	GitHubCLIOldKeyID = "2C6106201985B60E6C7AC87323F3D4EA75716059"

	// DefaultSettle is how long CheckActive waits before asking whether the
	// unit stayed up: longer than Bun's start-up, so a unit that crashes at
	// once is not reported active.
	DefaultSettle = 5 * time.Second
)

// GitHubCLIFingerprints returns the fingerprints the GitHub CLI's keyring
// is checked against by default: GitHubCLIKeyID and GitHubCLIOldKeyID,
// as public install scripts pin them.
func GitHubCLIFingerprints() []string { return []string{GitHubCLIKeyID, GitHubCLIOldKeyID} }

// phoneHomePost is what the bootstrap's phone_home posts: the ed25519 host
// key (pinned for the SSH connection), the instance ID and the names.
var phoneHomePost = []string{"pub_key_ed25519", "instance_id", "hostname", "fqdn"}

// PhoneHomeTries is how many times cloud-init tries to phone home.
const PhoneHomeTries = 10

// ErrOptions is wrapped by every error about Options.
var ErrOptions = errors.New("rachel8: invalid options")

// Options configure the recipe: both Bootstrap and Steps take them, so the
// cloud-config and the injection agree on user, paths and unit. The zero
// value of every field but PublicKey is a working default: the sources
// on the internet that Rachel8's own instructions use.
type Options struct {
	// User is the account that owns the checkout and runs the service;
	// "" means DefaultUser. It is also the SSH user of the injection.
	User string
	// PublicKey is the control plane's SSH key, authorized for User.
	// Bootstrap requires it; under provision (BootstrapFunc) it may be nil,
	// the Provisioner adding its Signer's key. Steps does not use it.
	PublicKey ssh.PublicKey
	// Repo is the git URL cloned into ~/rachel8; "" means DefaultRepo.
	// It must be an https URL without credentials; a private host with a
	// port (https://git.internal:8443/fork/Rachel8.git) is fine.
	Repo string
	// BunInstaller and ClaudeInstaller are the URLs of the Bun and Claude
	// CLI install scripts, fetched with curl and run with bash as User;
	// "" means BunInstaller and ClaudeInstaller. A mirror's copy must do
	// what the original does to the file system: Bun's puts the bun
	// binary at ~/.bun/bin/bun, Claude's puts ~/.local/bin/claude.
	BunInstaller, ClaudeInstaller string
	// GitHubCLI is where gh comes from; the zero value is the GitHub
	// CLI's own repository, its keyring fetched at boot and pinned.
	GitHubCLI AptRepo
	// CACerts are PEM CA certificates the server trusts besides the
	// image's: cloud-init's ca_certs module installs them in its first
	// stage, before anything is fetched (apt, the installers, git), for a
	// mirror or a proxy with a CA of its own. Certificates are public: they
	// may go into user-data.
	CACerts []string
	// Env are extra .env variables, not secret, written after the
	// recipe's own (TELEGRAM_BOT_TOKEN, OWNER_TELEGRAM_USER_ID,
	// SHARED_FOLDER_PATH, NODE_ENV, LOG_LEVEL), in order: settings that
	// Rachel8 has gained since this recipe was written, such as
	// AI_PROVIDER. A name is upper case letters, digits and _, and not one
	// of the recipe's; a value is refused, like a secret's, when it holds
	// anything but letters, digits and _ - . : / + = @ , (it is written
	// unquoted).
	Env []EnvVar
	// SecretEnv names extra .env variables whose values are secrets: each
	// is read from the SecretSource under its name (see From and
	// EnvSource.Extra) and written after Env, in order, on the SSH
	// channel's stdin like the others.
	SecretEnv []string
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

// AptRepo is an apt repository ("deb URL stable main") and how its
// signing key is trusted: Key, an armored public key given inline, or
// KeyringURL, a keyring fetched over HTTPS at boot and trusted only when
// every key in it is pinned by one of Fingerprints, as its primary key or
// as one of its subkeys. No keyserver is asked at boot. The zero value is
// the GitHub CLI's own repository and keyring (GitHubCLIRepo,
// GitHubCLIKeyring, GitHubCLIFingerprints).
type AptRepo struct {
	// URL is the repository; "" means GitHubCLIRepo. It must be https.
	URL string
	// Key is the ASCII-armored PGP public key block that signs the
	// repository (gpg --armor --export), written to the server by
	// cloud-init before apt reads the source. Not with KeyringURL.
	Key string
	// KeyringURL is the https URL of a keyring (binary or armored) to
	// fetch at boot; "" with an empty Key means GitHubCLIKeyring.
	KeyringURL string
	// Fingerprints pin KeyringURL's keys: full 40-hex-digit fingerprints
	// (spaces allowed). Required with a KeyringURL other than
	// GitHubCLIKeyring; empty with the default keyring means
	// GitHubCLIFingerprints.
	Fingerprints []string
}

// EnvVar is one extra .env variable, not secret.
type EnvVar struct{ Name, Value string }

var (
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// httpsURL admits what can go into a shell line unquoted: an https
	// URL without credentials, query or fragment.
	httpsURL = regexp.MustCompile(`^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?$`)
	envName  = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)
)

// recipeEnv are the .env variables the recipe writes itself.
var recipeEnv = [...]string{"TELEGRAM_BOT_TOKEN", "OWNER_TELEGRAM_USER_ID", "SHARED_FOLDER_PATH", "NODE_ENV", "LOG_LEVEL"}

// withDefaults fills in defaults and validates what ends up in a path,
// a YAML document or a shell line.
func (o Options) withDefaults() (Options, error) {
	if o.User == "" {
		o.User = DefaultUser
	}
	if !userName.MatchString(o.User) || o.User == "root" {
		return o, fmt.Errorf("%w: User %q is not a lowercase account name other than root", ErrOptions, o.User)
	}
	for _, u := range []struct {
		name string
		v    *string
		def  string
	}{
		{"Repo", &o.Repo, DefaultRepo},
		{"BunInstaller", &o.BunInstaller, BunInstaller},
		{"ClaudeInstaller", &o.ClaudeInstaller, ClaudeInstaller},
	} {
		if *u.v == "" {
			*u.v = u.def
		}
		if !isHTTPSURL(*u.v) {
			return o, fmt.Errorf("%w: %s %q is not a plain https URL (a host, an optional port, letters, digits and . _ ~ / - in the path)", ErrOptions, u.name, *u.v)
		}
	}
	var err error
	if o.GitHubCLI, err = o.GitHubCLI.withDefaults(); err != nil {
		return o, err
	}
	for i, c := range o.CACerts {
		if !strings.Contains(c, "-----BEGIN CERTIFICATE-----") {
			return o, fmt.Errorf("%w: CACerts[%d] is not a PEM certificate", ErrOptions, i)
		}
	}
	if err := checkEnvNames(o.Env, o.SecretEnv); err != nil {
		return o, err
	}
	if o.Settle < 0 {
		return o, fmt.Errorf("%w: negative Settle", ErrOptions)
	}
	if o.Settle == 0 {
		o.Settle = DefaultSettle
	}
	return o, nil
}

func isHTTPSURL(s string) bool { return httpsURL.MatchString(s) }

// withDefaults fills in the GitHub CLI's repository and keyring and checks
// the rest.
func (r AptRepo) withDefaults() (AptRepo, error) {
	bad := func(format string, args ...any) (AptRepo, error) {
		return r, fmt.Errorf("%w: GitHubCLI: "+format, append([]any{ErrOptions}, args...)...)
	}
	if r.URL == "" {
		r.URL = GitHubCLIRepo
	}
	r.URL = strings.TrimSuffix(r.URL, "/")
	if !isHTTPSURL(r.URL) {
		return bad("URL %q is not a plain https URL", r.URL)
	}
	if r.Key != "" {
		if r.KeyringURL != "" || len(r.Fingerprints) > 0 {
			return bad("Key is set together with KeyringURL or Fingerprints; use one way")
		}
		k := strings.TrimSpace(r.Key)
		if !strings.HasPrefix(k, "-----BEGIN PGP PUBLIC KEY BLOCK-----") || !strings.HasSuffix(k, "-----END PGP PUBLIC KEY BLOCK-----") {
			return bad("Key is not an ASCII-armored PGP public key block (gpg --armor --export)")
		}
		return r, nil
	}
	if r.KeyringURL == "" {
		r.KeyringURL = GitHubCLIKeyring
	}
	if !isHTTPSURL(r.KeyringURL) {
		return bad("KeyringURL %q is not a plain https URL", r.KeyringURL)
	}
	if len(r.Fingerprints) == 0 {
		if r.KeyringURL != GitHubCLIKeyring {
			return bad("KeyringURL %s needs Fingerprints: a keyring fetched at boot is trusted only when its keys are pinned", r.KeyringURL)
		}
		r.Fingerprints = GitHubCLIFingerprints()
	}
	fps := make([]string, len(r.Fingerprints))
	for i, f := range r.Fingerprints {
		fp := strings.ToUpper(strings.ReplaceAll(f, " ", ""))
		if len(fp) != 40 || strings.Trim(fp, "0123456789ABCDEF") != "" {
			return bad("Fingerprints[%d] %q is not a full 40-hex-digit fingerprint (short and long key IDs can be forged)", i, f)
		}
		fps[i] = fp
	}
	r.Fingerprints = fps
	return r, nil
}

func checkEnvNames(env []EnvVar, secret []string) error {
	seen := map[string]string{}
	for _, n := range recipeEnv {
		seen[n] = "the recipe's own"
	}
	check := func(field, name string) error {
		if !envName.MatchString(name) {
			return fmt.Errorf("%w: %s: %q is not a variable name (upper case letters, digits and _)", ErrOptions, field, name)
		}
		if prev, ok := seen[name]; ok {
			return fmt.Errorf("%w: %s: %s is already %s", ErrOptions, field, name, prev)
		}
		seen[name] = "in " + field
		return nil
	}
	for _, v := range env {
		if err := check("Env", v.Name); err != nil {
			return err
		}
		if r := envValueReason(v.Value); r != "" {
			return fmt.Errorf("%w: Env: %s %s", ErrOptions, v.Name, r)
		}
	}
	for _, n := range secret {
		if err := check("SecretEnv", n); err != nil {
			return err
		}
	}
	return nil
}

// Home is the user's home directory, /home/USER.
func (o Options) Home() string { return "/home/" + o.user() }

// Dir is the checkout and the service's working directory, ~/rachel8.
func (o Options) Dir() string { return o.Home() + "/" + AppDirName }

// SharedDir is Rachel8's shared folder, ~/shared (SHARED_FOLDER_PATH).
func (o Options) SharedDir() string { return o.Home() + "/shared" }

// BunPath is the bun binary Bun's installer puts in ~/.bun/bin.
func (o Options) BunPath() string { return o.Home() + "/.bun/bin/bun" }

// ClaudePath is the claude command the Claude CLI's installer puts in
// ~/.local/bin.
func (o Options) ClaudePath() string { return o.Home() + "/.local/bin/claude" }

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
//   - Options.CACerts trusted (ca_certs, before anything is fetched);
//   - the user (sudo "ALL=(ALL) NOPASSWD:ALL", /bin/bash, PublicKey);
//   - packages git, curl and unzip, and gh from Options.GitHubCLI: with
//     an inline Key, the key is written to /etc/apt/keyrings/github-cli.asc
//     (write_files, in cloud-init's first stage) and the apt source names
//     it (signed-by), so gh installs with the other packages;
//     with a KeyringURL, gpg is installed too and runcmd fetches the
//     keyring, refuses it unless every key in it is pinned, then adds the
//     source and installs gh (apt-get update --error-on=any: a repository
//     that cannot be fetched or verified is an error, not a warning);
//   - ~/.bun/bin and ~/.local/bin on the user's PATH (~/.profile and
//     ~/.bashrc, written after the user exists);
//   - Bun and the Claude CLI installed by their installers run as the user
//     (both write into the invoking user's home), the repository cloned
//     into ~/rachel8 and its dependencies installed with bun, as the user;
//   - ~/shared owned by the user;
//   - runcmd stops at its first failing command, and its last entries
//     fail unless all of the above is in place and the installed gh is a
//     version that Options.GitHubCLI's repository offers: apt only warns
//     when a repository cannot be fetched or verified, and would install
//     Debian's own, older gh instead. `cloud-init status` then reports an
//     error that the injection's first step stops on (runcmd otherwise
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

// Where the bootstrap puts the GitHub CLI's source and key on the server.
const (
	ghSourceName = "github-cli"
	ghSourceFile = "/etc/apt/sources.list.d/" + ghSourceName + ".list"
	ghKeyFile    = "/etc/apt/keyrings/" + ghSourceName + ".asc" // an inline Key, armored
	ghKeyringDir = "/etc/apt/keyrings"
)

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
		"test -x " + o.ClaudePath(),
		"test -f " + o.Dir() + "/package.json",
		"test -d " + o.Dir() + "/node_modules",
		"test -d " + o.SharedDir(),
		"command -v gh >/dev/null",
	}, " && ")

	cfg := cloudinit.Config{
		Hostname: o.Hostname,
		Users: []cloudinit.User{{
			Name:              o.User,
			Shell:             "/bin/bash",
			Sudo:              "ALL=(ALL) NOPASSWD:ALL",
			SSHAuthorizedKeys: keys,
		}},
		PackageUpdate: true,
		Packages:      []string{"git", "curl", "unzip"},
		WriteFiles: []cloudinit.File{
			{Path: o.Home() + "/.profile", Content: pathSnippet, Owner: owner, Permissions: "0644", Append: true, Defer: true},
			{Path: o.Home() + "/.bashrc", Content: pathSnippet, Owner: owner, Permissions: "0644", Append: true, Defer: true},
		},
		RunCmd: []cloudinit.Command{cloudinit.StopOnError()},
		PhoneHome: &cloudinit.PhoneHome{
			URL:   o.PhoneHomeURL,
			Post:  append([]string(nil), phoneHomePost...),
			Tries: PhoneHomeTries,
		},
	}
	if len(o.CACerts) > 0 {
		cfg.CACerts = &cloudinit.CACerts{Trusted: append([]string(nil), o.CACerts...)}
	}
	gh := o.GitHubCLI
	if gh.Key != "" {
		// The key goes into a file of its own, written in cloud-init's
		// first stage, and the source names it. Not cloud-init's
		// apt key (key: with $KEY_FILE): cloud-init turns that into a
		// keyring with `gpg --dearmor`, and images without gpg (Debian's
		// minimal ones) get signed-by=/dev/null and a failed apt-get
		// update instead. apt reads an armored .asc keyring itself.
		cfg.WriteFiles = append(cfg.WriteFiles, cloudinit.File{Path: ghKeyFile, Content: strings.TrimSpace(gh.Key) + "\n", Permissions: "0644"})
		cfg.Apt = &cloudinit.Apt{Sources: map[string]cloudinit.AptSource{
			ghSourceName: {Source: "deb [signed-by=" + ghKeyFile + "] " + gh.URL + " stable main"},
		}}
		cfg.Packages = append(cfg.Packages, "gh")
	} else {
		cfg.Packages = append(cfg.Packages, "gpg")
		cfg.RunCmd = append(cfg.RunCmd, cloudinit.Shell(ghFromKeyring(gh)))
	}
	cfg.RunCmd = append(cfg.RunCmd,
		asUser("curl -fsSL "+o.BunInstaller+" | bash"),
		asUser("curl -fsSL "+o.ClaudeInstaller+" | bash"),
		asUser("test -d "+o.Dir()+"/.git || git clone "+o.Repo+" "+o.Dir()),
		asUser("cd "+o.Dir()+" && "+o.BunPath()+" install"),
		cloudinit.Command{"install", "-d", "-o", o.User, "-g", o.User, "-m", "0755", o.SharedDir()},
		cloudinit.Shell(check),
		cloudinit.Shell(ghOriginCheck(gh.URL)),
	)
	return cfg, nil
}

// ghFromKeyring is the runcmd script that installs gh from a repository
// whose keyring is fetched at boot: it fetches the keyring over HTTPS,
// lists its keys with gpg (nothing is imported), refuses it unless every
// key is pinned (keyringCheck), installs it under /etc/apt/keyrings,
// adds the source that names it, updates that source alone (failing on
// any error: a repository apt cannot fetch or verify) and installs gh.
func ghFromKeyring(r AptRepo) string {
	pins := strings.Join(r.Fingerprints, " ")
	return strings.Join([]string{
		"set -eu",
		"export DEBIAN_FRONTEND=noninteractive",
		`t=$(mktemp -d)`,
		`trap 'rm -rf "$t"' EXIT`,
		`curl -fsSL --proto =https -o "$t/keyring" ` + r.KeyringURL,
		`GNUPGHOME="$t" gpg --batch --quiet --show-keys --with-colons --with-subkey-fingerprint "$t/keyring" >"$t/keys"`,
		keyringCheck(`"$t/keys"`, pins) + ` || { echo "rachel8: the keyring ` + r.KeyringURL + ` holds a key that none of ` + pins + ` pins" >&2; exit 1; }`,
		// apt reads a keyring by its extension: .asc armored, .gpg binary.
		`k=` + ghKeyringDir + `/` + ghSourceName + `.gpg; if head -c 36 "$t/keyring" | grep -q "BEGIN PGP PUBLIC KEY BLOCK"; then k=` + ghKeyringDir + `/` + ghSourceName + `.asc; fi`,
		`install -d -m 0755 ` + ghKeyringDir,
		`install -m 0644 "$t/keyring" "$k"`,
		`echo "deb [signed-by=$k] ` + r.URL + ` stable main" >` + ghSourceFile,
		`apt-get update --error-on=any -o Dir::Etc::sourcelist=` + ghSourceFile + ` -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0`,
		`apt-get install -y --no-install-recommends gh`,
	}, "\n")
}

// keyringCheck is a shell command that succeeds when the keys that file
// lists (gpg --show-keys --with-colons --with-subkey-fingerprint) are at
// least one, and each of them is pinned: its primary key's fingerprint
// or one of its subkeys' is among pins (space-separated, upper case).
// apt trusts every key of a keyring given with signed-by, so one
// unpinned key refuses the whole keyring.
func keyringCheck(file, pins string) string {
	return `awk -F: -v pins="` + pins + `" 'BEGIN { n = split(pins, p, " "); for (i = 1; i <= n; i++) pin[p[i]] = 1 } ` +
		`$1 == "pub" { keys++; want = 1; next } ` +
		`$1 == "sub" { want = 1; next } ` +
		`$1 == "fpr" && want { if (toupper($10) in pin) ok[keys] = 1; want = 0 } ` +
		`END { if (keys == 0) exit 1; for (i = 1; i <= keys; i++) if (!(i in ok)) exit 1 }' ` + file
}

// ghOriginCheck is a shell command that fails unless the installed gh is
// a version that repo offers (apt-cache madison lists each version with
// the repositories that have it): apt only warns when a repository
// cannot be fetched or its signature is refused, and then installs
// Debian's own gh.
func ghOriginCheck(repo string) string {
	return `v=$(dpkg-query -W -f='${Version}' gh) && ` +
		`apt-cache madison gh | awk -F'|' -v v="$v" -v r="` + repo + `" '{ gsub(/^ +| +$/, "", $2); sub(/^ +/, "", $3) } ` +
		`$2 == v && (index($3, r " ") == 1 || index($3, r "/ ") == 1) { ok = 1 } END { exit !ok }' || ` +
		`{ echo "rachel8: gh $v is not from ` + repo + `:" >&2; apt-cache policy gh >&2; exit 1; }`
}
