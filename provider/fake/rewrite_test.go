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
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rewritePaths(tt.in, R, B), tt.in)
	}
}

// FuzzRewritePaths checks that rewriting only inserts the root before one
// of the rewritten directories and only replaces a stood-in program's
// directory by bin; everything else is kept.
func FuzzRewritePaths(f *testing.F) {
	for _, s := range []string{"cat /home/a", "/etc", "x=/root;y", "'/opt/x'", "/var/lib/", "/srv)", "//etc", "a /etcx", "/usr/bin/sudo -n /bin/systemctl"} {
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
