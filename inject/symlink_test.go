package inject_test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// victim is a directory outside the one the steps work in, standing for
// /etc: a symlink planted by the owner of the steps' directory must never
// make a step (run as root, in production) change anything in it.
type victim struct{ dir string }

func newVictim(t *testing.T) victim {
	t.Helper()
	v := victim{dir: t.TempDir()}
	require.NoError(t, os.Chmod(v.dir, 0o755))
	require.NoError(t, os.WriteFile(v.dir+"/file", []byte("precious\n"), 0o644))
	require.NoError(t, os.MkdirAll(v.dir+"/b/c", 0o755))
	require.NoError(t, os.Chmod(v.dir+"/b/c", 0o755))
	return v
}

// snapshot lists every path below the victim with its mode and content.
func (v victim) snapshot(t *testing.T) map[string]string {
	t.Helper()
	snap := map[string]string{}
	require.NoError(t, filepath.WalkDir(v.dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		s := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			s += " " + string(b)
		}
		snap[p] = s
		return nil
	}))
	return snap
}

// symlinkServer is a gliderlabs SSH server running commands with /bin/sh,
// with only the programs the steps may use on PATH, and the stand-ins in
// evil (if any) before them.
func symlinkServer(t *testing.T, evil string) *inject.SSH {
	t.Helper()
	bin, _ := standins(t)
	path := bin
	if evil != "" {
		path = evil + ":" + bin
	}
	b := setup(t, sshtest.Options{Handler: sshtest.Exec("PATH=" + path)})
	return b.dial(t, b.config(t))
}

func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}

// TestSymlinkRefused plants symlinks where Mkdir and WriteFile, run as
// root with an owner (as rachel8 runs them in the user's home), would
// otherwise follow them: the step fails, says why, and changes nothing
// the symlink points at.
func TestSymlinkRefused(t *testing.T) {
	t.Parallel()
	me := currentUser(t)
	owned := []inject.FileOption{inject.AsRoot(), inject.Owner(me)}
	tests := []struct {
		name    string
		plant   func(dir string, v victim) error
		step    func(dir string) inject.Step
		wantErr string
	}{
		{
			name:    "mkdir on a symlink",
			plant:   func(dir string, v victim) error { return os.Symlink(v.dir+"/b", dir+"/d") },
			step:    func(dir string) inject.Step { return inject.Mkdir(dir+"/d", 0o700, owned...) },
			wantErr: "/d is a symbolic link",
		},
		{
			name:    "mkdir below a symlinked directory",
			plant:   func(dir string, v victim) error { return os.Symlink(v.dir, dir+"/a") },
			step:    func(dir string) inject.Step { return inject.Mkdir(dir+"/a/b/c", 0o700, owned...) },
			wantErr: "/a is a symbolic link",
		},
		{
			name:    "write over a symlink",
			plant:   func(dir string, v victim) error { return os.Symlink(v.dir+"/file", dir+"/f") },
			step:    func(dir string) inject.Step { return inject.WriteFile(dir+"/f", []byte("SECRET=x\n"), 0o644, owned...) },
			wantErr: "/f is a symbolic link",
		},
		{
			name:  "write into a symlinked directory",
			plant: func(dir string, v victim) error { return os.Symlink(v.dir, dir+"/app") },
			step: func(dir string) inject.Step {
				return inject.WriteFile(dir+"/app/.env", []byte("SECRET=x\n"), 0o600, owned...)
			},
			wantErr: "/app is a symbolic link",
		},
		{
			name:  "write below a symlinked directory",
			plant: func(dir string, v victim) error { return os.Symlink(v.dir, dir+"/a") },
			step: func(dir string) inject.Step {
				return inject.WriteFile(dir+"/a/b/c/.env", []byte("SECRET=x\n"), 0o600, owned...)
			},
			wantErr: "/a is a symbolic link",
		},
		{
			name:    "write over a directory",
			plant:   func(dir string, v victim) error { return os.Mkdir(dir+"/x", 0o755) },
			step:    func(dir string) inject.Step { return inject.WriteFile(dir+"/x", []byte("SECRET=x\n"), 0o600, owned...) },
			wantErr: "/x is a directory",
		},
	}
	for _, m := range modes {
		c := symlinkServer(t, "")
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				dir, v := t.TempDir(), newVictim(t)
				require.NoError(t, tt.plant(dir, v))
				before := v.snapshot(t)
				steps := []inject.Step{{Name: "first", Cmd: "true"}, tt.step(dir), {Name: "never", Cmd: "exit 9"}}
				require.NoError(t, steps[1].Err())

				err := inject.Run(context.Background(), c, steps, inject.WithPipelining(m.pipelined))
				var se *inject.StepError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, 1, se.Index)
				assert.Equal(t, 1, se.ExitCode)
				assert.Contains(t, se.Stderr, tt.wantErr)
				assert.Equal(t, before, v.snapshot(t), "the symlink's target changed")
				entries, err := os.ReadDir(dir)
				require.NoError(t, err)
				assert.Len(t, entries, 1, "only what was planted is left")
			})
		}
	}
}

// evilBin writes stand-ins that play the owner of the steps' directory
// winning a race: each runs the real program, then swaps what it created
// for a symlink to the victim, before the step's next command runs.
func evilBin(t *testing.T, v victim, programs ...string) string {
	t.Helper()
	dir := t.TempDir()
	real := func(name string) string {
		p, err := exec.LookPath(name)
		require.NoError(t, err)
		return p
	}
	scripts := map[string]string{
		// mkdir -p P: P becomes a symlink to a victim directory.
		"mkdir": `REAL "$@" || exit
for p; do :; done
MV "$p" "$p.moved" && LN -s VICTIM/b "$p"`,
		// mktemp [-d] TEMPLATE: the new file or directory becomes a
		// symlink to the victim's file or directory of the same kind.
		"mktemp": `t=$(REAL "$@") || exit
target=VICTIM/file
[ "$1" = -d ] && target=VICTIM/b
MV "$t" "$t.moved" && LN -s "$target" "$t"
printf '%s\n' "$t"`,
		// mv SRC DEST: DEST becomes a symlink to a victim directory just
		// before the rename, so a plain mv would move SRC into it.
		"mv": `for p; do :; done
RM -rf "$p" && LN -s VICTIM/b "$p"
exec MV "$@"`,
		// The same with a directory of the directory owner's own.
		"mv:dir": `for p; do :; done
RM -rf "$p" && MKDIR "$p"
exec MV "$@"`,
	}
	for _, name := range programs {
		prog, _, _ := strings.Cut(name, ":")
		body := strings.NewReplacer("REAL", real(prog), "MV", real("mv"), "LN", real("ln"), "RM", real("rm"), "MKDIR", real("mkdir"), "VICTIM", v.dir).Replace(scripts[name])
		require.NoError(t, os.WriteFile(filepath.Join(dir, prog), []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	}
	return dir
}

// TestSymlinkRace: the owner of the directory swaps what a step has just
// created for a symlink between two of the step's commands. The step
// notices and fails, or (the rename) replaces the symlink itself; nothing
// the symlink points at changes.
func TestSymlinkRace(t *testing.T) {
	t.Parallel()
	me := currentUser(t)
	owned := []inject.FileOption{inject.AsRoot(), inject.Owner(me)}
	write := func(dir string) inject.Step {
		return inject.WriteFile(dir+"/f", []byte("SECRET=x\n"), 0o644, owned...)
	}
	tests := []struct {
		name    string
		program string
		step    func(dir string) inject.Step
		wantErr string // "": the step succeeds
	}{
		{"mkdir: directory swapped before chmod", "mkdir",
			func(dir string) inject.Step { return inject.Mkdir(dir+"/d", 0o700, owned...) },
			"/d is a symbolic link"},
		{"write: temp swapped before the write", "mktemp", write, "changed"},
		// Issue 13 L1: mv -f moved the file into the directory the link
		// pointed at (the victim); mv -fT renames over the link itself.
		{"write: target swapped for a link to a directory before the rename", "mv", write, ""},
		// With a real directory there, mv -fT refuses, and says so.
		{"write: target swapped for a directory before the rename", "mv:dir", write, "cannot overwrite directory"},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				dir, v := t.TempDir(), newVictim(t)
				c := symlinkServer(t, evilBin(t, v, tt.program))
				before := v.snapshot(t)
				err := inject.Run(context.Background(), c, []inject.Step{{Name: "first", Cmd: "true"}, tt.step(dir)},
					inject.WithPipelining(m.pipelined))
				assert.Equal(t, before, v.snapshot(t), "nothing in the victim changed or appeared")
				if tt.wantErr == "" {
					require.NoError(t, err)
					fi, err := os.Lstat(dir + "/f")
					require.NoError(t, err)
					assert.True(t, fi.Mode().IsRegular(), "the link was replaced by the file")
					got, err := os.ReadFile(dir + "/f")
					require.NoError(t, err)
					assert.Equal(t, "SECRET=x\n", string(got))
				} else {
					var se *inject.StepError
					require.ErrorAs(t, err, &se)
					assert.Equal(t, 1, se.Index)
					assert.Contains(t, se.Stderr, tt.wantErr)
				}
				if tt.program == "mv:dir" {
					entries, err := os.ReadDir(dir + "/f")
					require.NoError(t, err)
					assert.Empty(t, entries, "nothing was moved into the directory")
				}
			})
		}
	}
}
