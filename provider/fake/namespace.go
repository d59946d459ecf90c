package fake

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// holderScript runs in a new user and mount namespace (unshare
// --map-root-user --mount, so it may mount there): it makes every mount
// read-only but the sandbox ($1), then enters a nested user and mount
// namespace mapped back to the test's user and group ($2, $3), in which
// the read-only flags are locked (the nested namespace cannot undo them),
// says "ready" and waits for its stdin to close, its output closed. Commands join the nested
// namespaces with nsenter.
//
// /proc stays writable (the nested unshare writes its uid_map there), but
// /proc/sys and /proc/sysrq-trigger are covered with read-only binds. A
// mount that cannot be made read-only fails the whole setup: then the
// server runs commands without a namespace.
const holderScript = `set -u
sb=$1
while read -r _ _ _ _ mp opts _; do
	case ,$opts, in *,ro,*) continue ;; esac
	mp=$(printf '%b' "$mp")
	case $mp in /proc) continue ;; esac
	[ -e "$mp" ] || continue
	mount -o remount,bind,ro "$mp" || exit 1
done </proc/self/mountinfo
for p in /proc/sys /proc/sysrq-trigger; do
	[ -e "$p" ] || continue
	{ mount --bind "$p" "$p" && mount -o remount,bind,ro "$p"; } || exit 1
done
{ mount --bind "$sb" "$sb" && mount -o remount,bind,rw "$sb"; } || exit 1
exec unshare --user --mount --propagation unchanged --map-user="$2" --map-group="$3" -- /bin/sh -c 'echo ready && exec cat >/dev/null 2>&1'
`

// isolation is the provider's knowledge of whether commands can run in a
// read-only mount namespace: util-linux's unshare and nsenter are needed,
// and the kernel must allow user namespaces. The first server that fails
// to set one up turns it off for the others.
type isolation struct {
	unshare, nsenter string
	log              *slog.Logger

	mu  sync.Mutex
	off string // why there is no namespace; "" while it may work
}

func newIsolation(disabled bool, log *slog.Logger) *isolation {
	iso := &isolation{log: log}
	switch {
	case disabled:
		iso.off = "Options.NoNamespace"
	case runtime.GOOS != "linux":
		iso.off = "mount namespaces need Linux"
	default:
		var err1, err2 error
		iso.unshare, err1 = exec.LookPath("unshare")
		iso.nsenter, err2 = exec.LookPath("nsenter")
		if err := errors.Join(err1, err2); err != nil {
			iso.off = "util-linux unshare and nsenter: " + err.Error()
		}
	}
	return iso
}

// why returns why commands run without a namespace, "" if one may be tried.
func (iso *isolation) why() string {
	iso.mu.Lock()
	defer iso.mu.Unlock()
	return iso.off
}

// failed turns the namespace off for every later server; the first
// failure is logged.
func (iso *isolation) failed(err error) {
	iso.mu.Lock()
	defer iso.mu.Unlock()
	if iso.off == "" {
		iso.off = err.Error()
		iso.log.Warn("fake: no read-only mount namespace for commands; paths are only rewritten and checked", "err", err)
	}
}

// holder is the process that keeps a server's namespace alive.
type holder struct {
	cmd *exec.Cmd
	in  *os.File // closing it ends the holder
}

// namespace returns the pid of the process holding the server's read-only
// mount namespace, setting it up on first use; 0 when commands run
// without one.
func (s *Server) namespace() int {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if !s.nsTried {
		s.nsTried = true
		if why := s.iso.why(); why != "" {
			s.log.Debug("fake: commands run without a namespace", "why", why)
		} else if h, err := s.startHolder(); err != nil {
			s.iso.failed(err)
		} else {
			s.holder = h
		}
	}
	if s.holder == nil {
		return 0
	}
	return s.holder.cmd.Process.Pid
}

// Isolated reports whether the server runs commands in a mount namespace
// where everything but its sandbox is read-only (see the package
// documentation); it sets the namespace up if no command has yet.
func (s *Server) Isolated() bool {
	if !s.enter() {
		return false
	}
	defer s.wg.Done()
	return s.namespace() > 0
}

// nsenterArgs returns the arguments of nsenter that run the rest in the
// namespace held by pid, in the directory dir.
func (s *Server) nsenterArgs(pid int, dir string) []string {
	return []string{"--target", strconv.Itoa(pid), "--user", "--mount", "--preserve-credentials", "--wdns=" + dir, "--"}
}

// startHolder sets the namespace up and checks that a command run in it
// can write the sandbox and cannot write the directory the sandbox is in.
func (s *Server) startHolder() (*holder, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	defer outR.Close()
	cmd := exec.Command(s.iso.unshare, "--user", "--map-root-user", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", holderScript, "fake-namespace", s.dir, strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid()))
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
	ownGroup(cmd)
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		return nil, fmt.Errorf("namespace: %w", err)
	}
	h := &holder{cmd: cmd, in: inW}

	_ = outR.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, err := io.ReadAll(io.LimitReader(outR, 64<<10))
	if !bytes.HasSuffix(out, []byte("ready\n")) {
		// The holder's output ends after "ready" (it waits with stdout
		// and stderr on /dev/null); without it, the setup failed.
		h.stop()
		if err == nil {
			err = fmt.Errorf("%s", bytes.TrimSpace(out))
		}
		return nil, fmt.Errorf("namespace setup: %w", err)
	}

	probe := exec.Command(s.iso.nsenter, append(s.nsenterArgs(cmd.Process.Pid, s.fs),
		"/bin/sh", "-c", `test -w "$1" && ! test -w "$2"`, "probe", s.fs, filepath.Dir(s.dir))...)
	probe.Env = cmd.Env
	if out, err := probe.CombinedOutput(); err != nil {
		h.stop()
		return nil, fmt.Errorf("namespace check (the sandbox must be writable, its directory not): %w %s", err, bytes.TrimSpace(out))
	}
	s.log.Debug("fake: commands run in a read-only mount namespace", "holder", cmd.Process.Pid)
	return h, nil
}

// stop ends the holder: its stdin closes, then it is killed if it lingers.
func (h *holder) stop() {
	h.in.Close()
	t := time.AfterFunc(2*time.Second, func() { signalGroup(h.cmd, "KILL") })
	_ = h.cmd.Wait()
	t.Stop()
}

// stopNamespace ends the server's namespace, if it has one; no namespace
// is set up after it.
func (s *Server) stopNamespace() {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	s.nsTried = true
	if s.holder != nil {
		s.holder.stop()
		s.holder = nil
	}
}
