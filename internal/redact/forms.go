package redact

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"unicode/utf8"
)

// minCoreLen is the shortest base64 alignment core (see forms) looked
// for: shorter ones, of secrets of a few bytes, would match ordinary
// words.
const minCoreLen = 8

// form is one way a value may show in text.
type form struct {
	s    string
	core bool // a base64 alignment core: a fragment of an encoding, not a whole one
}

// forms returns v and its encodings that the package doc lists;
// duplicates are left for the caller to drop.
func forms(v string) []form {
	var out []form
	add := func(ss ...string) {
		for _, s := range ss {
			out = append(out, form{s: s})
		}
	}
	add(v)
	b := []byte(v)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		add(enc.EncodeToString(b), enc.WithPadding(base64.NoPadding).EncodeToString(b))
		// v inside a longer base64 text: the characters that depend
		// on v's bytes alone, for each of the three offsets modulo 3
		// at which v can start (offset 0 is the unpadded encoding's
		// prefix, found above).
		for a := 1; a <= 2; a++ {
			if c := core(enc, b, a); len(c) >= minCoreLen {
				out = append(out, form{s: c, core: true})
			}
		}
	}
	h := hex.EncodeToString(b)
	add(h, strings.ToUpper(h))
	for _, p := range []string{url.QueryEscape(v), url.PathEscape(v), escapeAll(v)} {
		add(upperEscapes(p), lowerEscapes(p))
	}
	for _, o := range []jsonOptions{{html: true}, {}, {ascii: true}, {ascii: true, slash: true}} {
		add(jsonEscape(v, o))
	}
	return out
}

// core returns the characters of the base64 encoding of a zero bytes
// followed by b whose six bits all come from b: what any base64 text
// holding b at an offset of a (mod 3) bytes shows of it.
func core(enc *base64.Encoding, b []byte, a int) string {
	padded := make([]byte, a+len(b))
	copy(padded[a:], b)
	s := enc.WithPadding(base64.NoPadding).EncodeToString(padded)
	first := (8*a + 5) / 6       // the first character starting at or after bit 8a
	last := (8*a + 8*len(b)) / 6 // one past the last character ending by bit 8(a+len(b))
	if first >= last || last > len(s) {
		return ""
	}
	return s[first:last]
}

// escapeAll percent-encodes every byte but RFC 3986's unreserved ones.
func escapeAll(v string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// upperEscapes and lowerEscapes set the case of the hex digits of every
// %XX escape in s (url's escapers write upper case).
func upperEscapes(s string) string { return caseEscapes(s, strings.ToUpper) }
func lowerEscapes(s string) string { return caseEscapes(s, strings.ToLower) }

func caseEscapes(s string, f func(string) string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			copy(b[i+1:i+3], f(string(b[i+1:i+3])))
			i += 2
		}
	}
	return string(b)
}

// jsonOptions are the ways JSON encoders differ in escaping a string:
// Go's encoding/json escapes <, > and & (html); Python's json.dumps
// escapes every non-ASCII character (ascii); PHP's json_encode escapes
// the slash as well.
type jsonOptions struct{ html, ascii, slash bool }

// jsonEscape returns v escaped as the inside of a JSON string.
func jsonEscape(v string, o jsonOptions) string {
	const hexd = "0123456789abcdef"
	var b strings.Builder
	u := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hexd[r>>12&15])
		b.WriteByte(hexd[r>>8&15])
		b.WriteByte(hexd[r>>4&15])
		b.WriteByte(hexd[r&15])
	}
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20, o.html && (r == '<' || r == '>' || r == '&'), r == '\u2028' || r == '\u2029':
			u(r)
		case r == '/' && o.slash:
			b.WriteString(`\/`)
		case r == utf8.RuneError:
			u(r)
		case r >= 0x80 && o.ascii:
			if r > 0xffff {
				r -= 0x10000
				u(0xd800 + r>>10)
				u(0xdc00 + r&0x3ff)
			} else {
				u(r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
