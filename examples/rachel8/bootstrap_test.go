package rachel8_test

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

// testSigner is the control plane's key in these tests: fixed, so the
// golden file is stable.
func testSigner(t testing.TB) ssh.Signer {
	t.Helper()
	seed := bytes.Repeat([]byte{0x42}, ed25519.SeedSize)
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
	require.NoError(t, err)
	return s
}

// goldenOptions are the options the golden cloud-config is built from.
func goldenOptions(t testing.TB) rachel8.Options {
	return rachel8.Options{
		PublicKey:    testSigner(t).PublicKey(),
		Hostname:     "tenant-0b0e3c4f",
		PhoneHomeURL: "https://control.example.com/api/provision/callback/0b0e3c4f-8d55-4f8e-9a4c-2f5a1c8e7d10?token=1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988",
	}
}

// sampleSecrets are realistic-looking secrets, never real ones.
func sampleSecrets() rachel8.Secrets {
	return rachel8.Secrets{
		ClaudeAccessToken:   "sk-ant-oat01-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdEf",
		ClaudeRefreshToken:  "sk-ant-ort01-ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210-_ZyXwVu",
		ClaudeExpiresAt:     time.UnixMilli(1767225600123).UTC(),
		TelegramBotToken:    "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
		OwnerTelegramUserID: "123456789",
	}
}

func buildGolden(t *testing.T) []byte {
	t.Helper()
	cfg, err := rachel8.Bootstrap(goldenOptions(t))
	require.NoError(t, err)
	// Listing the secrets makes Build prove that none of them leaked in.
	cfg.Secrets = sampleSecrets().Values()
	out, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	return out
}

func TestBootstrapGolden(t *testing.T) {
	t.Parallel()
	got := buildGolden(t)
	golden := filepath.Join("testdata", "bootstrap.golden.yaml")
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -update to create it")
	assert.Equal(t, string(want), string(got), "cloud-config differs from %s (go test -update rewrites it)", golden)
	assert.Less(t, len(got), cloudinit.MaxSize, "user-data must fit Hetzner's 32 KiB")
}

func TestBootstrapContent(t *testing.T) {
	t.Parallel()
	out := buildGolden(t)
	doc := string(out)
	cfg, err := cloudinit.Parse(out)
	require.NoError(t, err)

	require.Len(t, cfg.Users, 1)
	u := cfg.Users[0]
	assert.Equal(t, "rachel", u.Name)
	assert.Equal(t, "ALL=(ALL) NOPASSWD:ALL", u.Sudo)
	assert.Equal(t, "/bin/bash", u.Shell)
	assert.Equal(t, []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(testSigner(t).PublicKey())))}, u.SSHAuthorizedKeys)

	// By default gh comes from the GitHub CLI's repository, its keyring
	// fetched at boot and pinned: gpg is installed to check it, and
	// runcmd installs gh once it is checked.
	assert.Equal(t, []string{"git", "curl", "unzip", "gpg"}, cfg.Packages)
	assert.Nil(t, cfg.Apt, "no keyserver, no apt key at boot")
	assert.NotContains(t, doc, "keyserver")
	gh := strings.Join(cfg.RunCmd[1], " ")
	for _, want := range []string{
		"curl -fsSL --proto =https -o \"$t/keyring\" https://cli.github.com/packages/githubcli-archive-keyring.gpg",
		"gpg --batch --quiet --show-keys --with-colons --with-subkey-fingerprint",
		`pins="7F38BBB59D064DBCB3D84D725612B36462313325 2C6106201985B60E6C7AC87323F3D4EA75716059"`,
		"deb [signed-by=$k] https://cli.github.com/packages stable main",
		"apt-get update --error-on=any",
		"apt-get install -y --no-install-recommends gh",
	} {
		assert.Contains(t, gh, want)
	}
	assert.Less(t, strings.Index(gh, "awk"), strings.Index(gh, "install -m 0644"), "the keyring is checked before apt gets it")

	// PATH for rachel, written after the user exists, owned by rachel.
	require.Len(t, cfg.WriteFiles, 2)
	for i, name := range []string{"/home/rachel/.profile", "/home/rachel/.bashrc"} {
		f := cfg.WriteFiles[i]
		assert.Equal(t, name, f.Path)
		assert.True(t, f.Defer && f.Append, "%s: defer and append", name)
		assert.Equal(t, "rachel:rachel", f.Owner)
		assert.Contains(t, f.Content, `$HOME/.bun/bin`)
		assert.Contains(t, f.Content, `$HOME/.local/bin`)
	}

	// Installers and the checkout run as rachel, in this order.
	var cmds []string
	for _, c := range cfg.RunCmd {
		cmds = append(cmds, strings.Join(c, " "))
	}
	want := []string{
		"set -e",
		"runuser -u rachel -- bash -c set -euo pipefail; curl -fsSL https://bun.sh/install | bash",
		"runuser -u rachel -- bash -c set -euo pipefail; curl -fsSL https://claude.ai/install.sh | bash",
		"runuser -u rachel -- bash -c set -euo pipefail; test -d /home/rachel/rachel8/.git || git clone https://github.com/polly3223/Rachel8.git /home/rachel/rachel8",
		"runuser -u rachel -- bash -c set -euo pipefail; cd /home/rachel/rachel8 && /home/rachel/.bun/bin/bun install",
		"install -d -o rachel -g rachel -m 0755 /home/rachel/shared",
	}
	require.Len(t, cmds, len(want)+3)
	assert.Equal(t, want[0], cmds[0])
	assert.Equal(t, want[1:], cmds[2:len(want)+1])
	check := cfg.RunCmd[len(cfg.RunCmd)-2]
	assert.Equal(t, []string{"sh", "-c"}, []string(check[:2]), "the final checks run in a shell")
	for _, p := range []string{"/home/rachel/.bun/bin/bun", "/home/rachel/.local/bin/claude", "/home/rachel/rachel8/node_modules", "/home/rachel/shared", "gh"} {
		assert.Contains(t, check[2], p)
	}
	origin := cfg.RunCmd[len(cfg.RunCmd)-1]
	assert.Contains(t, origin[2], "apt-cache madison gh", "gh must come from the configured repository")
	assert.Contains(t, origin[2], `r="https://cli.github.com/packages"`)
	assert.NotContains(t, doc, "code.claude.com", "the seed's wrong installer URL")

	require.NotNil(t, cfg.PhoneHome)
	assert.Equal(t, goldenOptions(t).PhoneHomeURL, cfg.PhoneHome.URL)
	assert.Equal(t, []string{"pub_key_ed25519", "instance_id", "hostname", "fqdn"}, cfg.PhoneHome.Post)
	assert.Equal(t, 10, cfg.PhoneHome.Tries)
	assert.Equal(t, "tenant-0b0e3c4f", cfg.Hostname)
}

// TestBootstrapSchema hands the golden document to the real cloud-init.
func TestBootstrapSchema(t *testing.T) {
	t.Parallel()
	ci := testenv.LookPath(t, "cloud-init", "/usr/bin")
	// Without jsonschema cloud-init skips validation and says "Valid";
	// without rfc3987 it skips the url format check.
	for _, mod := range []string{"jsonschema", "rfc3987"} {
		if err := exec.Command("/usr/bin/python3", "-c", "import "+mod).Run(); err != nil {
			testenv.Missing(t, "python3 module "+mod+" is not importable by /usr/bin/python3, so cloud-init would not really validate")
		}
	}
	path := filepath.Join(t.TempDir(), "user-data")
	require.NoError(t, os.WriteFile(path, buildGolden(t), 0o600))
	out, err := exec.Command(ci, "schema", "--config-file", path).CombinedOutput()
	require.NoError(t, err, "cloud-init schema: %s", out)
	assert.Contains(t, string(out), "Valid cloud-config")
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "Cloud config schema deprecations:"); ok {
			assert.Empty(t, strings.TrimSpace(rest), "cloud-init reports deprecated keys")
		}
	}
}

func TestBootstrapOptions(t *testing.T) {
	t.Parallel()
	key := testSigner(t).PublicKey()
	tests := []struct {
		name    string
		opts    rachel8.Options
		wantErr string
	}{
		{"no key", rachel8.Options{}, "PublicKey is required"},
		{"root", rachel8.Options{PublicKey: key, User: "root"}, "User"},
		{"user with a space", rachel8.Options{PublicKey: key, User: "a b"}, "User"},
		{"user with a quote", rachel8.Options{PublicKey: key, User: "a'b"}, "User"},
		{"ssh repo", rachel8.Options{PublicKey: key, Repo: "git@github.com:polly3223/Rachel8.git"}, "Repo"},
		{"http repo", rachel8.Options{PublicKey: key, Repo: "http://github.com/polly3223/Rachel8.git"}, "Repo"},
		{"repo with shell", rachel8.Options{PublicKey: key, Repo: "https://github.com/x/y.git;reboot"}, "Repo"},
		{"repo with credentials", rachel8.Options{PublicKey: key, Repo: "https://u:p@github.com/x/y.git"}, "Repo"},
		{"negative settle", rachel8.Options{PublicKey: key, Settle: -1}, "Settle"},
		{"http installer", rachel8.Options{PublicKey: key, BunInstaller: "http://bun.sh/install"}, "BunInstaller"},
		{"installer with a query", rachel8.Options{PublicKey: key, ClaudeInstaller: "https://claude.ai/install.sh?x=1"}, "ClaudeInstaller"},
		{"installer with shell", rachel8.Options{PublicKey: key, ClaudeInstaller: "https://claude.ai/install.sh|sh"}, "ClaudeInstaller"},
		{"gh repo over http", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{URL: "http://cli.github.com/packages"}}, "GitHubCLI: URL"},
		{"gh key and keyring", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{Key: testKey, KeyringURL: "https://x.example/k.gpg"}}, "use one way"},
		{"gh key and pins", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{Key: testKey, Fingerprints: []string{rachel8.GitHubCLIKeyID}}}, "use one way"},
		{"gh key not armored", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{Key: "mDMEZ..."}}, "ASCII-armored"},
		{"gh private key", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{Key: "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nabc\n-----END PGP PRIVATE KEY BLOCK-----"}}, "ASCII-armored PGP public key"},
		{"keyring without pins", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{KeyringURL: "https://mirror.internal/gh.gpg"}}, "needs Fingerprints"},
		{"short key ID", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{Fingerprints: []string{"5612B36462313325"}}}, "40-hex-digit"},
		{"pin with shell", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{Fingerprints: []string{"7F38BBB59D064DBCB3D84D725612B364623133;x"}}}, "40-hex-digit"},
		{"keyring over http", rachel8.Options{PublicKey: key, GitHubCLI: rachel8.AptRepo{KeyringURL: "http://x.example/k.gpg", Fingerprints: []string{rachel8.GitHubCLIKeyID}}}, "KeyringURL"},
		{"CA not PEM", rachel8.Options{PublicKey: key, CACerts: []string{"MIIB..."}}, "CACerts[0]"},
		{"env name lower case", rachel8.Options{PublicKey: key, Env: []rachel8.EnvVar{{Name: "ai_provider", Value: "x"}}}, "not a variable name"},
		{"env name of the recipe", rachel8.Options{PublicKey: key, Env: []rachel8.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}}, "LOG_LEVEL is already the recipe's own"},
		{"env value with a space", rachel8.Options{PublicKey: key, Env: []rachel8.EnvVar{{Name: "A", Value: "a b"}}}, "Env: A contains a space"},
		{"env value empty", rachel8.Options{PublicKey: key, Env: []rachel8.EnvVar{{Name: "A"}}}, "Env: A is missing"},
		{"env twice", rachel8.Options{PublicKey: key, Env: []rachel8.EnvVar{{Name: "A", Value: "1"}, {Name: "A", Value: "2"}}}, "A is already in Env"},
		{"secret env also plain", rachel8.Options{PublicKey: key, Env: []rachel8.EnvVar{{Name: "A", Value: "1"}}, SecretEnv: []string{"A"}}, "SecretEnv: A is already in Env"},
		{"secret env of the recipe", rachel8.Options{PublicKey: key, SecretEnv: []string{"TELEGRAM_BOT_TOKEN"}}, "already the recipe's own"},
		{"secret env name", rachel8.Options{PublicKey: key, SecretEnv: []string{"A=B"}}, "not a variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := rachel8.Bootstrap(tt.opts)
			require.ErrorIs(t, err, rachel8.ErrOptions)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestBootstrapCustomUserAndNoURL(t *testing.T) {
	t.Parallel()
	cfg, err := rachel8.Bootstrap(rachel8.Options{PublicKey: testSigner(t).PublicKey(), User: "ada", Repo: "https://git.example.com/fork/Rachel8.git"})
	require.NoError(t, err)
	assert.Equal(t, "ada", cfg.Users[0].Name)
	assert.Equal(t, "/home/ada/.profile", cfg.WriteFiles[0].Path)
	assert.Contains(t, strings.Join(cfg.RunCmd[4], " "), "git clone https://git.example.com/fork/Rachel8.git /home/ada/rachel8")
	// Without a URL, phone_home is left for the orchestrator to complete.
	require.NotNil(t, cfg.PhoneHome)
	assert.Empty(t, cfg.PhoneHome.URL)
	assert.Equal(t, []string{"pub_key_ed25519", "instance_id", "hostname", "fqdn"}, cfg.PhoneHome.Post)
	assert.Equal(t, 10, cfg.PhoneHome.Tries)
}

// testKey is an armored PGP public key block in shape (Options checks the
// armor; cloudinit.Build checks the packets).
const testKey = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ2Vu\n-----END PGP PUBLIC KEY BLOCK-----\n"

// TestBootstrapSources: every source the recipe fetches from can be moved,
// an https URL on a private host with a port included; an inline key is
// written by cloud-init into a file that the apt source names.
func TestBootstrapSources(t *testing.T) {
	t.Parallel()
	const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	cfg, err := rachel8.Bootstrap(rachel8.Options{
		PublicKey:       testSigner(t).PublicKey(),
		Repo:            "https://git.internal:8443/fork/Rachel8.git",
		BunInstaller:    "https://mirror.internal:8443/bun/install",
		ClaudeInstaller: "https://mirror.internal:8443/claude/install.sh",
		GitHubCLI:       rachel8.AptRepo{URL: "https://mirror.internal:8443/gh/", Key: testKey},
		CACerts:         []string{ca},
	})
	require.NoError(t, err)
	assert.Equal(t, &cloudinit.CACerts{Trusted: []string{ca}}, cfg.CACerts)
	assert.Equal(t, []string{"git", "curl", "unzip", "gh"}, cfg.Packages, "gh in the same apt pass as the others")
	require.NotNil(t, cfg.Apt)
	assert.Equal(t, map[string]cloudinit.AptSource{
		"github-cli": {Source: "deb [signed-by=/etc/apt/keyrings/github-cli.asc] https://mirror.internal:8443/gh stable main"},
	}, cfg.Apt.Sources, "no key: for cloud-init to dearmor it needs gpg, which minimal images lack")
	require.Len(t, cfg.WriteFiles, 3)
	assert.Equal(t, cloudinit.File{Path: "/etc/apt/keyrings/github-cli.asc", Content: testKey, Permissions: "0644"}, cfg.WriteFiles[2],
		"written in cloud-init's first stage (not deferred), before apt reads the source")

	var cmds []string
	for _, c := range cfg.RunCmd {
		cmds = append(cmds, strings.Join(c, " "))
	}
	all := strings.Join(cmds, "\n")
	assert.Contains(t, all, "curl -fsSL https://mirror.internal:8443/bun/install | bash")
	assert.Contains(t, all, "curl -fsSL https://mirror.internal:8443/claude/install.sh | bash")
	assert.Contains(t, all, "git clone https://git.internal:8443/fork/Rachel8.git /home/rachel/rachel8")
	assert.Contains(t, all, `r="https://mirror.internal:8443/gh"`, "gh's origin checked against the configured repository")
	assert.NotContains(t, all, "githubcli-archive-keyring", "no keyring fetched with an inline key")
	assert.NotContains(t, all, "cli.github.com")
	assert.NotContains(t, all, "bun.sh")

	// A keyring of one's own, pinned.
	cfg, err = rachel8.Bootstrap(rachel8.Options{
		PublicKey: testSigner(t).PublicKey(),
		GitHubCLI: rachel8.AptRepo{URL: "https://mirror.internal/gh", KeyringURL: "https://mirror.internal/gh/keyring.gpg", Fingerprints: []string{"7f38 bbb5 9d06 4dbc b3d8  4d72 5612 b364 6231 3325"}},
	})
	require.NoError(t, err)
	gh := strings.Join(cfg.RunCmd[1], " ")
	assert.Contains(t, gh, "https://mirror.internal/gh/keyring.gpg")
	assert.Contains(t, gh, `pins="7F38BBB59D064DBCB3D84D725612B36462313325"`, "fingerprints normalized")
	assert.Contains(t, gh, "https://mirror.internal/gh stable main")
}
