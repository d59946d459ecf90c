package cloudinit

import (
	"errors"
	"fmt"
)

// MaxSize is Hetzner's user_data limit, in bytes.
const MaxSize = 32 << 10

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

func (e *SizeError) Error() string {
	return fmt.Sprintf("cloudinit: user-data is %d bytes, over the %d-byte limit", e.Size, e.Limit)
}

// Is reports whether target is ErrTooLarge.
func (e *SizeError) Is(target error) bool { return target == ErrTooLarge }
