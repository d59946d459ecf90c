package nspawn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrUnsafeDir is wrapped, through an *UnsafeDirError, by the error of New
// when the StateDir or the CacheDir, or a directory above one of them,
// could be changed by another user than the one running the provider
// (root): that user could plant server records or images that root would
// then act on.
var ErrUnsafeDir = errors.New("directory another user could change")

// UnsafeDirError tells which directory New refused, and why.
type UnsafeDirError struct {
	// Option is "StateDir" or "CacheDir".
	Option string
	// Dir is the option's directory, absolute.
	Dir string
	// Path is the directory at fault: Dir itself or one above it (after
	// symbolic links are resolved).
	Path string
	// Reason says what is wrong with Path, e.g. "owned by uid 1000".
	Reason string
}

func (e *UnsafeDirError) Error() string {
	what := e.Path
	if e.Path != e.Dir {
		what = e.Path + " (above it)"
	}
	return fmt.Sprintf("nspawn: %s %s: %s is %s: refusing a directory another user could change (make it and the directories above it root's, not writable by group or others)",
		e.Option, e.Dir, what, e.Reason)
}

// Unwrap returns ErrUnsafeDir.
func (e *UnsafeDirError) Unwrap() error { return ErrUnsafeDir }

// maxLinks bounds the symbolic links secureDir follows, as Linux does.
const maxLinks = 40

// secureDir returns the directory dir (absolute) with its symbolic links
// resolved, making it 0700 (with its missing parents) when it does not
// exist, after checking, as sshd's StrictModes does, that no other user
// than root or euid can change it or a directory above it: each is owned
// by root or euid and not writable by group or others, and so is each
// symbolic link met on the way. Above dir, a world-writable directory
// with the sticky bit (/tmp) is allowed: there others cannot rename or
// remove what is ours. The resolved path is what the provider uses from
// then on.
func secureDir(option, dir string, euid int) (string, error) {
	dir = filepath.Clean(dir)
	fail := func(err error) (string, error) { return "", fmt.Errorf("nspawn: %s %s: %w", option, dir, err) }
	unsafe := func(path, reason string) (string, error) {
		return "", &UnsafeDirError{Option: option, Dir: dir, Path: path, Reason: reason}
	}
	if !filepath.IsAbs(dir) {
		return fail(errors.New("not an absolute path"))
	}
	cur := "/"
	reason, err := unsafeReason(cur, euid, dir == "/")
	if err != nil {
		return fail(err)
	}
	if reason != "" {
		return unsafe(cur, reason)
	}
	todo := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur holds no symbolic link
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return makeDirs(option, dir, cur, append([]string{name}, todo...), euid)
		}
		if err != nil {
			return fail(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if uid, ok := fileOwner(fi); ok && uid != 0 && uid != euid {
				return unsafe(next, fmt.Sprintf("a symbolic link owned by uid %d", uid))
			}
			if links++; links > maxLinks {
				return fail(errors.New("too many levels of symbolic links"))
			}
			target, err := os.Readlink(next)
			if err != nil {
				return fail(err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			todo = append(strings.Split(filepath.Clean(target), "/"), todo...)
			continue
		}
		reason, err := unsafeReason(next, euid, !slices.ContainsFunc(todo, func(s string) bool { return s != "" && s != "." }))
		if err != nil {
			return fail(err)
		}
		if reason != "" {
			return unsafe(next, reason)
		}
		cur = next
	}
	return cur, nil
}

// makeDirs makes the directories missing below parent (checked by
// secureDir), 0700, one at a time: in a sticky directory another user may
// make one first, which the check then tells.
func makeDirs(option, dir, parent string, missing []string, euid int) (string, error) {
	missing = slices.DeleteFunc(missing, func(s string) bool { return s == "" || s == "." })
	cur := parent
	for i, name := range missing {
		if name == ".." { // below a directory that does not exist
			return "", fmt.Errorf("nspawn: %s %s: %w", option, dir, fs.ErrNotExist)
		}
		cur = filepath.Join(cur, name)
		if err := os.Mkdir(cur, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("nspawn: %s %s: %w", option, dir, err)
		}
		reason, err := unsafeReason(cur, euid, i == len(missing)-1)
		if err != nil {
			return "", fmt.Errorf("nspawn: %s %s: %w", option, dir, err)
		}
		if reason != "" {
			return "", &UnsafeDirError{Option: option, Dir: dir, Path: cur, Reason: reason}
		}
	}
	return cur, nil
}

// unsafeReason says why another user than root or euid could change the
// directory path, or "" when none can. last is the directory itself (no
// sticky-bit exception), else one above it.
func unsafeReason(path string, euid int, last bool) (string, error) {
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		return "", err
	case fi.Mode()&fs.ModeSymlink != 0:
		return "a symbolic link", nil
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a directory", path)
	}
	if uid, ok := fileOwner(fi); ok && uid != 0 && uid != euid {
		return fmt.Sprintf("owned by uid %d", uid), nil
	}
	if fi.Mode().Perm()&0o022 != 0 && (last || fi.Mode()&fs.ModeSticky == 0) {
		return fmt.Sprintf("writable by group or others (%s)", fi.Mode()), nil
	}
	return "", nil
}
