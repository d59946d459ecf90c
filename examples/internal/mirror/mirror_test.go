package mirror_test

import (
	"bufio"
	"context"
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
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/examples/internal/mirror"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/internal/testenv"
)

// start starts a mirror for the test, or skips (fails under
// HATCHERY_INTEGRATION=1) when a program is missing.
func start(t *testing.T) *mirror.Mirror {
	t.Helper()
	m, err := mirror.Start(t.Context(), mirror.Options{})
	if errors.Is(err, mirror.ErrRequirements) {
		testenv.Missing(t, err.Error())
	}
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

// client trusts the mirror's CA, and only it.
func client(t *testing.T, m *mirror.Mirror) *http.Client {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(m.CACert())))
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestServesOverHTTPSWithItsCA(t *testing.T) {
	t.Parallel()
	m := start(t)
	assert.True(t, strings.HasPrefix(m.URL(), "https://127.0.0.1:"), m.URL())

	// A client without the CA refuses the certificate.
	_, err := http.Get(m.BunInstaller())
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)

	c := client(t, m)
	for _, url := range []string{m.BunInstaller(), m.ClaudeInstaller(), m.FailingInstaller(), m.KeyringURL(), m.AptRepo() + "/dists/stable/InRelease"} {
		code, body := get(t, c, url)
		assert.Equal(t, http.StatusOK, code, url)
		assert.NotEmpty(t, body, url)
	}
	code, _ := get(t, c, m.URL()+"/nothing-here")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, 1, m.Hits("bun"))
	assert.Equal(t, 1, m.Hits("fail"))

	opts := m.RecipeOptions(rachel8.Options{CACerts: []string{"existing"}})
	assert.Equal(t, []string{"existing", m.CACert()}, opts.CACerts)
	assert.Equal(t, m.Repo(), opts.Repo)
	assert.Equal(t, rachel8.AptRepo{URL: m.AptRepo(), Key: m.AptKey()}, opts.GitHubCLI)
	assert.Contains(t, m.AptKey(), "-----BEGIN PGP PUBLIC KEY BLOCK-----")
	assert.Contains(t, m.StrangerKey(), "-----BEGIN PGP PUBLIC KEY BLOCK-----")
	assert.NotEqual(t, m.AptKey(), m.StrangerKey())
	assert.Len(t, m.PrimaryFingerprint(), 40)
	assert.Len(t, m.SigningFingerprint(), 40)
	assert.NotEqual(t, m.PrimaryFingerprint(), m.SigningFingerprint())
}

// home is a user's environment on this machine: a home of its own, bash,
// and curl and git trusting the mirror's CA.
type home struct {
	dir string
	env []string
}

func newHome(t *testing.T, m *mirror.Mirror) home {
	dir := t.TempDir()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte(m.CACert()), 0o644))
	return home{dir: dir, env: []string{
		"HOME=" + dir, "SHELL=/bin/bash", "PATH=" + os.Getenv("PATH"), "LC_ALL=C",
		"CURL_CA_BUNDLE=" + ca, "GIT_SSL_CAINFO=" + ca,
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
	}}
}

func (h home) run(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command("bash", "-c", "set -euo pipefail; "+script)
	cmd.Dir = dir
	cmd.Env = h.env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s:\n%s", script, out)
	return string(out)
}

// TestInstallersAndCheckout runs what the recipe runs as the user, on this
// machine: the installers piped from curl into bash, the clone over smart
// HTTP from the real git http-backend, bun install; then the stand-in bun
// runs src/index.ts as systemd would.
func TestInstallersAndCheckout(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"bash", "curl", "unzip", "git"} {
		testenv.LookPath(t, p)
	}
	m := start(t)
	h := newHome(t, m)

	out := h.run(t, h.dir, "curl -fsSL "+m.BunInstaller()+" | bash")
	assert.Contains(t, out, "bun was installed successfully to "+h.dir+"/.bun/bin/bun")
	assert.Equal(t, mirror.StandInBunVersion+"\n", h.run(t, h.dir, "~/.bun/bin/bun --version"))
	fi, err := os.Lstat(filepath.Join(h.dir, ".bun/bin/bunx"))
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, fi.Mode().Type())
	bashrc, err := os.ReadFile(filepath.Join(h.dir, ".bashrc"))
	require.NoError(t, err)
	assert.Contains(t, string(bashrc), "export BUN_INSTALL="+h.dir+"/.bun")

	out = h.run(t, h.dir, "curl -fsSL "+m.ClaudeInstaller()+" | bash")
	assert.Contains(t, out, "Installation complete!")
	assert.Equal(t, mirror.StandInClaudeVersion+" (Claude Code)\n", h.run(t, h.dir, "~/.local/bin/claude --version"))
	target, err := os.Readlink(filepath.Join(h.dir, ".local/bin/claude"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(h.dir, ".local/share/claude/versions", mirror.StandInClaudeVersion), target)
	downloads, err := os.ReadDir(filepath.Join(h.dir, ".claude/downloads"))
	require.NoError(t, err)
	assert.Empty(t, downloads, "the installer removes its download")

	cmd := exec.Command("bash", "-c", "curl -fsSL "+m.FailingInstaller()+" | bash")
	cmd.Env = h.env
	out2, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out2), mirror.FailBanner)

	h.run(t, h.dir, "git clone -q "+m.Repo()+" rachel8")
	co := filepath.Join(h.dir, "rachel8")
	for _, f := range []string{"package.json", "src/index.ts", "rachel8.service", ".env.example"} {
		assert.FileExists(t, filepath.Join(co, f))
	}
	unit, err := os.ReadFile(filepath.Join(co, "rachel8.service"))
	require.NoError(t, err)
	assert.Equal(t, string(rachel8.UnitTemplate()), string(unit))
	assert.Contains(t, h.run(t, co, "~/.bun/bin/bun install"), "bun install v"+mirror.StandInBunVersion)
	assert.DirExists(t, filepath.Join(co, "node_modules"))
	assert.Positive(t, m.Hits("git"))

	// bun run: the banner with the .env's names, not its values; then
	// it stays up.
	require.NoError(t, os.WriteFile(filepath.Join(co, ".env"), []byte("TELEGRAM_BOT_TOKEN=not-shown\nLOG_LEVEL=info\n"), 0o600))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, filepath.Join(h.dir, ".bun/bin/bun"), "run", "src/index.ts")
	run.Dir = co
	run.Env = h.env
	stdout, err := run.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, run.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, mirror.StandInBanner+": bun run src/index.ts as "), line)
	assert.Contains(t, line, "in "+co+"; .env sets TELEGRAM_BOT_TOKEN LOG_LEVEL")
	assert.NotContains(t, line, "not-shown")
	time.Sleep(200 * time.Millisecond)
	assert.Nil(t, run.ProcessState, "bun run stays up")
	require.NoError(t, run.Process.Kill())
	_ = run.Wait()

	out = h.run(t, co, "~/.bun/bin/bun run src/missing.ts || true")
	assert.Contains(t, out, `error: Module not found "src/missing.ts"`)
}

// apt runs the real apt-get and apt-cache against one source, with state
// of its own under dir (nothing of the machine's apt is touched).
func apt(t *testing.T, dir, ca, source string, args ...string) (string, error) {
	t.Helper()
	for _, d := range []string{"lists/partial", "cache/archives/partial", "parts", "prefs"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	list := filepath.Join(dir, "sources.list")
	require.NoError(t, os.WriteFile(list, []byte(source+"\n"), 0o644))
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + list,
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "parts"),
		"-o", "Dir::Etc::PreferencesParts=" + filepath.Join(dir, "prefs"),
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Acquire::https::CAInfo=" + ca,
		"-o", "APT::Sandbox::User=root",
		"-o", "Debug::NoLocking=1",
	}
	cmd := exec.Command(args[0], append(opts, args[1:]...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAptRepositoryVerifiedByRealApt: apt-get update verifies the
// repository's signature with the key the recipe would get inline, and
// apt-cache then offers the stand-in gh from the mirror; with another key,
// apt refuses the repository.
func TestAptRepositoryVerifiedByRealApt(t *testing.T) {
	t.Parallel()
	testenv.LookPath(t, "apt-get")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "apt-get update with a state directory of its own needs root")
	}
	m := start(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte(m.CACert()), 0o644))

	tests := []struct {
		name, key string
		ok        bool
	}{
		{"its key", m.AptKey(), true},
		{"a stranger's key", m.StrangerKey(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			keyFile := filepath.Join(state, "key.asc")
			require.NoError(t, os.WriteFile(keyFile, []byte(tt.key), 0o644))
			source := "deb [signed-by=" + keyFile + "] " + m.AptRepo() + " stable main"
			out, err := apt(t, state, ca, source, "apt-get", "update", "--error-on=any")
			if !tt.ok {
				require.Error(t, err, out)
				assert.Contains(t, out, "NO_PUBKEY "+m.SigningFingerprint()[24:], "apt names the subkey that signed")
				return
			}
			require.NoError(t, err, out)
			out, err = apt(t, state, ca, source, "apt-cache", "madison", "gh")
			require.NoError(t, err, out)
			assert.Regexp(t, `gh \| +`+strings.ReplaceAll(mirror.StandInGHVersion, "+", `\+`)+` \| `+m.AptRepo()+` stable/main `, out)
		})
	}
}
