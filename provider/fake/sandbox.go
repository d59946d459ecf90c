package fake

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hatchery-dev/hatchery/cloudinit"
)

//go:embed standin/*.sh
var standins embed.FS

// setup builds the sandbox: the server's file system, the stand-ins and
// the simulation's state.
func (s *Server) setup() error {
	for _, d := range []string{"home", "root", "etc/systemd/system", "etc/ssh", "var/lib", "opt", "srv", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.fs, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{s.bin, filepath.Join(s.state, "cloud-init"), filepath.Join(s.state, "journal")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(s.fs, "root"), 0o700); err != nil {
		return err
	}
	// The stand-ins record physical paths (pwd -P): so does Owner.
	phys, err := filepath.EvalSymlinks(s.fs)
	if err != nil {
		return err
	}
	s.fsReal = phys
	var owners strings.Builder
	own := func(path, owner string) {
		u, g, _ := strings.Cut(owner, ":")
		fmt.Fprintf(&owners, "%s\t%s\t%s\t0\n", s.realPath(path), u, g)
	}

	// users, groups and the users' homes with their authorized keys
	var users, groups strings.Builder
	users.WriteString("root:1:root\n")
	for _, g := range s.spec.groups {
		groups.WriteString(g + "\n")
	}
	for _, u := range s.spec.users {
		if u.name != "root" {
			fmt.Fprintf(&users, "%s:%d:%s\n", u.name, btoi(u.nopasswd), strings.Join(u.groups, ","))
		}
		home := homeOf(u.name)
		if err := os.MkdirAll(filepath.Join(s.Path(home), ".ssh"), 0o700); err != nil {
			return err
		}
		var keys strings.Builder
		for _, k := range s.spec.cfg.Users {
			if k.Name == u.name {
				for _, line := range k.SSHAuthorizedKeys {
					keys.WriteString(strings.TrimSpace(line) + "\n")
				}
			}
		}
		if err := os.WriteFile(s.Path(home+"/.ssh/authorized_keys"), []byte(keys.String()), 0o600); err != nil {
			return err
		}
		for _, p := range []string{home, home + "/.ssh", home + "/.ssh/authorized_keys"} {
			own(p, u.name+":"+u.name)
		}
	}
	hostname := s.spec.cfg.Hostname
	if hostname == "" {
		hostname = s.name
	}
	files := map[string]string{
		"/etc/hostname":                     hostname + "\n",
		"/etc/ssh/ssh_host_ed25519_key.pub": s.HostKeyLine(),
	}
	for p, content := range files {
		if err := os.WriteFile(s.Path(p), []byte(content), 0o644); err != nil {
			return err
		}
		own(p, "root:root")
	}
	for i, f := range s.spec.cfg.WriteFiles {
		if err := s.writeFile(f); err != nil {
			return fmt.Errorf("write_files[%d] %s: %w", i, f.Path, err)
		}
		owner := f.Owner
		if owner == "" {
			owner = "root:root"
		}
		own(f.Path, owner)
	}

	state := map[string]string{
		"users":             users.String(),
		"groups":            groups.String(),
		"owners":            owners.String(),
		"cloud-init/status": "running\n",
	}
	for name, content := range state {
		if err := os.WriteFile(filepath.Join(s.state, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return s.installStandins()
}

// writeFile applies one write_files entry as cloud-init does.
func (s *Server) writeFile(f cloudinit.File) error {
	data, err := decodeContent(f.Content, f.Encoding)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if f.Permissions != "" {
		m, err := strconv.ParseUint(f.Permissions, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("permissions %q are not an octal mode", f.Permissions)
		}
		mode = fs.FileMode(m)
	}
	p := s.Path(f.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if f.Append {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	out, err := os.OpenFile(p, flag, mode)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// decodeContent decodes write_files content by its encoding, with the
// names cloud-init accepts.
func decodeContent(content, encoding string) ([]byte, error) {
	switch strings.ToLower(encoding) {
	case "", "text/plain":
		return []byte(content), nil
	case "b64", "base64":
		return base64.StdEncoding.DecodeString(content)
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		raw, err := base64.StdEncoding.DecodeString(content)
		if err != nil {
			return nil, err
		}
		return gunzip(raw)
	case "gz", "gzip":
		return gunzip([]byte(content))
	}
	return nil, fmt.Errorf("unknown encoding %q", encoding)
}

func gunzip(raw []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, 1<<20))
}

// installStandins writes the stand-in scripts into the bin directory:
// a prelude with the sandbox's paths, the shared helpers, the script.
func (s *Server) installStandins() error {
	common, err := standins.ReadFile("standin/common.sh")
	if err != nil {
		return err
	}
	prelude := fmt.Sprintf("#!/bin/sh\n# Stand-in generated by github.com/hatchery-dev/hatchery/provider/fake.\n"+
		"# A simulation: files are real, the init system is not.\nROOT=%s\nSTATE=%s\nHOST=%s\nUNIT_FAILS=%d\n\n",
		shellQuote(s.fs), shellQuote(s.state), shellQuote(s.name), btoi(s.faults.UnitFails))
	for _, name := range standinNames {
		body, err := standins.ReadFile("standin/" + name + ".sh")
		if err != nil {
			return err
		}
		script := prelude + string(common) + "\n" + string(body)
		if err := os.WriteFile(filepath.Join(s.bin, name), []byte(script), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// finishCloudInit records cloud-init's final status for the stand-in.
func (s *Server) finishCloudInit(errs []string, at string) {
	status, detail := "done", "DataSourceHetzner\n"
	if len(errs) > 0 {
		status, detail = "error", strings.Join(errs, "\n")+"\n"
	}
	dir := filepath.Join(s.state, "cloud-init")
	for name, content := range map[string]string{"last_update": at + "\n", "detail": detail} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			s.log.Warn("fake: cloud-init state", "err", err)
		}
	}
	// status last: the stand-in reads it first.
	tmp := filepath.Join(dir, "status.tmp")
	if err := os.WriteFile(tmp, []byte(status+"\n"), 0o644); err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "status"))
		if err != nil {
			s.log.Warn("fake: cloud-init state", "err", err)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
