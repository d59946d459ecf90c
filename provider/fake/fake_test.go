package fake_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

func TestPhoneHomeLikeCloudInit(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{BootDelay: 150 * time.Millisecond}, nil)
	ps, s := b.create(t, "tenant-a", doc{Post: allPost, Hostname: "ignored-by-phone-home"})

	assert.Equal(t, "initializing", ps.Status)
	assert.Equal(t, "127.0.0.1", ps.IPv4)
	assert.Equal(t, s.Addr(), ps.SSHAddr)
	assert.Equal(t, ps.SSHAddr, ps.Addr())
	assert.Equal(t, map[string]string{"tenant": "tenant-a"}, ps.Labels)

	h := b.rc.wait(t, 1)[0]
	assert.Equal(t, http.MethodPost, h.Method)
	assert.Equal(t, "/cb/"+s.InstanceID(), h.Path, "$INSTANCE_ID substituted")
	assert.Equal(t, "token=abc123", h.Query)
	assert.Equal(t, "application/x-www-form-urlencoded", h.ContentType)
	// What Debian 12's cloud-init 22.4.2 sends through python-requests
	// (captured from a provider/nspawn server).
	assert.Equal(t, "Cloud-Init/22.4.2", h.UserAgent)
	assert.Equal(t, "gzip, deflate", h.Header.Get("Accept-Encoding"))
	assert.Equal(t, "*/*", h.Header.Get("Accept"))
	assert.Equal(t, []string{"keep-alive"}, h.Header.Values("Connection"))

	// The exact body: cloud-init's order, .pub lines with their newline
	// (%0A), a real DSA key as Debian 12 posts it, N/A for the key types
	// the server lacks, form encoding as Python's urlencode (space as +,
	// / as %2F). The keys' comments name the host name the cloud-config
	// set (ssh-keygen ran after set_hostname); hostname and fqdn are the
	// datasource's.
	line := s.HostKeyLine()
	require.True(t, strings.HasSuffix(line, " root@ignored-by-phone-home\n"))
	dsa := readFile(t, s.Path("/etc/ssh/ssh_host_dsa_key.pub"))
	require.True(t, strings.HasSuffix(dsa, " root@ignored-by-phone-home\n"))
	requireDSAKey(t, dsa)
	requireDSAKey(t, nspawnDSA) // the check holds for a real one
	enc := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D", " ", "+", "@", "%40", "\n", "%0A").Replace
	want := "pub_key_dsa=" + enc(dsa) + "&pub_key_rsa=N%2FA&pub_key_ecdsa=N%2FA&pub_key_ed25519=" + enc(line) +
		"&instance_id=" + s.InstanceID() + "&hostname=tenant-a&fqdn=tenant-a"
	assert.Equal(t, want, h.Body)

	form, err := url.ParseQuery(h.Body)
	require.NoError(t, err)
	k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(form.Get("pub_key_ed25519")))
	require.NoError(t, err)
	assert.Equal(t, s.HostKey().Marshal(), k.Marshal(), "posted key is the key SSH presents")
	assert.Equal(t, "i-"+ps.ID, form.Get("instance_id"))

	waitBooted(t, s)
	got, err := b.p.Get(context.Background(), ps.ID)
	require.NoError(t, err)
	assert.Equal(t, "running", got.Status)
	assert.Equal(t, 1, s.PhoneHomes())
}

// nspawnDSA is the pub_key_dsa a provider/nspawn server (Debian 12) posted.
const nspawnDSA = "ssh-dss AAAAB3NzaC1kc3MAAACBAPN5spgDs5QCsUjscDVHbEzc2hdzV6Z0rpqgAYYWbshBY4K7FvCPb69gK3SFdx131uIiNNBkmRkkAl787ZxZCsLY8Nq0/3oDIhVDKTA1+FSEOIvjpl+2P37F0iE/D4QMILIIguygFqZI7I9Tfi8TW7m16CqudVFsLD+zUuhyAZTBAAAAFQCF2fT5iwmmjmpHabDW5pPltBvHSwAAAIEAyM5r6f7vdA2Mc9kf6iJGyKP20MfCrPkG+as8dfa97Fxey7vG/QT5wT4bLIn2beMSgBUjDX/XwRJdYmc6/73ANYQFt8x7hhWcdOJ/s6KxKjhxFdsWOJ1TK+ONVOqmGykqjp95Ss+eMWSH8yM1oo1voO4aSOBZYRXsLU3cQVu9uIUAAACAAsr6uHtJCrQU69S2G2LASwXs6FZtaufONE+qdibDDsj52Iw2IpjrsuMKgfVsQZbVF9kBpTswqYXpSDKbLjy7E24WRpOgVyxhRPGeSBnRJSRQdfM2Rhw9PYLWW9n0bAvW77zwlzy+/FMhyp6ezA0zkc42ZCXSXfK5NKZnKqklt38= root@cap\n"

func TestPhoneHomePostList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, post string
		method     string
		want       func(s *fake.Server) string
	}{
		{"absent means all", "", http.MethodPost, func(s *fake.Server) string {
			return "pub_key_dsa=" + url.QueryEscape(readFile(t, s.Path("/etc/ssh/ssh_host_dsa_key.pub"))) +
				"&pub_key_rsa=N%2FA&pub_key_ecdsa=N%2FA&pub_key_ed25519=" +
				url.QueryEscape(s.HostKeyLine()) + "&instance_id=" + s.InstanceID() + "&hostname=srv&fqdn=srv"
		}},
		{"configured order, each once", "[hostname, instance_id, hostname]", http.MethodPost, func(s *fake.Server) string {
			return "hostname=srv&instance_id=" + s.InstanceID()
		}},
		{"unknown field is N/A", "[instance_id, fdqn]", http.MethodPost, func(s *fake.Server) string {
			return "instance_id=" + s.InstanceID() + "&fdqn=N%2FA"
		}},
		{"empty list is a GET", "[]", http.MethodGet, func(*fake.Server) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fake.Options{}, nil)
			_, s := b.create(t, "srv", doc{Post: tt.post})
			h := b.rc.wait(t, 1)[0]
			assert.Equal(t, tt.method, h.Method)
			assert.Equal(t, tt.want(s), h.Body)
			if tt.method == http.MethodGet {
				assert.Empty(t, h.ContentType)
			}
		})
	}
}

func TestPhoneHomeRetries(t *testing.T) {
	t.Parallel()
	t.Run("non-2xx retried until accepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{PhoneHomeInterval: 80 * time.Millisecond}, func(n int, _ http.ResponseWriter, _ *http.Request) int {
			if n < 3 {
				return []int{http.StatusInternalServerError, http.StatusNotFound}[n-1]
			}
			return http.StatusOK
		})
		_, s := b.create(t, "srv", doc{Tries: 5})
		waitBooted(t, s)
		hits := b.rc.Hits()
		require.Len(t, hits, 3)
		assert.Equal(t, 3, s.PhoneHomes())
		for i := 1; i < len(hits); i++ {
			assert.GreaterOrEqual(t, hits[i].At.Sub(hits[i-1].At), 80*time.Millisecond, "tries are PhoneHomeInterval apart")
			assert.Equal(t, hits[0].Body, hits[i].Body)
		}
	})
	t.Run("gives up after tries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, func(int, http.ResponseWriter, *http.Request) int { return http.StatusServiceUnavailable })
		_, s := b.create(t, "srv", doc{Tries: 2})
		waitBooted(t, s)
		assert.Len(t, b.rc.Hits(), 2)
		c := dial(t, s, "rachel", b.key)
		r := run(t, c, "cloud-init status", "")
		assert.Equal(t, result{"status: done\n", "", 0}, r, "phone_home failing does not fail cloud-init")
	})
	t.Run("unreachable URL retried", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, nil)
		_, s := b.create(t, "srv", doc{URL: "http://127.0.0.1:1/cb", Tries: 3})
		waitBooted(t, s)
		assert.Equal(t, 3, s.PhoneHomes())
	})
	t.Run("302 followed as GET without body", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, func(n int, w http.ResponseWriter, _ *http.Request) int {
			if n == 1 {
				w.Header().Set("Location", "/moved")
				return http.StatusFound
			}
			return http.StatusOK
		})
		_, s := b.create(t, "srv", doc{Tries: 3})
		waitBooted(t, s)
		hits := b.rc.Hits()
		require.Len(t, hits, 2)
		assert.Equal(t, http.MethodPost, hits[0].Method)
		assert.Equal(t, http.MethodGet, hits[1].Method)
		assert.Equal(t, "/moved", hits[1].Path)
		assert.Empty(t, hits[1].Body)
		assert.Equal(t, 1, s.PhoneHomes(), "the redirect is part of one try")
	})
	t.Run("unknown URL variable fails the module", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, nil)
		_, s := b.create(t, "srv", doc{URL: b.rc.srv.URL + "/cb/$HOSTNAME"})
		waitBooted(t, s)
		assert.Empty(t, b.rc.Hits())
		c := dial(t, s, "rachel", b.key)
		r := run(t, c, "cloud-init status --long", "")
		assert.Equal(t, 1, r.Code)
		assert.Contains(t, r.Stdout, "status: error\n")
		assert.Contains(t, r.Stdout, "KeyError('HOSTNAME')")
	})
	t.Run("braced variable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, nil)
		_, s := b.create(t, "srv", doc{URL: b.rc.srv.URL + "/cb/${INSTANCE_ID}/x"})
		assert.Equal(t, "/cb/"+s.InstanceID()+"/x", b.rc.wait(t, 1)[0].Path)
	})
}

func TestCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	valid := func(mut func(*doc)) []byte {
		d := doc{URL: b.url(), Key: b.key.line}
		if mut != nil {
			mut(&d)
		}
		return userData(d)
	}
	bad := []struct {
		name string
		req  provider.CreateRequest
	}{
		{"invalid name", provider.CreateRequest{Name: "Bad_Name", UserData: valid(nil)}},
		{"not cloud-config", provider.CreateRequest{Name: "a", UserData: []byte("#!/bin/sh\necho hi\n")}},
		{"unknown key", provider.CreateRequest{Name: "b", UserData: valid(func(d *doc) { d.Extra = "bootcmd: [x]\n" })}},
		{"no phone_home", provider.CreateRequest{Name: "c", UserData: []byte("#cloud-config\nusers:\n  - name: rachel\n    ssh_authorized_keys: [\"" + b.key.line + "\"]\n")}},
		{"no user with a key", provider.CreateRequest{Name: "d", UserData: []byte("#cloud-config\nusers:\n  - name: rachel\n    ssh_authorized_keys: [\"not a key\"]\nphone_home:\n  url: http://127.0.0.1/x\n")}},
		{"bad user name", provider.CreateRequest{Name: "e", UserData: []byte("#cloud-config\nusers:\n  - name: \"a;b\"\n    ssh_authorized_keys: [\"" + b.key.line + "\"]\nphone_home:\n  url: http://127.0.0.1/x\n")}},
		{"relative write_files path", provider.CreateRequest{Name: "f", UserData: valid(func(d *doc) { d.Extra = "write_files:\n  - path: etc/x\n" })}},
	}
	for _, tt := range bad {
		_, err := b.p.Create(ctx, tt.req)
		assert.ErrorIs(t, err, provider.ErrInvalid, tt.name)
	}
	assert.Empty(t, b.p.Servers(), "no server for a bad request")

	// Same name twice: adopted, not booted twice.
	first, err := b.p.Create(ctx, provider.CreateRequest{Name: "srv", UserData: valid(nil)})
	require.NoError(t, err)
	again, err := b.p.Create(ctx, provider.CreateRequest{Name: "srv", UserData: valid(nil)})
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Equal(t, first.SSHAddr, again.SSHAddr)
	require.Len(t, b.p.Servers(), 1)
	waitBooted(t, b.p.Servers()[0])
	assert.Len(t, b.rc.Hits(), 1, "one boot, one phone_home")

	other, err := b.p.Create(ctx, provider.CreateRequest{Name: "srv2", UserData: valid(nil)})
	require.NoError(t, err)
	assert.NotEqual(t, first.ID, other.ID)
	servers := b.p.Servers()
	require.Len(t, servers, 2)
	assert.Equal(t, []string{first.ID, other.ID}, []string{servers[0].ID(), servers[1].ID()})
	byName, ok := b.p.ServerByName("srv2")
	require.True(t, ok)
	assert.Equal(t, other.ID, byName.ID())

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.p.Create(cctx, provider.CreateRequest{Name: "srv3", UserData: valid(nil)})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestSSHAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})

	c := dial(t, s, "rachel", b.key)
	assert.Equal(t, result{"ok\n", "", 0}, run(t, c, "echo ok", ""))

	_, err := dialErr(s, "rachel", newKey(t))
	assert.ErrorContains(t, err, "unable to authenticate", "a key not in user-data is refused")
	_, err = dialErr(s, "root", b.key)
	assert.ErrorContains(t, err, "unable to authenticate", "a user not in user-data is refused")

	sess, err := c.NewSession()
	require.NoError(t, err)
	defer sess.Close()
	assert.Error(t, sess.RequestPty("xterm", 24, 80, gossh.TerminalModes{}), "no pty")
	assert.Error(t, sess.Shell(), "no shell")

	// The presented host key is the server's own and is stable.
	assert.Equal(t, "ssh-ed25519", s.HostKey().Type())
	data, err := os.ReadFile(s.Path("/etc/ssh/ssh_host_ed25519_key.pub"))
	require.NoError(t, err)
	assert.Equal(t, s.HostKeyLine(), string(data))
}

func TestCommandsRunInSandbox(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})
	c := dial(t, s, "rachel", b.key)

	r := run(t, c, `umask 077 && mkdir -p /home/rachel/app && cat > "/home/rachel/app/.env" && echo "$HOME" && pwd`, "API_KEY=s3cret\n")
	require.Equal(t, 0, r.Code, r.Stderr)
	assert.Equal(t, s.Path("/home/rachel")+"\n"+s.Path("/home/rachel")+"\n", r.Stdout)
	data, err := os.ReadFile(s.Path("/home/rachel/app/.env"))
	require.NoError(t, err)
	assert.Equal(t, "API_KEY=s3cret\n", string(data), "stdin reaches the command untouched")
	fi, err := os.Stat(s.Path("/home/rachel/app/.env"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// stdout, stderr and the exit status come back
	r = run(t, c, "echo out; echo err >&2; exit 3", "")
	assert.Equal(t, result{"out\n", "err\n", 3}, r)

	// stdin is not waited for: the client never closes it
	sess, err := c.NewSession()
	require.NoError(t, err)
	_, err = sess.StdinPipe()
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- sess.Run("echo quick") }()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the session waited for stdin's EOF")
	}
	sess.Close()

	// the cloud-config's write_files and users are on the simulated disk
	data, err = os.ReadFile(s.Path("/etc/rachel8/config.toml"))
	require.NoError(t, err)
	assert.Equal(t, "name = \"rachel8\"\n", string(data))
	fi, err = os.Stat(s.Path("/etc/rachel8/config.toml"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	assert.Equal(t, "rachel:rachel", s.Owner("/etc/rachel8/config.toml"))
	data, err = os.ReadFile(s.Path("/opt/rachel8/hello.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(data))
	assert.Equal(t, "root:root", s.Owner("/opt/rachel8/hello.txt"))
	data, err = os.ReadFile(s.Path("/home/rachel/.ssh/authorized_keys"))
	require.NoError(t, err)
	assert.Equal(t, b.key.line+"\n", string(data))
	assert.Equal(t, "rachel:rachel", s.Owner("/home/rachel"))
	assert.Equal(t, "guest:guest", s.Owner("/home/guest/.ssh/authorized_keys"))
	r = run(t, c, "cat /etc/hostname", "")
	assert.Equal(t, "srv\n", r.Stdout)

	assert.Equal(t, []string{
		`umask 077 && mkdir -p /home/rachel/app && cat > "/home/rachel/app/.env" && echo "$HOME" && pwd`,
		"echo out; echo err >&2; exit 3",
		"echo quick",
		"cat /etc/hostname",
	}, s.Commands(), "commands as the client sent them")
	assert.Equal(t, 4, s.Execs())

	assert.Equal(t, filepath.Join(s.Dir(), "fs", "home", "rachel", ".env"), s.Path("/home/rachel/.env"))
	assert.Equal(t, filepath.Join(s.Dir(), "fs", "etc", "passwd"), s.Path("/../../etc/passwd"), "Path never leaves the sandbox")
}

func TestCommandKilledWhenConnectionEnds(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})
	c := dial(t, s, "rachel", b.key)
	go func() {
		_, _ = runErr(c, "echo started > /home/rachel/started; sleep 30; echo late > /home/rachel/late", "")
	}()
	require.Eventually(t, func() bool {
		_, err := os.Stat(s.Path("/home/rachel/started"))
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close())
	// The killed command never writes its last file; a new connection works.
	c2 := dial(t, s, "rachel", b.key)
	r := run(t, c2, "sleep 0.2; test -e /home/rachel/late || echo gone", "")
	assert.Equal(t, "gone\n", r.Stdout)
}

func TestSudo(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})
	rachel := dial(t, s, "rachel", b.key)
	guest := dial(t, s, "guest", b.key)

	r := run(t, rachel, `sudo -n sh -c 'echo "$USER $HOME $SUDO_USER"; printf x > /root/x'`, "")
	assert.Equal(t, result{"root " + s.Path("/root") + " rachel\n", "", 0}, r)
	assert.FileExists(t, s.Path("/root/x"))

	r = run(t, rachel, `sudo -n -u guest sh -c 'echo "$USER $HOME"'`, "")
	assert.Equal(t, result{"guest " + s.Path("/home/guest") + "\n", "", 0}, r)

	r = run(t, guest, "sudo -n true", "")
	assert.Equal(t, result{"", "sudo: a password is required\n", 1}, r, "no NOPASSWD rule: sudo -n fails")

	r = run(t, rachel, "sudo -n -u nobody true", "")
	assert.Equal(t, 1, r.Code)
	assert.Contains(t, r.Stderr, "unknown user nobody")
}

func TestChown(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})
	rachel := dial(t, s, "rachel", b.key)
	run(t, rachel, "mkdir -p /home/rachel/app/sub && touch /home/rachel/app/sub/f /home/rachel/.env", "")

	tests := []struct {
		cmd  string
		code int
		err  string
	}{
		{"sudo -n chown rachel:rachel /home/rachel/.env", 0, ""},
		{"sudo -n chown -R root:sudo /home/rachel/app", 0, ""},
		{"sudo -n chown nosuch /home/rachel/.env", 1, "chown: invalid user: 'nosuch'"},
		{"sudo -n chown rachel:nosuch /home/rachel/.env", 1, "chown: invalid group: 'rachel:nosuch'"},
		{"sudo -n chown rachel /home/rachel/missing", 1, "No such file or directory"},
		{"chown guest /home/rachel/.env", 1, "Operation not permitted"},
		{"chown rachel:sudo /home/rachel/.env", 0, ""},
		{"sudo -n chown -x rachel /home/rachel/.env", 1, "not simulated"},
	}
	for _, tt := range tests {
		r := run(t, rachel, tt.cmd, "")
		assert.Equal(t, tt.code, r.Code, tt.cmd)
		assert.Contains(t, r.Stderr, tt.err, tt.cmd)
	}
	assert.Equal(t, "rachel:sudo", s.Owner("/home/rachel/.env"))
	assert.Equal(t, "root:sudo", s.Owner("/home/rachel/app/sub/f"), "-R applies below")
	assert.Equal(t, "", s.Owner("/home/rachel/unknown"))
	st, err := os.Stat(s.Path("/home/rachel/.env"))
	require.NoError(t, err)
	assert.NotNil(t, st, "the real file is untouched")
}

const unit = `[Unit]
Description=Rachel8 agent
ConditionPathExists=/home/rachel/app/.env

[Service]
User=rachel
WorkingDirectory=/home/rachel/app
ExecStart=/home/rachel/.bun/bin/bun run start
Restart=always

[Install]
WantedBy=multi-user.target
`

func installUnit(t *testing.T, c *gossh.Client, content string) {
	t.Helper()
	r := run(t, c, "sudo -n sh -c 'umask 022 && cat > /etc/systemd/system/rachel8.service'", content)
	require.Equal(t, 0, r.Code, r.Stderr)
}

func TestSystemd(t *testing.T) {
	t.Parallel()

	t.Run("enable and start", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, nil)
		_, s := b.create(t, "srv", doc{})
		c := dial(t, s, "rachel", b.key)
		installUnit(t, c, unit)
		run(t, c, "mkdir -p /home/rachel/app && touch /home/rachel/app/.env", "")

		for _, cmd := range []string{"sudo -n systemctl daemon-reload", "sudo -n systemctl enable rachel8.service", "sudo -n systemctl start rachel8"} {
			r := run(t, c, cmd, "")
			require.Equal(t, 0, r.Code, "%s: %s", cmd, r.Stderr)
		}
		assert.Equal(t, fake.UnitState{Enabled: true, Active: true}, s.Unit("rachel8"))
		assert.Equal(t, result{"active\n", "", 0}, run(t, c, "systemctl is-active rachel8.service", ""))
		assert.Equal(t, result{"", "", 0}, run(t, c, "systemctl is-active --quiet rachel8.service", ""))
		assert.Equal(t, result{"enabled\n", "", 0}, run(t, c, "systemctl is-enabled rachel8", ""))
		r := run(t, c, "systemctl status rachel8 --no-pager", "")
		assert.Equal(t, 0, r.Code)
		assert.Contains(t, r.Stdout, "● rachel8.service - Rachel8 agent\n")
		assert.Contains(t, r.Stdout, "Active: active (running) since ")

		// The unit's own process has a line in its journal, as a real
		// one's output has (its name: the program's base name); the fake
		// runs nothing, and says so there.
		r = run(t, c, "sudo -n journalctl -u rachel8 -n 5 --no-pager", "")
		assert.Equal(t, 0, r.Code)
		assert.Regexp(t, `^\w{3} \d\d \d\d:\d\d:\d\d srv systemd\[1\]: Started rachel8.service - Rachel8 agent\.\n`+
			`\w{3} \d\d \d\d:\d\d:\d\d srv bun\[\d+\]: \[fake provider: /home/rachel/.bun/bin/bun is not run; its output would be here\]\n$`, r.Stdout)

		// -o cat prints the messages alone; several -u merge their units.
		r = run(t, c, "sudo -n journalctl -u rachel8 -u cloud-final.service -o cat --no-pager", "")
		assert.Equal(t, 0, r.Code, r.Stderr)
		assert.Contains(t, r.Stdout, "Started rachel8.service - Rachel8 agent.\n")
		assert.Contains(t, r.Stdout, "Finished cloud-final.service - Execute cloud user/final scripts.\n")
		assert.NotContains(t, r.Stdout, "systemd[1]:")

		r = run(t, c, "sudo -n systemctl restart rachel8 && sudo -n journalctl -u rachel8 --no-pager -n 3", "")
		assert.Equal(t, 0, r.Code, r.Stderr)
		assert.Contains(t, r.Stdout, "Stopped rachel8.service - Rachel8 agent.")
		assert.Equal(t, 3, strings.Count(r.Stdout, "\n"), "-n limits the lines")

		r = run(t, c, "sudo -n systemctl stop rachel8 && systemctl is-active rachel8", "")
		assert.Equal(t, result{"inactive\n", "", 3}, r)
		r = run(t, c, "sudo -n systemctl disable --now rachel8", "")
		assert.Equal(t, 0, r.Code, r.Stderr)
		assert.Equal(t, fake.UnitState{}, s.Unit("rachel8.service"))
	})

	t.Run("errors as systemd reports them", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, nil)
		_, s := b.create(t, "srv", doc{})
		c := dial(t, s, "rachel", b.key)
		tests := []struct {
			name, cmd string
			want      result
		}{
			// What systemctl 252 says to a user who is not root on an
			// image without polkit (provider/nspawn's Debian 12).
			{"not root: start", "systemctl start rachel8", result{"", "Failed to start rachel8.service: Access denied\n" +
				"See system logs and 'systemctl status rachel8.service' for details.\n", 4}},
			{"not root: stop", "systemctl stop rachel8", result{"", "Failed to stop rachel8.service: Access denied\n" +
				"See system logs and 'systemctl status rachel8.service' for details.\n", 4}},
			{"not root: restart", "systemctl restart rachel8", result{"", "Failed to restart rachel8.service: Access denied\n" +
				"See system logs and 'systemctl status rachel8.service' for details.\n", 4}},
			{"not root: daemon-reload", "systemctl daemon-reload", result{"", "Reload daemon failed: Access denied\n", 1}},
			{"not root: enable", "systemctl enable rachel8", result{"", "Failed to enable unit: Access denied\n", 1}},
			{"not root: disable", "systemctl disable rachel8", result{"", "Failed to disable unit: Access denied\n", 1}},
			{"not root: two units", "systemctl stop a b.service", result{"", "Failed to stop a.service: Access denied\n" +
				"See system logs and 'systemctl status a.service' for details.\n" +
				"Failed to stop b.service: Access denied\n" +
				"See system logs and 'systemctl status b.service' for details.\n", 4}},
			{"no unit file", "sudo -n systemctl start rachel8", result{"", "Failed to start rachel8.service: Unit rachel8.service not found.\n", 5}},
			{"enable without unit file", "sudo -n systemctl enable rachel8", result{"", "Failed to enable unit: Unit file rachel8.service does not exist.\n", 1}},
			{"unknown verb", "systemctl frobnicate x", result{"", "Unknown command verb frobnicate.\n", 1}},
			{"missing unit", "systemctl is-active", result{"", "Too few arguments.\n", 1}},
			{"unknown unit is inactive", "systemctl is-active nope", result{"inactive\n", "", 3}},
		}
		for _, tt := range tests {
			assert.Equal(t, tt.want, run(t, c, tt.cmd, ""), tt.name)
		}
	})

	t.Run("unmet condition leaves the unit inactive", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, nil)
		_, s := b.create(t, "srv", doc{})
		c := dial(t, s, "rachel", b.key)
		installUnit(t, c, unit)
		r := run(t, c, "sudo -n systemctl enable --now rachel8", "")
		assert.Equal(t, 0, r.Code, "start exits 0 when a condition fails, as systemd's does: %s", r.Stderr)
		assert.Equal(t, fake.UnitState{Enabled: true}, s.Unit("rachel8"))
		assert.Equal(t, result{"inactive\n", "", 3}, run(t, c, "systemctl is-active rachel8", ""))
		assert.Contains(t, s.Journal("rachel8"), "rachel8.service - Rachel8 agent was skipped because of an unmet condition check (ConditionPathExists=/home/rachel/app/.env).")

		// once the file exists (in the sandbox), the unit starts
		run(t, c, "mkdir -p /home/rachel/app && touch /home/rachel/app/.env", "")
		r = run(t, c, "sudo -n systemctl restart rachel8 && systemctl is-active rachel8", "")
		assert.Equal(t, result{"active\n", "", 0}, r)
	})

	// What systemd 252 does with what a unit file names, as a
	// provider/nspawn server (Debian 12) did it: some settings are checked
	// when the unit is loaded (a WorkingDirectory= that is not absolute,
	// as an unrendered placeholder is, keeps the unit from starting;
	// a ConditionPathExists= or EnvironmentFile= that is not absolute is
	// only ignored), the others when its process is spawned (start exits
	// 0, then the unit fails with the exec step's status).
	t.Run("settings systemd checks", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, nil)
		_, s := b.create(t, "srv", doc{})
		c := dial(t, s, "rachel", b.key)
		const head = "[Unit]\nDescription=x\n[Service]\n"
		tests := []struct {
			name, unit string
			start      result
			active     string
			journal    []string // without the time and host
		}{
			{"WorkingDirectory placeholder", head + "WorkingDirectory=__WORKING_DIR__\nExecStart=/bin/sleep 1000\n",
				result{"", "Failed to start rachel8.service: Unit rachel8.service has a bad unit file setting.\n" +
					"See system logs and 'systemctl status rachel8.service' for details.\n", 1}, "inactive", []string{
					"systemd[1]: /etc/systemd/system/rachel8.service:4: WorkingDirectory= path is not absolute: __WORKING_DIR__",
					"systemd[1]: rachel8.service: Unit configuration has fatal error, unit will not be started.",
				}},
			{"User placeholder", head + "User=__USER__\nExecStart=/bin/sleep 1000\n", result{}, "failed", []string{
				"systemd[1]: Started rachel8.service - x.",
				"systemd[1]: rachel8.service: Main process exited, code=exited, status=217/USER",
				"systemd[1]: rachel8.service: Failed with result 'exit-code'.",
			}},
			{"no such user", head + "User=nosuchuser\nExecStart=/bin/sleep 1000\n", result{}, "failed", []string{
				"systemd[1]: Started rachel8.service - x.",
				"systemd[1]: rachel8.service: Main process exited, code=exited, status=217/USER",
				"systemd[1]: rachel8.service: Failed with result 'exit-code'.",
			}},
			{"Group placeholder", head + "Group=__GROUP__\nExecStart=/bin/sleep 1000\n", result{}, "failed", []string{
				"systemd[1]: Started rachel8.service - x.",
				"systemd[1]: rachel8.service: Main process exited, code=exited, status=216/GROUP",
				"systemd[1]: rachel8.service: Failed with result 'exit-code'.",
			}},
			{"no such directory", head + "WorkingDirectory=/nonexistent\nExecStart=/bin/sleep 1000\n", result{}, "failed", []string{
				"systemd[1]: Started rachel8.service - x.",
				"systemd[1]: rachel8.service: Main process exited, code=exited, status=200/CHDIR",
				"systemd[1]: rachel8.service: Failed with result 'exit-code'.",
			}},
			{"ExecStart placeholder", head + "ExecStart=__BUN_PATH__ run x\n", result{}, "failed", []string{
				"systemd[1]: Started rachel8.service - x.",
				"systemd[1]: rachel8.service: Main process exited, code=exited, status=203/EXEC",
				"systemd[1]: rachel8.service: Failed with result 'exit-code'.",
			}},
			{"relative condition and environment file", "[Unit]\nDescription=x\nConditionPathExists=__WORKING_DIR__/.env\n[Service]\n" +
				"EnvironmentFile=__WORKING_DIR__/.env\nExecStart=/bin/sleep 1000\n", result{}, "active", []string{
				"systemd[1]: /etc/systemd/system/rachel8.service:3: ConditionPathExists= path is not absolute, ignoring: __WORKING_DIR__/.env",
				"systemd[1]: /etc/systemd/system/rachel8.service:5: EnvironmentFile= path is not absolute, ignoring: __WORKING_DIR__/.env",
				"systemd[1]: Started rachel8.service - x.",
				"sleep[N]: [fake provider: /bin/sleep is not run; its output would be here]",
			}},
			{"users and groups of the image", head + "User=www-data\nGroup=adm\nSyslogIdentifier=app\nExecStart=/bin/sleep 1000\n", result{}, "active", []string{
				"systemd[1]: Started rachel8.service - x.",
				"app[N]: [fake provider: /bin/sleep is not run; its output would be here]",
			}},
		}
		pid := regexp.MustCompile(`\[\d+\]: \[fake`)
		for _, tt := range tests {
			run(t, c, "sudo -n systemctl stop rachel8; sudo -n rm -f /etc/systemd/system/rachel8.service", "")
			_ = os.Remove(filepath.Join(s.Dir(), "state", "journal", "rachel8.service"))
			installUnit(t, c, tt.unit)
			require.Equal(t, 0, run(t, c, "sudo -n systemctl daemon-reload", "").Code)
			assert.Equal(t, tt.start, run(t, c, "sudo -n systemctl start rachel8", ""), tt.name)
			assert.Equal(t, tt.active+"\n", run(t, c, "systemctl is-active rachel8", "").Stdout, tt.name)
			var got []string
			for l := range strings.Lines(s.Journal("rachel8")) {
				f := strings.SplitN(strings.TrimSuffix(l, "\n"), " ", 5) // Mon DD HH:MM:SS host message
				require.Len(t, f, 5, l)
				assert.Equal(t, "srv", f[3])
				got = append(got, pid.ReplaceAllString(f[4], "[N]: [fake"))
			}
			assert.Equal(t, tt.journal, got, tt.name)
		}
	})

	t.Run("changed unit needs daemon-reload", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fake.Options{}, nil)
		_, s := b.create(t, "srv", doc{})
		c := dial(t, s, "rachel", b.key)
		noCond := strings.Replace(unit, "ConditionPathExists=/home/rachel/app/.env\n", "", 1)
		installUnit(t, c, noCond)
		require.Equal(t, 0, run(t, c, "sudo -n systemctl start rachel8", "").Code)
		installUnit(t, c, strings.Replace(noCond, "Rachel8 agent", "Rachel8 v2", 1))
		r := run(t, c, "sudo -n systemctl restart rachel8", "")
		assert.Contains(t, r.Stderr, "changed on disk. Run 'systemctl daemon-reload' to reload units.")
		assert.Contains(t, s.Journal("rachel8"), "Started rachel8.service - Rachel8 agent.", "old content still in use")
		r = run(t, c, "sudo -n systemctl daemon-reload && sudo -n systemctl restart rachel8", "")
		assert.Equal(t, result{"", "", 0}, r)
		assert.Contains(t, s.Journal("rachel8"), "Started rachel8.service - Rachel8 v2.")
	})
}

func TestJournalPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})
	c := dial(t, s, "rachel", b.key)
	// As journalctl 252 prints it (provider/nspawn's Debian 12): the
	// hint on stderr, the (empty) journal on stdout.
	r := run(t, c, "journalctl -u rachel8 -n 50 --no-pager", "")
	assert.Equal(t, result{"-- No entries --\n", "Hint: You are currently not seeing messages from other users and the system.\n" +
		"      Users in groups 'adm', 'systemd-journal' can see all messages.\n" +
		"      Pass -q to turn off this notice.\n", 0}, r, "rachel is not in adm or systemd-journal")
	assert.Equal(t, result{"-- No entries --\n", "", 0}, run(t, c, "journalctl -q -u rachel8 --no-pager", ""))
	r = run(t, c, "sudo -n journalctl -u rachel8 -n 50 --no-pager", "")
	assert.Equal(t, result{"-- No entries --\n", "", 0}, r)
}

func TestCloudInitStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{BootDelay: time.Second}, nil)
	_, s := b.create(t, "srv", doc{})
	s.Isolated() // the namespace, if any, is set up before the clock matters
	c := dial(t, s, "rachel", b.key)
	r := run(t, c, "cloud-init status", "")
	assert.Equal(t, result{"status: running\n", "", 0}, r, "before boot is done")
	r = run(t, c, "cloud-init status --wait --long", "")
	assert.Equal(t, 0, r.Code)
	assert.Regexp(t, `^\.+\nstatus: done\nboot_status_code: enabled-by-generator\nlast_update: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\ndetail:\nDataSourceHetzner\n$`, r.Stdout)
	assert.Len(t, b.rc.Hits(), 1, "phone_home came before cloud-init was done")
}

func TestFaults(t *testing.T) {
	t.Parallel()
	faults := func(f fake.Faults) fake.Options {
		return fake.Options{Faults: func(name string) fake.Faults {
			if name == "bad" {
				return f
			}
			return fake.Faults{}
		}}
	}

	t.Run("CreateErr", func(t *testing.T) {
		t.Parallel()
		boom := errors.Join(provider.ErrQuota, errors.New("limit reached"))
		b := setup(t, faults(fake.Faults{CreateErr: boom}), nil)
		_, err := b.p.Create(context.Background(), provider.CreateRequest{Name: "bad", UserData: userData(doc{URL: b.url(), Key: b.key.line})})
		assert.Same(t, boom, err)
		assert.Empty(t, b.p.Servers())
		b.create(t, "good", doc{})
	})

	t.Run("NoPhoneHome", func(t *testing.T) {
		t.Parallel()
		b := setup(t, faults(fake.Faults{NoPhoneHome: true}), nil)
		_, s := b.create(t, "bad", doc{})
		waitBooted(t, s)
		assert.Empty(t, b.rc.Hits())
		assert.Equal(t, 0, s.PhoneHomes())
		c := dial(t, s, "rachel", b.key)
		assert.Equal(t, result{"status: done\n", "", 0}, run(t, c, "cloud-init status", ""))
	})

	t.Run("WrongHostKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t, faults(fake.Faults{WrongHostKey: true}), nil)
		_, s := b.create(t, "bad", doc{})
		form, err := url.ParseQuery(b.rc.wait(t, 1)[0].Body)
		require.NoError(t, err)
		posted, _, _, _, err := gossh.ParseAuthorizedKey([]byte(form.Get("pub_key_ed25519")))
		require.NoError(t, err)
		assert.Equal(t, "ssh-ed25519", posted.Type())
		assert.NotEqual(t, s.HostKey().Marshal(), posted.Marshal())
		// a client pinning the posted key refuses the server
		_, err = gossh.Dial("tcp", s.Addr(), &gossh.ClientConfig{
			User: "rachel", Auth: []gossh.AuthMethod{gossh.PublicKeys(b.key.signer)},
			HostKeyCallback: gossh.FixedHostKey(posted), Timeout: 5 * time.Second,
		})
		assert.ErrorContains(t, err, "host key mismatch")
	})

	t.Run("DropAfter", func(t *testing.T) {
		t.Parallel()
		b := setup(t, faults(fake.Faults{DropAfter: 2}), nil)
		_, s := b.create(t, "bad", doc{})
		c := dial(t, s, "rachel", b.key)
		run(t, c, "echo 1 > /home/rachel/one", "")
		run(t, c, "echo 2 > /home/rachel/two", "")
		_, err := runErr(c, "echo 3 > /home/rachel/three", "")
		assert.Error(t, err, "the third session's connection is cut")
		assert.NoFileExists(t, s.Path("/home/rachel/three"), "the command did not run")
		_, err = c.NewSession()
		assert.Error(t, err, "the connection is gone")
		// once only: a new connection works
		c2 := dial(t, s, "rachel", b.key)
		assert.Equal(t, "ok\n", run(t, c2, "echo ok", "").Stdout)
		assert.Equal(t, 4, s.Execs())
	})

	t.Run("UnitFails", func(t *testing.T) {
		t.Parallel()
		b := setup(t, faults(fake.Faults{UnitFails: true}), nil)
		_, s := b.create(t, "bad", doc{})
		c := dial(t, s, "rachel", b.key)
		installUnit(t, c, strings.Replace(unit, "ConditionPathExists=/home/rachel/app/.env\n", "", 1))
		run(t, c, "mkdir -p /home/rachel/app", "")
		r := run(t, c, "sudo -n systemctl enable rachel8 && sudo -n systemctl start rachel8", "")
		assert.Equal(t, 0, r.Code, r.Stderr)
		assert.Equal(t, result{"failed\n", "", 3}, run(t, c, "systemctl is-active rachel8", ""))
		assert.Equal(t, fake.UnitState{Enabled: true, Failed: true}, s.Unit("rachel8"))
		r = run(t, c, "sudo -n journalctl -u rachel8 -n 50 --no-pager", "")
		assert.Contains(t, r.Stdout, "bun[")
		assert.Contains(t, r.Stdout, "rachel8.service: Main process exited, code=exited, status=1/FAILURE\n")
		assert.Contains(t, r.Stdout, "rachel8.service: Failed with result 'exit-code'.\n")
	})

	t.Run("CloudInitError", func(t *testing.T) {
		t.Parallel()
		b := setup(t, faults(fake.Faults{CloudInitError: true}), nil)
		_, s := b.create(t, "bad", doc{})
		b.rc.wait(t, 1)
		waitBooted(t, s)
		c := dial(t, s, "rachel", b.key)
		r := run(t, c, "cloud-init status --wait --long", "")
		assert.Equal(t, 1, r.Code)
		assert.Contains(t, r.Stdout, "status: error\n")
		assert.Contains(t, r.Stdout, "Runparts: 1 failures (runcmd)")
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	ctx := context.Background()
	ps, s := b.create(t, "srv", doc{})
	c := dial(t, s, "rachel", b.key)
	run(t, c, "touch /home/rachel/x", "")

	_, err := b.p.Get(ctx, "nope")
	assert.ErrorIs(t, err, provider.ErrNotFound)

	require.NoError(t, b.p.Delete(ctx, ps.ID))
	_, err = b.p.Get(ctx, ps.ID)
	assert.ErrorIs(t, err, provider.ErrNotFound)
	_, ok := b.p.Server(ps.ID)
	assert.False(t, ok)
	assert.NoDirExists(t, s.Dir(), "sandbox removed")
	_, err = c.NewSession()
	assert.Error(t, err, "connections closed")
	_, err = dialErr(s, "rachel", b.key)
	assert.Error(t, err, "listener closed")
	assert.NoError(t, b.p.Delete(ctx, ps.ID), "idempotent")
	assert.NoError(t, b.p.Delete(ctx, "unknown"))
	assert.Equal(t, "off", s.Info().Status)

	// the name is free again: a new server, a new ID
	ps2, _ := b.create(t, "srv", doc{})
	assert.NotEqual(t, ps.ID, ps2.ID)
}

func TestKeep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, fake.Options{Dir: dir, Keep: true}, nil)
	ps, s := b.create(t, "srv", doc{})
	require.NoError(t, b.p.Delete(context.Background(), ps.ID))
	assert.FileExists(t, s.Path("/etc/rachel8/config.toml"))
	assert.True(t, strings.HasPrefix(s.Dir(), dir))
}

func TestCloseRefusesCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	require.NoError(t, b.p.Close())
	_, err := b.p.Create(context.Background(), provider.CreateRequest{Name: "srv", UserData: userData(doc{URL: b.url(), Key: b.key.line})})
	assert.ErrorIs(t, err, fake.ErrClosed)
	assert.NotErrorIs(t, err, provider.ErrUnavailable, "not a capacity error: no fallback to another location")
}

func TestTempDirRemovedByClose(t *testing.T) {
	t.Parallel()
	p := fake.New(fake.Options{PhoneHomeInterval: 50 * time.Millisecond})
	rc := newReceiver(t, nil)
	k := newKey(t)
	ps, err := p.Create(context.Background(), provider.CreateRequest{Name: "srv", UserData: userData(doc{URL: rc.srv.URL, Key: k.line})})
	require.NoError(t, err)
	s, _ := p.Server(ps.ID)
	parent := filepath.Dir(s.Dir())
	assert.DirExists(t, parent)
	require.NoError(t, p.Close())
	assert.NoDirExists(t, parent)
	require.NoError(t, p.Close(), "idempotent")
}

func TestCreateFromBuild(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	for _, compress := range []bool{false, true} {
		name := "plain"
		if compress {
			name = "compressed"
		}
		ud, err := cloudinit.Build(cloudinit.Config{
			Hostname: name,
			Users: []cloudinit.User{{
				Name: "rachel", Groups: []string{"adm"}, Sudo: "ALL=(ALL) NOPASSWD:ALL",
				SSHAuthorizedKeys: []string{b.key.line},
			}},
			WriteFiles: []cloudinit.File{{Path: "/etc/motd", Content: "hi\n", Permissions: "0644"}},
			PhoneHome:  &cloudinit.PhoneHome{URL: b.url(), Post: []string{"instance_id", "hostname"}, Tries: 3},
			Compress:   compress,
		})
		require.NoError(t, err)
		ps, err := b.p.Create(context.Background(), provider.CreateRequest{Name: name, UserData: ud})
		require.NoError(t, err, name)
		s, _ := b.p.Server(ps.ID)
		waitBooted(t, s)
		c := dial(t, s, "rachel", b.key)
		assert.Equal(t, "hi\n", run(t, c, "cat /etc/motd", "").Stdout, name)
		// rachel is in adm: she reads the journal without sudo
		assert.Equal(t, "-- No entries --\n", run(t, c, "journalctl -u x --no-pager", "").Stdout, name)
	}
	assert.Len(t, b.rc.Hits(), 2)
}

func TestSignalReachesCommand(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{}, nil)
	_, s := b.create(t, "srv", doc{})
	c := dial(t, s, "rachel", b.key)
	sess, err := c.NewSession()
	require.NoError(t, err)
	defer sess.Close()
	require.NoError(t, sess.Start(`trap 'echo trapped > /home/rachel/trapped; exit 143' TERM; touch /home/rachel/ready; while :; do sleep 0.05; done`))
	require.Eventually(t, func() bool {
		_, err := os.Stat(s.Path("/home/rachel/ready"))
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, sess.Signal(gossh.SIGTERM))
	err = sess.Wait()
	var ee *gossh.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 143, ee.ExitStatus(), "the shell's TERM trap ran")
	assert.FileExists(t, s.Path("/home/rachel/trapped"))
	// the connection still works
	assert.Equal(t, "ok\n", run(t, c, "echo ok", "").Stdout)
}

// TestSignalRightAfterStart cancels commands the moment they start, as
// inject does when its context ends: the signal often arrives before the
// server has registered for signals (gliderlabs buffers it and delivers
// it from a goroutine of its own). Under -race this caught the server
// unregistering while that goroutine still read the registration. Every
// command must end (killed by the signal or finished), and the
// connection must still work.
func TestSignalRightAfterStart(t *testing.T) {
	t.Parallel()
	b := setup(t, fake.Options{NoNamespace: true}, nil)
	_, s := b.create(t, "srv", doc{})
	c := dial(t, s, "rachel", b.key)
	for i := range 40 {
		sess, err := c.NewSession()
		require.NoError(t, err)
		require.NoError(t, sess.Start("sleep 5"))
		require.NoError(t, sess.Signal(gossh.SIGTERM))
		// more while the first is handled; they may find the session closed
		_ = sess.Signal(gossh.SIGTERM)
		_ = sess.Signal(gossh.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- sess.Wait() }()
		select {
		case err := <-done:
			var ee *gossh.ExitError
			require.ErrorAs(t, err, &ee, "iteration %d", i)
			assert.Equal(t, 143, ee.ExitStatus(), "iteration %d: killed by TERM", i)
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: the command did not end", i)
		}
		_ = sess.Close()
	}
	assert.Equal(t, "ok\n", run(t, c, "echo ok", "").Stdout)
}

// A Dir whose path holds characters a shell reads (a test's t.TempDir()
// with a subtest name such as "limit (1 MiB)", or a user's home with a
// space) still runs commands: paths rewritten into the sandbox are safe.
func TestDirWithShellCharacters(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"with (parens)", "with space", "it's; $HOME `x` \"q\" *"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), name)
			b := setup(t, fake.Options{Dir: dir}, nil)
			_, s := b.create(t, "srv", doc{})
			c := dial(t, s, "rachel", b.key)
			r := run(t, c, `mkdir -p /home/rachel/app && printf ok > "/home/rachel/app/x" && cat /home/rachel/app/x`, "")
			require.Equal(t, 0, r.Code, r.Stderr)
			assert.Equal(t, "ok", r.Stdout)
			data, err := os.ReadFile(s.Path("/home/rachel/app/x"))
			require.NoError(t, err)
			assert.Equal(t, "ok", string(data))
			assert.True(t, strings.HasPrefix(s.Path("/home"), dir) || !strings.ContainsAny(s.Path("/home"), "( ;'$`\"*"), s.Path("/home"))
		})
	}
}
