package cloudinit_test

import (
	"compress/gzip"
	"crypto/ed25519"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
)

// testKey returns a fixed ed25519 public key as an authorized_keys line
// (derived from a constant seed; no private key is stored anywhere).
func testKey(seed byte, comment string) string {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(s).Public())
	if err != nil {
		panic(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

const (
	tenantID     = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	callbackURL  = "https://hatchery.example.com/api/provision/callback/" + tenantID + "?token=5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592"
	ghKeyID      = "7F38BBB59D064DBCB3D84D725612B36462313325"
	ghSource     = "deb [signed-by=$KEY_FILE] https://cli.github.com/packages stable main"
	pathSnippet  = "# Added by Hatchery: Bun and the Claude CLI install here.\nexport PATH=\"$HOME/.bun/bin:$HOME/.local/bin:$PATH\"\n"
	rachelHome   = "/home/rachel"
	rachelSudo   = "ALL=(ALL) NOPASSWD:ALL"
	bunInstall   = "set -euo pipefail; curl -fsSL https://bun.sh/install | bash"
	claudeInstal = "set -euo pipefail; curl -fsSL https://claude.ai/install.sh | bash"
)

// minimalConfig is the smallest useful bootstrap: a host name and the
// phone_home callback (tries left to the default).
func minimalConfig() cloudinit.Config {
	return cloudinit.Config{
		Hostname: "tenant-7c9e6679",
		PhoneHome: &cloudinit.PhoneHome{
			URL:  callbackURL,
			Post: []string{"pub_key_ed25519", "instance_id", "hostname", "fqdn"},
		},
	}
}

// fullConfig is shaped like the Rachel8 bootstrap of the seed plan, with
// DESIGN.md's corrections: installers run as rachel, GitHub CLI's key is
// pinned by its current fingerprint, runcmd stops at the first failure.
func fullConfig() cloudinit.Config {
	locked := true
	return cloudinit.Config{
		Hostname: "rachel8-7c9e6679",
		Users: []cloudinit.User{{
			Name:              "rachel",
			Shell:             "/bin/bash",
			Sudo:              rachelSudo,
			SSHAuthorizedKeys: []string{testKey(1, "hatchery@control-plane")},
			LockPasswd:        &locked,
		}},
		PackageUpdate: true,
		Apt: &cloudinit.Apt{Sources: map[string]cloudinit.AptSource{
			"github-cli": {Source: ghSource, KeyID: ghKeyID, KeyServer: "keyserver.ubuntu.com"},
		}},
		Packages: []string{"git", "curl", "unzip", "gh"},
		WriteFiles: []cloudinit.File{{
			Path:        rachelHome + "/.profile",
			Content:     pathSnippet,
			Owner:       "rachel:rachel",
			Permissions: "0644",
			Append:      true,
			Defer:       true,
		}},
		RunCmd: []cloudinit.Command{
			cloudinit.StopOnError(),
			cloudinit.RunAs("rachel", cloudinit.Command{"bash", "-c", bunInstall}),
			cloudinit.RunAs("rachel", cloudinit.Command{"bash", "-c", claudeInstal}),
			cloudinit.RunAs("rachel", cloudinit.Command{"git", "clone", "https://github.com/polly3223/Rachel8.git", rachelHome + "/rachel8"}),
			cloudinit.RunAs("rachel", cloudinit.Shell("cd ~/rachel8 && ~/.bun/bin/bun install")),
			{"install", "-d", "-o", "rachel", "-g", "rachel", "-m", "0755", rachelHome + "/shared"},
		},
		PhoneHome: &cloudinit.PhoneHome{
			URL:   callbackURL,
			Post:  []string{"pub_key_ed25519", "instance_id", "hostname", "fqdn"},
			Tries: 10,
		},
	}
}

func gzipWriter(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }
