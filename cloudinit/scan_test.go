package cloudinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

// TestB64Core: the core of a string's base64 at an alignment is in every
// base64 text that holds the string at that alignment, whatever comes
// before and after.
func TestB64Core(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for range 2000 {
		s := string(randBytes(1 + rng.IntN(40)))
		pre, post := randBytes(rng.IntN(7)), randBytes(rng.IntN(7))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
			full := enc.EncodeToString(append(append(append([]byte(nil), pre...), s...), post...))
			core := b64Core(enc, s, len(pre)%3)
			if enc == base64.RawStdEncoding {
				core = b64Core(base64.StdEncoding, s, len(pre)%3)
			}
			if !strings.Contains(full, core) {
				t.Fatalf("core %q of %x at %d is not in %q", core, s, len(pre)%3, full)
			}
			if len(s) >= 6 && len(core) < 4*len(s)/3-3 {
				t.Fatalf("core %q of %d bytes is short", core, len(s))
			}
		}
	}
}

func TestEncodingsOfALongSecret(t *testing.T) {
	t.Parallel()
	const s = `p@ss/w0rd?"Hörse"\42 end`
	got := map[string]bool{}
	for _, f := range encodings(s) {
		got[f.pat] = true
	}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s))),
		url.QueryEscape(s), url.PathEscape(s), string(j[1 : len(j)-1]),
		`p@ss/w0rd?\"H\u00f6rse\"\\42 end`, // Python's json.dumps
	} {
		if !got[want] {
			t.Errorf("encodings lack %q", want)
		}
	}
}

func TestUnescapeAndPercentDecode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`a\nb\t\"c\"\\d\/e`:       "a\nb\t\"c\"\\d/e",
		`\u0067hp_\x41\U0001F600`: "ghp_A\U0001F600",
		`\ud83d\ude00 pair`:       "\U0001F600 pair",
		`\ud83d alone`:            "\ufffd alone",
		`\q unknown \u12 short \`: `\q unknown \u12 short \`,
		`\e\0\a\b\f\v`:            "\x1b\x00\x07\x08\x0c\x0b",
	} {
		got, changed := unescape([]byte(in))
		if !changed && in != want {
			t.Errorf("unescape(%q) changed nothing", in)
			continue
		}
		if changed && string(got) != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
	got, changed := percentDecode([]byte("a%20b%zz%4"))
	if !changed || string(got) != "a b%zz%4" {
		t.Errorf("percentDecode = %q %v", got, changed)
	}
	if _, changed := percentDecode([]byte("100% sure")); changed {
		t.Error("a bare % is no escape")
	}
}

// TestPrivateKeyDERRandom: random bytes, as a public certificate's or a
// random file's base64 decodes to, are not taken for private keys.
func TestPrivateKeyDERRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	b := make([]byte, 512)
	for range 200000 {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if kind := privateKeyDER(b); kind != "" {
			t.Fatalf("%x... taken for %s", b[:16], kind)
		}
	}
}

// encodeFor is how FuzzScan hides a secret.
func encodeFor(t *testing.T, how uint8, secret string) string {
	t.Helper()
	switch how % 8 {
	case 0:
		return secret
	case 1:
		return base64.StdEncoding.EncodeToString([]byte(secret))
	case 2:
		return hex.EncodeToString([]byte(secret))
	case 3:
		var b strings.Builder
		for i := range len(secret) {
			b.WriteString("%" + hex.EncodeToString([]byte{secret[i]}))
		}
		return b.String()
	case 4:
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write([]byte(secret))
		zw.Close()
		return base64.StdEncoding.EncodeToString(z.Bytes())
	case 5:
		j, _ := json.Marshal(secret)
		return string(j)
	case 6:
		return base64.URLEncoding.EncodeToString([]byte("xy" + secret))
	default:
		return url.QueryEscape(secret)
	}
}

// FuzzScan hides a listed secret, encoded, between arbitrary text: a
// secret of at least 8 bytes (without its surrounding white space) is
// always found; the scan never panics and fails only as unscannable.
func FuzzScan(f *testing.F) {
	f.Add("before ", "Zx9Q-c0rR3ct-H0rse", " after", uint8(0), uint8(0))
	f.Add("", "hunter22hunter22\n", "", uint8(1), uint8(0))
	f.Add("a\nb", "  spaced secret value  ", "%", uint8(2), uint8(0))
	f.Add("\\u", "p@ss/w0rd?\"Hörse\"", "\\", uint8(5), uint8(0))
	f.Add("H4sI", "gzipped-secret-value", "AAAA", uint8(4), uint8(0))
	f.Add("-----BEGIN CERTIFICATE-----\n", "Zx9Q-c0rR3ct-H0rse-42-BaTT3ry", "\n-----END CERTIFICATE-----\n", uint8(0), uint8(20))
	f.Fuzz(func(t *testing.T, prefix, secret, suffix string, how, frag uint8) {
		trimmed := strings.TrimSpace(secret)
		sc := newScanner([]string{secret, "another-listed-value"})
		text := encodeFor(t, how, secret)
		whole := true
		if frag > 0 && len(trimmed) > FragmentSize+2 && how%8 == 0 {
			// A fragment of FragmentSize+2 bytes or more, which holds a
			// window worth looking for.
			from := int(frag) % (len(trimmed) - FragmentSize - 1)
			text = trimmed[from:]
			worthy := false
			for i := 0; i+FragmentSize <= len(text); i++ {
				worthy = worthy || fragmentWorthy(text[i:i+FragmentSize])
			}
			whole = worthy
		}
		doc := []byte(prefix + "\n#\n" + text + "\n#\n" + suffix)
		if text != encodeFor(t, how, secret) && inSpans(publicSpans(doc), len(prefix)+3) {
			whole = false // fragments inside public key material are not looked for
		}
		fd, ok, err := sc.scan(doc)
		if err != nil {
			var u *errUnscannable
			if !errors.As(err, &u) {
				t.Fatalf("scan: %v", err)
			}
			return
		}
		if ok && (fd.off < 0 || fd.off > len(doc)) {
			t.Fatalf("offset %d out of %d", fd.off, len(doc))
		}
		if whole && len(trimmed) >= minBinarySecret && !ok {
			t.Fatalf("secret %q hidden as %d (%q) not found in %q", secret, how%8, text, doc)
		}
	})
}

// FuzzScanAny: arbitrary bytes never panic the scan, which fails only as
// unscannable and reports offsets inside what it was given.
func FuzzScanAny(f *testing.F) {
	f.Add([]byte("#cloud-config\nruncmd: [[echo, aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=]]\n"))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"))
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEaxQTbhYJKwYBBAHaRw8BAQdA8dBE77QNxX9ICg82tK9Ch+VHCLfCSV2HFq1V\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Add([]byte(`\u00zz %%41 \x4 ` + strings.Repeat("ab", 40)))
	sc := newScanner([]string{"Zx9Q-c0rR3ct-H0rse-42-BaTT3ry", "ab12"})
	f.Fuzz(func(t *testing.T, data []byte) {
		fd, ok, err := sc.scan(data)
		if err != nil {
			var u *errUnscannable
			if !errors.As(err, &u) {
				t.Fatalf("scan: %v", err)
			}
			return
		}
		if ok && (fd.off < 0 || fd.off > len(data) || fd.kind == "") {
			t.Fatalf("finding %+v in %d bytes", fd, len(data))
		}
	})
}
