package redact_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/redact"
)

// secret has bytes that every encoding treats differently: URL and JSON
// specials, a non-ASCII letter, a space.
const secret = `sk-live/AbC+0123456789"xyz<&>é q=1`

// leak reports the first fragment of n bytes of enc found in out, if any.
func leak(out, enc string, n int) string {
	for i := 0; i+n <= len(enc); i++ {
		if strings.Contains(out, enc[i:i+n]) {
			return enc[i : i+n]
		}
	}
	return ""
}

// leakFast is leak in time proportional to len(out)+len(enc).
func leakFast(out, enc string, n int) string {
	windows := map[string]bool{}
	for i := 0; i+n <= len(enc); i++ {
		windows[enc[i:i+n]] = true
	}
	for i := 0; i+n <= len(out); i++ {
		if windows[out[i:i+n]] {
			return out[i : i+n]
		}
	}
	return ""
}

func jsonOf(t *testing.T, v string, html bool) string {
	t.Helper()
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(html)
	require.NoError(t, e.Encode(v))
	s := strings.TrimSpace(b.String())
	return s[1 : len(s)-1]
}

// pythonJSON escapes like Python's json.dumps (ensure_ascii=True).
func pythonJSON(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r >= 0x80:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestEncodingsRedactedWhole: each encoding of the secret, as the
// standard library writes it, is replaced whole.
func TestEncodingsRedactedWhole(t *testing.T) {
	t.Parallel()
	r := redact.New([]string{secret + "\n"}, nil)
	tests := []struct{ name, enc string }{
		{"raw", secret},
		{"base64 std", base64.StdEncoding.EncodeToString([]byte(secret))},
		{"base64 url", base64.URLEncoding.EncodeToString([]byte(secret))},
		{"base64 raw std", base64.RawStdEncoding.EncodeToString([]byte(secret))},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString([]byte(secret))},
		{"base64 of the untrimmed value", base64.StdEncoding.EncodeToString([]byte(secret + "\n"))},
		{"base64 raw of the untrimmed value", base64.RawURLEncoding.EncodeToString([]byte(secret + "\n"))},
		{"hex", hex.EncodeToString([]byte(secret))},
		{"HEX", strings.ToUpper(hex.EncodeToString([]byte(secret)))},
		{"hex of the untrimmed value", hex.EncodeToString([]byte(secret + "\n"))},
		{"query escape", url.QueryEscape(secret)},
		{"path escape", url.PathEscape(secret)},
		{"query escape, lower-case hex", lowerHex(url.QueryEscape(secret))},
		{"query escape of the untrimmed value", url.QueryEscape(secret + "\n")},
		{"json (Go)", jsonOf(t, secret, true)},
		{"json (no HTML escaping)", jsonOf(t, secret, false)},
		{"json (Python)", pythonJSON(secret)},
		{"json of the untrimmed value", jsonOf(t, secret+"\n", true)},
	}
	assert.Equal(t, "before [REDACTED]\n after", r.String("before "+secret+"\n after"), "the line break after it stays")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, "before [REDACTED] after", r.String("before "+tt.enc+" after"))
			assert.True(t, r.Holds("x"+tt.enc+"x"), "Holds")
		})
	}
}

func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			copy(b[i+1:i+3], strings.ToLower(string(b[i+1:i+3])))
		}
	}
	return string(b)
}

// TestBase64Embedded: the secret inside a longer base64 text, at every
// offset (the three alignments, twice), in both alphabets, as in an
// encoded .env file or a Basic authorization header: nothing of its
// encoding longer than the two or three characters it shares with its
// neighbours survives.
func TestBase64Embedded(t *testing.T) {
	t.Parallel()
	for _, v := range []string{secret, "hunter2-hunter2", "short-pw"} {
		r := redact.New([]string{v}, nil)
		for off := range 6 {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
				prefix := strings.Repeat("u", off) + "ser:"
				blob := enc.EncodeToString([]byte(prefix + v + "\nNEXT=value\n"))
				out := r.String("Authorization: Basic " + blob)
				require.Contains(t, out, "[REDACTED]", "offset %d: %s", off, out)
				// The characters that depend on v alone.
				a := len(prefix)
				from, to := (8*a+5)/6, (8*(a+len(v)))/6
				core := blob[from:to]
				assert.Empty(t, leak(out, core, 4), "offset %d of %q: %s (core %s)", off, v, out, core)
			}
		}
	}
}

// TestWrapped: the secret and its base64 cut by a line break anywhere,
// with indentation or CRLF.
func TestWrapped(t *testing.T) {
	t.Parallel()
	r := redact.New([]string{secret}, nil)
	for _, br := range []string{"\n", "\r\n", " \n  ", "\t\n\t"} {
		for i := 1; i < len(secret); i++ {
			// Beside the secret's own space too: the break and the
			// blanks around it read as that one space.
			text := "key: " + secret[:i] + br + secret[i:] + " end"
			assert.Equal(t, "key: [REDACTED] end", r.String(text), "%q", text)
		}
	}
	long := strings.Repeat("0123456789abcdef", 8)
	r = redact.New([]string{long}, nil)
	b64 := base64.StdEncoding.EncodeToString([]byte(long))
	var mime strings.Builder
	for i := 0; i < len(b64); i += 76 {
		mime.WriteString(b64[i:min(i+76, len(b64))] + "\r\n")
	}
	assert.Equal(t, "[REDACTED]\r\n", r.String(mime.String()))
}

// TestWrappedAtSpaces: a value wrapped where it has a space (a word
// wrapper puts the line break in place of the space, and may keep the
// space or indent the next line) is found whole, its line breaks
// included; the line breaks around it stay.
func TestWrappedAtSpaces(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, secret, text, want string
		part                     bool // only fragments are found: Holds is false
	}{
		{"one space", "pass word!", "pass\nword!", "[REDACTED]", false},
		{"one space, in a line", "pass word!", "login: pass\nword! ok", "login: [REDACTED] ok", false},
		{"indented continuation", "correct horse battery", "correct horse\n  battery", "[REDACTED]", false},
		{"the space kept before the break", "pass word!", "pass \nword!", "[REDACTED]", false},
		{"CRLF", "pass word!", "pass\r\nword!", "[REDACTED]", false},
		{"CRLF, indented", "correct horse battery", "x correct horse\r\n    battery y", "x [REDACTED] y", false},
		{"tab indentation", "pass word!", "pass\n\tword!", "[REDACTED]", false},
		{"tabs and spaces around the break", "pass word!", "pass \t\n\t word!", "[REDACTED]", false},
		{"several spaces, wrapped at each", "correct horse battery staple", "correct\nhorse\nbattery\nstaple", "[REDACTED]", false},
		{"several spaces, wrapped at each, indented", "correct horse battery staple", "- correct\n  horse\n  battery\n  staple\n-", "- [REDACTED]\n-", false},
		{"several spaces, short, wrapped at each", "a b c d", "(a\nb\r\nc\n\td)", "([REDACTED])", false},
		{"several spaces, wrapped at some", "correct horse battery staple", "correct horse\nbattery staple", "[REDACTED]", false},
		{"mid-word still", "pass word!", "pa\nss word!", "[REDACTED]", false},
		{"mid-word and at a space, long: joined by its fragments", "correct horse battery staple", "correct hor\nse battery\nstaple", "[REDACTED]", true},
		{"the breaks around it stay", "pass word!", "x\n pass\n word!\n y", "x\n [REDACTED]\n y", false},
		{"a fragment beside a break keeps the break", "correct horse battery staple", "xx\n horse battery st\nyy", "xx\n [REDACTED]\nyy", true},
		{"a fragment wrapped at a space beside a break", "correct horse battery staple", "xx\n horse\n battery st\nyy", "xx\n [REDACTED]\nyy", true},
		{"two secrets on two lines stay two", "pass word!", "pass word!\npass word!", "[REDACTED]\n[REDACTED]", false},
		{"JSON escaping wrapped at a space", "pass word<!>", "pass\nword\\u003c!\\u003e", "[REDACTED]", false},
		{"not the secret: its space is no break", "passwordx", "pass\nwordx", "[REDACTED]", false},
		{"not the secret: two words", "pass word!", "pass\n\nother word!", "pass\n\nother word!", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redact.New([]string{tt.secret}, nil)
			assert.Equal(t, tt.want, r.String(tt.text), "%q", tt.text)
			assert.Equal(t, tt.want != tt.text && !tt.part, r.Holds("<"+tt.text+">"), "Holds")
		})
	}
	t.Run("whole value", func(t *testing.T) {
		t.Parallel()
		r := redact.New(nil, []string{"PASSPHRASE=correct horse battery staple\n"})
		assert.Equal(t, "env [REDACTED]\n", r.String("env PASSPHRASE=correct horse\n    battery staple\n"))
	})
	t.Run("tail", func(t *testing.T) {
		t.Parallel()
		r := redact.New([]string{"pass word!"}, nil)
		assert.Equal(t, "[REDACTED] rest", r.Tail("s\nword! rest"), "the end of a secret wrapped at its space, cut by the tail's start")
	})
}

// TestFragments: every window of Window bytes or more of a long secret,
// and of its encodings, is redacted; shorter ones are not (documented).
func TestFragments(t *testing.T) {
	t.Parallel()
	r := redact.New([]string{secret}, nil)
	for n := redact.Window; n <= len(secret); n++ {
		for i := 0; i+n <= len(secret); i++ {
			out := r.String("#" + secret[i:i+n] + "#")
			assert.Equal(t, "#[REDACTED]#", out, "secret[%d:%d]", i, i+n)
		}
	}
	assert.Equal(t, "<"+secret[:redact.Window-1]+">", r.String("<"+secret[:redact.Window-1]+">"), "11 bytes are not a fragment")
	h := hex.EncodeToString([]byte(secret))
	assert.Equal(t, "<[REDACTED]>", r.String("<"+h[10:30]+">"), "hex of a part")
	b := base64.StdEncoding.EncodeToString([]byte(secret[7:25]))
	assert.Empty(t, leak(r.String("<"+b+">"), b[2:len(b)-4], 4), "base64 of a part")

	short := redact.New([]string{"pw-1234x"}, nil)
	assert.Equal(t, "[REDACTED] pw-1234", short.String("pw-1234x pw-1234"), "a short secret is found only whole")
}

func TestTrimmedAndUntrimmed(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"token-value-42\n", "  token-value-42", "token-value-42\r\n"} {
		r := redact.New([]string{v}, nil)
		for _, text := range []string{
			"x token-value-42 y",
			"x " + base64.StdEncoding.EncodeToString([]byte("token-value-42")) + " y",
			"x " + base64.StdEncoding.EncodeToString([]byte(v)) + " y",
			"x " + hex.EncodeToString([]byte(v)) + " y",
		} {
			assert.Equal(t, "x [REDACTED] y", r.String(text), "%q in %q", v, text)
		}
	}
}

func TestWholeValues(t *testing.T) {
	t.Parallel()
	file := "[Service]\nExecStart=/home/rachel/app/run --token abc\nUser=rachel\n"
	r := redact.New(nil, []string{file})
	assert.Equal(t, "x [REDACTED]\n y", r.String("x "+file+" y"), "the line breaks around it stay")
	assert.Equal(t, "x [REDACTED] y", r.String("x "+base64.StdEncoding.EncodeToString([]byte(file))+" y"))
	assert.Equal(t, "line [REDACTED]", r.String("line ExecStart=/home/rachel/app/run --token abc"), "a long line on its own")
	assert.Equal(t, "write /home/rachel/app/.env", r.String("write /home/rachel/app/.env"), "no fragments of whole values")
	assert.Equal(t, "User=rachel", r.String("User=rachel"), "short lines are not looked for alone")
	assert.True(t, r.Holds("cat <<EOF\n"+file+"EOF"))
	assert.False(t, r.Holds("write /home/rachel/app/.env"))
}

func TestOverlapAndAdjacent(t *testing.T) {
	t.Parallel()
	r := redact.New([]string{"abcd", "abcdefgh", "  padded-value \n"}, []string{"xy"})
	assert.Equal(t, 1, r.Skipped())
	assert.Equal(t, "1 [REDACTED] 2 [REDACTED] 3 [REDACTED] xy", r.String("1 abcdefgh 2 abcd 3 padded-value xy"))
	assert.Equal(t, "[REDACTED][REDACTED]", r.String("abcdpadded-value"), "two secrets side by side stay two")
	assert.Equal(t, "[REDACTED]\n[REDACTED]", r.String("abcd\nabcdefgh"), "line breaks between two secrets stay")
	var none *redact.Redactor
	assert.Equal(t, "same", none.String("same"))
	assert.True(t, redact.New(nil, nil).Empty())
	assert.False(t, none.Holds("x"))
}

func TestTail(t *testing.T) {
	t.Parallel()
	r := redact.New([]string{"sk-live-0123456789"}, nil)
	assert.Equal(t, "[REDACTED] rest", r.Tail("56789 rest"), "the end of a secret cut by the tail's start")
	assert.Equal(t, "56789 rest", r.String("56789 rest"), "only at a cut")
	assert.Equal(t, "789 rest", r.Tail("789 rest"), "shorter than MinLen")
	hexTail := hex.EncodeToString([]byte("sk-live-0123456789"))[26:]
	assert.Equal(t, "[REDACTED] rest", r.Tail(hexTail+" rest"))
}

// FuzzRedactor: no window of Window bytes of any form of a long secret,
// and no whole form of a short one, survives in either reading of the
// output (line breaks and the blanks around them dropped, or each as one
// space), whatever surrounds it, however two secrets overlap, however
// they are wrapped (at their spaces, mid-word, both), and at any cut of
// a tail.
func FuzzRedactor(f *testing.F) {
	f.Add("s3cr3t-value-long", "s3cr3t", "prefix s3cr3t-value suffix", uint(3), uint8(0))
	f.Add("aaaaaaaaaaaaaaaa", "aaaaaa", "aaaaaaaaa\naaaa", uint(0), uint8(1))
	f.Add(" padded value\n", "xyzw", "xpaddedx\r\n  value", uint(7), uint8(2))
	f.Add(secret, "QQQQ", "a\n b", uint(11), uint8(3))
	f.Add("correct horse battery staple", "pass word!", "x\n", uint(9), uint8(4))
	f.Add("a b c d e f g h", "ab c", "c\n", uint(2), uint8(17))
	f.Add("correct horse  battery", "pa ss wo rd", " \n ", uint(20), uint8(30))
	f.Fuzz(func(t *testing.T, a, b, text string, cut uint, wrap uint8) {
		if len(a)+len(b)+len(text) > 1<<10 {
			// Longer inputs only slow the search down (building the
			// index of a long binary secret's windows takes a while).
			return
		}
		r := redact.New([]string{a, b}, nil)
		for _, v := range []string{a, b} {
			if strings.ContainsAny(v, "\x00") || strings.Contains(v, redact.Redacted) {
				return
			}
		}
		in := text + a + text + base64.StdEncoding.EncodeToString([]byte(text+b)) + text + hex.EncodeToString([]byte(a)) + b +
			text + wrapped(a, wrap, cut) + text + wrapped(b, wrap, cut) + text
		check := func(out string) {
			for _, join := range []bool{false, true} {
				view := strings.ReplaceAll(out, redact.Redacted, "\x00")
				view = normalize(view, join)
				for _, v := range []string{a, b} {
					t := strings.TrimSpace(v)
					n := len(normalize(t, false))
					if n < redact.MinLen {
						continue
					}
					for _, raw := range []string{t, v} {
						for _, form := range []string{raw, hex.EncodeToString([]byte(raw)), base64.StdEncoding.EncodeToString([]byte(raw))} {
							form = normalize(form, false)
							if raw != t && strings.Contains(form, t) {
								// Not looked for (see New): the blanks
								// around t are no secret.
								continue
							}
							if n >= redact.Window {
								if w := leakFast(view, form, redact.Window); w != "" {
									panic(fmt.Sprintf("window %q of %q survives in %q (join %v)", w, form, out, join))
								}
							} else if len(form) >= redact.MinLen && strings.Contains(view, form) {
								panic(fmt.Sprintf("%q survives in %q (join %v)", form, out, join))
							}
						}
					}
				}
			}
		}
		check(r.String(in))
		c := int(cut % uint(len(in)+1))
		check(r.Tail(in[c:]))
	})
}

// breaks are the line breaks, with blanks around them, that wrapped
// puts in a value.
var breaks = []string{"\n", "\r\n", " \n", "\n  ", "\t\n\t", " \r\n\t "}

// wrapped returns v as a word wrapper may show it: a line break (of
// breaks, chosen by wrap) in place of every space, or of every other
// one, and, as a hard wrap would, one more at byte cut, by wrap.
func wrapped(v string, wrap uint8, cut uint) string {
	br := breaks[int(wrap)%len(breaks)]
	mode := int(wrap) / len(breaks)
	var b strings.Builder
	n := 0
	for i := 0; i < len(v); i++ {
		if mode&2 != 0 && len(v) > 1 && i == 1+int(cut%uint(len(v)-1)) {
			b.WriteString(br)
		}
		if v[i] == ' ' {
			n++
			if mode&1 == 0 || n%2 == 1 {
				b.WriteString(br)
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// normalize drops line breaks and the blanks around them, or, if join,
// makes each such run one space, as the Redactor reads text.
func normalize(s string, join bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		nl := false
		for j < len(s) && strings.IndexByte("\r\n \t", s[j]) >= 0 {
			nl = nl || s[j] == '\n' || s[j] == '\r'
			j++
		}
		if j > i {
			if !nl {
				b.WriteString(s[i:j])
			} else if join {
				b.WriteByte(' ')
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// BenchmarkRedact: 20 secrets of 40 bytes, 16 KiB of journal-like text
// holding three of them (raw, base64, wrapped); "replacer" is the exact
// value only strings.Replacer this package replaced, for the ratio.
// "passphrases" is "redactor" for 20 passphrases of words and spaces,
// the wrapped one wrapped at a space: the text is read a second time
// with its line breaks as spaces, near each line break.
func BenchmarkRedact(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var secrets, phrases []string
	for range 20 {
		s := make([]byte, 40)
		for i := range s {
			s[i] = alnum[rng.IntN(len(alnum))]
		}
		secrets = append(secrets, string(s))
	}
	words := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		var p []byte
		for len(p) < 40 {
			if len(p) > 0 {
				p = append(p, ' ')
			}
			for range 3 + words.IntN(6) {
				p = append(p, alnum[words.IntN(26)])
			}
		}
		phrases = append(phrases, string(p))
	}
	journal := func(secrets []string) string {
		var text strings.Builder
		for i := 0; text.Len() < 16<<10; i++ {
			fmt.Fprintf(&text, "Dec 05 13:16:%02d host app[1234]: request %d served in %dms\n", i%60, i, rng.IntN(500))
			switch i {
			case 40:
				text.WriteString("Dec 05 13:16:40 host app[1234]: auth token=" + secrets[3] + "\n")
			case 120:
				text.WriteString("Dec 05 13:16:40 host app[1234]: header " + base64.StdEncoding.EncodeToString([]byte("u:"+secrets[7])) + "\n")
			case 200:
				v := secrets[11]
				if c := strings.LastIndexByte(v[:20], ' '); c > 0 {
					text.WriteString("key " + v[:c] + "\n  " + v[c+1:] + "\n") // word-wrapped
				} else {
					text.WriteString("key " + v[:20] + "\n" + v[20:] + "\n")
				}
			}
		}
		return text.String()
	}
	s := journal(secrets)
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			redact.New(secrets, nil)
		}
	})
	bench := func(secrets []string, s string) func(*testing.B) {
		r := redact.New(secrets, nil)
		out := r.String(s)
		if strings.Count(out, redact.Redacted) != 3 {
			b.Fatalf("want 3 redactions:\n%s", out)
		}
		return func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				r.String(s)
			}
		}
	}
	b.Run("redactor", bench(secrets, s))
	b.Run("passphrases", bench(phrases, journal(phrases)))
	b.Run("replacer", func(b *testing.B) {
		var args []string
		for _, v := range secrets {
			args = append(args, v, redact.Redacted)
		}
		rp := strings.NewReplacer(args...)
		b.ReportAllocs()
		b.SetBytes(int64(len(s)))
		for b.Loop() {
			rp.Replace(s)
		}
	})
}
