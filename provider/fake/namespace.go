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

// The read-only namespace is built in two levels, so that what costs
// (remounting every mount of the machine) is done once per Provider:
//
//   - the base (baseScript), one per Provider, set up by the first server
//     that needs it: a user and mount namespace (unshare --map-root-user
//     --mount) in which every mount is read-only;
//   - one per server (serverScript), entered from the base: a mount
//     namespace of its own in which the server's sandbox is bound
//     writable, then a nested user and mount namespace mapped back to the
//     test's user and group, where the read-only flags are locked (a
//     namespace cannot undo what its parent's made read-only). Commands
//     join this last one with nsenter.
//
// /proc stays writable (the nested unshare writes its uid_map there), but
// /proc/sys and /proc/sysrq-trigger are covered with read-only binds. A
// mount that cannot be made read-only fails the whole setup: then the
// servers run commands without a namespace. A holder says "ready", closes
// its output and waits with the shell's read until its stdin closes.

// baseScript runs in a new user and mount namespace, as root there: it
// makes every mount read-only.
const baseScript = `set -u
while read -r _ _ _ _ mp opts _; do
	case ,$opts, in *,ro,*) continue ;; esac
	case $mp in *\\*) mp=$(printf '%b' "$mp") ;; esac
	case $mp in /proc) continue ;; esac
	[ -e "$mp" ] || continue
	mount -o remount,bind,ro "$mp" || exit 1
done </proc/self/mountinfo
for p in /proc/sys /proc/sysrq-trigger; do
	[ -e "$p" ] || continue
	{ mount --bind "$p" "$p" && mount -o remount,bind,ro "$p"; } || exit 1
done
echo ready
exec >/dev/null 2>&1
read -r _
`

// serverScript runs in a new mount namespace made from the base's, as
// root in the base's user namespace: it binds the server's sandbox ($1)
// writable, then enters a nested user and mount namespace mapped back to
// the test's user and group ($2, $3), where it checks what a command will
// find: the sandbox's file system ($4) writable, the directory of the
// sandboxes ($5) not.
const serverScript = `set -u
{ mount --bind "$1" "$1" && mount -o remount,bind,rw "$1"; } || exit 1
exec unshare --user --mount --propagation unchanged --map-user="$2" --map-group="$3" -- /bin/sh -c '
test -w "$1" || { echo "namespace check: the sandbox is not writable" >&2; exit 1; }
! test -w "$2" || { echo "namespace check: the directory of the sandboxes is writable" >&2; exit 1; }
echo ready
exec >/dev/null 2>&1
read -r _' fake-namespace "$4" "$5"
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

	baseMu sync.Mutex
	base   *holder // the base namespace; nil until set up
	closed bool    // stop was called: no base any more
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

// errIsolationClosed is why no namespace is set up once the provider is
// closed.
var errIsolationClosed = errors.New("namespace: provider closed")

// basePID returns the pid of the process holding the base namespace,
// setting it up on first use.
func (iso *isolation) basePID() (int, error) {
	iso.baseMu.Lock()
	defer iso.baseMu.Unlock()
	if iso.closed {
		return 0, errIsolationClosed
	}
	if iso.base == nil {
		cmd := exec.Command(iso.unshare, "--user", "--map-root-user", "--mount", "--propagation", "private", "--",
			"/bin/sh", "-c", baseScript, "fake-namespace")
		h, err := startHolder(cmd)
		if err != nil {
			return 0, fmt.Errorf("namespace setup: %w", err)
		}
		iso.base = h
		iso.log.Debug("fake: base namespace", "holder", h.cmd.Process.Pid)
	}
	return iso.base.cmd.Process.Pid, nil
}

// stop ends the base namespace; none is set up after it. The servers'
// namespaces, made from it, must have ended.
func (iso *isolation) stop() {
	iso.baseMu.Lock()
	defer iso.baseMu.Unlock()
	iso.closed = true
	if iso.base != nil {
		iso.base.stop()
		iso.base = nil
	}
}

// holder is a process that keeps a namespace alive.
type holder struct {
	cmd *exec.Cmd
	in  *os.File // closing it ends the holder
}

// startHolder starts cmd, a namespace holder, and waits until it says
// "ready" and closes its output.
func startHolder(cmd *exec.Cmd) (*holder, error) {
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
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
	ownGroup(cmd)
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		return nil, err
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
		return nil, err
	}
	return h, nil
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
		} else if h, err := s.startNamespace(); err != nil {
			if !errors.Is(err, errIsolationClosed) {
				s.iso.failed(err)
			}
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

// startNamespace sets the server's namespace up from the base (see
// serverScript). Entering the base's user namespace with the test user's
// own credentials makes it root there (--map-root-user maps it to 0),
// without the setgroups nsenter would need otherwise.
func (s *Server) startNamespace() (*holder, error) {
	base, err := s.iso.basePID()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.iso.nsenter, "--target", strconv.Itoa(base), "--user", "--mount", "--preserve-credentials", "--",
		s.iso.unshare, "--mount", "--propagation", "unchanged", "--",
		"/bin/sh", "-c", serverScript, "fake-namespace", s.dir, strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid()), s.fs, filepath.Dir(s.dir))
	h, err := startHolder(cmd)
	if err != nil {
		return nil, fmt.Errorf("namespace setup (the sandbox must be writable, its directory not): %w", err)
	}
	s.log.Debug("fake: commands run in a read-only mount namespace", "holder", h.cmd.Process.Pid)
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
