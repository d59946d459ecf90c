package mirror

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ghStandIn is /usr/bin/gh in the package.
const ghStandIn = `#!/bin/sh
# Stand-in for the GitHub CLI, from hatchery's test mirror (examples/internal/mirror).
case "${1:-}" in
--version | version) echo "gh version @GH_VERSION@ (hatchery test mirror)" ;;
*) echo "gh (hatchery test mirror stand-in): $*" >&2; exit 1 ;;
esac
`

// gpgArgs are the options of every gpg command: no prompt, no passphrase.
var gpgArgs = []string{"--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}

// gpg runs gpg in the mirror's GNUPGHOME.
func (m *Mirror) gpg(ctx context.Context, args ...string) ([]byte, error) {
	return run(ctx, m.dir, []string{"GNUPGHOME=" + m.gnupg}, m.prog.gpg, append(append([]string(nil), gpgArgs...), args...)...)
}

// newKeys makes the apt repository's key, a certify-only ed25519 primary
// key with an ed25519 signing subkey, and a stranger's key.
func (m *Mirror) newKeys(ctx context.Context) error {
	if err := os.Mkdir(m.gnupg, 0o700); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	const uid = "Hatchery test mirror apt key <apt@mirror.hatchery.invalid>"
	if _, err := m.gpg(ctx, "--quick-generate-key", uid, "ed25519", "cert", "never"); err != nil {
		return err
	}
	keys, err := m.listKeys(ctx, uid)
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return fmt.Errorf("mirror: gpg made %d keys, want 1", len(keys))
	}
	m.primary = keys[0].fpr
	if _, err := m.gpg(ctx, "--quick-add-key", m.primary, "ed25519", "sign", "never"); err != nil {
		return err
	}
	if keys, err = m.listKeys(ctx, uid); err != nil {
		return err
	}
	if len(keys) != 1 || len(keys[0].subs) != 1 {
		return fmt.Errorf("mirror: want one key with one subkey, gpg lists %v", keys)
	}
	m.signing = keys[0].subs[0]
	armored, err := m.gpg(ctx, "--armor", "--export", m.primary)
	if err != nil {
		return err
	}
	m.aptKey = string(armored)

	const stranger = "Stranger <stranger@mirror.hatchery.invalid>"
	if _, err := m.gpg(ctx, "--quick-generate-key", stranger, "ed25519", "sign", "never"); err != nil {
		return err
	}
	out, err := m.gpg(ctx, "--armor", "--export", stranger)
	if err != nil {
		return err
	}
	m.strange = string(out)
	return nil
}

// key is one key of a gpg listing: its primary key's fingerprint and its
// subkeys'.
type key struct {
	fpr  string
	subs []string
}

// listKeys lists the public keys that match a user ID.
func (m *Mirror) listKeys(ctx context.Context, uid string) ([]key, error) {
	out, err := m.gpg(ctx, "--with-colons", "--with-subkey-fingerprint", "--list-keys", uid)
	if err != nil {
		return nil, err
	}
	return parseColons(out), nil
}

// parseColons reads the keys of gpg's --with-colons listing (--list-keys
// or --show-keys, with --with-subkey-fingerprint): each primary key's
// fingerprint and its subkeys'.
func parseColons(out []byte) []key {
	var keys []key
	next := "" // what the next fpr record belongs to: "pub" or "sub"
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		switch {
		case f[0] == "pub":
			keys = append(keys, key{})
			next = "pub"
		case f[0] == "sub":
			next = "sub"
		case f[0] == "fpr" && len(f) > 9 && len(keys) > 0 && next != "":
			k := &keys[len(keys)-1]
			if next == "pub" {
				k.fpr = f[9]
			} else {
				k.subs = append(k.subs, f[9])
			}
			next = ""
		}
	}
	return keys
}

// arch is the Debian architecture of this machine, which the servers
// (containers on it) share.
func (m *Mirror) arch(ctx context.Context) (string, error) {
	out, err := run(ctx, m.dir, nil, m.prog.dpkg, "--print-architecture")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// buildApt builds the gh package, indexes it and signs the Release file:
// www/apt/{pool,dists/stable}, and the keyring at www/apt/keyring.gpg.
func (m *Mirror) buildApt(ctx context.Context) error {
	arch, err := m.arch(ctx)
	if err != nil {
		return err
	}
	root := filepath.Join(m.dir, "www", "apt")
	pkg := filepath.Join(m.dir, "gh-package")
	control := strings.Join([]string{
		"Package: gh",
		"Version: " + StandInGHVersion,
		"Architecture: " + arch,
		"Maintainer: Hatchery test mirror <apt@mirror.hatchery.invalid>",
		"Section: devel",
		"Priority: optional",
		"Homepage: https://cli.github.com/",
		"Description: GitHub CLI (stand-in from hatchery's test mirror)",
		" A shell script that answers gh --version, so that a test can tell",
		" where the installed gh came from.",
	}, "\n") + "\n"
	if err := writeFile(filepath.Join(pkg, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		return err
	}
	gh := strings.ReplaceAll(ghStandIn, "@GH_VERSION@", StandInGHVersion)
	if err := writeFile(filepath.Join(pkg, "usr", "bin", "gh"), []byte(gh), 0o755); err != nil {
		return err
	}
	deb := filepath.Join(root, "pool", "main", "g", "gh", "gh_"+StandInGHVersion+"_"+arch+".deb")
	if err := os.MkdirAll(filepath.Dir(deb), 0o755); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if _, err := run(ctx, m.dir, nil, m.prog.dpkgDeb, "--root-owner-group", "-Zgzip", "--build", pkg, deb); err != nil {
		return err
	}
	packages, err := run(ctx, root, nil, m.prog.scanPackages, "--arch", arch, "pool", "/dev/null")
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(packages); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	dist := filepath.Join(root, "dists", "stable")
	index := map[string][]byte{
		"main/binary-" + arch + "/Packages":    packages,
		"main/binary-" + arch + "/Packages.gz": gz.Bytes(),
	}
	var sums []string
	for _, name := range []string{"main/binary-" + arch + "/Packages", "main/binary-" + arch + "/Packages.gz"} {
		if err := writeFile(filepath.Join(dist, name), index[name], 0o644); err != nil {
			return err
		}
		sum := sha256.Sum256(index[name])
		sums = append(sums, " "+hex.EncodeToString(sum[:])+" "+strconv.Itoa(len(index[name]))+" "+name)
	}
	release := strings.Join(append([]string{
		"Origin: Hatchery test mirror",
		"Label: gh stand-in",
		"Suite: stable",
		"Codename: stable",
		// A minute ago: apt refuses a Release dated in its future.
		"Date: " + time.Now().Add(-time.Minute).UTC().Format(time.RFC1123),
		"Architectures: " + arch,
		"Components: main",
		"Description: stand-in for the GitHub CLI's apt repository (hatchery examples/internal/mirror)",
		"SHA256:",
	}, sums...), "\n") + "\n"
	if err := writeFile(filepath.Join(dist, "Release"), []byte(release), 0o644); err != nil {
		return err
	}
	// Signed by the subkey ("!": that subkey, not whichever gpg picks).
	signer := []string{"--local-user", m.signing + "!", "--digest-algo", "SHA512"}
	if _, err := m.gpg(ctx, append(signer, "--clearsign", "--output", filepath.Join(dist, "InRelease"), filepath.Join(dist, "Release"))...); err != nil {
		return err
	}
	if _, err := m.gpg(ctx, append(signer, "--armor", "--detach-sign", "--output", filepath.Join(dist, "Release.gpg"), filepath.Join(dist, "Release"))...); err != nil {
		return err
	}
	keyring, err := m.gpg(ctx, "--export", m.primary)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(root, "keyring.gpg"), keyring, 0o644)
}
