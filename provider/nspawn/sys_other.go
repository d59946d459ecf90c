//go:build !linux

package nspawn

import (
	"errors"
	"os"
	"syscall"
)

// supported is false: New refuses to run anywhere but Linux, so nothing
// below is ever reached.
const supported = false

var errNotLinux = errors.New("nspawn: Linux only")

func containerAttr(bool) *syscall.SysProcAttr { return nil }

func buildAttr() *syscall.SysProcAttr { return nil }

func tryLock(*os.File) (bool, error) { return false, errNotLinux }

func unmountDetach(string) error { return errNotLinux }

func signal(int, syscall.Signal) error { return errNotLinux }

const sigHalt = syscall.Signal(0)

func fileOwner(os.FileInfo) (int, bool) { return 0, false }

const oNoFollow = 0
