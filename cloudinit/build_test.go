package cloudinit_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldens are the configs whose rendering is pinned in testdata/NAME.yaml.
var goldens = []struct {
	name string
	cfg  func() cloudinit.Config
}{
	{"minimal", minimalConfig},
	{"rachel8", fullConfig},
	{"extras", extrasConfig},
}

func TestBuildGolden(t *testing.T) {
	t.Parallel()
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			got, err := cloudinit.Build(g.cfg())
			require.NoError(t, err)
			file := filepath.Join("testdata", g.name+".yaml")
			if *update {
				require.NoError(t, os.WriteFile(file, got, 0o644))
			}
			want, err := os.ReadFile(file)
			require.NoError(t, err, "run go test -update to create it")
			assert.Equal(t, string(want), string(got))
		})
	}
}

func TestBuildDeterministic(t *testing.T) {
	t.Parallel()
	cfg := fullConfig()
	first, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	for range 20 {
		// A fresh map each time: its iteration order differs run to run.
		c := fullConfig()
		c.Apt.Sources["a-repo"] = cloudinit.AptSource{Source: "deb $MIRROR $RELEASE main"}
		c.Apt.Sources["z-repo"] = cloudinit.AptSource{Source: "deb-src $PRIMARY $RELEASE-updates main"}
		out, err := cloudinit.Build(c)
		require.NoError(t, err)
		again, err := cloudinit.Build(c)
		require.NoError(t, err)
		assert.Equal(t, out, again)
		assert.Less(t, bytes.Index(out, []byte("a-repo:")), bytes.Index(out, []byte("github-cli:")))
		assert.Less(t, bytes.Index(out, []byte("github-cli:")), bytes.Index(out, []byte("z-repo:")))
		again, err = cloudinit.Build(cfg)
		require.NoError(t, err)
		assert.Equal(t, first, again)
	}
}

func TestBuildRoundTrip(t *testing.T) {
	t.Parallel()
	for _, g := range goldens {
		cfg := g.cfg()
		out, err := cloudinit.Build(cfg)
		require.NoError(t, err)
		got, err := cloudinit.Parse(out)
		require.NoError(t, err)
		if cfg.PhoneHome.Tries == 0 {
			cfg.PhoneHome.Tries = cloudinit.DefaultTries
		}
		for name, r := range cfg.Reporting {
			if r.Timeout == 0 {
				r.Timeout = cloudinit.DefaultReporterTimeout
				cfg.Reporting[name] = r
			}
		}
		assert.Equal(t, cfg, got, g.name)
	}
	cfg := kitchenSink(t)
	out, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	got, err := cloudinit.Parse(out)
	require.NoError(t, err)
	assert.Equal(t, cfg, got, "every field")
}

func TestBuildRendersChosenForms(t *testing.T) {
	t.Parallel()
	cfg := minimalConfig()
	cfg.WriteFiles = []cloudinit.File{{Path: "/etc/motd", Content: "hi\n", Permissions: "0600"}}
	cfg.Users = []cloudinit.User{{Name: "rachel", Sudo: "ALL=(ALL) NOPASSWD:ALL"}}
	cfg.RunCmd = []cloudinit.Command{{"test", "1_0", "=", "yes", "0644", "1:20"}}
	out, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	s := string(out)
	assert.True(t, strings.HasPrefix(s, "#cloud-config\n"))
	assert.Contains(t, s, `permissions: "0600"`+"\n", "permissions must be a quoted string")
	assert.Contains(t, s, "sudo: ALL=(ALL) NOPASSWD:ALL\n", "sudo is a string, not a list")
	assert.Contains(t, s, "tries: 10\n", "tries defaults to 10 and is written out")
	for _, q := range []string{`"1_0"`, `"="`, `"yes"`, `"0644"`, `"1:20"`} {
		assert.Contains(t, s, "- "+q+"\n", "PyYAML would not read %s as a string unquoted", q)
	}
	assert.Equal(t, 0, minimalConfig().PhoneHome.Tries, "Build must not write to the caller's PhoneHome")
	ph := cfg.PhoneHome
	_, err = cloudinit.Build(cfg)
	require.NoError(t, err)
	assert.Equal(t, 0, ph.Tries)
}

func TestBuildEmpty(t *testing.T) {
	t.Parallel()
	out, err := cloudinit.Build(cloudinit.Config{})
	require.NoError(t, err)
	assert.Equal(t, "#cloud-config\n{}\n", string(out))
}

func TestBuildInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(*cloudinit.Config)
		field string
	}{
		{"negative MaxSize", func(c *cloudinit.Config) { c.MaxSize = -1 }, "MaxSize"},
		{"empty secret", func(c *cloudinit.Config) { c.Secrets = []string{"x", ""} }, "Secrets[1]"},
		{"hostname underscore", func(c *cloudinit.Config) { c.Hostname = "bad_host" }, "hostname"},
		{"hostname newline", func(c *cloudinit.Config) { c.Hostname = "a\nb" }, "hostname"},
		{"hostname label too long", func(c *cloudinit.Config) { c.Hostname = strings.Repeat("a", 64) }, "hostname"},
		{"user name uppercase", func(c *cloudinit.Config) { c.Users[0].Name = "Rachel" }, "users[0].name"},
		{"user name empty", func(c *cloudinit.Config) { c.Users[0].Name = "" }, "users[0].name"},
		{"user name too long", func(c *cloudinit.Config) { c.Users[0].Name = strings.Repeat("a", 33) }, "users[0].name"},
		{"user name with colon", func(c *cloudinit.Config) { c.Users[0].Name = "rachel:x" }, "users[0].name"},
		{"group", func(c *cloudinit.Config) { c.Users[0].Groups = []string{"sudo", "wheel group"} }, "users[0].groups[1]"},
		{"relative shell", func(c *cloudinit.Config) { c.Users[0].Shell = "bash" }, "users[0].shell"},
		{"shell with NUL", func(c *cloudinit.Config) { c.Users[0].Shell = "/bin/ba\x00sh" }, "users[0].shell"},
		{"sudo with newline", func(c *cloudinit.Config) { c.Users[0].Sudo = "ALL=(ALL) ALL\nrachel ALL=(ALL) NOPASSWD:ALL" }, "users[0].sudo"},
		{"sudo blank", func(c *cloudinit.Config) { c.Users[0].Sudo = "  " }, "users[0].sudo"},
		{"ssh key garbage", func(c *cloudinit.Config) { c.Users[0].SSHAuthorizedKeys = []string{"ssh-ed25519 notbase64"} }, "users[0].ssh_authorized_keys[0]"},
		{"two ssh keys in one", func(c *cloudinit.Config) {
			c.Users[0].SSHAuthorizedKeys = []string{testKey(1, "") + "\n" + testKey(2, "")}
		}, "users[0].ssh_authorized_keys[0]"},
		{"apt without sources", func(c *cloudinit.Config) { c.Apt.Sources = nil }, "apt.sources"},
		{"apt source name with slash", func(c *cloudinit.Config) {
			c.Apt.Sources["../x"] = c.Apt.Sources["github-cli"]
		}, "apt.sources"},
		{"apt source empty", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{KeyID: ghKeyID}
		}, "apt.sources[github-cli].source"},
		{"apt source not deb", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: "ppa:foo/bar"}
		}, "apt.sources[github-cli].source"},
		{"apt source braces", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: "deb [signed-by=${KEY_FILE}] https://x stable main", KeyID: ghKeyID}
		}, "apt.sources[github-cli].source"},
		{"apt source unknown variable", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: "deb $ARCH stable main"}
		}, "apt.sources[github-cli].source"},
		{"apt KEY_FILE without key", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource}
		}, "apt.sources[github-cli].source"},
		{"apt expired GitHub CLI key", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, KeyID: "2C6106201985B60E6C7AC87323F3D4EA75716059"}
		}, "apt.sources[github-cli].keyid"},
		{"apt long key id", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, KeyID: "5612B36462313325"}
		}, "apt.sources[github-cli].keyid"},
		{"apt keyserver without keyid", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: "deb https://x stable main", KeyServer: "keyserver.ubuntu.com"}
		}, "apt.sources[github-cli].keyserver"},
		{"apt keyserver junk", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, KeyID: ghKeyID, KeyServer: "keys; rm -rf /"}
		}, "apt.sources[github-cli].keyserver"},
		{"apt key not armored public key", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: "mQINBF..."}
		}, "apt.sources[github-cli].key"},
		{"apt key and keyid", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, KeyID: ghKeyID, Key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nx\n-----END PGP PUBLIC KEY BLOCK-----\n"}
		}, "apt.sources[github-cli].keyid"},
		{"package option", func(c *cloudinit.Config) { c.Packages = append(c.Packages, "--allow-unauthenticated") }, "packages[4]"},
		{"package uppercase", func(c *cloudinit.Config) { c.Packages[0] = "Git" }, "packages[0]"},
		{"package with space", func(c *cloudinit.Config) { c.Packages[1] = "curl wget" }, "packages[1]"},
		{"write_files relative path", func(c *cloudinit.Config) { c.WriteFiles[0].Path = "home/rachel/.profile" }, "write_files[0].path"},
		{"write_files dotdot", func(c *cloudinit.Config) { c.WriteFiles[0].Path = "/home/rachel/../root/.profile" }, "write_files[0].path"},
		{"write_files owner", func(c *cloudinit.Config) { c.WriteFiles[0].Owner = "rachel:rachel:x" }, "write_files[0].owner"},
		{"write_files permissions unquotable", func(c *cloudinit.Config) { c.WriteFiles[0].Permissions = "644" }, "write_files[0].permissions"},
		{"write_files permissions symbolic", func(c *cloudinit.Config) { c.WriteFiles[0].Permissions = "u=rw" }, "write_files[0].permissions"},
		{"write_files permissions 8", func(c *cloudinit.Config) { c.WriteFiles[0].Permissions = "0680" }, "write_files[0].permissions"},
		{"write_files NUL content", func(c *cloudinit.Config) { c.WriteFiles[0].Content = "a\x00b" }, "write_files[0].content"},
		{"write_files invalid UTF-8", func(c *cloudinit.Config) { c.WriteFiles[0].Content = "a\xffb" }, "write_files[0].content"},
		{"write_files bad base64", func(c *cloudinit.Config) { c.WriteFiles[0].Encoding, c.WriteFiles[0].Content = "b64", "not base64!" }, "write_files[0].content"},
		{"write_files wrapped base64", func(c *cloudinit.Config) {
			c.WriteFiles[0].Encoding, c.WriteFiles[0].Content = "b64", "aGVsbG8g\nd29ybGQ="
		}, "write_files[0].content"},
		{"write_files gzip not gzip", func(c *cloudinit.Config) {
			c.WriteFiles[0].Encoding, c.WriteFiles[0].Content = "gzip+b64", "aGVsbG8="
		}, "write_files[0].content"},
		{"write_files encoding", func(c *cloudinit.Config) { c.WriteFiles[0].Encoding = "gzip" }, "write_files[0].encoding"},
		{"runcmd empty argv", func(c *cloudinit.Config) { c.RunCmd = append(c.RunCmd, cloudinit.Command{}) }, "runcmd[6]"},
		{"runcmd empty program", func(c *cloudinit.Config) { c.RunCmd[1] = cloudinit.Command{"", "x"} }, "runcmd[1][0]"},
		{"runcmd NUL", func(c *cloudinit.Config) { c.RunCmd[2][6] = "curl\x00" }, "runcmd[2][6]"},
		{"phone_home no url", func(c *cloudinit.Config) { c.PhoneHome.URL = "" }, "phone_home.url"},
		{"phone_home relative url", func(c *cloudinit.Config) { c.PhoneHome.URL = "/callback" }, "phone_home.url"},
		{"phone_home ftp", func(c *cloudinit.Config) { c.PhoneHome.URL = "ftp://x/y" }, "phone_home.url"},
		{"phone_home braces", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x/cb/${INSTANCE_ID}" }, "phone_home.url"},
		{"phone_home other variable", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x/cb/$HOSTNAME" }, "phone_home.url"},
		{"phone_home INSTANCE_ID.json", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x/cb/$INSTANCE_ID.json" }, "phone_home.url"},
		{"phone_home lone dollar", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x/cb/$/y" }, "phone_home.url"},
		{"phone_home space", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x/cb/a b" }, "phone_home.url"},
		{"phone_home bad percent", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x/cb/%zz" }, "phone_home.url"},
		{"phone_home credentials", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://user:pw@x/cb" }, "phone_home.url"},
		{"phone_home newline", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x/cb\nfoo: bar" }, "phone_home.url"},
		{"phone_home no host", func(c *cloudinit.Config) { c.PhoneHome.URL = "https:///cb" }, "phone_home.url"},
		{"phone_home empty post", func(c *cloudinit.Config) { c.PhoneHome.Post = nil }, "phone_home.post"},
		{"phone_home post all", func(c *cloudinit.Config) { c.PhoneHome.Post = []string{"all"} }, "phone_home.post[0]"},
		{"phone_home post twice", func(c *cloudinit.Config) { c.PhoneHome.Post = []string{"fqdn", "hostname", "fqdn"} }, "phone_home.post[2]"},
		{"phone_home negative tries", func(c *cloudinit.Config) { c.PhoneHome.Tries = -1 }, "phone_home.tries"},
		{"blank secret", func(c *cloudinit.Config) { c.Secrets = []string{"x-long-enough", " \n"} }, "Secrets[1]"},
		{"apt key is a signature", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\niQIzBAAB\n-----END PGP PUBLIC KEY BLOCK-----\n"}
		}, "apt.sources[github-cli].key"},
		{"apt key without blank line", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQINBGX0\n-----END PGP PUBLIC KEY BLOCK-----\n"}
		}, "apt.sources[github-cli].key"},
		{"apt key body not base64", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"}
		}, "apt.sources[github-cli].key"},
		{"apt key, two blocks", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: repoKey() + repoKey()}
		}, "apt.sources[github-cli].key"},
		{"ca_certs empty", func(c *cloudinit.Config) { c.CACerts = &cloudinit.CACerts{} }, "ca_certs"},
		{"ca_certs not PEM", func(c *cloudinit.Config) { c.CACerts = &cloudinit.CACerts{Trusted: []string{"MIIBNDCB56ADAgECAgEC"}} }, "ca_certs.trusted[0]"},
		{"ca_certs empty entry", func(c *cloudinit.Config) { c.CACerts = &cloudinit.CACerts{Trusted: []string{testCA(1, "a"), " \n"}} }, "ca_certs.trusted[1]"},
		{"ca_certs junk after", func(c *cloudinit.Config) {
			c.CACerts = &cloudinit.CACerts{Trusted: []string{testCA(1, "a") + "# comment\n"}}
		}, "ca_certs.trusted[0]"},
		{"ca_certs public key", func(c *cloudinit.Config) {
			c.CACerts = &cloudinit.CACerts{Trusted: []string{"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAt+zX2GDJV8MxotxSlAzNQemxBB4AzFxDpziuUVfPMX4=\n-----END PUBLIC KEY-----\n"}}
		}, "ca_certs.trusted[0]"},
		{"ca_certs broken certificate", func(c *cloudinit.Config) {
			c.CACerts = &cloudinit.CACerts{Trusted: []string{"-----BEGIN CERTIFICATE-----\nMIIBNDCB56ADAgECAgEC\n-----END CERTIFICATE-----\n"}}
		}, "ca_certs.trusted[0]"},
		{"ca_certs certificate with headers", func(c *cloudinit.Config) {
			c.CACerts = &cloudinit.CACerts{Trusted: []string{strings.Replace(testCA(1, "a"), "-----\n", "-----\nX: y\n\n", 1)}}
		}, "ca_certs.trusted[0]"},
		{"reporting log handler", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"r": {Type: "log", Endpoint: eventsURL}}
		}, "reporting[r].type"},
		{"reporting without endpoint", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"r": {Type: cloudinit.ReporterWebhook}}
		}, "reporting[r].endpoint"},
		{"reporting endpoint with a variable", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"r": {Type: cloudinit.ReporterWebhook, Endpoint: "https://x.example/$INSTANCE_ID"}}
		}, "reporting[r].endpoint"},
		{"reporting endpoint ftp", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"r": {Type: cloudinit.ReporterWebhook, Endpoint: "ftp://x.example/e"}}
		}, "reporting[r].endpoint"},
		{"reporting endpoint with credentials", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"r": {Type: cloudinit.ReporterWebhook, Endpoint: "https://u:p@x.example/e"}}
		}, "reporting[r].endpoint"},
		{"reporting negative timeout", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"r": {Type: cloudinit.ReporterWebhook, Endpoint: eventsURL, Timeout: -1}}
		}, "reporting[r].timeout"},
		{"reporting negative retries", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"r": {Type: cloudinit.ReporterWebhook, Endpoint: eventsURL, Retries: -1}}
		}, "reporting[r].retries"},
		{"reporting handler name", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"a b": {Type: cloudinit.ReporterWebhook, Endpoint: eventsURL}}
		}, "reporting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := fullConfig()
			tt.edit(&cfg)
			out, err := cloudinit.Build(cfg)
			require.Error(t, err)
			assert.Nil(t, out)
			assert.ErrorIs(t, err, cloudinit.ErrInvalid)
			var fe *cloudinit.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field, err.Error())
			assert.Contains(t, err.Error(), tt.field)
			assert.Equal(t, err, cfg.Validate(), "Build refuses exactly what Validate refuses")
		})
	}
}

func TestBuildAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*cloudinit.Config)
	}{
		{"INSTANCE_ID in the path", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x.example/cb/$INSTANCE_ID/done" }},
		{"INSTANCE_ID at the end", func(c *cloudinit.Config) { c.PhoneHome.URL = "http://10.0.0.1:8080/cb?id=$INSTANCE_ID" }},
		{"IPv6 host", func(c *cloudinit.Config) { c.PhoneHome.URL = "http://[2001:db8::1]:8080/cb/$INSTANCE_ID" }},
		{"percent-encoded", func(c *cloudinit.Config) { c.PhoneHome.URL = "https://x.example/cb/a%20b" }},
		{"every post key", func(c *cloudinit.Config) {
			c.PhoneHome.Post = []string{"pub_key_dsa", "pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"}
		}},
		{"spaced fingerprint", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, KeyID: "7F38 BBB5 9D06 4DBC B3D8  4D72 5612 B364 6231 3325"}
		}},
		{"hkps keyserver", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, KeyID: ghKeyID, KeyServer: "hkps://keyserver.ubuntu.com:443"}
		}},
		{"armored key", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGX\n-----END PGP PUBLIC KEY BLOCK-----\n"}
		}},
		{"pinned package", func(c *cloudinit.Config) {
			c.Packages = append(c.Packages, "nodejs=20.11.1-1nodesource1", "libc6-dev", "g++")
		}},
		{"groups", func(c *cloudinit.Config) { c.Users[0].Groups = []string{"sudo", "docker", "_ssh"} }},
		{"b64 file", func(c *cloudinit.Config) {
			c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/etc/x.bin", Encoding: "b64", Content: base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255})})
		}},
		{"multi-line shell script", func(c *cloudinit.Config) {
			c.RunCmd = append(c.RunCmd, cloudinit.Shell("set -e\necho 'it''s' \"$HOME\"\n# done\n"))
		}},
		{"unlocked password", func(c *cloudinit.Config) { f := false; c.Users[0].LockPasswd = &f }},
		{"sudo with quotes", func(c *cloudinit.Config) {
			c.Users[0].Sudo = `ALL=(ALL) NOPASSWD: /usr/bin/systemctl restart "rachel8"`
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := fullConfig()
			tt.edit(&cfg)
			out, err := cloudinit.Build(cfg)
			require.NoError(t, err)
			got, err := cloudinit.Parse(out)
			require.NoError(t, err)
			assert.Equal(t, cfg, got)
		})
	}
}

// Secret-shaped test values are assembled at run time so that this file
// itself does not trip secret scanners.
func fake(prefix string, n int, alphabet string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i := range n {
		b.WriteByte(alphabet[(i*7+3)%len(alphabet)])
	}
	return b.String()
}

const (
	alnum   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upper36 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	tokenCh = alnum + "_-"
)

func TestBuildSecrets(t *testing.T) {
	t.Parallel()
	var (
		ghp      = fake("gh"+"p_", 36, alnum)
		ghs      = fake("gh"+"s_", 36, alnum)
		pat      = fake("github"+"_pat_", 82, alnum+"_")
		anth     = fake("sk-"+"ant-api03-", 95, tokenCh)
		telegram = fake("7123456789:", 35, tokenCh)
		aws      = fake("AK"+"IA", 16, upper36)
		slack    = fake("xo"+"xb-", 40, alnum+"-")
		pem      = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
		rsaPEM   = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
		pgp      = "-----BEGIN " + "PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----\n"
		listed   = "correct-horse-battery-staple"
	)
	tests := []struct {
		name   string
		edit   func(*cloudinit.Config)
		kind   string
		field  string // "" means: found in the document, Line set
		values []string
	}{
		{"GitHub classic token in runcmd", func(c *cloudinit.Config) {
			c.RunCmd = append(c.RunCmd, cloudinit.Command{"git", "clone", "https://x:" + ghp + "@github.com/o/r.git"})
		}, "GitHub token", "runcmd[6][2]", []string{ghp}},
		{"GitHub app token in content", func(c *cloudinit.Config) {
			c.WriteFiles[0].Content = "GH_TOKEN=" + ghs + "\n"
		}, "GitHub token", "write_files[0].content", []string{ghs}},
		{"GitHub fine-grained token", func(c *cloudinit.Config) {
			c.RunCmd[1][6] = "export GITHUB_TOKEN=" + pat
		}, "GitHub token", "runcmd[1][6]", []string{pat}},
		{"Anthropic key", func(c *cloudinit.Config) {
			c.WriteFiles[0].Content = "ANTHROPIC_API_KEY=" + anth
		}, "Anthropic", "write_files[0].content", []string{anth}},
		{"Telegram bot token", func(c *cloudinit.Config) {
			c.RunCmd = append(c.RunCmd, cloudinit.Shell("echo TELEGRAM_BOT_TOKEN="+telegram+" >> .env"))
		}, "Telegram bot token", "runcmd[6][2]", []string{telegram}},
		{"AWS key ID", func(c *cloudinit.Config) {
			c.WriteFiles[0].Content = "[default]\naws_access_key_id = " + aws + "\n"
		}, "AWS access key ID", "write_files[0].content", []string{aws}},
		{"Slack token", func(c *cloudinit.Config) {
			c.PhoneHome.URL = "https://x.example/cb?t=" + slack
		}, "Slack token", "phone_home.url", []string{slack}},
		{"OpenSSH private key", func(c *cloudinit.Config) {
			c.WriteFiles[0].Content = pem
		}, "private key block", "write_files[0].content", []string{"b3BlbnNzaC1rZXktdjEAAAAA"}},
		{"RSA private key in a double-quoted scalar", func(c *cloudinit.Config) {
			c.WriteFiles[0].Content = "\n" + rsaPEM // leading newline: rendered double-quoted
		}, "private key block", "write_files[0].content", []string{"MIIEpAIBAAKCAQEA"}},
		{"PGP private key as apt key", func(c *cloudinit.Config) {
			c.Apt.Sources["github-cli"] = cloudinit.AptSource{Source: ghSource, Key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n" + pgp + "-----END PGP PUBLIC KEY BLOCK-----"}
		}, "private key block", "apt.sources[github-cli].key", []string{"lQOYBF"}},
		{"private key base64-encoded", func(c *cloudinit.Config) {
			c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/root/.ssh/id", Encoding: "b64", Content: base64.StdEncoding.EncodeToString([]byte(pem))})
		}, "private key block", "write_files[1].content (decoded)", []string{"b3BlbnNzaC1rZXktdjEAAAAA"}},
		{"token gzip+base64-encoded", func(c *cloudinit.Config) {
			c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/etc/t", Encoding: "gzip+b64", Content: gzipB64(t, "token="+ghp)})
		}, "GitHub token", "write_files[1].content (decoded)", []string{ghp}},
		{"listed secret in sudo", func(c *cloudinit.Config) {
			c.Secrets = []string{"unused-value", listed}
			c.Users[0].Sudo = "ALL=(ALL) NOPASSWD:ALL # " + listed
		}, "Secrets[1]", "users[0].sudo", []string{listed}},
		{"listed secret with a tab, escaped in the document", func(c *cloudinit.Config) {
			c.Secrets = []string{"pass\tword"}
			c.RunCmd = append(c.RunCmd, cloudinit.Command{"echo", "pass\tword"})
		}, "Secrets[0]", "runcmd[6][1]", []string{"pass\tword", `pass\tword`}},
		{"listed secret as apt source name", func(c *cloudinit.Config) {
			c.Secrets = []string{"hunter2hunter2"}
			c.Apt.Sources["hunter2hunter2"] = cloudinit.AptSource{Source: "deb https://x stable main"}
		}, "Secrets[0]", "apt.sources (a source name)", []string{"hunter2hunter2"}},
		{"token as apt source name", func(c *cloudinit.Config) {
			c.Apt.Sources[ghp] = cloudinit.AptSource{Source: "deb https://x stable main"}
		}, "GitHub token", "apt.sources (a source name)", []string{ghp}},
		{"private key as a CA certificate", func(c *cloudinit.Config) {
			c.CACerts = &cloudinit.CACerts{Trusted: []string{testCA(1, "a"), rsaPEM}}
		}, "private key block", "ca_certs.trusted[1]", []string{"MIIEpAIBAAKCAQEA"}},
		{"token in a reporting endpoint", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{"r": {Type: cloudinit.ReporterWebhook, Endpoint: "https://x.example/e?t=" + ghp}}
		}, "GitHub token", "reporting[r].endpoint", []string{ghp}},
		{"token as reporting handler name", func(c *cloudinit.Config) {
			c.Reporting = map[string]cloudinit.Reporter{ghp: {Type: cloudinit.ReporterWebhook, Endpoint: eventsURL}}
		}, "GitHub token", "reporting (a handler name)", []string{ghp}},
		{"listed secret split by the renderer is still found in the field", func(c *cloudinit.Config) {
			c.Secrets = []string{"abc\ndef"}
			c.WriteFiles[0].Content = "x\nabc\ndef\n"
		}, "Secrets[0]", "write_files[0].content", []string{"abc\ndef"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := fullConfig()
			tt.edit(&cfg)
			out, err := cloudinit.Build(cfg)
			require.Error(t, err)
			assert.Nil(t, out)
			assert.ErrorIs(t, err, cloudinit.ErrSecret)
			var se *cloudinit.SecretError
			require.ErrorAs(t, err, &se)
			assert.Contains(t, se.Kind, tt.kind)
			assert.Equal(t, tt.field, se.Field)
			for _, v := range tt.values {
				assert.NotContains(t, err.Error(), v, "the error must not carry the value")
			}
		})
	}
}

// TestScanDocument reaches the scan of the rendered document: a value
// listed in Secrets that only appears once rendered (here: made of two
// fields) is reported by line.
func TestScanDocument(t *testing.T) {
	t.Parallel()
	cfg := fullConfig()
	cfg.Secrets = []string{"gh\nwrite_files"}
	_, err := cloudinit.Build(cfg)
	var se *cloudinit.SecretError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "", se.Field)
	assert.Greater(t, se.Line, 1)
	assert.Contains(t, err.Error(), "line ")
	assert.NotContains(t, err.Error(), "rachel")
}

func gzipB64(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzipWriter(&b)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// TestNoFalsePositives: public material that looks random must pass.
func TestNoFalsePositives(t *testing.T) {
	t.Parallel()
	cfg := fullConfig()
	var keys []string
	for i := range 200 {
		keys = append(keys, testKey(byte(i), "user@host"))
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	for _, k := range []any{rsaKey.Public(), ecKey.Public()} {
		pub, err := ssh.NewPublicKey(k)
		require.NoError(t, err)
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))))
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))+" "+ssh.FingerprintSHA256(pub))
	}
	cfg.Users[0].SSHAuthorizedKeys = keys
	cfg.WriteFiles = append(cfg.WriteFiles, cloudinit.File{
		Path: "/etc/hatchery/public.txt",
		Content: "fingerprint: 7F38 BBB5 9D06 4DBC B3D8  4D72 5612 B364 6231 3325\n" +
			"sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n" +
			"uuid: " + tenantID + "\n" +
			"time: 2026-09-05T12:34:56Z 12:34:56\n" +
			"ssh: SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\n" +
			"sk-ssh-ed25519@openssh.com sk-ant- gh" + "p_short AKIA-not xoxb- 123456:short\n",
	})
	_, err = cloudinit.Build(cfg)
	require.NoError(t, err)
}

func TestBuildSize(t *testing.T) {
	t.Parallel()
	full, err := cloudinit.Build(fullConfig())
	require.NoError(t, err)

	t.Run("exactly at the limit", func(t *testing.T) {
		t.Parallel()
		cfg := fullConfig()
		cfg.MaxSize = len(full)
		_, err := cloudinit.Build(cfg)
		require.NoError(t, err)
	})
	t.Run("one byte over", func(t *testing.T) {
		t.Parallel()
		cfg := fullConfig()
		cfg.MaxSize = len(full) - 1
		out, err := cloudinit.Build(cfg)
		assert.Nil(t, out)
		require.ErrorIs(t, err, cloudinit.ErrTooLarge)
		var se *cloudinit.SizeError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, cloudinit.SizeError{Size: len(full), Limit: len(full) - 1}, *se)
	})
	t.Run("default limit is 32768 bytes", func(t *testing.T) {
		t.Parallel()
		assert.Equal(t, 32768, cloudinit.MaxSize)
		cfg := fullConfig()
		cfg.WriteFiles[0].Content = strings.Repeat("x", cloudinit.MaxSize) + "\n"
		_, err := cloudinit.Build(cfg)
		var se *cloudinit.SizeError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, cloudinit.MaxSize, se.Limit)
		assert.Greater(t, se.Size, cloudinit.MaxSize)
	})
	t.Run("multibyte characters count in bytes", func(t *testing.T) {
		t.Parallel()
		cfg := cloudinit.Config{WriteFiles: []cloudinit.File{{Path: "/x", Content: strings.Repeat("é", 20000) + "\n"}}}
		_, err := cloudinit.Build(cfg)
		require.ErrorIs(t, err, cloudinit.ErrTooLarge)
	})
}

func TestBuildCompress(t *testing.T) {
	t.Parallel()
	var script strings.Builder
	for i := range 1500 {
		script.WriteString("echo step " + strings.Repeat("=", i%40) + " done\n")
	}
	bigConfig := func() cloudinit.Config {
		c := fullConfig()
		c.WriteFiles = append(c.WriteFiles, cloudinit.File{Path: "/opt/setup.sh", Content: script.String(), Permissions: "0755"})
		c.Compress = true
		return c
	}
	big := bigConfig()
	big.Compress = false

	_, err := cloudinit.Build(big)
	var se *cloudinit.SizeError
	require.ErrorAs(t, err, &se, "the plain document is over 32 KiB")
	plainSize := se.Size

	big.Compress = true
	out, err := cloudinit.Build(big)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(out), cloudinit.MaxSize)
	assert.Less(t, 4*len(out), plainSize, "gzip should carry several times more")
	assert.NotContains(t, string(out), "\n", "never wrap the base64, no trailing newline")
	raw, err := base64.StdEncoding.Strict().DecodeString(string(out))
	require.NoError(t, err)
	assert.Equal(t, []byte{0x1f, 0x8b}, raw[:2])

	doc, err := cloudinit.Decode(out)
	require.NoError(t, err)
	assert.Len(t, doc, plainSize)
	plainCfg := big
	plainCfg.Compress, plainCfg.MaxSize = false, cloudinit.MaxDocument
	plain, err := cloudinit.Build(plainCfg)
	require.NoError(t, err)
	assert.Equal(t, plain, doc, "the compressed form carries the plain document")

	again, err := cloudinit.Build(big)
	require.NoError(t, err)
	assert.Equal(t, out, again, "deterministic")

	got, err := cloudinit.Parse(out)
	require.NoError(t, err)
	want := big
	want.Compress = false
	assert.Equal(t, want, got)

	t.Run("limit checked on what is sent", func(t *testing.T) {
		t.Parallel()
		c := bigConfig()
		c.MaxSize = len(out) - 1
		_, err := cloudinit.Build(c)
		var se *cloudinit.SizeError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, len(out), se.Size)
	})
	t.Run("validation on the plain document", func(t *testing.T) {
		t.Parallel()
		c := bigConfig()
		c.Users[0].Name = "Bad"
		_, err := cloudinit.Build(c)
		require.ErrorIs(t, err, cloudinit.ErrInvalid)
		c = bigConfig()
		c.Secrets = []string{"echo step ="}
		_, err = cloudinit.Build(c)
		require.ErrorIs(t, err, cloudinit.ErrSecret)
	})
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc string
		ok        bool
	}{
		{"empty document", "#cloud-config\n", true},
		{"no header", "hostname: x\n", false},
		{"other header", "#!/bin/sh\necho hi\n", false},
		{"unknown key", "#cloud-config\nhostname: x\nbootcmd: [reboot]\n", false},
		{"unknown nested key", "#cloud-config\nusers:\n  - name: x\n    passwd: y\n", false},
		{"duplicate key", "#cloud-config\nhostname: a\nhostname: b\n", false},
		{"post all", "#cloud-config\nphone_home:\n  url: http://x\n  post: all\n", false},
		{"sudo list", "#cloud-config\nusers:\n  - name: x\n    sudo: [a, b]\n", false},
		{"second document", "#cloud-config\nhostname: a\n---\nhostname: b\n", false},
		{"not YAML", "#cloud-config\n: : :\n", false},
		{"not base64", "!!!", false},
		{"base64 not gzip", base64.StdEncoding.EncodeToString([]byte("#cloud-config\n")), false},
		{"wrapped base64", "H4sIAAAAAAAA/1TOzU\nrDQBSG4X2v4rsBc", false},
		{"base64 with trailing newline", gzipB64(t, "#cloud-config\n") + "\n", false},
		{"compressed", gzipB64(t, "#cloud-config\nhostname: x\n"), true},
		{"compressed without header", gzipB64(t, "hostname: x\n"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cloudinit.Parse([]byte(tt.doc))
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, cloudinit.ErrInvalid)
		})
	}
}

func TestDecodeBomb(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	zw := gzipWriter(&b)
	_, err := zw.Write([]byte(Header()))
	require.NoError(t, err)
	_, err = zw.Write(make([]byte, cloudinit.MaxDocument))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	_, err = cloudinit.Decode([]byte(base64.StdEncoding.EncodeToString(b.Bytes())))
	require.ErrorIs(t, err, cloudinit.ErrInvalid)
	assert.True(t, errors.Is(err, cloudinit.ErrInvalid))
}

func Header() string { return cloudinit.Header }

func TestCommandHelpers(t *testing.T) {
	t.Parallel()
	assert.Equal(t, cloudinit.Command{"sh", "-c", "a | b"}, cloudinit.Shell("a | b"))
	inner := cloudinit.Command{"git", "clone", "u", "d"}
	got := cloudinit.RunAs("rachel", inner)
	assert.Equal(t, cloudinit.Command{"runuser", "-u", "rachel", "--", "git", "clone", "u", "d"}, got)
	got[4] = "changed"
	assert.Equal(t, "git", inner[0], "RunAs copies")
	assert.Equal(t, cloudinit.Command{"set", "-e"}, cloudinit.StopOnError())
}

func TestErrorTypes(t *testing.T) {
	t.Parallel()
	fe := &cloudinit.FieldError{Field: "users[0].name", Reason: "is bad"}
	assert.ErrorIs(t, fe, cloudinit.ErrInvalid)
	assert.Equal(t, "cloudinit: invalid config: users[0].name: is bad", fe.Error())
	se := &cloudinit.SecretError{Kind: "GitHub token", Line: 7}
	assert.ErrorIs(t, se, cloudinit.ErrSecret)
	assert.Equal(t, "cloudinit: secret in user-data: GitHub token in line 7 of the document", se.Error())
	se = &cloudinit.SecretError{Kind: "GitHub token", Field: "runcmd[1][2]"}
	assert.Equal(t, "cloudinit: secret in user-data: GitHub token in runcmd[1][2]", se.Error())
	sz := &cloudinit.SizeError{Size: 40000, Limit: 32768}
	assert.ErrorIs(t, sz, cloudinit.ErrTooLarge)
	assert.NotErrorIs(t, sz, cloudinit.ErrInvalid)
	assert.Equal(t, "cloudinit: user-data is 40000 bytes, over the 32768-byte limit", sz.Error())
}

func BenchmarkBuild(b *testing.B) {
	cfg := fullConfig()
	out, err := cloudinit.Build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cloudinit.Build(cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(testing.AllocsPerRun(100, func() { _, _ = cloudinit.Build(cfg) }))/(float64(len(out))/1024), "allocs/KiB")
}

func BenchmarkBuildCompressed(b *testing.B) {
	cfg := fullConfig()
	cfg.Compress = true
	out, err := cloudinit.Build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cloudinit.Build(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildSecrets is BenchmarkBuild with ten secrets listed, as a
// provisioner lists a tenant's: tokens, a password, a JSON credentials
// file and a PEM private key, each looked for in every form and fragment.
func BenchmarkBuildSecrets(b *testing.B) {
	cfg := fullConfig()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Secrets = []string{
		fake("sk-"+"ant-api03-", 95, tokenCh), fake("7123456789:", 35, tokenCh), fake("gh"+"p_", 36, alnum),
		fake("", 64, alnum), "correct-horse-battery-staple\n", fake("xo"+"xb-", 40, alnum+"-"),
		`{"claudeAiOauth":{"accessToken":"` + fake("sk-"+"ant-oat01-", 80, tokenCh) + `","expiresAt":1767225600000}}` + "\n",
		fake("sk_"+"live_", 99, alnum), fake("AI"+"za", 35, tokenCh),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE" + " KEY", Bytes: der})),
	}
	out, err := cloudinit.Build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cloudinit.Build(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
