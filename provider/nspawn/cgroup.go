package nspawn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupBases are the directories under which servers get their cgroups:
// this process's own cgroup in the unified (v2) hierarchy, and, on a
// hybrid host, in the v1 name=systemd hierarchy too. Each nspawn must run
// in a cgroup of its own in both: two of them in one cgroup share one
// payload cgroup and break each other's services.
type cgroupBases struct {
	unified string // required
	systemd string // "" on a pure cgroup v2 host
	// Where the hierarchies are mounted: every cgroup of a server is
	// below one of them.
	unifiedMount, systemdMount string
}

// findCgroups reads the cgroup mounts and this process's cgroups.
func findCgroups() (cgroupBases, error) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cgroupBases{}, err
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return cgroupBases{}, err
	}
	return parseCgroups(mounts, own)
}

// parseCgroups finds the cgroup bases from /proc/self/mountinfo and
// /proc/self/cgroup.
func parseCgroups(mountinfo, cgroup []byte) (cgroupBases, error) {
	var unifiedMount, unifiedRoot, systemdMount, systemdRoot string
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		root, point := unescapeMount(f[3]), unescapeMount(f[4])
		switch {
		case g[0] == "cgroup2" && unifiedMount == "":
			unifiedMount, unifiedRoot = point, root
		case g[0] == "cgroup" && systemdMount == "" && slices.Contains(strings.Split(g[2], ","), "name=systemd"):
			systemdMount, systemdRoot = point, root
		}
	}
	var unifiedPath, systemdPath string
	haveUnified, haveSystemd := false, false
	sc = bufio.NewScanner(bytes.NewReader(cgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			unifiedPath, haveUnified = parts[2], true
		case slices.Contains(strings.Split(parts[1], ","), "name=systemd"):
			systemdPath, haveSystemd = parts[2], true
		}
	}
	if unifiedMount == "" || !haveUnified {
		return cgroupBases{}, errors.New("no cgroup v2 (unified) hierarchy is mounted: nspawn needs a pure cgroup v2 or a hybrid host")
	}
	var b cgroupBases
	var err error
	if b.unified, err = underMount(unifiedMount, unifiedRoot, unifiedPath); err != nil {
		return cgroupBases{}, err
	}
	b.unifiedMount = filepath.Clean(unifiedMount)
	if systemdMount != "" && haveSystemd {
		if b.systemd, err = underMount(systemdMount, systemdRoot, systemdPath); err != nil {
			return cgroupBases{}, err
		}
		b.systemdMount = filepath.Clean(systemdMount)
	}
	return b, nil
}

// underMount returns the directory of cgroup path in a hierarchy mounted
// at mount whose root is root.
func underMount(mount, root, path string) (string, error) {
	rel, ok := strings.CutPrefix(path, strings.TrimSuffix(root, "/"))
	if !ok || rel != "" && rel[0] != '/' {
		return "", fmt.Errorf("this process's cgroup %s is outside the mounted hierarchy (root %s)", path, root)
	}
	return filepath.Join(mount, rel), nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// dirs returns the cgroup directories of the server on machine, unified
// first.
func (b cgroupBases) dirs(machine string) []string {
	out := []string{filepath.Join(b.unified, machine)}
	if b.systemd != "" {
		out = append(out, filepath.Join(b.systemd, machine))
	}
	return out
}

// check tells why dirs, read from a server's record, are not the cgroups
// of machine as a Provider on this host makes them: as many as dirs gives,
// in the same order, each a cgroup named machine below its hierarchy's
// mount point. The cgroup above is not checked against this Provider's
// own: a Provider in another process, in another cgroup, makes its
// servers' under its own.
func (b cgroupBases) check(machine string, dirs []string) error {
	mounts := []string{b.unifiedMount}
	if b.systemd != "" {
		mounts = append(mounts, b.systemdMount)
	}
	if len(dirs) != len(mounts) {
		return fmt.Errorf("%d cgroups, want %d (one per hierarchy)", len(dirs), len(mounts))
	}
	for i, d := range dirs {
		rel, err := filepath.Rel(mounts[i], d)
		if !filepath.IsAbs(d) || filepath.Clean(d) != d || filepath.Base(d) != machine ||
			err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("cgroup %q is not one named %s below %s", d, machine, mounts[i])
		}
	}
	return nil
}

// populated reports whether a process lives in the unified cgroup dir or
// below it.
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if strings.TrimSpace(line) == "populated 1" {
			return true
		}
	}
	return false
}

// procs returns the processes directly in a cgroup.
func procs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

// waitEmpty waits until the unified cgroup dir has no process left, for
// at most d; it reports whether it is empty.
func waitEmpty(ctx context.Context, dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for populated(dir) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return true
}

// killCgroup kills every process in the unified cgroup dir and below:
// through cgroup.kill where the kernel has it (5.14), else by SIGKILL to
// each process listed, until none is left or a few rounds have passed
// (a process may fork while it is being killed).
func killCgroup(dir string) error {
	err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	if err == nil || errors.Is(err, fs.ErrNotExist) && !dirExists(dir) {
		return nil
	}
	for range 50 {
		found := false
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			for _, pid := range procs(path) {
				found = true
				_ = signal(pid, syscall.SIGKILL)
			}
			return nil
		})
		if !found {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("processes left in cgroup %s after 50 rounds of SIGKILL", dir)
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// removeCgroup removes the cgroup dir and the cgroups below it, deepest
// first. A cgroup whose last process just died can be busy for a moment,
// so removal is retried for up to a few seconds.
func removeCgroup(ctx context.Context, dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var dirs []string
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		var last error
		if err == nil {
			for _, d := range slices.Backward(dirs) {
				if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
					last = err
				}
			}
		} else {
			last = err
		}
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
}
