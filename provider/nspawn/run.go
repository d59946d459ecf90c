package nspawn

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// wrapper starts a container. It runs in a mount namespace of its own
// (made by the provider), joins the server's cgroups (the unified one
// last), mounts the overlay there, so that the mount vanishes with the
// container and never shows on the host, and becomes systemd-nspawn.
//
//	sh -c wrapper hatchery-nspawn N CGROUP... OVERLAY-OPTIONS ROOT NSPAWN ARGS...
const wrapper = `n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ >"$1/cgroup.procs" || exit 125; shift; n=$((n-1)); done
mount -t overlay overlay -o "$1" "$2" || exit 125
shift 2
exec "$@"`

// startTimeout bounds the wait for the container's init to start.
const startTimeout = 30 * time.Second

// boot writes the server's seed and configuration into its writable layer
// and starts its container. r gets its port.
func (p *Provider) boot(ctx context.Context, r *record, userData []byte) error {
	dir := p.dir(r.ID)
	port, err := p.ports.reserve(ctx, dir)
	if err != nil {
		return err
	}
	r.Port = port
	if err := p.writeRecord(*r); err != nil {
		return err
	}
	upper, work, root := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "root")
	for _, d := range []string{upper, work, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil { // the container's / has upper's mode
			return err
		}
	}
	metaData := "instance-id: " + InstanceID(r.ID) + "\nlocal-hostname: " + r.Name + "\n"
	sshd := "# Written by hatchery's provider/nspawn before the first boot: this server\n" +
		"# shares the host's network, so its sshd listens on a port of its own.\n" +
		"ListenAddress 127.0.0.1:" + strconv.Itoa(port) + "\n"
	for _, f := range []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{"var/lib/cloud/seed/nocloud/user-data", userData, 0o600},
		{"var/lib/cloud/seed/nocloud/meta-data", []byte(metaData), 0o644},
		{"etc/ssh/sshd_config.d/hatchery-nspawn.conf", []byte(sshd), 0o644},
		{"etc/hostname", []byte(r.Name + "\n"), 0o644},
	} {
		if err := writeLayer(upper, r.Image, f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	for _, cg := range r.Cgroups {
		if err := os.MkdirAll(cg, 0o755); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	console, err := os.OpenFile(filepath.Join(dir, consoleFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND|oNoFollow, 0o600)
	if err != nil {
		return err
	}
	defer console.Close()

	args := []string{"-c", wrapper, "hatchery-nspawn", strconv.Itoa(len(r.Cgroups))}
	rev := slices.Clone(r.Cgroups)
	slices.Reverse(rev)
	args = append(args, rev...)
	args = append(args,
		"lowerdir="+r.Image+",upperdir="+upper+",workdir="+work, root,
		p.prog.nspawn,
		"--boot",
		"--directory="+root,
		"--machine="+r.Machine,
		"--register=no", // no machined on the host to register with
		"--keep-unit",   // stay in our cgroup: without systemd on the host there is no bus for a scope
		"--console=read-only",
		"--link-journal=no",
		"--settings=no",
	)
	cmd := exec.Command(p.prog.sh, args...)
	cmd.Env = []string{"PATH=" + safePath}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = containerAttr(!p.opts.Keep)
	if err := p.sp.start(cmd, !p.opts.Keep); err != nil {
		return fmt.Errorf("start systemd-nspawn: %w", err)
	}
	done := make(chan struct{})
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.started[r.ID] = done
	p.mu.Unlock()

	// Started means: the container's init runs, in the payload cgroup
	// that systemd-nspawn makes for it. Until then nspawn may still fail
	// (a broken image, a mount it cannot make) and exit.
	unified := r.Cgroups[0]
	payload := filepath.Join(unified, "payload")
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for !populated(payload) {
		select {
		case err := <-exited:
			return fmt.Errorf("systemd-nspawn ended at once (%v):\n%s", err, tail(filepath.Join(dir, consoleFile), 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			if populated(unified) {
				p.log.WarnContext(ctx, "nspawn: no payload cgroup yet: taking the server as started", "id", r.ID, "cgroup", unified)
				return nil
			}
			return fmt.Errorf("systemd-nspawn did not start within %v", startTimeout)
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// writeLayer writes a file into the overlay's upper layer before the
// first mount. Directories it has to make there take the mode of the
// same directory in the image (lower), as the merged view shows upper's.
func writeLayer(upper, lower, rel string, data []byte, mode fs.FileMode) error {
	parts := strings.Split(filepath.Dir(rel), "/")
	for i := range parts {
		sub := filepath.Join(parts[:i+1]...)
		dst := filepath.Join(upper, sub)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		perm := fs.FileMode(0o755)
		if fi, err := os.Stat(filepath.Join(lower, sub)); err == nil && fi.IsDir() {
			perm = fi.Mode().Perm()
		}
		if err := os.Mkdir(dst, perm); err != nil {
			return err
		}
		if err := os.Chmod(dst, perm); err != nil {
			return err
		}
	}
	path := filepath.Join(upper, rel)
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// stop powers the server off: SIGTERM to systemd-nspawn (in the server's
// cgroup while it starts, in its supervisor cgroup once the container
// runs), which asks the container's systemd for a clean poweroff, then,
// after StopTimeout, the cgroup killed. SIGKILL to nspawn alone would
// orphan the container. It returns once no process is left (and nspawn
// is reaped, when this Provider started it).
func (p *Provider) stop(ctx context.Context, r record) error {
	if len(r.Cgroups) == 0 {
		return nil
	}
	p.mu.Lock()
	done := p.started[r.ID]
	p.mu.Unlock()
	cg := r.Cgroups[0]
	if populated(cg) {
		// SIGTERM to nspawn, once: it asks the container's systemd to
		// halt (SIGRTMIN+3); a second SIGTERM would make it kill the
		// container at once. A SIGRTMIN+3 that arrives before systemd
		// handles it is lost, so it is repeated, every second, straight
		// to the container's init.
		for _, d := range []string{cg, filepath.Join(cg, "supervisor")} {
			for _, pid := range procs(d) {
				_ = signal(pid, syscall.SIGTERM)
			}
		}
		deadline := time.Now().Add(p.opts.StopTimeout)
		for !waitEmpty(ctx, cg, min(time.Second, time.Until(deadline))) && time.Now().Before(deadline) && ctx.Err() == nil {
			for _, pid := range containerInit(filepath.Join(cg, "payload")) {
				_ = signal(pid, sigHalt)
			}
		}
		if populated(cg) {
			if err := ctx.Err(); err != nil {
				return err
			}
			p.log.WarnContext(ctx, "nspawn: server did not power off in time: killing it", "id", r.ID, "timeout", p.opts.StopTimeout)
			// The container first: systemd-nspawn then ends on its own
			// and cleans up after itself. Whatever is left goes next.
			if err := killCgroup(filepath.Join(cg, "payload")); err != nil {
				return err
			}
			if !waitEmpty(ctx, cg, 5*time.Second) {
				if err := killCgroup(cg); err != nil {
					return err
				}
				if !waitEmpty(ctx, cg, 10*time.Second) {
					if err := ctx.Err(); err != nil {
						return err
					}
					return fmt.Errorf("processes left in cgroup %s after it was killed", cg)
				}
			}
		}
	}
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// containerInit returns the container's init: the processes in the
// payload cgroup (or below) that are PID 1 of their PID namespace.
func containerInit(payload string) []int {
	var out []int
	_ = filepath.WalkDir(payload, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		for _, pid := range procs(path) {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
			if err != nil {
				continue
			}
			for line := range strings.Lines(string(b)) {
				if ns, ok := strings.CutPrefix(line, "NSpid:"); ok {
					if f := strings.Fields(ns); len(f) > 1 && f[len(f)-1] == "1" {
						out = append(out, pid)
					}
				}
			}
		}
		return nil
	})
	return out
}

// spawner starts the containers of a Provider without Keep from one
// goroutine locked to its OS thread: the parent-death signal (SIGTERM,
// a clean poweroff) that stops them when the process dies is tied to
// the thread that started them, and Go ends other threads at will. The
// thread ends with Close.
type spawner struct {
	mu   sync.Mutex
	reqs chan spawnReq
	done chan struct{}
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

// start starts cmd: from the locked thread when pdeath is set, else
// directly.
func (s *spawner) start(cmd *exec.Cmd, pdeath bool) error {
	if !pdeath {
		return cmd.Start()
	}
	s.mu.Lock()
	if s.reqs == nil {
		s.reqs, s.done = make(chan spawnReq), make(chan struct{})
		go spawnLoop(s.reqs, s.done)
	}
	reqs := s.reqs
	s.mu.Unlock()
	req := spawnReq{cmd: cmd, err: make(chan error, 1)}
	reqs <- req
	return <-req.err
}

// spawnLoop never unlocks its thread: when it returns, Go ends the thread.
func spawnLoop(reqs <-chan spawnReq, done chan<- struct{}) {
	runtime.LockOSThread()
	defer close(done)
	for r := range reqs {
		r.err <- r.cmd.Start()
	}
}

// stop ends the spawning thread; no start may be running or follow.
func (s *spawner) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reqs != nil {
		close(s.reqs)
		<-s.done
		s.reqs = nil
	}
}
