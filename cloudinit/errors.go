package cloudinit

import (
	"errors"
	"fmt"
	"strconv"
)

// MaxSize is Hetzner's user_data limit, in bytes.
const MaxSize = 32 << 10

// MaxDocument is the largest plain document Build renders and Decode
// accepts after gunzipping, in bytes. It bounds what a compressed
// user-data may expand to.
const MaxDocument = 1 << 20

// Errors Build returns; test with errors.Is.
var (
	ErrInvalid  = errors.New("cloudinit: invalid config")
	ErrSecret   = errors.New("cloudinit: secret in user-data")
	ErrTooLarge = errors.New("cloudinit: user-data too large")
)

// SizeError reports user-data over its limit. It matches ErrTooLarge.
type SizeError struct {
	Size  int // bytes that would be sent
	Limit int // the limit in force
}

// Error says how large the user-data is and what the limit is.
func (e *SizeError) Error() string {
	return fmt.Sprintf("cloudinit: user-data is %d bytes, over the %d-byte limit", e.Size, e.Limit)
}

// Is reports whether target is ErrTooLarge.
func (e *SizeError) Is(target error) bool { return target == ErrTooLarge }

// FieldError reports a Config field that Build refuses. It wraps
// ErrInvalid. Field is the path of the field as it appears in the
// document, such as "users[0].name" or "runcmd[2][0]"; Reason says which
// rule the value breaks. Neither ever contains the value itself, which
// might be a secret put in the wrong place.
type FieldError struct {
	Field  string
	Reason string
}

// Error names the field and why it was refused; never its value.
func (e *FieldError) Error() string {
	return "cloudinit: invalid config: " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// SecretError reports something secret-looking in the user-data. It wraps
// ErrSecret. Kind names what was found ("private key block", "GitHub
// token", "Config.Secrets[2]", ...); Field is the path of the field that
// holds it, or empty when it was found in the rendered document, in which
// case Line is its 1-based line number. The value itself is never part of
// the error.
type SecretError struct {
	Kind  string
	Field string
	Line  int
}

// Error names the kind of secret and where it is; never the value.
func (e *SecretError) Error() string {
	where := e.Field
	if where == "" {
		where = "line " + strconv.Itoa(e.Line) + " of the document"
	}
	return "cloudinit: secret in user-data: " + e.Kind + " in " + where
}

// Unwrap returns ErrSecret.
func (e *SecretError) Unwrap() error { return ErrSecret }
