package cloudinit_test

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/internal/testenv"
)

// wantSecret builds cfg and checks that it is refused as holding a secret
// of kind (a substring of SecretError.Kind) in field ("" for the
// document), and that the error carries none of values.
func wantSecret(t *testing.T, cfg cloudinit.Config, kind, field string, values ...string) *cloudinit.SecretError {
	t.Helper()
	out, err := cloudinit.Build(cfg)
	require.Error(t, err)
	assert.Nil(t, out)
	require.ErrorIs(t, err, cloudinit.ErrSecret)
	var se *cloudinit.SecretError
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Kind, kind)
	assert.Equal(t, field, se.Field)
	for _, v := range values {
		if len(v) >= 4 {
			assert.NotContains(t, err.Error(), v, "the error must not carry the value")
		}
	}
	return se
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// TestSecretEncodings: a value listed in Config.Secrets is refused in
// every encoding the scan knows, at any base64 alignment, nested in gzip,
// with or without the white space around it, and as a fragment.
func TestSecretEncodings(t *testing.T) {
	t.Parallel()
	const (
		listed  = "Zx9Q-c0rR3ct-H0rse-42-BaTT3ry"       // 29 bytes
		special = `p@ss/w0rd?Zx9&"quoted"=Hörse\42 end` // needs escaping everywhere
	)
	b64 := base64.StdEncoding.EncodeToString
	inCmd := func(s string) func(*cloudinit.Config) {
		return func(c *cloudinit.Config) { c.RunCmd = append(c.RunCmd, cloudinit.Shell("echo "+s)) }
	}
	jsonOf := func(s string) string {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		return string(b)
	}
	pyJSON := `"p@ss/w0rd?Zx9&\"quoted\"=H\u00f6rse\\42 end"` // Python's json.dumps
	tests := []struct {
		name   string
		secret string
		edit   func(*cloudinit.Config)
		kind   string
		field  string
	}{
		{"plain", listed, inCmd(listed), "Secrets[0])", "runcmd[6][2]"},
		{"base64, aligned", listed, inCmd(b64([]byte(listed))), "Secrets[0]), base64", "runcmd[6][2]"},
		{"base64 after 1 byte", listed, inCmd(b64([]byte("x" + listed + "y"))), "Secrets[0]), base64", "runcmd[6][2]"},
		{"base64 after 2 bytes", listed, inCmd(b64([]byte("xy" + listed))), "Secrets[0]), base64", "runcmd[6][2]"},
		{"base64, cut out of a longer text", listed, inCmd(b64([]byte("TOKEN=" + listed + "\n"))[3:]), "Secrets[0]), base64", "runcmd[6][2]"},
		{"base64url", listed + "??>>", inCmd(base64.URLEncoding.EncodeToString([]byte("a" + listed + "??>>"))), "Secrets[0]), base64", "runcmd[6][2]"},
		{"hex", listed, inCmd(hex.EncodeToString([]byte(listed))), "Secrets[0]), hex", "runcmd[6][2]"},
		{"HEX", listed, inCmd(strings.ToUpper(hex.EncodeToString([]byte(listed)))), "Secrets[0]), hex", "runcmd[6][2]"},
		{"query-escaped", special, inCmd("https://x.example/?p=" + url.QueryEscape(special)), "Secrets[0]), percent", "runcmd[6][2]"},
		{"path-escaped", special, inCmd("https://x.example/" + url.PathEscape(special)), "Secrets[0]), percent", "runcmd[6][2]"},
		{"every byte percent-encoded", listed, inCmd(func() string {
			var b strings.Builder
			for i := range len(listed) {
				b.WriteString("%" + strings.ToLower(hex.EncodeToString([]byte{listed[i]})))
			}
			return b.String()
		}()), "Secrets[0]), percent", "runcmd[6][2]"},
		{"JSON-escaped (Go)", special, func(c *cloudinit.Config) {
			c.WriteFiles[0].Content = `{"password": ` + jsonOf(special) + "}\n"
		}, "Secrets[0]), JSON", "write_files[0].content"},
		{"JSON-escaped (Python)", special, func(c *cloudinit.Config) {
			c.WriteFiles[0].Content = `{"password": ` + pyJSON + "}\n"
		}, "Secrets[0]), JSON", "write_files[0].content"},
		{"base64 of gzip in a command", listed, inCmd(b64(gzipBytes(t, []byte("TOKEN="+listed))) + " | base64 -d | gunzip"),
			"Secrets[0]) (after decoding base64, then gzip)", "runcmd[6][2]"},
		{"gzip inside gzip+b64", listed, func(c *cloudinit.Config) {
			c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/x.gz", Encoding: "gzip+b64", Content: b64(gzipBytes(t, gzipBytes(t, []byte(listed))))})
		}, "Secrets[0]) (after decoding gzip)", "write_files[1].content (decoded)"},
		{"gzip in gzip in gzip in base64", listed, inCmd(b64(gzipBytes(t, gzipBytes(t, gzipBytes(t, []byte(listed)))))),
			"Secrets[0]) (after decoding base64, then gzip, then gzip, then gzip)", "runcmd[6][2]"},
		{"base64 inside base64", listed, inCmd(b64([]byte("echo " + b64([]byte(listed))))), "Secrets[0]), base64", "runcmd[6][2]"},
		{"fragment: the first 16 bytes", listed, inCmd(listed[:16]), "12-byte fragment of a value listed in Config.Secrets (Secrets[0])", "runcmd[6][2]"},
		{"fragment: the last 13 bytes", listed, inCmd(listed[len(listed)-13:]), "12-byte fragment", "runcmd[6][2]"},
		{"fragment, hex", listed, inCmd(hex.EncodeToString([]byte(listed[3:17]))), "12-byte fragment of a value listed in Config.Secrets (Secrets[0]) (after decoding hex)", "runcmd[6][2]"},
		{"fragment, base64 at another alignment", listed, inCmd(b64([]byte("q" + listed[5:20]))), "12-byte fragment", "runcmd[6][2]"},
		{"split over two fields", listed, func(c *cloudinit.Config) {
			c.RunCmd = append(c.RunCmd, cloudinit.Shell("printf %s "+listed[:14]+" > /t"))
			c.WriteFiles[0].Content = listed[14:] + "\n"
		}, "12-byte fragment", "write_files[0].content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := fullConfig()
			cfg.Secrets = []string{tt.secret}
			tt.edit(&cfg)
			wantSecret(t, cfg, tt.kind, tt.field, tt.secret, b64([]byte(tt.secret)), hex.EncodeToString([]byte(tt.secret)))
		})
	}
}

// TestSecretWhitespace (issue 13 M2): a secret as a file read gives it,
// with a trailing newline, is refused trimmed and untrimmed, plain and
// encoded; and so is a listed trimmed secret found with its newline.
func TestSecretWhitespace(t *testing.T) {
	t.Parallel()
	const value = "ghs-but-not-shaped-0123456789"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, listed := range []string{value + "\n", "  " + value + " \r\n", "\t" + value, value} {
		for _, found := range []string{value, value + "\n", b64(value), b64(value + "\n"), b64("\n" + value), hex.EncodeToString([]byte(value + "\n"))} {
			cfg := fullConfig()
			cfg.Secrets = []string{listed}
			cfg.WriteFiles[0].Content = "TOKEN=" + found + "\n"
			wantSecret(t, cfg, "Secrets[0]", "write_files[0].content", value)
		}
	}
	cfg := fullConfig()
	cfg.Secrets = []string{" \n\t"}
	_, err := cloudinit.Build(cfg)
	var fe *cloudinit.FieldError
	require.ErrorAs(t, err, &fe, "a secret of only white space would match everything")
	assert.Equal(t, "Secrets[0]", fe.Field)
}

// TestSecretScanLimits documents what the scan does not find, and the
// false positives it avoids.
func TestSecretScanLimits(t *testing.T) {
	t.Parallel()
	accept := func(t *testing.T, cfg cloudinit.Config) {
		t.Helper()
		_, err := cloudinit.Build(cfg)
		require.NoError(t, err)
	}
	t.Run("a secret under 24 bytes split in halves under 12", func(t *testing.T) {
		t.Parallel()
		const listed = "Zx9Horse42Battery7Q" // 19 bytes
		cfg := fullConfig()
		cfg.Secrets = []string{listed}
		cfg.RunCmd = append(cfg.RunCmd, cloudinit.Command{"echo", listed[:10]}, cloudinit.Command{"echo", listed[10:]})
		accept(t, cfg)
	})
	t.Run("a short secret's base64", func(t *testing.T) {
		t.Parallel()
		cfg := fullConfig()
		cfg.Secrets = []string{"ab1Z"} // base64 at an alignment keeps under 6 characters
		cfg.RunCmd = append(cfg.RunCmd, cloudinit.Command{"echo", base64.StdEncoding.EncodeToString([]byte("x" + "ab1Z"))[:6]})
		accept(t, cfg)
	})
	t.Run("fragments public text shares", func(t *testing.T) {
		t.Parallel()
		cfg := fullConfig()
		cfg.Secrets = []string{
			"https://deploy:Zx9pw@api.example.com/v1/hooks", // a URL with credentials
			"{\n        \"accessToken\": \"sk-ant-oat01-" + strings.Repeat("Ab1", 20) + "\",\n        \"scopes\": [\"user:inference\"]\n}\n",
		}
		cfg.WriteFiles = append(cfg.WriteFiles, cloudinit.File{Path: "/etc/app.conf", Content: "" +
			"endpoint: https://api.example.com/v1/hooks/status\n" +
			"nested:\n        \"accessToken\": \"\"\n        \"scopes\": [\"user:inference\"]\n"})
		accept(t, cfg)
	})
	t.Run("a secret that holds the tenant ID of the callback URL", func(t *testing.T) {
		t.Parallel()
		cfg := fullConfig()
		cfg.Secrets = []string{"postgres://app:Zx9pw@db.internal:5432/tenant_" + tenantID}
		cfg.WriteFiles = append(cfg.WriteFiles, cloudinit.File{Path: "/etc/tenant", Content: "TENANT_ID=" + tenantID + "\n"})
		accept(t, cfg)
		cfg.PhoneHome.URL = "https://hatchery.example.com/cb/elsewhere"
		wantSecret(t, cfg, "12-byte fragment", "write_files[1].content", cfg.Secrets[0])
	})
	t.Run("a private key secret next to its public key and a certificate", func(t *testing.T) {
		t.Parallel()
		keys := testKeys(t)
		for _, k := range []struct {
			name string
			pem  string
			pub  any
		}{
			{"RSA PKCS#8", keys.rsaPKCS8, keys.rsa.Public()},
			{"RSA PKCS#1", keys.rsaPKCS1, keys.rsa.Public()},
			{"OpenSSH ed25519", keys.openSSH, keys.ed.Public()},
			{"EC", keys.ecSEC1, keys.ec.Public()},
		} {
			sshPub, err := ssh.NewPublicKey(k.pub)
			require.NoError(t, err)
			cfg := fullConfig()
			cfg.Secrets = []string{k.pem}
			cfg.Users[0].SSHAuthorizedKeys = append(cfg.Users[0].SSHAuthorizedKeys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))))
			cfg.CACerts = &cloudinit.CACerts{Trusted: []string{keys.rsaCert, keys.ecCert, testCA(9, "x")}}
			cfg.WriteFiles = append(cfg.WriteFiles, cloudinit.File{Path: "/usr/local/share/ca-certificates/x.crt", Content: keys.rsaCert})
			_, err = cloudinit.Build(cfg)
			assert.NoError(t, err, k.name)
		}
	})
}

// keys is private and public key material made once per test binary.
type keys struct {
	rsa                                                   *rsa.PrivateKey
	ec                                                    *ecdsa.PrivateKey
	ed                                                    ed25519.PrivateKey
	rsaPKCS1, rsaPKCS8, ecSEC1, ecPKCS8, edPKCS8, openSSH string
	openSSHEncrypted, rsaCert, ecCert                     string
}

var testKeys = func() func(t *testing.T) *keys {
	var once sync.Once
	var k keys
	return func(t *testing.T) *keys {
		once.Do(func() {
			var err error
			k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
			require.NoError(t, err)
			k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			_, k.ed, err = ed25519.GenerateKey(rand.Reader)
			require.NoError(t, err)
			enc := func(typ string, der []byte) string {
				return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
			}
			p8 := func(key any) string {
				der, err := x509.MarshalPKCS8PrivateKey(key)
				require.NoError(t, err)
				return enc("PRIVATE KEY", der)
			}
			k.rsaPKCS1 = enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa))
			k.rsaPKCS8, k.ecPKCS8, k.edPKCS8 = p8(k.rsa), p8(k.ec), p8(k.ed)
			der, err := x509.MarshalECPrivateKey(k.ec)
			require.NoError(t, err)
			k.ecSEC1 = enc("EC PRIVATE KEY", der)
			b, err := ssh.MarshalPrivateKey(k.ed, "")
			require.NoError(t, err)
			k.openSSH = string(pem.EncodeToMemory(b))
			b, err = ssh.MarshalPrivateKeyWithPassphrase(k.ed, "", []byte("passphrase"))
			require.NoError(t, err)
			k.openSSHEncrypted = string(pem.EncodeToMemory(b))
			cert := func(key any, pub any) string {
				tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ca"},
					NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
				require.NoError(t, err)
				return enc("CERTIFICATE", der)
			}
			k.rsaCert, k.ecCert = cert(k.rsa, k.rsa.Public()), cert(k.ec, k.ec.Public())
		})
		return &k
	}
}()

// withoutBegin drops a PEM or armor block's BEGIN line (and, body only,
// its END line too, and any armor headers).
func withoutBegin(block string, bodyOnly bool) string {
	lines := strings.Split(strings.TrimSpace(block), "\n")
	lines = lines[1:]
	if bodyOnly {
		lines = lines[:len(lines)-1]
		for len(lines) > 0 && (strings.Contains(lines[0], ": ") || lines[0] == "") {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// gpgKey makes an OpenPGP key with the installed gpg and returns its
// armored public and secret keys.
func gpgKey(t *testing.T, algo string) (public, secret string) {
	t.Helper()
	gpg := testenv.LookPath(t, "gpg")
	home := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		require.NoError(t, err, "gpg %v", args)
		return string(out)
	}
	run("--quick-gen-key", "Hatchery test <test@hatchery.example.com>", algo, "sign", "never")
	return run("--armor", "--export"), run("--armor", "--export-secret-keys")
}

// TestPrivateKeyMaterial (issue 13 L6, issue 12 section 1): private keys
// are refused whole, without their BEGIN line, as a bare body, encrypted,
// and encoded; the matching public material is accepted.
func TestPrivateKeyMaterial(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	blocks := map[string]string{
		"RSA PKCS#1": k.rsaPKCS1, "RSA PKCS#8": k.rsaPKCS8, "EC SEC 1": k.ecSEC1, "EC PKCS#8": k.ecPKCS8,
		"Ed25519 PKCS#8": k.edPKCS8, "OpenSSH": k.openSSH, "OpenSSH encrypted": k.openSSHEncrypted,
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		in := filepath.Join(t.TempDir(), "key.pem")
		require.NoError(t, os.WriteFile(in, []byte(k.rsaPKCS8), 0o600))
		out, err := exec.Command(openssl, "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", in, "-passout", "pass:secret").Output()
		require.NoError(t, err)
		require.Contains(t, string(out), "ENCRYPTED PRIVATE KEY")
		blocks["encrypted PKCS#8"] = string(out)
		out, err = exec.Command(openssl, "rsa", "-traditional", "-aes256", "-in", in, "-passout", "pass:secret").Output()
		require.NoError(t, err)
		require.Contains(t, string(out), "Proc-Type: 4,ENCRYPTED")
		blocks["legacy encrypted PEM"] = string(out)
	} else {
		testenv.Missing(t, "openssl is not installed")
	}
	pgpPublic, pgpSecret := gpgKey(t, "ed25519")
	blocks["PGP"] = pgpSecret
	rsaPublic, rsaSecret := gpgKey(t, "rsa3072")
	blocks["PGP RSA"] = rsaSecret

	for name, block := range blocks {
		body := withoutBegin(block, true)
		forms := map[string]string{
			"whole":                block,
			"without BEGIN line":   withoutBegin(block, false),
			"body only":            body,
			"body, indented":       "    " + strings.ReplaceAll(strings.TrimSpace(body), "\n", "\n    ") + "\n",
			"body on one line":     strings.ReplaceAll(body, "\n", "") + "\n",
			"whole, base64":        base64.StdEncoding.EncodeToString([]byte(block)),
			"whole, gzip + base64": base64.StdEncoding.EncodeToString(gzipBytes(t, []byte(block))),
		}
		if name == "legacy encrypted PEM" {
			// Its body is ciphertext: only its headers tell it apart.
			delete(forms, "body only")
			delete(forms, "body, indented")
			delete(forms, "body on one line")
		}
		for form, content := range forms {
			t.Run(name+"/"+form, func(t *testing.T) {
				t.Parallel()
				// A body of one 64-character line (Ed25519 in PKCS#8) is
				// also, a quarter of the time, all letters and digits:
				// the shape of a Hetzner token, which is found first.
				kind := "private key"
				if b := strings.TrimSpace(body); len(b) == 64 && !strings.ContainsAny(b, "+/=") && !strings.HasPrefix(form, "whole") {
					kind = "Hetzner"
				}
				cfg := fullConfig()
				cfg.WriteFiles = append(cfg.WriteFiles, cloudinit.File{Path: "/root/key", Content: content, Permissions: "0600"})
				wantSecret(t, cfg, kind, "write_files[1].content", strings.TrimSpace(body)[:40])
				cfg = fullConfig()
				cfg.RunCmd = append(cfg.RunCmd, cloudinit.Command{"sh", "-c", "cat > /root/key <<'EOF'\n" + content + "EOF\n"})
				wantSecret(t, cfg, kind, "runcmd[6][2]")
			})
		}
	}
	t.Run("a PGP secret key under a public key's armor", func(t *testing.T) {
		t.Parallel()
		lines := strings.Split(strings.TrimSpace(pgpSecret), "\n")
		lines[0] = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
		lines[len(lines)-1] = "-----END PGP PUBLIC KEY BLOCK-----"
		cfg := fullConfig()
		cfg.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: strings.Join(lines, "\n") + "\n"}
		wantSecret(t, cfg, "private key", "apt.sources[github-cli].key")
	})
	t.Run("public material is accepted", func(t *testing.T) {
		t.Parallel()
		cfg := fullConfig()
		cfg.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: pgpPublic}
		cfg.Apt.Sources["rsa"] = cloudinit.AptSource{Source: "deb [signed-by=$KEY_FILE] https://rsa.example/apt stable main", Key: rsaPublic}
		cfg.Apt.Sources["repo"] = cloudinit.AptSource{Source: "deb [signed-by=$KEY_FILE] https://repo.example/apt stable main", Key: repoKey()}
		cfg.CACerts = &cloudinit.CACerts{Trusted: []string{k.rsaCert, k.ecCert + testCA(5, "y")}}
		pubDER, err := x509.MarshalPKIXPublicKey(k.rsa.Public())
		require.NoError(t, err)
		cfg.WriteFiles = append(cfg.WriteFiles,
			cloudinit.File{Path: "/etc/apt/keyrings/gh.asc", Content: rsaPublic},
			cloudinit.File{Path: "/usr/local/share/ca-certificates/a.crt", Content: k.rsaCert},
			cloudinit.File{Path: "/etc/ssl/pub.pem", Content: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))},
			cloudinit.File{Path: "/etc/ssl/b.crt", Encoding: "b64", Content: base64.StdEncoding.EncodeToString([]byte(k.ecCert))},
			cloudinit.File{Path: "/etc/ssl/c.der", Encoding: "b64", Content: base64.StdEncoding.EncodeToString(mustPEMBytes(t, k.rsaCert))},
		)
		_, err = cloudinit.Build(cfg)
		require.NoError(t, err)
	})
}

func mustPEMBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	require.NotNil(t, b)
	return b.Bytes
}

// TestTokenShapes: the token shapes issue 13 L6 found missing, in plain
// and encoded forms, and what must not match them.
func TestTokenShapes(t *testing.T) {
	t.Parallel()
	var (
		openAI    = fake("sk-"+"proj-", 120, tokenCh)
		openAISvc = fake("sk-"+"svcacct-", 60, tokenCh)
		openAIOld = fake("sk-", 20, alnum) + "T3Blbk" + "FJ" + fake("", 20, alnum)
		stripe    = fake("sk_"+"live_", 99, alnum)
		stripeR   = fake("rk_"+"live_", 24, alnum)
		stripeT   = fake("sk_"+"test_", 24, alnum)
		gitlab    = fake("gl"+"pat-", 20, tokenCh)
		google    = fake("AI"+"za", 35, tokenCh)
		hetzner   = fake("", 64, alnum)
	)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct{ name, value, kind string }{
		{"OpenAI project key", openAI, "OpenAI"},
		{"OpenAI service account key", openAISvc, "OpenAI"},
		{"OpenAI legacy key", openAIOld, "OpenAI"},
		{"Stripe live secret key", stripe, "Stripe"},
		{"Stripe restricted key", stripeR, "Stripe"},
		{"Stripe test key", stripeT, "Stripe"},
		{"GitLab token", gitlab, "GitLab"},
		{"Google API key", google, "Google"},
		{"Hetzner API token", hetzner, "Hetzner"},
	} {
		for form, text := range map[string]string{
			"plain":           "API_TOKEN=" + tc.value,
			"quoted":          `{"token": "` + tc.value + `"}`,
			"url":             "https://x.example/?token=" + tc.value + "&x=1",
			"base64":          "echo " + b64("API_TOKEN="+tc.value) + " | base64 -d",
			"base64 of gzip":  "echo " + base64.StdEncoding.EncodeToString(gzipBytes(t, []byte(tc.value))),
			"hex":             "echo " + hex.EncodeToString([]byte(tc.value)) + " | xxd -r -p",
			"percent-encoded": "curl -d token=" + strings.ReplaceAll(url.QueryEscape(tc.value), "_", "%5F"),
			"JSON \\u":        `{"token": "\u0022` + jsonUnicode(tc.value) + `"}`,
		} {
			t.Run(tc.name+"/"+form, func(t *testing.T) {
				t.Parallel()
				cfg := fullConfig()
				cfg.RunCmd = append(cfg.RunCmd, cloudinit.Shell(text))
				wantSecret(t, cfg, tc.kind, "runcmd[6][2]", tc.value)
			})
		}
	}
	for _, s := range []string{
		"sk-ssh-ed25519@openssh.com", "sk-proj-short", "sk-" + "proj-" + strings.Repeat("a", 19), "task_live_" + strings.Repeat("a", 30),
		"sk_" + "live_short", "gl" + "pat-" + strings.Repeat("a", 19), "AI" + "za" + strings.Repeat("b", 34), "AI" + "za" + strings.Repeat("b", 36),
		strings.Repeat("9f86d081", 8),                  // SHA-256, hex
		strings.ToUpper(strings.Repeat("9f86d081", 8)), // SHA-256, HEX
		"sha384-" + fake("", 64, alnum),                // a subresource integrity hash
		fake("", 64, alnum) + "==",                     // base64 with padding
		"a" + fake("", 64, alnum), fake("", 63, alnum), // 65 and 63
		strings.Repeat("abcdefgh", 8), // no digits, no uppercase
	} {
		cfg := fullConfig()
		cfg.RunCmd = append(cfg.RunCmd, cloudinit.Command{"echo", s})
		_, err := cloudinit.Build(cfg)
		assert.NoError(t, err, "%q", s)
	}
	// A base64 block whose lines are all letters and digits (as 13% of a
	// PEM or PGP body's 64-character lines are) is not a Hetzner token.
	var block strings.Builder
	block.WriteString("-----BEGIN CERTIFICATE-----\n")
	for i := range 5 {
		block.WriteString(fake(string(rune('A'+i)), 63, alnum) + "\n")
	}
	block.WriteString("abcd\n-----END CERTIFICATE-----\n")
	cfg := fullConfig()
	cfg.WriteFiles = append(cfg.WriteFiles, cloudinit.File{Path: "/x.pem", Content: block.String()})
	_, err := cloudinit.Build(cfg)
	assert.NoError(t, err)
}

// jsonUnicode escapes every character as \uXXXX.
func jsonUnicode(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteString(`\u` + hex.EncodeToString([]byte{byte(r >> 8), byte(r)}))
	}
	return b.String()
}

// TestNoFalsePositivesAtScale: public material that looks random, in
// quantity: a hundred certificates and PGP keys, SHA-256 sums, random
// binary files, UUIDs and callback tokens pass, with secrets listed.
func TestNoFalsePositivesAtScale(t *testing.T) {
	t.Parallel()
	rng := mrand.New(mrand.NewPCG(3, 4))
	cfg := fullConfig()
	cfg.MaxSize = cloudinit.MaxDocument
	// Random-looking secrets that are not in the document.
	for range 20 {
		b := make([]byte, 24)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		cfg.Secrets = append(cfg.Secrets, base64.StdEncoding.EncodeToString(b))
	}
	var certs []string
	for i := range 100 {
		certs = append(certs, testCA(byte(i), "CA "+string(rune('a'+i%26))))
	}
	cfg.CACerts = &cloudinit.CACerts{Trusted: certs}
	var sums, tokens strings.Builder
	for i := range 500 {
		b := make([]byte, 32)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		sums.WriteString(hex.EncodeToString(b) + "  file" + string(rune('a'+i%26)) + "\n")
		tokens.WriteString("https://cp.example.com/cb/" + tenantID + "?token=" + hex.EncodeToString(b[:16]) + "." + hex.EncodeToString(b) + "\n")
	}
	bin := make([]byte, 200<<10)
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	cfg.WriteFiles = append(cfg.WriteFiles,
		cloudinit.File{Path: "/SHA256SUMS", Content: sums.String()},
		cloudinit.File{Path: "/urls", Content: tokens.String()},
		cloudinit.File{Path: "/random.bin", Encoding: "b64", Content: base64.StdEncoding.EncodeToString(bin)},
		cloudinit.File{Path: "/random.txt", Content: base64.StdEncoding.EncodeToString(bin[:64<<10]) + "\n" + hex.EncodeToString(bin[:32<<10]) + "\n"},
	)
	_, err := cloudinit.Build(cfg)
	require.NoError(t, err)
}

// TestRachel8RecipeAccepted: the Rachel8 recipe's real content (URLs, key
// fingerprints, commands) passes the scan, with the tenant's secrets
// listed.
func TestRachel8RecipeAccepted(t *testing.T) {
	t.Parallel()
	pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	require.NoError(t, err)
	cfg, err := rachel8.Bootstrap(rachel8.Options{PublicKey: pub, PhoneHomeURL: callbackURL})
	require.NoError(t, err)
	cfg.Secrets = []string{
		fake("sk-"+"ant-api03-", 95, tokenCh),
		fake("7123456789:", 35, tokenCh),
		`{"claudeAiOauth":{"accessToken":"` + fake("sk-"+"ant-oat01-", 80, tokenCh) + `","expiresAt":1767225600000}}` + "\n",
	}
	cfg.CACerts = &cloudinit.CACerts{Trusted: []string{testCA(1, "mirror CA")}}
	cfg.Reporting = map[string]cloudinit.Reporter{"hatchery": {Type: cloudinit.ReporterWebhook, Endpoint: eventsURL}}
	_, err = cloudinit.Build(cfg)
	require.NoError(t, err)
}

// TestZipBomb: gzip that expands past MaxScanExpansion, or nests deeper
// than MaxScanDepth, is refused as unscannable, within bounded memory.
//
// Not parallel: it measures what Build allocates.
func TestZipBomb(t *testing.T) {
	zeros := make([]byte, 64<<20)
	inner := gzipBytes(t, zeros) // 64 MiB of zeros in about 64 KiB
	outer := gzipBytes(t, inner)
	b64 := base64.StdEncoding.EncodeToString
	deep := []byte("x")
	for range cloudinit.MaxScanDepth + 2 {
		deep = gzipBytes(t, deep)
	}
	for _, tc := range []struct {
		name string
		edit func(*cloudinit.Config)
	}{
		{"gzip inside gzip+b64", func(c *cloudinit.Config) {
			c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/x", Encoding: "gzip+b64", Content: b64(outer)})
		}},
		{"base64 of gzip in a command", func(c *cloudinit.Config) {
			c.RunCmd = append(c.RunCmd, cloudinit.Shell("echo "+b64(inner)+" | base64 -d | gunzip > /x"))
		}},
		{"gzip nested too deep", func(c *cloudinit.Config) {
			c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/x", Encoding: "b64", Content: b64(deep)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fullConfig()
			cfg.MaxSize = cloudinit.MaxDocument
			tc.edit(&cfg)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := cloudinit.Build(cfg)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, cloudinit.ErrInvalid)
			assert.Contains(t, err.Error(), "cannot be scanned for secrets")
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "allocated while scanning")
			t.Logf("Build allocated %.1f MiB", float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
		})
	}
}
