package fake

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The stand-ins' helpers replace programs with shell builtins (see
// standin/common.sh); these tests hold them to the programs' output.

// helper runs a snippet after common.sh with /bin/sh and returns its
// stdout and exit status.
func helper(t *testing.T, snippet string, args ...string) (string, int) {
	t.Helper()
	common, err := standins.ReadFile("standin/common.sh")
	require.NoError(t, err)
	cmd := exec.Command("/bin/sh", append([]string{"-c", string(common) + "\n" + snippet, "sh"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !assertExit(err, &ee) {
		t.Fatalf("sh: %v: %s", err, errb.String())
	}
	require.Empty(t, errb.String())
	if ee != nil {
		return out.String(), ee.ExitCode()
	}
	return out.String(), 0
}

func assertExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

// program runs a real program and returns its stdout.
func program(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	require.NoError(t, err, "%s %q", name, args)
	return string(out)
}

func TestHelperDirBase(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"a", "a/b", "/a", "/", "//", "///a//", "a/b/", "a//b//", ".", "..", "/a/b/c", "./x", "x/.", "a b/c d", " ", "-x", "a/-x"} {
		got, _ := helper(t, `dir "$1"; printf '%s\n' "$_dir"; base "$1"; printf '%s\n' "$_base"`, p)
		want := program(t, "dirname", "--", p) + program(t, "basename", "--", p)
		assert.Equal(t, want, got, "%q", p)
	}
}

func TestHelperAbspath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(real, "d", "e"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(real, "d"), filepath.Join(real, "link")))
	tests := []struct{ path, want string }{
		{real + "/d/e", real + "/d/e"},
		{real + "/link/e", real + "/d/e"}, // the directory's links are resolved
		{real + "/link", real + "/link"},  // the file's own is not
		{real + "/link/e/../x", real + "/d/x"},
		{real + "/link/e/..", real + "/d/e/.."}, // .. as the last part is kept, as basename does
		{real + "/d/", real + "/d"},
		{"/", "/"},
	}
	for _, tt := range tests {
		got, code := helper(t, `abspath "$1" && printf '%s\n' "$_abs" && pwd`, tt.path)
		assert.Equal(t, 0, code, tt.path)
		lines := bytes.Split([]byte(got), []byte("\n"))
		require.GreaterOrEqual(t, len(lines), 2, got)
		assert.Equal(t, tt.want, string(lines[0]), tt.path)
		assert.NotEqual(t, "/", string(lines[1]), "abspath returns to the directory it started in")
	}
	_, code := helper(t, `abspath "$1"`, real+"/nope/x")
	assert.Equal(t, 1, code, "a directory that does not exist")

	// relative paths, from a directory reached through a link: the
	// shell stays there (its PWD becomes the physical path)
	got, code := helper(t, `cd "$1" && abspath e && printf '%s\n' "$_abs" && abspath ../d && printf '%s\n' "$_abs" && pwd -P`, real+"/link")
	assert.Equal(t, 0, code)
	assert.Equal(t, real+"/d/e\n"+real+"/d\n"+real+"/d\n", got)
}

// placeholderLines are the seeds of FuzzHelperPlaceholder.
var placeholderLines = []string{
	"User=__USER__", "x___A__", "__A__B__", "__a__", "__A_", "A__B__C__", "__A1__ __B__", "____", "__X__Y",
	"foo__BAR__baz__QUX__", "___", "__A___", "x__1A__ __B2_C__", "__A b__C__", "ExecStart=/opt/__APP__/bin --x=__X__",
	"no placeholder", "", "__\u00c4__", "__A-B__", "___A____B__",
}

// FuzzHelperPlaceholder holds placeholder to grep -o, which the stand-in
// used before.
func FuzzHelperPlaceholder(f *testing.F) {
	for _, l := range placeholderLines {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\x00\n") || !utf8.ValidString(line) {
			t.Skip("one line of text")
		}
		got, code := helper(t, `if placeholder "$1"; then printf '%s\n' "$_ph"; else echo none; fi`, line)
		assert.Equal(t, 0, code)
		cmd := exec.Command("grep", "-o", "__[A-Z][A-Z0-9_]*__")
		cmd.Env = []string{"LANG=C.UTF-8"}
		cmd.Stdin = strings.NewReader(line + "\n")
		out, _ := cmd.Output()
		want := "none\n"
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			want = string(out[:i+1])
		}
		assert.Equal(t, want, got, "%q", line)
	})
}

func TestHelperValue(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ line, want string }{
		{"Description=Rachel8 agent", "Rachel8 agent"},
		{"  Description =  spaced  ", "spaced  "},
		{"\tDescription\t=\tx", "x"},
		{"DescriptionX=no", "-"},
		{"Description", "-"},
		{"Description=", ""},
		{"# Description=comment", "-"},
		{"Description=a=b", "a=b"},
	} {
		got, _ := helper(t, `trim "$1"; _l=$_v; if value Description; then printf '%s\n' "$_v"; else echo -; fi`, tt.line)
		assert.Equal(t, tt.want+"\n", got, "%q", tt.line)
		// as sed, which the stand-in used before
		cmd := exec.Command("sed", "-n", "s/^[[:space:]]*Description[[:space:]]*=[[:space:]]*//p")
		cmd.Stdin = bytes.NewReader([]byte(tt.line + "\n"))
		out, err := cmd.Output()
		require.NoError(t, err)
		if tt.want == "-" {
			assert.Empty(t, string(out), "%q", tt.line)
		} else {
			assert.Equal(t, tt.want+"\n", string(out), "%q", tt.line)
		}
	}
}

func TestHelperCopySame(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	contents := []string{
		"", "\n", "a", "a\n", "a\nb", "a\nb\n", "\n\n", "  lead\ttab \\back\\slash \\n\n", "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n",
	}
	for i, c := range contents {
		src := filepath.Join(dir, "src")
		dst := filepath.Join(dir, "dst")
		require.NoError(t, os.WriteFile(src, []byte(c), 0o644))
		_, code := helper(t, `copy "$1" "$2"`, src, dst)
		require.Equal(t, 0, code)
		got, err := os.ReadFile(dst)
		require.NoError(t, err)
		assert.Equal(t, c, string(got), "copy %q", c)
		for j, d := range contents {
			require.NoError(t, os.WriteFile(dst, []byte(d), 0o644))
			_, code := helper(t, `same "$1" "$2"`, src, dst)
			assert.Equal(t, i == j, code == 0, "same %q %q", c, d)
		}
	}
	_, code := helper(t, `same "$1" "$2"; echo still here`, filepath.Join(dir, "src"), filepath.Join(dir, "missing"))
	assert.Equal(t, 0, code, "a missing file is different, and does not end the shell")
}
