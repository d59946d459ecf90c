package cloudinit_test

import (
	"compress/gzip"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

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

// repoKey is the armored public key of a throwaway repository signing key
// (made with gpg --quick-gen-key, its secret part discarded).
func repoKey() string {
	b, err := os.ReadFile(filepath.Join("testdata", "repo-key.asc"))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// testCA returns a self-signed Ed25519 CA certificate in PEM, the same
// bytes for the same seed (Ed25519 signatures are deterministic).
func testCA(seed byte, name string) string {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed ^ byte(i)
	}
	key := ed25519.NewKeyFromSeed(s)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(seed) + 1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// eventsURL is a reporting webhook endpoint as callback.Handler.EventsURL
// makes it: the callback URL with a token bound to the server, and event=1.
const eventsURL = "https://hatchery.example.com/api/provision/callback/" + tenantID +
	"?token=0f1e2d3c4b5a69788796a5b4c3d2e1f0.9a4f1c0e7b2d5e8f3a6c9b1d4e7f0a2c5b8e1d4f7a0c3e6b9d2f5a8c1e4b7d0a&event=1"

// extrasConfig is the minimal bootstrap with what issue 12 adds to the
// model: an extra CA, an apt source whose key is given inline, and the
// reporting webhook.
func extrasConfig() cloudinit.Config {
	cfg := minimalConfig()
	cfg.CACerts = &cloudinit.CACerts{Trusted: []string{testCA(1, "Hatchery test mirror CA")}}
	cfg.Apt = &cloudinit.Apt{Sources: map[string]cloudinit.AptSource{
		"github-cli": {Source: "deb [signed-by=$KEY_FILE] https://mirror.hatchery.example.com:8443/gh stable main", Key: repoKey()},
	}}
	cfg.PackageUpdate = true
	cfg.Packages = []string{"gh"}
	cfg.Reporting = map[string]cloudinit.Reporter{
		"hatchery": {Type: cloudinit.ReporterWebhook, Endpoint: eventsURL},
	}
	return cfg
}
