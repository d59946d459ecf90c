package cloudinit

// Config is a typed model of the cloud-config keys a provisioning control
// plane needs. Build validates a Config and renders it; Parse reads a
// rendered one back. Fields are rendered in declaration order and empty
// fields are left out, so the yaml tags below are the cloud-config keys.
//
// Nothing in a Config may be secret: user-data is readable from inside the
// server and by the provider. Secrets travel later, over SSH.
type Config struct {
	// Hostname is an RFC 1123 host name (labels of letters, digits and
	// hyphens, dot-separated, at most 253 bytes).
	Hostname string `yaml:"hostname,omitempty"`
	// Users replaces the image's default user list.
	Users []User `yaml:"users,omitempty"`
	// SSHPwauth sets sshd's PasswordAuthentication (cloud-init's
	// set_passwords module, config stage); nil leaves the image's setting.
	SSHPwauth *bool `yaml:"ssh_pwauth,omitempty"`
	// PackageUpdate runs apt-get update before Packages are installed.
	PackageUpdate bool `yaml:"package_update,omitempty"`
	// PackageUpgrade upgrades every installed package first (slow).
	PackageUpgrade bool `yaml:"package_upgrade,omitempty"`
	// CACerts adds trusted CA certificates (cloud-init's ca_certs module).
	// It runs in the init stage (cloud-init's network stage, the
	// cloud_init_modules of /etc/cloud/cloud.cfg), before the config
	// stage configures apt sources and before the final stage installs
	// packages and runs runcmd and phone_home: whatever those fetch over
	// HTTPS is checked against these CAs too.
	CACerts *CACerts `yaml:"ca_certs,omitempty"`
	// Apt adds apt repositories, which cloud-init configures before it
	// installs Packages: a vendor package installs in the same apt pass.
	Apt *Apt `yaml:"apt,omitempty"`
	// Packages are Debian package names, optionally pinned as name=version.
	Packages []string `yaml:"packages,omitempty"`
	// WriteFiles are files written by cloud-init (deferred ones after
	// users exist and packages are installed).
	WriteFiles []File `yaml:"write_files,omitempty"`
	// RunCmd are commands run once, in order, late in the first boot.
	RunCmd []Command `yaml:"runcmd,omitempty"`
	// PhoneHome is the POST cloud-init sends when the final stage is reached.
	PhoneHome *PhoneHome `yaml:"phone_home,omitempty"`
	// Reporting registers cloud-init's reporting handlers, keyed by a name
	// of the caller's choice: each gets every stage's and module's start
	// and finish event as the server boots (see Reporter).
	Reporting map[string]Reporter `yaml:"reporting,omitempty"`

	// Secrets lists values that must not appear anywhere in the output;
	// Build fails with ErrSecret when one does. Never rendered. An empty
	// value is an error; a very short one matches often, so list the
	// secrets themselves, not fragments.
	Secrets []string `yaml:"-"`
	// MaxSize is the largest output Build accepts, in bytes; 0 means MaxSize.
	MaxSize int `yaml:"-"`
	// Compress renders the document as base64(gzip(document)) on one line,
	// which Hetzner's datasource decodes; the size limit is checked on what
	// is sent. Validation runs on the plain document.
	Compress bool `yaml:"-"`
}

// User is one entry of cloud-config's users list.
type User struct {
	// Name matches ^[a-z_][a-z0-9_-]{0,31}$.
	Name string `yaml:"name"`
	// Groups are supplementary groups (same shape as Name); cloud-init
	// creates missing ones.
	Groups []string `yaml:"groups,omitempty"`
	// Shell is an absolute path such as "/bin/bash".
	Shell string `yaml:"shell,omitempty"`
	// Sudo is one sudoers rule, e.g. "ALL=(ALL) NOPASSWD:ALL"; a string,
	// never a list (cloud-init 22.4's schema rejects a list). Empty means
	// no sudo rule.
	Sudo string `yaml:"sudo,omitempty"`
	// SSHAuthorizedKeys are authorized_keys lines; each must parse with
	// ssh.ParseAuthorizedKey and hold exactly one key.
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
	// LockPasswd locks the password; nil means cloud-init's default (locked).
	LockPasswd *bool `yaml:"lock_passwd,omitempty"`
}

// Apt is cloud-config's apt key: extra repositories and their signing keys,
// so a vendor package installs in the same apt pass as the others.
type Apt struct {
	// Sources is keyed by the list file's name, e.g. "github-cli" for
	// /etc/apt/sources.list.d/github-cli.list. At least one is required.
	Sources map[string]AptSource `yaml:"sources,omitempty"`
}

// AptSource is one apt repository.
//
// Source is a one-line "deb ..." entry. cloud-init substitutes $MIRROR,
// $PRIMARY, $SECURITY, $RELEASE and $KEY_FILE in it (the keyring it writes
// from Key or KeyID); any other $NAME makes cloud-init fail, so Build
// refuses it, as it refuses the ${NAME} form.
type AptSource struct {
	Source string `yaml:"source"`
	// KeyID is the signing key's full 40-hex-digit fingerprint (spaces
	// allowed), fetched from KeyServer at boot. A short or long key ID is
	// refused: they can be forged.
	KeyID string `yaml:"keyid,omitempty"`
	// KeyServer is a host name or an hkp(s)/http(s) URL; empty means
	// cloud-init's default, keyserver.ubuntu.com. Only with KeyID.
	KeyServer string `yaml:"keyserver,omitempty"`
	// Key is an ASCII-armored public key block, instead of KeyID.
	Key string `yaml:"key,omitempty"`
}

// CACerts is cloud-config's ca_certs: CA certificates that cloud-init adds
// to the system's trust store (it writes them, joined by a newline, to
// /usr/share/ca-certificates/cloud-init-ca-certs.crt on Debian with cloud-init 22.4, and
// runs update-ca-certificates), in the init stage, before apt, packages,
// runcmd and phone_home. Certificates are public: the secret scan does not
// refuse them.
//
// Boot events that cloud-init's reporting webhook posts before this module
// has run (the init-local stage, the start of init-network) are checked
// against the image's CAs only: a reporting endpoint behind a private CA
// loses them (cloud-init logs the failure and boots on).
type CACerts struct {
	// RemoveDefaults removes the image's default CAs first (every one not
	// in Trusted is then distrusted, Debian's mirror over HTTPS included).
	RemoveDefaults bool `yaml:"remove_defaults,omitempty"`
	// Trusted are PEM certificates, one or more "CERTIFICATE" blocks per
	// entry (nothing else but white space around them). At least one.
	Trusted []string `yaml:"trusted,omitempty"`
}

// Reporter is one of cloud-config's reporting handlers. Only the webhook is
// modeled: cloud-init POSTs every event, as JSON, to Endpoint, one at a
// time from a worker thread, and waits for the queue at the end of each
// stage (dropping the rest of it after three failed posts in a row).
type Reporter struct {
	// Type is "webhook" (ReporterWebhook), the only type modeled.
	Type string `yaml:"type"`
	// Endpoint is an absolute http(s) URL, checked like PhoneHome.URL
	// except that cloud-init substitutes nothing in it: a "$" is refused.
	// It is readable on the server, like the phone_home URL: authenticate
	// it with a token bound to the server (callback.Handler.EventsURL).
	Endpoint string `yaml:"endpoint"`
	// Timeout bounds each POST, in whole seconds; 0 means
	// DefaultReporterTimeout, which Build renders explicitly: without a
	// timeout cloud-init waits for an unresponsive endpoint for ever, at
	// the end of every stage.
	Timeout int `yaml:"timeout"`
	// Retries is how many times cloud-init retries a POST that failed,
	// a second apart; 0 means none.
	Retries int `yaml:"retries,omitempty"`
}

// ReporterWebhook is the Reporter.Type of a webhook.
const ReporterWebhook = "webhook"

// DefaultReporterTimeout is the Reporter.Timeout Build renders for 0, in
// seconds: with it, an endpoint that does not answer delays each stage by
// at most three timeouts (cloud-init then drops the stage's other events).
const DefaultReporterTimeout = 5

// File is one entry of cloud-config's write_files.
type File struct {
	// Path is absolute and clean (no "..", no trailing slash).
	Path string `yaml:"path"`
	// Content is the file's text, or its encoding per Encoding.
	Content string `yaml:"content,omitempty"`
	// Owner is user[:group]; empty means root:root.
	Owner string `yaml:"owner,omitempty"`
	// Permissions is an octal string such as "0644" (leading zero
	// required); it is always rendered quoted, because an unquoted 0644 is
	// the integer 420 to YAML and cloud-init's schema rejects it.
	Permissions string `yaml:"permissions,omitempty"`
	// Encoding is "" (plain text, no NUL), "b64" or "gzip+b64" (standard
	// base64, unwrapped). Decoded content is scanned for secrets too.
	Encoding string `yaml:"encoding,omitempty"`
	// Append adds Content to the end of an existing file.
	Append bool `yaml:"append,omitempty"`
	// Defer writes the file in the final stage, after users exist and
	// packages are installed: use it for files under a new user's home.
	Defer bool `yaml:"defer,omitempty"`
}

// Command is one runcmd entry: an argv run without a shell. cloud-init
// writes every runcmd entry as one line of a /bin/sh script, each argument
// single-quoted, so no argument can start another command. Use Shell for
// the cases that need a shell, RunAs to run as another user, and
// StopOnError to stop at the first failing command.
type Command []string

// PhoneHome is cloud-config's phone_home: the POST cloud-init sends when the
// final stage is reached.
type PhoneHome struct {
	// URL is an absolute http(s) URL that cloud-init's schema accepts
	// (RFC 3986 characters only). "$INSTANCE_ID" in it is replaced by the
	// instance ID; "${INSTANCE_ID}" and any other $NAME are refused.
	URL string `yaml:"url"`
	// Post lists what to send, from pub_key_dsa pub_key_rsa pub_key_ecdsa
	// pub_key_ed25519 instance_id hostname fqdn. It must not
	// be empty: cloud-init then sends a GET with no body.
	Post []string `yaml:"post"`
	// Tries is how often cloud-init tries to send; 0 means 10, which Build
	// renders explicitly (cloud-init warns when it is missing).
	Tries int `yaml:"tries"`
}

// postKeys are the values PhoneHome.Post may hold, in the order cloud-init
// 22.4 sends them.
var postKeys = [...]string{"pub_key_dsa", "pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"}

// DefaultTries is the PhoneHome.Tries Build renders for 0.
const DefaultTries = 10
