package nspawn

import (
	"io/fs"
	"path/filepath"
)

// Cgroups returns the cgroup directories of a server, unified first.
func Cgroups(p *Provider, id string) []string {
	r, err := p.readRecord(id)
	if err != nil {
		return nil
	}
	return r.Cgroups
}

// Suite returns the suite a server runs.
func Suite(p *Provider, id string) string {
	r, err := p.readRecord(id)
	if err != nil {
		return ""
	}
	return r.Suite
}

// Processes returns the processes in a cgroup and below.
func Processes(dir string) []int {
	var out []int
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			out = append(out, procs(path)...)
		}
		return nil
	})
	return out
}

// CgroupBases returns where the Provider makes servers' cgroups: the
// unified hierarchy's directory and the v1 name=systemd one ("" on a
// pure cgroup v2 host).
func CgroupBases(p *Provider) (unified, systemd string) { return p.cg.unified, p.cg.systemd }

// ImageDir returns where the image of suite is (or would be) cached.
func ImageDir(p *Provider, suite string) string {
	spec := imageSpec{Suite: suite, Mirror: p.opts.Mirror, Security: p.opts.SecurityMirror, Packages: p.packages}
	return filepath.Join(p.cacheDir, "images", spec.key())
}

// Machine returns a server's machine name, as systemd-nspawn knows it.
func Machine(p *Provider, id string) string {
	r, err := p.readRecord(id)
	if err != nil {
		return ""
	}
	return r.Machine
}
