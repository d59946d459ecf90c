package nspawn

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nobody is the uid of "another user" in the tests that need root to
// give a directory away.
const nobody = 65534

func TestSecureDir(t *testing.T) {
	t.Parallel()
	euid := os.Geteuid()
	mkdir := func(t *testing.T, path string, mode fs.FileMode) {
		t.Helper()
		require.NoError(t, os.MkdirAll(path, 0o700))
		require.NoError(t, os.Chmod(path, mode))
	}
	giveAway := func(t *testing.T, path string) {
		t.Helper()
		if euid != 0 {
			t.Skip("giving a directory to another user needs root")
		}
		require.NoError(t, os.Lchown(path, nobody, nobody))
	}
	tests := []struct {
		name string
		// setup makes what the test needs under base and returns the
		// directory to check.
		setup func(t *testing.T, base string) string
		// want is the resolved directory (relative to base), or the
		// directory at fault when reason is set.
		want, reason string
	}{
		{"missing: made 0700", func(t *testing.T, base string) string { return base + "/a/b" }, "a/b", ""},
		{"existing 0700", func(t *testing.T, base string) string { mkdir(t, base+"/d", 0o700); return base + "/d" }, "d", ""},
		{"existing 0755", func(t *testing.T, base string) string { mkdir(t, base+"/d", 0o755); return base + "/d" }, "d", ""},
		{"writable by its group", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o770)
			return base + "/d"
		}, "d", "writable by group or others"},
		{"writable by all, sticky", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o777|fs.ModeSticky)
			return base + "/d"
		}, "d", "writable by group or others"},
		{"below a directory writable by all", func(t *testing.T, base string) string {
			mkdir(t, base+"/ww", 0o777)
			return base + "/ww/state"
		}, "ww", "writable by group or others"},
		{"below a sticky directory writable by all (/tmp)", func(t *testing.T, base string) string {
			mkdir(t, base+"/tmp", 0o777|fs.ModeSticky)
			return base + "/tmp/state"
		}, "tmp/state", ""},
		{"in a sticky directory, made by another user first", func(t *testing.T, base string) string {
			mkdir(t, base+"/tmp", 0o777|fs.ModeSticky)
			mkdir(t, base+"/tmp/state", 0o700)
			giveAway(t, base+"/tmp/state")
			return base + "/tmp/state"
		}, "tmp/state", "owned by uid 65534"},
		{"owned by another user", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o700)
			giveAway(t, base+"/d")
			return base + "/d"
		}, "d", "owned by uid 65534"},
		{"below a directory of another user", func(t *testing.T, base string) string {
			mkdir(t, base+"/o", 0o755)
			giveAway(t, base+"/o")
			return base + "/o/state"
		}, "o", "owned by uid 65534"},
		{"a link to a directory writable by all", func(t *testing.T, base string) string {
			mkdir(t, base+"/ww", 0o777)
			require.NoError(t, os.Symlink("ww", base+"/link"))
			return base + "/link/state"
		}, "ww", "writable by group or others"},
		{"a link to a safe directory", func(t *testing.T, base string) string {
			mkdir(t, base+"/real", 0o700)
			require.NoError(t, os.Symlink(base+"/real", base+"/link"))
			return base + "/link"
		}, "real", ""},
		{"a link through links", func(t *testing.T, base string) string {
			mkdir(t, base+"/real/sub", 0o700)
			require.NoError(t, os.Symlink("real", base+"/l1"))
			require.NoError(t, os.Symlink("l1/sub/../sub", base+"/l2"))
			return base + "/l2/state"
		}, "real/sub/state", ""},
		{"a link of another user in a sticky directory", func(t *testing.T, base string) string {
			mkdir(t, base+"/tmp", 0o777|fs.ModeSticky)
			mkdir(t, base+"/real", 0o700)
			require.NoError(t, os.Symlink(base+"/real", base+"/tmp/state"))
			giveAway(t, base+"/tmp/state")
			return base + "/tmp/state"
		}, "tmp/state", "a symbolic link owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, err := filepath.EvalSymlinks(t.TempDir())
			require.NoError(t, err)
			dir := tt.setup(t, base)
			got, err := secureDir("StateDir", dir, euid)
			if tt.reason != "" {
				require.ErrorIs(t, err, ErrUnsafeDir)
				var ue *UnsafeDirError
				require.ErrorAs(t, err, &ue)
				assert.Equal(t, "StateDir", ue.Option)
				assert.Equal(t, dir, ue.Dir)
				assert.Equal(t, filepath.Join(base, tt.want), ue.Path)
				assert.Contains(t, ue.Reason, tt.reason)
				assert.NoDirExists(t, filepath.Join(base, "ww", "state"), "made nothing below an unsafe directory")
				t.Log(err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, filepath.Join(base, tt.want), got)
			fi, err := os.Lstat(got)
			require.NoError(t, err)
			assert.True(t, fi.IsDir())
			assert.Zero(t, fi.Mode().Perm()&0o077&^0o055, "mode %s", fi.Mode())
		})
	}
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for _, dir := range []string{"relative/dir", file, filepath.Join(file, "d")} {
		_, err := secureDir("CacheDir", dir, euid)
		require.Error(t, err, dir)
		assert.False(t, errors.Is(err, ErrUnsafeDir), "%s: %v", dir, err)
	}
}
