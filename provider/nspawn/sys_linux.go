package nspawn

import (
	"errors"
	"os"
	"syscall"
)

const supported = true

// containerAttr runs the wrapper that starts a container in a session and
// a mount namespace of its own (mounts made there vanish with it), and,
// when pdeath is set, sends it SIGTERM (a clean poweroff of the
// container) when the thread that started it dies.
func containerAttr(pdeath bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true, Unshareflags: syscall.CLONE_NEWNS}
	if pdeath {
		a.Pdeathsig = syscall.SIGTERM
	}
	return a
}

// buildAttr runs an image build in a session (its process group is killed
// on cancellation) and a mount namespace of its own, so the proc and sys
// mounts debootstrap makes in the target never reach the host.
func buildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Unshareflags: syscall.CLONE_NEWNS}
}

// tryLock takes an exclusive flock on f without blocking; it reports false
// when another open file description holds it.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// unmountDetach detaches the mount at path.
func unmountDetach(path string) error { return syscall.Unmount(path, syscall.MNT_DETACH) }

// signal sends sig to the process pid.
func signal(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// sigHalt is SIGRTMIN+3 as systemd counts (glibc's SIGRTMIN is 34): the
// signal that makes systemd halt, which ends a container.
const sigHalt = syscall.Signal(34 + 3)

// fileOwner returns the uid that owns the file of fi.
func fileOwner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// oNoFollow makes an open fail on a symbolic link (the last element).
const oNoFollow = syscall.O_NOFOLLOW
