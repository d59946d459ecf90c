package provision

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestStorableText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		max      int
	}{
		{"plain", "inject: step 3 failed", 100},
		{"nul", "a\x00b", 100},
		{"invalid utf-8", "a\xffb\xc3", 100},
		{"long", strings.Repeat("é", 5000) + "journal tail", 4096},
		{"long invalid", strings.Repeat("x\xff", 5000) + "end", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := storableText(tt.in, tt.max)
			assert.True(t, utf8.ValidString(got))
			assert.NotContains(t, got, "\x00")
			assert.LessOrEqual(t, len(got), tt.max)
			if len(tt.in) > tt.max {
				assert.True(t, strings.HasSuffix(got, tt.in[len(tt.in)-3:]), "the end is kept: %q", got[len(got)-10:])
			}
		})
	}
	assert.Equal(t, "inject: step 3 failed", storableText("inject: step 3 failed", 100))
}

func TestRedact(t *testing.T) {
	t.Parallel()
	vs := secretValues(map[string]string{"a": "token-1", "b": "token-12", "c": "", "d": "token-1"})
	assert.Equal(t, []string{"token-12", "token-1"}, vs, "longest first, distinct, no empty")
	assert.Equal(t, "x [REDACTED] y [REDACTED]", redact("x token-12 y token-1", vs))
	assert.Equal(t, "exit 1", redact("exit 1", []string{"1"}), "too short to redact")
}
