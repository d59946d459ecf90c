package nspawn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// recipeVersion names the way images are built; change it whenever
// configure changes, so that images built the old way are not used.
const recipeVersion = "2"

// basePackages are installed in every image, on top of debootstrap's
// minbase variant. python3-cffi-backend is there because without it
// cloud-init's python3-cryptography fails to configure under debootstrap;
// libpam-systemd because cloud images have it: SSH logins are logind
// sessions with their own scope and user manager, not processes of
// ssh.service.
var basePackages = []string{
	"ca-certificates", "cloud-init", "dbus", "iproute2", "libpam-systemd", "locales",
	"openssh-server", "python3-cffi-backend", "sudo", "systemd", "systemd-sysv",
}

// knownSuites are the Debian releases an image can be built from.
var knownSuites = []string{"bookworm", "trixie"}

// cloudCfg is the image's cloud-init configuration: the seed is a NoCloud
// directory, the server shares the host's network (cloud-init must leave
// it alone), and cloud-init manages /etc/hosts as cloud images have it
// (without, sudo says "unable to resolve host").
const cloudCfg = `# Written by hatchery's provider/nspawn when it built this image.
# The NoCloud seed is written into /var/lib/cloud/seed/nocloud before boot.
datasource_list: [ NoCloud, None ]
# The server shares the host's network namespace: leave it alone.
network: {config: disabled}
manage_etc_hosts: true
`

const hosts = `127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
`

// imageSpec is what an image is built from; its key addresses it in the
// cache.
type imageSpec struct {
	Suite    string   `json:"suite"`
	Mirror   string   `json:"mirror"`
	Security string   `json:"security_mirror"`
	Packages []string `json:"packages"`
}

func (s imageSpec) key() string {
	h := sha256.New()
	for _, part := range []string{recipeVersion, s.Suite, s.Mirror, s.Security, strings.Join(s.Packages, ","), cloudCfg, hosts, s.sources()} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	return s.Suite + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// sources is the image's /etc/apt/sources.list: the release, its updates
// and its security updates, from the same mirrors the image was built
// from.
func (s imageSpec) sources() string {
	return fmt.Sprintf("deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n",
		s.Mirror, s.Suite, s.Mirror, s.Suite, s.Security, s.Suite)
}

// imageInfo is written next to a built image, as IMAGE.json.
type imageInfo struct {
	imageSpec
	Recipe   string        `json:"recipe"`
	Built    time.Time     `json:"built"`
	Duration time.Duration `json:"duration_ns"`
}

// Prepare builds the images of the given suites (the default one when
// none is given) unless they are in the cache: the first Create of a suite
// does the same, and can take minutes. Concurrent builders, in this
// process or another, wait for each other instead of building twice.
func (p *Provider) Prepare(ctx context.Context, suites ...string) error {
	if len(suites) == 0 {
		suites = []string{p.opts.Suite}
	}
	for _, s := range suites {
		if _, err := p.image(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// image returns the image directory of suite, building it if needed.
func (p *Provider) image(ctx context.Context, suite string) (string, error) {
	if !slices.Contains(knownSuites, suite) {
		return "", fmt.Errorf("nspawn: unknown suite %q (want one of %s)", suite, strings.Join(knownSuites, ", "))
	}
	spec := imageSpec{Suite: suite, Mirror: p.opts.Mirror, Security: p.opts.SecurityMirror, Packages: p.packages}
	dir := filepath.Join(p.cacheDir, "images", spec.key())
	if dirExists(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("nspawn: image cache: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(p.cacheDir, "images", lockName))
	if err != nil {
		return "", fmt.Errorf("nspawn: wait for the image build lock: %w", err)
	}
	defer unlock()
	if dirExists(dir) { // built while we waited
		return dir, nil
	}
	p.log.InfoContext(ctx, "nspawn: building image (once; takes a minute or two)", "suite", suite, "dir", dir)
	start := time.Now()
	if err := p.build(ctx, spec, dir); err != nil {
		return "", err
	}
	p.log.InfoContext(ctx, "nspawn: image built", "suite", suite, "dir", dir, "took", time.Since(start).Round(time.Second))
	return dir, nil
}

// build builds the image of spec into dir, through dir.tmp, which it
// renames at the end: an image directory exists only complete.
func (p *Provider) build(ctx context.Context, spec imageSpec, dir string) error {
	start := time.Now()
	tmp := dir + ".tmp"
	if err := removeTree(tmp); err != nil { // a build that died
		return fmt.Errorf("nspawn: image: %w", err)
	}
	debs := filepath.Join(p.cacheDir, "debs", spec.Suite)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return fmt.Errorf("nspawn: image: %w", err)
	}
	logPath := dir + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("nspawn: image: %w", err)
	}
	defer logf.Close()

	cmd := exec.CommandContext(ctx, p.prog.debootstrap,
		"--variant=minbase", "--components=main", "--include="+strings.Join(spec.Packages, ","),
		"--cache-dir="+debs, spec.Suite, tmp, spec.Mirror)
	cmd.Env = []string{"PATH=" + safePath, "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = buildAttr()
	cmd.Cancel = func() error { return signal(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		_ = removeTree(tmp)
		if ctx.Err() != nil {
			return fmt.Errorf("nspawn: image %s: debootstrap: %w", spec.Suite, ctx.Err())
		}
		return fmt.Errorf("nspawn: image %s: debootstrap: %w\n%s(full log: %s)", spec.Suite, err, tail(logPath, 20), logPath)
	}
	if err := p.configure(ctx, spec, tmp, logf); err != nil {
		_ = removeTree(tmp)
		return fmt.Errorf("nspawn: image %s: %w", spec.Suite, err)
	}
	info, err := json.MarshalIndent(imageInfo{imageSpec: spec, Recipe: recipeVersion, Built: time.Now().UTC(), Duration: time.Since(start)}, "", "\t")
	if err == nil {
		err = os.WriteFile(dir+".json", append(info, '\n'), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		_ = removeTree(tmp)
		return fmt.Errorf("nspawn: image %s: %w", spec.Suite, err)
	}
	return nil
}

// configure turns a fresh debootstrap into an image cloud-init can
// configure as a cloud server: see the package documentation.
func (p *Provider) configure(ctx context.Context, spec imageSpec, root string, log *os.File) error {
	// The en_US.UTF-8 locale: cloud-init's locale module sets it, and
	// fails (cloud-init status: error) when it is not generated.
	gen := filepath.Join(root, "etc/locale.gen")
	b, err := os.ReadFile(gen)
	if err != nil {
		return err
	}
	const want = "en_US.UTF-8 UTF-8"
	if bytes.Contains(b, []byte("# "+want+"\n")) {
		b = bytes.Replace(b, []byte("# "+want+"\n"), []byte(want+"\n"), 1)
	} else if !bytes.Contains(b, []byte("\n"+want+"\n")) {
		b = append(b, want+"\n"...)
	}
	if err := os.WriteFile(gen, b, 0o644); err != nil {
		return err
	}
	// It is also the system's locale already, as cloud-init's locale
	// module would make it: otherwise that module regenerates it on
	// every first boot (1.4 s).
	for _, args := range [][]string{{"locale-gen"}, {"update-locale", "LANG=en_US.UTF-8"}} {
		cmd := exec.CommandContext(ctx, p.prog.chroot, append([]string{root}, args...)...)
		cmd.Env = []string{"PATH=" + safePath, "LANG=C.UTF-8"}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = buildAttr()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
	}

	files := []struct {
		path, content string
		mode          os.FileMode
	}{
		{"etc/cloud/cloud.cfg.d/90_hatchery.cfg", cloudCfg, 0o644},
		{"etc/apt/sources.list", spec.sources(), 0o644},
		{"etc/hosts", hosts, 0o644},
		{"etc/hostname", "localhost\n", 0o644},
		// Empty: systemd makes one per boot (nspawn passes a random
		// UUID), so no two servers share a machine ID.
		{"etc/machine-id", "", 0o444},
	}
	for _, f := range files {
		path := filepath.Join(root, f.path)
		if err := os.WriteFile(path, []byte(f.content), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(path, f.mode); err != nil {
			return err
		}
	}
	dbusID := filepath.Join(root, "var/lib/dbus/machine-id")
	if err := os.Remove(dbusID); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink("/etc/machine-id", dbusID); err != nil {
		return err
	}
	// Host keys: each server's cloud-init makes its own.
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb")) // kept in the debs cache
	for _, f := range append(keys, debs...) {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	return nil
}

// safePath is the PATH of every program the provider runs.
const safePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// removeTree removes a directory tree that no mount must be under: it
// refuses (rather than delete through a mount) when one is.
func removeTree(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// unmountUnder detaches every mount at or under dir in this process's
// mount namespace, and fails if one is left.
func unmountUnder(dir string) error {
	points, err := mountsUnder(dir)
	if err != nil || len(points) == 0 {
		return err
	}
	for _, m := range slices.Backward(points) {
		_ = unmountDetach(m)
	}
	if points, err = mountsUnder(dir); err != nil {
		return err
	}
	if len(points) > 0 {
		return fmt.Errorf("mounts left under %s: %s", dir, strings.Join(points, ", "))
	}
	return nil
}

// mountsUnder lists the mount points at or under dir, in mount order.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		if m := unescapeMount(f[4]); m == dir || strings.HasPrefix(m, dir+"/") {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
