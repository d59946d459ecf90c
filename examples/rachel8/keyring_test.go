package rachel8_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/examples/internal/mirror"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/internal/testenv"
)

// TestKeyringPinning runs the bootstrap's keyring check with gpg on this
// machine, against keyrings of keys made for the test: a certify-only
// primary key with a signing subkey (as the GitHub CLI's keyring is
// described), and a stranger's key. A keyring is accepted when every key
// in it is pinned, by its primary key's fingerprint or a subkey's.
func TestKeyringPinning(t *testing.T) {
	t.Parallel()
	testenv.LookPath(t, "gpg")
	testenv.LookPath(t, "awk")
	m, err := mirror.Start(t.Context(), mirror.Options{})
	if errors.Is(err, mirror.ErrRequirements) {
		testenv.Missing(t, err.Error())
	}
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close()) })

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(m.CACert())))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(m.KeyringURL())
	require.NoError(t, err)
	binary, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)

	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
		return p
	}
	files := map[string]string{
		"binary":        write("keyring.gpg", string(binary)),
		"armored":       write("keyring.asc", m.AptKey()),
		"with stranger": write("two.asc", m.AptKey()+m.StrangerKey()),
		"stranger":      write("stranger.asc", m.StrangerKey()),
		"empty":         write("empty.gpg", ""),
	}
	// The stranger's fingerprint, as gpg reads it.
	strangerFpr := fingerprints(t, files["stranger"])[0]
	primary, signing := m.PrimaryFingerprint(), m.SigningFingerprint()
	require.Equal(t, []string{primary, signing}, fingerprints(t, files["binary"]), "the keyring: a primary key and its subkey")

	tests := []struct {
		name, file string
		pins       []string
		ok         bool
	}{
		{"primary pinned", "binary", []string{primary}, true},
		{"subkey pinned", "binary", []string{signing}, true},
		{"armored, subkey pinned", "armored", []string{signing}, true},
		{"both pinned", "binary", []string{primary, signing}, true},
		{"pinned among others", "binary", []string{rachel8.GitHubCLIKeyID, signing, rachel8.GitHubCLIOldKeyID}, true},
		{"GitHub's pins only", "binary", rachel8.GitHubCLIFingerprints(), false},
		{"a stranger's key pinned", "binary", []string{strangerFpr}, false},
		{"a key beside the pinned one", "with stranger", []string{signing}, false},
		{"every key pinned", "with stranger", []string{signing, strangerFpr}, true},
		{"no key at all", "empty", []string{signing}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys := filepath.Join(t.TempDir(), "keys")
			script := `GNUPGHOME="$3" gpg --batch --quiet --show-keys --with-colons --with-subkey-fingerprint "$1" >"$2" || true; ` +
				rachel8.KeyringCheck(`"$2"`, strings.Join(tt.pins, " "))
			out, err := exec.Command("sh", "-c", script, "sh", files[tt.file], keys, t.TempDir()).CombinedOutput()
			if tt.ok {
				assert.NoError(t, err, "%s", out)
			} else {
				assert.Error(t, err, "accepted")
			}
		})
	}
}

// fingerprints lists the primary and subkey fingerprints of a keyring
// file, in gpg's order.
func fingerprints(t *testing.T, file string) []string {
	t.Helper()
	cmd := exec.Command("gpg", "--batch", "--quiet", "--show-keys", "--with-colons", "--with-subkey-fingerprint", file)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+t.TempDir())
	out, err := cmd.Output()
	require.NoError(t, err)
	var fprs []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			fprs = append(fprs, f[9])
		}
	}
	return fprs
}
