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
			if secret[i-1] == ' ' || secret[i] == ' ' {
				continue // a blank of the value's own beside the break is not found (documented)
			}
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
// and no whole form of a short one, survives, whatever surrounds it,
// however two secrets overlap, and at any cut of a tail.
func FuzzRedactor(f *testing.F) {
	f.Add("s3cr3t-value-long", "s3cr3t", "prefix s3cr3t-value suffix", uint(3))
	f.Add("aaaaaaaaaaaaaaaa", "aaaaaa", "aaaaaaaaa\naaaa", uint(0))
	f.Add(" padded value\n", "xyzw", "xpaddedx\r\n  value", uint(7))
	f.Add(secret, "QQQQ", "a\n b", uint(11))
	f.Fuzz(func(t *testing.T, a, b, text string, cut uint) {
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
		in := text + a + text + base64.StdEncoding.EncodeToString([]byte(text+b)) + text + hex.EncodeToString([]byte(a)) + b
		check := func(out string) {
			view := strings.ReplaceAll(out, redact.Redacted, "\x00")
			view = normalize(view)
			for _, v := range []string{a, b} {
				t := strings.TrimSpace(v)
				n := len(normalize(t))
				if n < redact.MinLen {
					continue
				}
				for _, raw := range []string{t, v} {
					for _, form := range []string{raw, hex.EncodeToString([]byte(raw)), base64.StdEncoding.EncodeToString([]byte(raw))} {
						form = normalize(form)
						if n >= redact.Window {
							if w := leakFast(view, form, redact.Window); w != "" {
								panic(fmt.Sprintf("window %q of %q survives in %q", w, form, out))
							}
						} else if len(form) >= redact.MinLen && strings.Contains(view, form) {
							panic(fmt.Sprintf("%q survives in %q", form, out))
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

// normalize drops line breaks and the blanks around them, as the
// Redactor reads text.
func normalize(s string) string {
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
func BenchmarkRedact(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var secrets []string
	for range 20 {
		s := make([]byte, 40)
		for i := range s {
			s[i] = alnum[rng.IntN(len(alnum))]
		}
		secrets = append(secrets, string(s))
	}
	var text strings.Builder
	for i := 0; text.Len() < 16<<10; i++ {
		fmt.Fprintf(&text, "Dec 05 13:16:%02d host app[1234]: request %d served in %dms\n", i%60, i, rng.IntN(500))
		switch i {
		case 40:
			text.WriteString("Dec 05 13:16:40 host app[1234]: auth token=" + secrets[3] + "\n")
		case 120:
			text.WriteString("Dec 05 13:16:40 host app[1234]: header " + base64.StdEncoding.EncodeToString([]byte("u:"+secrets[7])) + "\n")
		case 200:
			text.WriteString("key " + secrets[11][:20] + "\n" + secrets[11][20:] + "\n")
		}
	}
	s := text.String()
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			redact.New(secrets, nil)
		}
	})
	r := redact.New(secrets, nil)
	out := r.String(s)
	if strings.Count(out, redact.Redacted) != 3 {
		b.Fatalf("want 3 redactions:\n%s", out)
	}
	b.Run("redactor", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(s)))
		for b.Loop() {
			r.String(s)
		}
	})
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
