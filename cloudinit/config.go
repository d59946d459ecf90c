package cloudinit

// Config is a typed model of the cloud-config keys a provisioning control
// plane needs. Fields are rendered in declaration order; empty fields are
// left out. Build validates a Config and renders it.
type Config struct {
	Hostname       string     `yaml:"hostname,omitempty"`
	Users          []User     `yaml:"users,omitempty"`
	PackageUpdate  bool       `yaml:"package_update,omitempty"`
	PackageUpgrade bool       `yaml:"package_upgrade,omitempty"`
	Apt            *Apt       `yaml:"apt,omitempty"`
	Packages       []string   `yaml:"packages,omitempty"`
	WriteFiles     []File     `yaml:"write_files,omitempty"`
	RunCmd         []Command  `yaml:"runcmd,omitempty"`
	PhoneHome      *PhoneHome `yaml:"phone_home,omitempty"`

	// Secrets lists values that must not appear anywhere in the output;
	// Build fails with ErrSecret when one does. Never rendered.
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
	Name              string   `yaml:"name"`
	Groups            []string `yaml:"groups,omitempty"`
	Shell             string   `yaml:"shell,omitempty"`
	Sudo              string   `yaml:"sudo,omitempty"` // e.g. "ALL=(ALL) NOPASSWD:ALL"; a string, never a list
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
	LockPasswd        *bool    `yaml:"lock_passwd,omitempty"` // nil: cloud-init's default (locked)
}

// Apt is cloud-config's apt key: extra repositories and their signing keys,
// so a vendor package installs in the same apt pass as the others.
type Apt struct {
	Sources map[string]AptSource `yaml:"sources,omitempty"` // keyed by file name, e.g. "github-cli"
}

// AptSource is one apt repository. Source may use $KEY_FILE for the
// keyring cloud-init writes from Key or KeyID.
type AptSource struct {
	Source    string `yaml:"source"`
	KeyID     string `yaml:"keyid,omitempty"`     // a full fingerprint, fetched from KeyServer
	KeyServer string `yaml:"keyserver,omitempty"` // e.g. "keyserver.ubuntu.com"
	Key       string `yaml:"key,omitempty"`       // an ASCII-armored public key
}

// File is one entry of cloud-config's write_files.
type File struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content,omitempty"`
	Owner       string `yaml:"owner,omitempty"`       // user[:group]
	Permissions string `yaml:"permissions,omitempty"` // an octal string such as "0644"
	Encoding    string `yaml:"encoding,omitempty"`    // "", "b64" or "gzip+b64"
	Append      bool   `yaml:"append,omitempty"`
	Defer       bool   `yaml:"defer,omitempty"` // written in the final stage, after users exist
}

// Command is one runcmd entry: an argv run without a shell.
type Command []string

// PhoneHome is cloud-config's phone_home: the POST cloud-init sends when the
// final stage is reached.
type PhoneHome struct {
	URL   string   `yaml:"url"`
	Post  []string `yaml:"post"`  // from pub_key_dsa pub_key_rsa pub_key_ecdsa pub_key_ed25519 instance_id hostname fqdn
	Tries int      `yaml:"tries"` // 0 means 10
}
