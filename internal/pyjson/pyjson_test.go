package pyjson

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The wants are Python 3's json.dumps(s) (ensure_ascii, the default).
func TestQuote(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"modules-final/config-scripts-user", `"modules-final/config-scripts-user"`},
		{"a\b\f\n\r\t\"\\/", `"a\b\f\n\r\t\"\\/"`},
		{"\x7f\x01\x1f", `"\u007f\u0001\u001f"`},
		{"é€", `"\u00e9\u20ac"`},
		{"😀", `"\ud83d\ude00"`},
		{"\U0010ffff", `"\udbff\udfff"`},
		{"<>&\u2028", `"<>&\u2028"`},
		{"\xff", `"\ufffd"`}, // not UTF-8: Go reads it as U+FFFD
	} {
		assert.Equal(t, tc.want, Quote(tc.in), "%q", tc.in)
		assert.Equal(t, tc.want[1:len(tc.want)-1], Escape(tc.in), "%q", tc.in)
	}
}
