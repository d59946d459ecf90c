// Package pyjson writes JSON strings as Python's json.dumps does by
// default (ensure_ascii): what cloud-init, a Python program, puts on the
// wire and in its files.
package pyjson

import (
	"strconv"
	"strings"
)

// Escape returns s escaped as the inside of a JSON string the way
// Python's json.dumps does by default: '"' and '\' escaped, the short
// escapes \n \r \t \b \f, every other character outside printable ASCII
// as \uXXXX (a surrogate pair beyond the BMP). '/' stays as it is.
func Escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				r -= 0x10000
				b.WriteString(`\u` + hex4(0xd800+(r>>10)&0x3ff) + `\u` + hex4(0xdc00+r&0x3ff))
			} else {
				b.WriteString(`\u` + hex4(r))
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Quote returns s as a JSON string the way Python's json.dumps does by
// default: Escape(s) in double quotes.
func Quote(s string) string { return `"` + Escape(s) + `"` }

func hex4(r rune) string {
	s := strconv.FormatInt(int64(r), 16)
	return strings.Repeat("0", 4-len(s)) + s
}
