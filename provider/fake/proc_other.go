//go:build !unix

package fake

import (
	"os"
	"os/exec"
)

// processGroup does nothing where process groups do not exist: only the
// shell is killed on cancellation.
func processGroup(*exec.Cmd) {}

// ownGroup does nothing where process groups do not exist.
func ownGroup(*exec.Cmd) {}

// exitCode returns the exit status, 255 when there is none.
func exitCode(ps *os.ProcessState) int {
	if ps == nil || ps.ExitCode() < 0 {
		return 255
	}
	return ps.ExitCode()
}

// signalGroup kills the command for TERM, INT and KILL; other signals
// are ignored.
func signalGroup(cmd *exec.Cmd, name string) {
	switch name {
	case "TERM", "INT", "KILL":
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}
}
