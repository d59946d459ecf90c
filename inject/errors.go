package inject

import (
	"errors"
	"fmt"
	"strings"
)

// Errors callers check with errors.Is.
var (
	// ErrInvalid reports a bad argument: a relative path, a mode with more
	// than permission bits, an empty command, an SSHConfig without a
	// HostKeyCallback, and the like. Nothing ran.
	ErrInvalid = errors.New("inject: invalid argument")
	// ErrHostKey reports that the server's host key was not accepted by the
	// HostKeyCallback. Dial never retries it.
	ErrHostKey = errors.New("inject: host key not accepted")
	// ErrAuth reports that the server accepted none of our keys. Dial never
	// retries it.
	ErrAuth = errors.New("inject: authentication failed")
	// ErrNoSecrets is returned by a SecretSource that has no secrets for a
	// tenant.
	ErrNoSecrets = errors.New("inject: no secrets for tenant")
	// ErrPassphrase reports a private key that is encrypted when no
	// passphrase was given.
	ErrPassphrase = errors.New("inject: private key is encrypted and no passphrase was given")
	// ErrSecretInCommand reports a step whose command line or name holds
	// a value that is to be redacted: one that travels in a step's Stdin
	// (or, for multi-line values, one of its lines) or was given with
	// WithRedact. Command lines show in `ps` on the server and names in
	// logs, so Run refuses the list before running anything. The error
	// names the step, never the value.
	ErrSecretInCommand = errors.New("inject: secret value in a step's command line or name")
	// ErrProtocol reports output of the step script that Run could not
	// attribute to steps: the script did not run as written.
	ErrProtocol = errors.New("inject: step script output out of order")
)

// StepError is the error Run returns when a step fails. Every string in it
// is redacted.
type StepError struct {
	Step     string // the step's Name, redacted
	Index    int    // the step's index in the list, from 0; Error and Run's logs number steps from 1 (Index+1)
	ExitCode int    // the remote exit code; -1 when the step did not finish (cancelled, connection lost, output over its limit, not started)
	Stderr   string // the end of the step's standard error as it arrived, redacted, at most 16 KiB
	Err      error  // the cause: its message, and that of every error Unwrap reaches from it, is redacted; errors.Is/As reach the original
}

// Error describes the step (numbered from 1), the cause and the last
// lines of stderr (at most 2 KiB of them; Stderr has more): `step 2 "write /etc/app.env" failed with exit code 1:
// ...`. It does not start with the package's name: the caller says what
// it was doing (provision prefixes "inject: ").
func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %d %q failed", e.Index+1, e.Step)
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, " with exit code %d", e.ExitCode)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		const max = 2 << 10
		if len(s) > max {
			s = "..." + s[len(s)-max:]
		}
		b.WriteString(": stderr: ")
		b.WriteString(s)
	}
	return b.String()
}

// Unwrap returns Err.
func (e *StepError) Unwrap() error { return e.Err }
