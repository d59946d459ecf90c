package redact_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/redact"
)

func TestChain(t *testing.T) {
	t.Parallel()
	hide := func(s string) string { return strings.ReplaceAll(s, "hunter2", "[REDACTED]") }
	sentinel := errors.New("sentinel hunter2")
	pathErr := &fs.PathError{Op: "open", Path: "/x/hunter2", Err: fs.ErrNotExist}
	tests := []struct {
		name string
		err  error
	}{
		{"plain", errors.New("token hunter2 refused")},
		{"wrapped", fmt.Errorf("step: %w", fmt.Errorf("inner hunter2: %w", sentinel))},
		{"joined", errors.Join(sentinel, fmt.Errorf("other hunter2: %w", pathErr))},
		{"two %w", fmt.Errorf("a %w b %w", sentinel, pathErr)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := redact.Chain(tt.err, hide)
			// Every message reachable by unwrapping is redacted.
			var walk func(error)
			n := 0
			walk = func(e error) {
				if e == nil {
					return
				}
				n++
				assert.NotContains(t, e.Error(), "hunter2")
				switch u := e.(type) {
				case interface{ Unwrap() error }:
					walk(u.Unwrap())
				case interface{ Unwrap() []error }:
					for _, x := range u.Unwrap() {
						walk(x)
					}
				}
			}
			walk(got)
			assert.Positive(t, n)
			// Identity still reaches the original chain.
			if errors.Is(tt.err, sentinel) {
				assert.ErrorIs(t, got, sentinel)
			}
			if errors.Is(tt.err, fs.ErrNotExist) {
				assert.ErrorIs(t, got, fs.ErrNotExist)
				var pe *fs.PathError
				require.ErrorAs(t, got, &pe)
			}
		})
	}
	assert.NoError(t, redact.Chain(nil, hide))
}

func TestChainDepthBounded(t *testing.T) {
	t.Parallel()
	err := errors.New("root")
	for range 3 * redact.MaxDepth {
		err = fmt.Errorf("wrap: %w", err)
	}
	got := redact.Chain(err, strings.ToUpper)
	depth := 0
	for e := got; e != nil; e = errors.Unwrap(e) {
		depth++
	}
	assert.Equal(t, redact.MaxDepth+1, depth)
	assert.Equal(t, strings.ToUpper(err.Error()), got.Error())
}
