package fake

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRewritePaths(t *testing.T) {
	t.Parallel()
	const R = "/sb/fs"
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
		// not a path start, or not one of the directories
		{"cat /etcetera /homes /var/library /usr/bin/env /tmp/x", "cat /etcetera /homes /var/library /usr/bin/env /tmp/x"},
		{"ls a/etc/b http://h/home/x", "ls a/etc/b http://h/home/x"},
		{"/var/log/x /var", "/var/log/x /var"},
		{"", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, rewritePaths(tt.in, R), tt.in)
	}
}

// FuzzRewritePaths checks that rewriting only inserts the root, and only
// before one of the rewritten directories.
func FuzzRewritePaths(f *testing.F) {
	for _, s := range []string{"cat /home/a", "/etc", "x=/root;y", "'/opt/x'", "/var/lib/", "/srv)", "//etc", "a /etcx"} {
		f.Add(s)
	}
	const root = "\x00R"
	f.Fuzz(func(t *testing.T, cmd string) {
		if strings.Contains(cmd, "\x00") {
			t.Skip()
		}
		out := rewritePaths(cmd, root)
		if got := strings.ReplaceAll(out, root, ""); got != cmd {
			t.Fatalf("rewritePaths(%q) = %q: more than the root inserted", cmd, out)
		}
		for rest := out; ; {
			i := strings.Index(rest, root)
			if i < 0 {
				break
			}
			rest = rest[i+len(root):]
			ok := false
			for _, p := range rewritten {
				if strings.HasPrefix(rest, p) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("rewritePaths(%q) = %q: root inserted before %q", cmd, out, rest)
			}
		}
	})
}
