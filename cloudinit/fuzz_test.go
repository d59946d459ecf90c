package cloudinit_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/hatchery-dev/hatchery/cloudinit"
)

// fuzzFields are the string inputs FuzzBuild puts into every free-form
// field of a Config, in this order.
type fuzzFields struct {
	hostname, name, group, shell, sudo, key, srcName, source, keyID, keyServer,
	pkg, path, content, owner, perms, arg0, arg1, url, post, secret,
	cert, endpoint string
}

func (f fuzzFields) config(tries int, flags uint8) cloudinit.Config {
	lock := flags&1 != 0
	enc := [...]string{"", "", "b64", "gzip+b64"}[flags>>1&3]
	return cloudinit.Config{
		Hostname: f.hostname,
		Users: []cloudinit.User{{
			Name: f.name, Groups: []string{f.group}, Shell: f.shell, Sudo: f.sudo,
			SSHAuthorizedKeys: []string{f.key}, LockPasswd: &lock,
		}},
		PackageUpdate:  flags&8 != 0,
		PackageUpgrade: flags&16 != 0,
		Apt: &cloudinit.Apt{Sources: map[string]cloudinit.AptSource{
			f.srcName: {Source: f.source, KeyID: f.keyID, KeyServer: f.keyServer},
		}},
		Packages: []string{f.pkg},
		WriteFiles: []cloudinit.File{{
			Path: f.path, Content: f.content, Owner: f.owner, Permissions: f.perms,
			Encoding: enc, Append: flags&32 != 0, Defer: flags&64 != 0,
		}},
		RunCmd:    []cloudinit.Command{{f.arg0, f.arg1}, cloudinit.Shell(f.arg1)},
		PhoneHome: &cloudinit.PhoneHome{URL: f.url, Post: []string{f.post}, Tries: tries},
		CACerts:   &cloudinit.CACerts{Trusted: []string{f.cert}},
		Reporting: map[string]cloudinit.Reporter{"hatchery": {Type: cloudinit.ReporterWebhook, Endpoint: f.endpoint, Timeout: tries % 7}},
		Secrets:   []string{f.secret},
		Compress:  flags&128 != 0,
	}
}

// FuzzBuild puts arbitrary strings into every field: Build either refuses
// them with one of its errors, or renders a document that parses back to
// exactly the values given, so no value can open a new YAML key or a new
// command.
func FuzzBuild(f *testing.F) {
	full := fullConfig()
	seed := fuzzFields{
		hostname: full.Hostname, name: "rachel", group: "sudo", shell: "/bin/bash", sudo: rachelSudo,
		key: full.Users[0].SSHAuthorizedKeys[0], srcName: "github-cli", source: ghSource, keyID: ghKeyID,
		keyServer: "keyserver.ubuntu.com", pkg: "git", path: "/home/rachel/.profile", content: pathSnippet,
		owner: "rachel:rachel", perms: "0644", arg0: "echo", arg1: "hello | world", url: callbackURL,
		post: "pub_key_ed25519", secret: "not-in-the-output", cert: testCA(1, "fuzz CA"), endpoint: eventsURL,
	}
	add := func(s fuzzFields, tries int, flags uint8) {
		f.Add(s.hostname, s.name, s.group, s.shell, s.sudo, s.key, s.srcName, s.source, s.keyID, s.keyServer,
			s.pkg, s.path, s.content, s.owner, s.perms, s.arg0, s.arg1, s.url, s.post, s.secret, s.cert, s.endpoint, tries, flags)
	}
	add(seed, 0, 1)
	add(seed, 10, 0xff&^6) // compressed, plain content
	for _, s := range []string{"=", "a\n- x", "x: y", "\nfoo", " lead", "a'; rm -rf / #", "${INSTANCE_ID}", "\"", "yes", "1_0", "\u2028", "\r\n"} {
		v := seed
		v.content, v.arg1, v.sudo = s, s, s
		add(v, 3, 8)
		v = seed
		v.url = callbackURL + s
		v.endpoint = eventsURL + s
		add(v, 1, 0)
	}
	b64 := seed
	b64.content = "aGVsbG8K"
	add(b64, 0, 2)

	f.Fuzz(func(t *testing.T, hostname, name, group, shell, sudo, key, srcName, source, keyID, keyServer,
		pkg, path, content, owner, perms, arg0, arg1, url, post, secret, cert, endpoint string, tries int, flags uint8) {
		in := fuzzFields{hostname, name, group, shell, sudo, key, srcName, source, keyID, keyServer,
			pkg, path, content, owner, perms, arg0, arg1, url, post, secret, cert, endpoint}
		cfg := in.config(tries, flags)
		out, err := cloudinit.Build(cfg)
		if err != nil {
			if !errors.Is(err, cloudinit.ErrInvalid) && !errors.Is(err, cloudinit.ErrSecret) && !errors.Is(err, cloudinit.ErrTooLarge) {
				t.Fatalf("Build: unexpected error kind: %v", err)
			}
			if out != nil {
				t.Fatal("Build returned output with an error")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Build accepted what Validate refuses: %v", err)
		}
		again, err := cloudinit.Build(in.config(tries, flags))
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("Build is not deterministic: %v", err)
		}
		if cfg.Compress && bytes.ContainsAny(out, "\r\n") {
			t.Fatal("compressed output is wrapped")
		}
		got, err := cloudinit.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Build()): %v\n%s", err, out)
		}
		want := in.config(tries, flags)
		want.Secrets, want.MaxSize, want.Compress = nil, 0, false
		if want.PhoneHome.Tries == 0 {
			want.PhoneHome.Tries = cloudinit.DefaultTries
		}
		if r := want.Reporting["hatchery"]; r.Timeout == 0 {
			r.Timeout = cloudinit.DefaultReporterTimeout
			want.Reporting["hatchery"] = r
		}
		assertEqualConfig(t, want, got, out)
	})
}

// FuzzParse feeds arbitrary user-data to Parse: it must not panic, and a
// Config it returns that Build accepts must render to a fixed point.
func FuzzParse(f *testing.F) {
	for _, g := range goldens {
		out, err := cloudinit.Build(g.cfg())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(out)
		c := g.cfg()
		c.Compress = true
		if out, err = cloudinit.Build(c); err != nil {
			f.Fatal(err)
		}
		f.Add(out)
	}
	for _, s := range []string{
		"#cloud-config\n", "#cloud-config\n{}\n", "#cloud-config\nhostname: a\n---\nhostname: b\n",
		"#cloud-config\nusers: [{name: a, lock_passwd: false, groups: []}]\npackages: []\n",
		"#cloud-config\nphone_home: {url: 'http://x/$INSTANCE_ID', post: [fqdn], tries: 0}\n",
		"#cloud-config\nruncmd: [[a, b], [\"=\"], []]\napt: {sources: {}}\n",
		"#cloud-config\nwrite_files: [{path: /x, content: !!binary aGk=}]\n",
		"#cloud-config\na: &a [*a]\n", "H4sIAAAAAAAA/w==", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := cloudinit.Parse(data)
		if err != nil {
			if !errors.Is(err, cloudinit.ErrInvalid) {
				t.Fatalf("Parse: error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		out, err := cloudinit.Build(cfg)
		if err != nil {
			return
		}
		back, err := cloudinit.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Build(Parse())): %v\n%s", err, out)
		}
		again, err := cloudinit.Build(back)
		if err != nil {
			t.Fatalf("Build refuses what it rendered: %v\n%s", err, out)
		}
		if !bytes.Equal(out, again) {
			t.Fatalf("not a fixed point:\n%s\n---\n%s", out, again)
		}
	})
}

func assertEqualConfig(t *testing.T, want, got cloudinit.Config, doc []byte) {
	t.Helper()
	w, err := cloudinit.Build(want)
	if err != nil {
		t.Fatalf("Build(want): %v", err)
	}
	g, err := cloudinit.Build(got)
	if err != nil {
		t.Fatalf("Build(got): %v", err)
	}
	if !bytes.Equal(w, g) || !equalConfig(want, got) {
		t.Fatalf("parsed back different values\nwant %#v\ngot  %#v\ndocument:\n%s", want, got, doc)
	}
}

func equalConfig(a, b cloudinit.Config) bool { return reflect.DeepEqual(a, b) }
