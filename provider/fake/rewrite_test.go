package fake

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRewritePaths(t *testing.T) {
	t.Parallel()
	const R, B = "/sb/fs", "/sb/bin"
	tests := []struct{ in, want string }{
		{"cat /home/rachel/.env", "cat /sb/fs/home/rachel/.env"},
		{"/etc/x", "/sb/fs/etc/x"},
		{"ls /etc", "ls /sb/fs/etc"},
		{"cd /root;ls", "cd /sb/fs/root;ls"},
		{`cat > "/etc/systemd/system/a.service"`, `cat > "/sb/fs/etc/systemd/system/a.service"`},
		{"mv '/opt/a' '/srv/b'", "mv '/sb/fs/opt/a' '/sb/fs/srv/b'"},
		{"X=/var/lib/app sh", "X=/sb/fs/var/lib/app sh"},
		{"$(cat /home/a)", "$(cat /sb/fs/home/a)"},
		{"a|/etc/b&&c</root/x>/srv/y", "a|/sb/fs/etc/b&&c</sb/fs/root/x>/sb/fs/srv/y"},
		{"PATH=/usr/bin:/opt/bin", "PATH=/usr/bin:/sb/fs/opt/bin"},
		{"{/home/a,/home/b}", "{/sb/fs/home/a,/sb/fs/home/b}"},
		{"`cat /etc/x`", "`cat /sb/fs/etc/x`"},
		{"(/etc)", "(/sb/fs/etc)"},
		{"line1\n/home/x\t/root/y", "line1\n/sb/fs/home/x\t/sb/fs/root/y"},
		// stood-in programs by absolute path
		{"/usr/bin/sudo -n /bin/systemctl start x", "/sb/bin/sudo -n /sb/bin/systemctl start x"},
		{"sudo -n /usr/bin/chown a /home/a", "sudo -n /sb/bin/chown a /sb/fs/home/a"},
		{"'/usr/bin/journalctl' -u x; /usr/bin/cloud-init status", "'/sb/bin/journalctl' -u x; /sb/bin/cloud-init status"},
		{"/usr/bin/systemctl2 /usr/bin/sudoedit /usr/bin/env", "/usr/bin/systemctl2 /usr/bin/sudoedit /usr/bin/env"},
		// not a path start, or not one of the directories
		{"cat /etcetera /homes /var/library /usr/bin/env /tmp/x", "cat /etcetera /homes /var/library /usr/bin/env /tmp/x"},
		{"ls a/etc/b http://h/home/x", "ls a/etc/b http://h/home/x"},
		{"/var/log/x /var", "/var/log/x /var"},
		{"", ""},
		// option values glued to the option, and assignments
		{"install -t/etc/sudoers.d f", "install -t/sb/fs/etc/sudoers.d f"},
		{"tar -xzf/srv/a.tgz -C/opt", "tar -xzf/sb/fs/srv/a.tgz -C/sb/fs/opt"},
		{"cp --target-directory=/etc/x f", "cp --target-directory=/sb/fs/etc/x f"},
		{"dd if=/dev/zero of=/var/lib/x", "dd if=/dev/zero of=/sb/fs/var/lib/x"},
		{"a-t/etc x-/etc sed 's/-e/etc/'", "a-t/etc x-/etc sed 's/-e/etc/'"},
		// ~NAME is the sandbox home; ~ and ~/ are left to the shell (HOME)
		{"cat ~rachel/.env ~root ~guest", "cat /sb/fs/home/rachel/.env /sb/fs/root /sb/fs/home/guest"},
		{"X=~rachel:~root/x", "X=/sb/fs/home/rachel:/sb/fs/root/x"},
		{"cd ~ && cat ~/x", "cd ~ && cat ~/x"},
		{"a~rachel ~rachel$x ~1 '~_a'", "a~rachel ~rachel$x ~1 '/sb/fs/home/_a'"},
		// a URL's path is not the machine's
		{"curl http://127.0.0.1:80/etc/x https://h/home", "curl http://127.0.0.1:80/etc/x https://h/home"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rewritePaths(tt.in, R, B), tt.in)
	}
}

// FuzzRewritePaths checks that rewriting only inserts the root before one
// of the rewritten directories, only replaces a stood-in program's
// directory by bin and ~NAME by the root and NAME's home; everything else
// is kept.
func FuzzRewritePaths(f *testing.F) {
	for _, s := range []string{"cat /home/a", "/etc", "x=/root;y", "'/opt/x'", "/var/lib/", "/srv)", "//etc", "a /etcx", "/usr/bin/sudo -n /bin/systemctl", "-t/etc ~rachel/x", "http://h/etc"} {
		f.Add(s)
	}
	const root, bin = "\x00R", "\x00B"
	f.Fuzz(func(t *testing.T, cmd string) {
		if strings.Contains(cmd, "\x00") {
			t.Skip()
		}
		out := rewritePaths(cmd, root, bin)
		i, j := 0, 0
		for j < len(out) {
			switch {
			case strings.HasPrefix(out[j:], root) && i < len(cmd) && cmd[i] == '~':
				n := tildeUserAt(cmd[i:])
				home := homeOf(cmd[i+1 : i+n])
				if n == 0 || !strings.HasPrefix(out[j+len(root):], home) {
					t.Fatalf("rewritePaths(%q) = %q: ~ at %d", cmd, out, i)
				}
				i, j = i+n, j+len(root)+len(home)
			case strings.HasPrefix(out[j:], root):
				j += len(root)
				ok := false
				for _, p := range rewritten {
					ok = ok || strings.HasPrefix(out[j:], p)
				}
				if !ok {
					t.Fatalf("rewritePaths(%q) = %q: root inserted before %q", cmd, out, out[j:])
				}
			case strings.HasPrefix(out[j:], bin):
				j += len(bin)
				n := programAt(cmd[i:])
				if n == 0 {
					t.Fatalf("rewritePaths(%q) = %q: bin at %q", cmd, out, cmd[i:])
				}
				name := cmd[i+strings.LastIndexByte(cmd[i:i+n], '/') : i+n]
				if !strings.HasPrefix(out[j:], name) {
					t.Fatalf("rewritePaths(%q) = %q: %q is not %q", cmd, out, out[j:], name)
				}
				i, j = i+n, j+len(name)
			default:
				if i >= len(cmd) || cmd[i] != out[j] {
					t.Fatalf("rewritePaths(%q) = %q: changed at %d", cmd, out, i)
				}
				i, j = i+1, j+1
			}
		}
		if i != len(cmd) {
			t.Fatalf("rewritePaths(%q) = %q: input left over", cmd, out)
		}
	})
}

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	allowed := []string{
		"cat /home/rachel/.env /root/x /etc /var/lib/a /opt/b /srv/c",
		"install -t/etc/sudoers.d f && cp --target-directory=/etc/x f",
		"cat ~rachel/.env ~/x ~",
		"/usr/bin/env true; /bin/sh -c 'x'; /sbin/x; /usr/sbin/y; PATH=/usr/bin:/bin",
		"/usr/local/bin/systemctl start x",
		"cat </dev/null >/dev/stdout 2>/dev/stderr; head -c 8 /dev/urandom /dev/zero /dev/random /dev/stdin",
		"echo \"$HOME/x\" /home/$USER/y \"$t\" a/b ./c .x x..y ... /home/a/..b",
		"cd .. && mv -f x ../.env; cat \"../$t\"", // relative: not checked
		"curl -fsS http://127.0.0.1:8080/etc/x?a=b https://h",
		"sed 's/a/b/' | date +%Y/%m/%d; echo $((6/2))",
		"",
	}
	for _, cmd := range allowed {
		assert.NoError(t, checkCommand(cmd), cmd)
	}
	refused := []struct{ cmd, token, reason string }{
		{"cd / && echo x > etc/hosts", "/", reasonPath},
		{"cat /$f/passwd", "/$f/passwd", reasonBuilt},
		{"cat /${f}", "/${f", reasonBuilt},
		{"cat /`echo etc`/passwd", "/", reasonBuilt},
		{`cat /\etc/passwd`, `/\etc/passwd`, reasonBuilt},
		{"cp x /usr/local/bin/x", "/usr/local/bin/x", reasonPath},
		{"echo x > /var/tmp/x", "/var/tmp/x", reasonPath},
		{"echo x >/tmp/x", "/tmp/x", reasonPath},
		{"rm -rf /*", "/*", reasonPath},
		{"cat //etc/passwd", "//etc/passwd", reasonPath},
		{"cat /'etc'/passwd", "/", reasonPath},
		{"cat file:///etc/passwd", "///etc/passwd", reasonPath},
		{"dd of=/dev/sda", "/dev/sda", reasonPath},
		{"X=/proc/1/root/etc", "/proc/1/root/etc", reasonPath},
		{"cat /etc/../../tmp/x", "/etc/../../tmp/x", reasonDotDot},
		{"cat /usr/bin/../../etc/shadow", "/usr/bin/../../etc/shadow", reasonDotDot},
		{"echo $((6 / 2))", "/", reasonPath},
	}
	for _, tt := range refused {
		err := checkCommand(tt.cmd)
		var r *refusal
		if assert.ErrorAs(t, err, &r, tt.cmd) {
			assert.Equal(t, tt.token, r.token, tt.cmd)
			assert.Equal(t, tt.reason, r.reason, tt.cmd)
			assert.Contains(t, err.Error(), "fake: refusing")
			assert.Contains(t, err.Error(), "outside the sandbox")
		}
	}
}

// FuzzCheckCommand checks that what checkCommand lets through has every
// absolute path that starts a word moved into the sandbox, or allowed.
func FuzzCheckCommand(f *testing.F) {
	for _, s := range []string{"cat /home/a", "cd / && x", "/$f/x", "-t/var/tmp", "http://h/x", "a/../b", "~r/x", "/dev/null", "/usr/bin/../x"} {
		f.Add(s)
	}
	const root, bin = "/\x00R", "/\x00B"
	f.Fuzz(func(t *testing.T, cmd string) {
		if strings.Contains(cmd, "\x00") || checkCommand(cmd) != nil {
			return
		}
		out := rewritePaths(cmd, root, bin)
		for i := 0; i < len(out); i++ {
			if out[i] != '/' || !pathStartAt(out, i) {
				continue
			}
			if n := urlAt(out, i); n > 0 {
				i += n - 1
				continue
			}
			j := i + 1
			for j < len(out) && !pathEnd(out[j]) {
				j++
			}
			tok := out[i:j]
			if !strings.HasPrefix(tok, root) && !strings.HasPrefix(tok, bin) && !allowedPath(tok) {
				t.Fatalf("checkCommand(%q) passed, rewritten to %q: %q is outside", cmd, out, tok)
			}
			if strings.HasPrefix(tok, root) || strings.HasPrefix(tok, bin) || allowedPath(tok) {
				for c := range strings.SplitSeq(tok, "/") {
					if c == ".." {
						t.Fatalf("checkCommand(%q) passed with %q", cmd, tok)
					}
				}
			}
			i = j - 1
		}
	})
}
