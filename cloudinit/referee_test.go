package cloudinit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/internal/testenv"
)

// referee finds Debian's cloud-init and the Python that runs it, and makes
// sure its schema check really validates: without python3-jsonschema
// cloud-init says "Valid cloud-config" for anything, and without rfc3987
// it skips the phone_home URL's "uri" format. The python3 first on PATH may
// not be cloud-init's (pyenv), so the interpreter comes from its #! line.
func referee(t *testing.T) (cloudInit, python string) {
	t.Helper()
	cloudInit = testenv.LookPath(t, "cloud-init")
	f, err := os.Open(cloudInit)
	require.NoError(t, err)
	line, err := bufio.NewReader(f).ReadString('\n')
	require.NoError(t, f.Close())
	if err != nil || !strings.HasPrefix(line, "#!") {
		testenv.Missing(t, cloudInit+" is not a Python script with a #! line")
	}
	argv := strings.Fields(strings.TrimPrefix(line, "#!"))
	python = argv[0]
	if filepath.Base(python) == "env" && len(argv) > 1 {
		if python, err = exec.LookPath(argv[1]); err != nil {
			testenv.Missing(t, "cloud-init's interpreter "+argv[1]+" is not on PATH")
		}
	}
	if out, err := exec.Command(python, "-c", "import jsonschema, rfc3987").CombinedOutput(); err != nil {
		testenv.Missing(t, python+" lacks jsonschema or rfc3987 (python3-jsonschema, python3-rfc3987), so cloud-init would not really validate: "+strings.TrimSpace(string(out)))
	}
	return cloudInit, python
}

// schema runs `cloud-init schema --config-file` on doc: valid means exit
// status 0, a "Valid cloud-config" line and no deprecated key. --annotate
// is not used: in 22.4 it exits 0 on invalid files.
func schema(t *testing.T, cloudInit string, doc []byte) (valid bool, out string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "user-data")
	require.NoError(t, os.WriteFile(file, doc, 0o600))
	b, err := exec.Command(cloudInit, "schema", "--config-file", file).CombinedOutput()
	hasValid, deprecated := false, false
	for l := range strings.Lines(string(b)) {
		if strings.HasPrefix(l, "Valid cloud-config:") {
			hasValid = true
		}
		if d, ok := strings.CutPrefix(l, "Cloud config schema deprecations:"); ok && strings.TrimSpace(d) != "" {
			deprecated = true
		}
	}
	return err == nil && hasValid && !deprecated, string(b)
}

// python runs script with the documents' paths as arguments and decodes
// the JSON it prints.
func python(t *testing.T, py, script string, out any, args ...string) {
	t.Helper()
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	require.NoError(t, json.Unmarshal(b, out), string(b))
}

// modelKeys are the top-level keys a Config can render: its yaml tags.
func modelKeys() []string {
	var keys []string
	t := reflect.TypeFor[cloudinit.Config]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

const keysScript = `
import json, sys
from cloudinit import safeyaml
from cloudinit.config.schema import get_schema
schema = get_schema()
known = set()
for ref in schema.get("allOf", []):
    known.update(schema["$defs"][ref["$ref"].rsplit("/", 1)[-1]].get("properties", {}))
docs = []
for path in sys.argv[1:]:
    with open(path, "rb") as fh:
        docs.append(sorted(str(k) for k in safeyaml.load(fh.read())))
print(json.dumps({"known": sorted(known), "docs": docs}))
`

func TestCloudInitAcceptsGoldens(t *testing.T) {
	t.Parallel()
	ci, py := referee(t)

	t.Run("negative controls fail", func(t *testing.T) {
		t.Parallel()
		// If these passed, the referee would not be validating at all.
		for i, doc := range []string{
			"#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: 0644\n",
			"#cloud-config\nphone_home:\n  url: http://x.example/${INSTANCE_ID}\n  post: [fqdn]\n",
			"#cloud-config\nusers:\n  - name: rachel\n    sudo: [\"ALL=(ALL) NOPASSWD:ALL\"]\n",
			"#cloud-config\napt_update: true\n", // deprecated
		} {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				valid, out := schema(t, ci, []byte(doc))
				assert.False(t, valid, "cloud-init accepted an invalid document, so it is not validating:\n%s\n%s", doc, out)
			})
		}
	})

	t.Run("every field and encoding", func(t *testing.T) {
		t.Parallel()
		doc, err := cloudinit.Build(kitchenSink(t))
		require.NoError(t, err)
		valid, out := schema(t, ci, doc)
		assert.True(t, valid, "cloud-init schema:\n%s\n%s", out, doc)
	})

	var files []string
	for _, g := range goldens {
		file := filepath.Join("testdata", g.name+".yaml")
		files = append(files, file)
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			doc, err := os.ReadFile(file)
			require.NoError(t, err)
			valid, out := schema(t, ci, doc)
			assert.True(t, valid, "cloud-init schema:\n%s", out)
		})
	}

	t.Run("compressed, decoded as Hetzner's datasource does", func(t *testing.T) {
		t.Parallel()
		cfg := fullConfig()
		cfg.Compress = true
		out, err := cloudinit.Build(cfg)
		require.NoError(t, err)
		in := filepath.Join(t.TempDir(), "user-data.b64")
		require.NoError(t, os.WriteFile(in, out, 0o600))
		var got struct{ Doc string }
		python(t, py, `
import json, sys
from cloudinit import util
from cloudinit.sources.helpers.hetzner import maybe_b64decode
raw = open(sys.argv[1], "rb").read()
dec = maybe_b64decode(raw)
assert dec != raw, "cloud-init did not decode the base64"
print(json.dumps({"Doc": util.decode_binary(util.decomp_gzip(dec, quiet=False, decode=False))}))
`, &got, in)
		plain, err := cloudinit.Build(fullConfig())
		require.NoError(t, err)
		assert.Equal(t, string(plain), got.Doc)
		valid, msg := schema(t, ci, []byte(got.Doc))
		assert.True(t, valid, msg)
	})

	t.Run("top-level keys", func(t *testing.T) {
		t.Parallel()
		// cloud-init accepts unknown top-level keys, so check them here:
		// every key of the goldens is one the model emits, and every key
		// the model emits is one of cloud-init's schema.
		var got struct {
			Known []string
			Docs  [][]string
		}
		python(t, py, keysScript, &got, files...)
		model := modelKeys()
		require.Len(t, got.Docs, len(files))
		for i, keys := range got.Docs {
			assert.NotEmpty(t, keys)
			for _, k := range keys {
				assert.Contains(t, model, k, "%s has a key the model does not emit", files[i])
			}
		}
		assert.Subset(t, got.Known, model, "a model key is unknown to cloud-init's schema")
	})
}

// trickyStrings are strings YAML 1.1 (PyYAML) and YAML 1.2 (yaml.v3) read
// differently when plain, or that need care in a block scalar.
var trickyStrings = []string{
	"=", "<<", "~", "null", "Null", "NULL", "", " ", "yes", "No", "on", "OFF", "y", "n", "true",
	"0644", "0o644", "0x1F", "0b101", "1_000", "1_", "0_", "1:20", "190:20:30", "1.5", "1.", ".5", "._", "1e3", "1.0e+3",
	"+1", "-1", ".inf", "-.Inf", ".nan", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
	"- x", "-x", "? x", ": x", "x: y", "x #y", "#x", "&a", "*a", "!x", "!!str", "%x", "@x", "`x", "|", ">", "'", "\"",
	"{a: b}", "[a, b]", "a, b", "x\ty", "\tx", "x\t", "x ", " x", "a\nb", "\na", "a\n", "a\n\n", "\n", "\n\n", " a\nb",
	"a\r\nb", "a\rb", "a\u0085b", "a\u2028b", "a\u2029b", "\ufeffx", "x\ufeff", "a\x7fb", "a\x01b", "\x1b[31mred",
	"é", "日本", "😀", "a\u00a0b", "line1\n  indented\n\ttab\n", "trailing space \nx", "x\n ", "---", "...", "--- x", "... x",
	"a # b", "a: b: c", "'quoted'", "\"dq\"", "$HOME", "${X}", "\\", "\\n", "%TAG", "x%y",
}

// TestPyYAMLReadsWhatWeMean renders tricky strings into every free-text
// spot of the model and checks that cloud-init's own YAML loader reads back
// exactly the Go values, and that the schema still passes.
func TestPyYAMLReadsWhatWeMean(t *testing.T) {
	t.Parallel()
	ci, py := referee(t)

	strs := slices.Clone(trickyStrings)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("ab01 :#-?{}[],&*!|>'\"%@`\t\n\r\\=~<.+_yYnN\u0085\u2028\u00e9\U0001F600\ufeff\x01\x7f")
	for i := range 1500 {
		r := make([]rune, rng.IntN(4+i%40))
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		strs = append(strs, string(r))
	}

	cfg := minimalConfig()
	for _, s := range strs {
		cfg.RunCmd = append(cfg.RunCmd, cloudinit.Command{"echo", s})
		cfg.WriteFiles = append(cfg.WriteFiles, cloudinit.File{Path: "/tmp/x", Content: s})
	}
	// One-line fields: the apt source names and the sudo rule.
	cfg.Apt = &cloudinit.Apt{Sources: map[string]cloudinit.AptSource{}}
	cfg.Users = []cloudinit.User{{Name: "u"}}
	for _, name := range []string{"1.0", "1_0", "yes", "0644", "1e3", "null1", "2001-12-14"} {
		cfg.Apt.Sources[name] = cloudinit.AptSource{Source: "deb https://x.example/" + name + " stable main"}
	}
	for _, s := range []string{"=", "1_0", "yes", "ALL=(ALL) NOPASSWD:ALL"} {
		cfg.Users = append(cfg.Users, cloudinit.User{Name: "u", Sudo: s})
	}
	cfg.MaxSize = cloudinit.MaxDocument
	doc, err := cloudinit.Build(cfg)
	require.NoError(t, err)

	file := filepath.Join(t.TempDir(), "user-data")
	require.NoError(t, os.WriteFile(file, doc, 0o600))
	var got struct {
		Runcmd     [][]string
		WriteFiles []struct{ Content string } `json:"write_files"`
		Apt        struct {
			Sources map[string]struct{ Source string }
		}
		Users       []struct{ Sudo string }
		TypeProblem string
	}
	python(t, py, `
import json, sys
from cloudinit import safeyaml
with open(sys.argv[1], "rb") as fh:
    d = safeyaml.load(fh.read())
bad = [repr(a) for c in d["runcmd"] for a in c if not isinstance(a, str)]
for f in d["write_files"]:
    f.setdefault("content", "")
bad += [repr(f["content"]) for f in d["write_files"] if not isinstance(f["content"], str)]
bad += [repr(k) for k in d["apt"]["sources"] if not isinstance(k, str)]
bad += [repr(u.get("sudo")) for u in d["users"][1:] if not isinstance(u.get("sudo"), str)]
d["TypeProblem"] = ", ".join(bad)
print(json.dumps(d, default=repr))
`, &got, file)
	assert.Empty(t, got.TypeProblem, "PyYAML read these as non-strings")
	require.Len(t, got.Runcmd, len(strs))
	require.Len(t, got.WriteFiles, len(strs))
	for i, s := range strs {
		assert.Equal(t, []string{"echo", s}, got.Runcmd[i], "runcmd %d: %q", i, s)
		assert.Equal(t, s, got.WriteFiles[i].Content, "content %d: %q", i, s)
	}
	for name, src := range cfg.Apt.Sources {
		assert.Equal(t, src.Source, got.Apt.Sources[name].Source, "source name %q", name)
	}
	for i, u := range cfg.Users[1:] {
		assert.Equal(t, u.Sudo, got.Users[i+1].Sudo)
	}

	valid, out := schema(t, ci, doc)
	assert.True(t, valid, "cloud-init schema:\n%s", out)
}

// TestRFC3987AcceptsOurURLs checks the phone_home URLs Validate accepts
// against the library cloud-init's schema uses for format "uri".
func TestRFC3987AcceptsOurURLs(t *testing.T) {
	t.Parallel()
	_, py := referee(t)
	urls := []string{
		callbackURL,
		eventsURL,
		"http://10.0.0.1:8080/cb/$INSTANCE_ID",
		"http://[2001:db8::1]:8080/cb/$INSTANCE_ID?x=1#frag",
		"https://x.example/cb/a%20b/!$INSTANCE_ID/&'()*+,;=:@~._-",
		"https://x.example/?q=a/b?c",
	}
	for _, u := range urls {
		cfg := minimalConfig()
		cfg.PhoneHome.URL = u
		require.NoError(t, cfg.Validate(), u)
	}
	var got []bool
	python(t, py, `
import json, sys, rfc3987
out = []
for u in sys.argv[1:]:
    try:
        rfc3987.parse(u, rule="URI"); out.append(True)
    except ValueError:
        out.append(False)
print(json.dumps(out))
`, &got, urls...)
	for i, ok := range got {
		assert.True(t, ok, "rfc3987 refuses %s", urls[i])
	}
}

// kitchenSink sets every field of the model, with every encoding.
func kitchenSink(t *testing.T) cloudinit.Config {
	cfg := fullConfig()
	unlocked := false
	cfg.PackageUpgrade = true
	cfg.SSHPwauth = &unlocked
	cfg.Users = append(cfg.Users, cloudinit.User{
		Name: "deploy", Groups: []string{"adm", "docker"}, Shell: "/bin/sh", LockPasswd: &unlocked,
		SSHAuthorizedKeys: []string{testKey(7, ""), testKey(8, "second key")},
	})
	cfg.Apt.Sources["vendor"] = cloudinit.AptSource{
		Source: "deb [signed-by=$KEY_FILE] https://vendor.example/apt $RELEASE main",
		Key:    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGX0\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n",
	}
	cfg.Apt.Sources["mirror"] = cloudinit.AptSource{Source: "deb $MIRROR $RELEASE-backports main"}
	cfg.Packages = append(cfg.Packages, "nodejs=20.11.1-1nodesource1")
	cfg.WriteFiles = append(cfg.WriteFiles,
		cloudinit.File{Path: "/etc/hatchery/b64", Encoding: "b64", Content: "aGVsbG8K", Permissions: "0600", Owner: "root"},
		cloudinit.File{Path: "/etc/hatchery/gz", Encoding: "gzip+b64", Content: gzipB64(t, "hello\n"), Permissions: "01777"},
		cloudinit.File{Path: "/etc/hatchery/empty"},
	)
	cfg.PhoneHome.Post = []string{"pub_key_dsa", "pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"}
	cfg.PhoneHome.URL = "http://[2001:db8::1]:8080/cb/$INSTANCE_ID?x=1"
	cfg.PhoneHome.Tries = 3
	cfg.CACerts = &cloudinit.CACerts{RemoveDefaults: true, Trusted: []string{
		testCA(2, "first CA") + testCA(3, "second CA, same entry"), testCA(4, "third CA"),
	}}
	cfg.Apt.Sources["inline"] = cloudinit.AptSource{Source: "deb [signed-by=$KEY_FILE] https://repo.example/apt stable main", Key: repoKey()}
	cfg.Reporting = map[string]cloudinit.Reporter{
		"hatchery": {Type: cloudinit.ReporterWebhook, Endpoint: eventsURL, Timeout: 3, Retries: 2},
		"second":   {Type: cloudinit.ReporterWebhook, Endpoint: "http://127.0.0.1:8080/events", Timeout: 1},
	}
	return cfg
}
