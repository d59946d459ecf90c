package cloudinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hatchery-dev/hatchery/internal/pyjson"
)

// Bounds of the secret scan (see the package documentation, # Secrets).
const (
	// FragmentSize is the length of the fragments of a listed secret that
	// are looked for: every FragmentSize-byte window of a secret at least
	// that long (see the package documentation for which windows count).
	FragmentSize = 12
	// MaxScanDepth is how many layers of encoding (base64, hex, gzip,
	// percent-encoding, backslash escapes) the scan decodes, one inside
	// the other. gzip found at this depth is refused, not skipped.
	MaxScanDepth = 6
	// MaxScanExpansion bounds what gzip found in one value (or in the
	// document) may expand to, in bytes, all layers together. Past it the
	// value is refused: it cannot be scanned.
	MaxScanExpansion = 4 << 20

	minB64Run       = 16 // shortest base64 run decoded, in characters
	minHexRun       = 24 // shortest hex run decoded, in digits (a 12-byte fragment)
	minEncodedForm  = 6  // shortest encoded form of a listed secret looked for
	minBinarySecret = 8  // shortest listed secret looked for in decoded binary
)

// errUnscannable reports data the scan cannot see into.
type errUnscannable struct{ reason string }

func (e *errUnscannable) Error() string { return e.reason }

// form is one way a listed secret can appear: the value itself or an
// encoding of it.
type form struct {
	pat  string
	b    []byte // pat, converted once
	n    int    // index into Config.Secrets
	how  string // "" for the value itself, else the encoding
	size int    // length of the trimmed secret
}

// scanner looks for secrets in values and documents: token shapes,
// private key material, and the listed secrets in every form it knows.
type scanner struct {
	forms []form
	// frags maps every FragmentSize-byte window worth looking for (see
	// fragmentWorthy) to the index of the listed secret it is part of;
	// first holds the bytes a window can start with, a cheap filter
	// before the map lookup.
	frags map[string]int
	first [256]bool
}

// newScanner prepares the forms and fragments of secrets. Blank secrets
// are skipped (Validate refuses them).
func newScanner(secrets []string) *scanner {
	s := &scanner{}
	for n, v := range secrets {
		t := strings.TrimSpace(v)
		if t == "" {
			continue
		}
		// The value without surrounding white space is a substring of
		// the value, and each encoding of it a substring of the same
		// encoding of the value (base64 at every alignment): looking for
		// the trimmed forms finds the untrimmed ones too.
		s.add(form{pat: t, n: n, size: len(t)})
		for _, f := range encodings(t) {
			if len(f.pat) >= minEncodedForm && f.pat != t {
				f.n, f.size = n, len(t)
				s.add(f)
			}
		}
		if len(t) > FragmentSize {
			s.addFragments(n, t)
		}
	}
	return s
}

// allow drops the fragments that occur in public, values the control plane
// makes itself (a phone_home URL, a host name): a listed value that
// shares a part with them, such as the tenant ID in a database name, is
// not refused for it. The whole value is still looked for everywhere.
func (s *scanner) allow(public ...string) {
	for _, p := range public {
		for i := 0; i+FragmentSize <= len(p); i++ {
			delete(s.frags, p[i:i+FragmentSize])
		}
	}
}

func (s *scanner) add(f form) {
	for _, g := range s.forms {
		if g.pat == f.pat {
			return
		}
	}
	f.b = []byte(f.pat)
	s.forms = append(s.forms, f)
}

// addFragments adds every FragmentSize-byte window of t that looks like a
// part of a secret rather than of common text (see fragmentWorthy). Their
// encodings need no entries of their own: hex and base64 runs are decoded
// (from their start, so a fragment encoded on its own or inside a longer
// encoding comes out whole) and scanned for the windows as they are.
func (s *scanner) addFragments(n int, t string) {
	if s.frags == nil {
		s.frags = make(map[string]int)
	}
	for i := 0; i+FragmentSize <= len(t); i++ {
		w := t[i : i+FragmentSize]
		if _, dup := s.frags[w]; dup || !fragmentWorthy(w) {
			continue
		}
		s.frags[w] = n
		s.first[w[0]] = true
	}
}

// fragmentWorthy reports whether a window of a secret is looked for on its
// own: it holds no white space, and at least two characters each of two
// of the classes lowercase letters, uppercase letters and digits (random
// letters and digits, base64 and hex nearly always do). That leaves out
// the parts of a secret that public text shares with it: a PEM line such
// as "-----BEGIN PRIV", an indentation, a word, a host name or a path
// ("api.example.", "com/v1/hooks"), which would refuse user-data that
// merely names the same host.
func fragmentWorthy(w string) bool {
	var lower, upper, digit int
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c >= 'a' && c <= 'z':
			lower++
		case c >= 'A' && c <= 'Z':
			upper++
		case c >= '0' && c <= '9':
			digit++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	n := 0
	for _, k := range [...]int{lower, upper, digit} {
		if k >= 2 {
			n++
		}
	}
	return n >= 2
}

// encodings returns the encoded forms of t that the scan looks for: base64
// (standard and URL alphabets, at each of the three alignments, without
// the characters that depend on what surrounds t), hex (both cases),
// percent-encoding (query, path, every byte; both hex cases) and JSON
// string escaping (encoding/json's, with and without HTML escaping, and
// the ASCII-only \uXXXX form of Python's json.dumps).
func encodings(t string) []form {
	var out []form
	add := func(p, how string) { out = append(out, form{pat: p, how: how}) }
	for align := range 3 {
		for _, enc := range [...]*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			if c := b64Core(enc, t, align); c != "" {
				add(c, "base64-encoded")
			}
		}
	}
	h := hex.EncodeToString([]byte(t))
	add(h, "hex-encoded")
	add(strings.ToUpper(h), "hex-encoded")
	add(url.QueryEscape(t), "percent-encoded")
	add(url.PathEscape(t), "percent-encoded")
	var all, allLower strings.Builder
	for i := 0; i < len(t); i++ {
		all.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{t[i]})))
		allLower.WriteString("%" + hex.EncodeToString([]byte{t[i]}))
	}
	add(all.String(), "percent-encoded")
	add(allLower.String(), "percent-encoded")
	for _, html := range [...]bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(t) == nil { // "...."\n
			add(string(b.Bytes()[1:b.Len()-2]), "JSON-escaped")
		}
	}
	add(pyjson.Escape(t), "JSON-escaped")
	return out
}

// b64Core returns the part of enc's encoding of t, placed after align
// bytes, that does not depend on the bytes before and after t: the
// characters every base64 text holding t at that alignment contains.
func b64Core(enc *base64.Encoding, t string, align int) string {
	buf := make([]byte, align+len(t)+2)
	copy(buf[align:], t)
	full := enc.EncodeToString(buf)
	// Character k of group g covers bytes: c0 3g; c1 3g,3g+1; c2
	// 3g+1,3g+2; c3 3g+2. Keep those whose bytes all lie in t.
	lo, hi := -1, -1
	for k := range full {
		g, r := k/4, k%4
		first, last := 3*g+r-1, 3*g+r
		if r == 0 {
			first = 3 * g
		}
		if r == 3 {
			first = 3*g + 2
		}
		if first >= align && last < align+len(t) && first <= last {
			if lo < 0 {
				lo = k
			}
			hi = k + 1
		}
	}
	if lo < 0 {
		return ""
	}
	return full[lo:hi]
}

// finding is a secret the scan found: what, and where in the text given to
// scan (the byte offset of the run or line it was decoded from, when it
// was found in a decoded view).
type finding struct {
	kind string
	off  int
}

// view is one layer of decoding.
type view struct {
	via    []string // the decodings that led here, outermost first
	binary bool     // the result of base64, hex or gzip decoding
	depth  int
}

// scanState is what one scan of a value or document spends.
type scanState struct {
	expansion int // bytes gunzipped so far
}

// The magic that opens an OpenSSH private key, and its base64.
var (
	opensshMagic   = []byte("openssh-key-v1\x00")
	opensshMagic64 = []byte("b3BlbnNzaC1rZXktdjE")
)

// scan reports the first secret in t: a token shape, private key
// material, or a listed secret in any form it knows, in t itself or in
// what t decodes to. It returns an *errUnscannable for gzip it cannot
// decode within the bounds.
func (s *scanner) scan(t []byte) (finding, bool, error) {
	return s.scanView(t, view{}, &scanState{})
}

func (s *scanner) scanView(t []byte, v view, st *scanState) (finding, bool, error) {
	suffix := ""
	if len(v.via) > 0 {
		suffix = " (after decoding " + strings.Join(v.via, ", then ") + ")"
	}
	if kind, off := findToken(t); kind != "" {
		return finding{kind + suffix, off}, true, nil
	}
	if off := bytes.Index(t, opensshMagic); off >= 0 {
		return finding{kindPrivateKey + " (OpenSSH)" + suffix, off}, true, nil
	}
	if off := bytes.Index(t, opensshMagic64); off >= 0 {
		return finding{kindPrivateKey + " (OpenSSH, without its BEGIN line)" + suffix, off}, true, nil
	}
	if v.binary {
		if kind := privateKeyDER(t); kind != "" {
			return finding{kind + suffix, 0}, true, nil
		}
	}
	for _, f := range s.forms {
		if v.binary && f.size < minBinarySecret {
			continue
		}
		if off := bytes.Index(t, f.b); off >= 0 {
			kind := secretKind(f.n)
			if f.how != "" {
				kind += ", " + f.how
			}
			return finding{kind + suffix, off}, true, nil
		}
	}
	if fd, ok := s.findFragment(t, v.binary); ok {
		fd.kind += suffix
		return fd, true, nil
	}
	if v.depth >= MaxScanDepth {
		if isGzip(t) {
			return finding{}, false, &errUnscannable{"holds gzip nested more than " + strconv.Itoa(MaxScanDepth) + " encodings deep, which cannot be scanned for secrets"}
		}
		return finding{}, false, nil
	}
	return s.scanDecoded(t, v, st)
}

// findFragment reports a fragment of a listed secret in t, outside public
// key material (certificates, public keys, SSH public keys), which shares
// structure with private keys and need not be secret-free by chance.
func (s *scanner) findFragment(t []byte, binary bool) (finding, bool) {
	var public []span
	publicDone := false
	for i := 0; i+FragmentSize <= len(t); i++ {
		if !s.first[t[i]] {
			continue
		}
		n, ok := s.frags[string(t[i:i+FragmentSize])]
		if !ok {
			continue
		}
		if !binary {
			if !publicDone {
				public, publicDone = publicSpans(t), true
			}
			if inSpans(public, i) {
				continue
			}
		}
		return finding{"a " + strconv.Itoa(FragmentSize) + "-byte fragment of " + secretKind(n), i}, true
	}
	return finding{}, false
}

// scanDecoded scans what t decodes to: gzip, base64 and hex runs, and
// lines with percent-encoding or backslash escapes.
func (s *scanner) scanDecoded(t []byte, v view, st *scanState) (finding, bool, error) {
	next := func(how string, binary bool) view {
		return view{via: append(v.via[:len(v.via):len(v.via)], how), binary: binary, depth: v.depth + 1}
	}
	// gzip at the start, and, in decoded bytes, anywhere (a gzip file in a
	// tar archive, or after a few bytes that a base64 run began with).
	for off, n := 0, 0; off < len(t) && n < maxGzipMembers; n++ {
		k := 0
		if off > 0 || !isGzip(t) {
			if !v.binary {
				break
			}
			k = bytes.Index(t[off:], gzipMagic)
			if k < 0 {
				break
			}
		}
		at := off + k
		raw, err := gunzipBounded(t[at:], MaxScanExpansion-st.expansion)
		st.expansion += len(raw)
		if err != nil {
			return finding{}, false, err
		}
		if fd, ok, err := s.scanView(raw, next("gzip", true), st); ok || err != nil {
			return finding{fd.kind, at}, ok, err
		}
		off = at + len(gzipMagic)
	}
	var (
		found  finding
		ok     bool
		err    error
		runBuf []byte
	)
	each := func(start int, dec []byte, how string) bool {
		var fd finding
		fd, ok, err = s.scanView(dec, next(how, true), st)
		if ok || err != nil {
			found = finding{fd.kind, start}
			return false
		}
		return true
	}
	for _, urlSafe := range [...]bool{false, true} {
		if !ok && err == nil {
			runBuf = base64Runs(t, urlSafe, runBuf, func(start int, dec []byte) bool { return each(start, dec, "base64") })
		}
	}
	if !ok && err == nil {
		hexRuns(t, func(start int, dec []byte) bool { return each(start, dec, "hex") })
	}
	if ok || err != nil {
		return found, ok, err
	}
	if v.binary {
		return finding{}, false, nil
	}
	// Escapes, line by line, so that a finding keeps its line.
	for start := 0; start < len(t); {
		end := bytes.IndexByte(t[start:], '\n')
		if end < 0 {
			end = len(t)
		} else {
			end += start
		}
		line := t[start:end]
		if dec, changed := percentDecode(line); changed {
			if fd, ok, err := s.scanView(dec, next("percent-encoding", false), st); ok || err != nil {
				return finding{fd.kind, start}, ok, err
			}
		}
		if dec, changed := unescape(line); changed {
			if fd, ok, err := s.scanView(dec, next("backslash escapes", false), st); ok || err != nil {
				return finding{fd.kind, start}, ok, err
			}
		}
		start = end + 1
	}
	return finding{}, false, nil
}

// gzipMagic starts a gzip member: ID1, ID2 and CM (deflate).
var gzipMagic = []byte{0x1f, 0x8b, 8}

// maxGzipMembers bounds how many gzip streams are decoded in one view.
const maxGzipMembers = 8

func isGzip(t []byte) bool { return len(t) >= 10 && bytes.HasPrefix(t, gzipMagic) }

// gunzipBounded decompresses at most limit bytes; more is an
// *errUnscannable. A stream that is cut or corrupt gives what decoded
// before the damage: a shell pipeline would get that much too.
func gunzipBounded(t []byte, limit int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(t))
	if err != nil {
		return nil, nil
	}
	out, _ := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if len(out) > limit {
		return out[:limit], &errUnscannable{"holds gzip data that expands past " + strconv.Itoa(MaxScanExpansion) + " bytes, which cannot be scanned for secrets"}
	}
	return out, nil
}

// base64Runs calls fn with the start and the decoding of each run of base64
// text in t at least minB64Run characters long, in the standard alphabet
// or, urlSafe, the URL one (then only runs that hold '-' or '_'). A run
// goes on over a line break (and the next line's indentation) as wrapped
// base64 does: when its lines so far are all as long as its first, at
// least minB64Run characters and a multiple of 4. (A short word on the
// line before base64, such as "done", does not join it, which would shift
// what the base64 decodes to.) It stops when fn returns false, and
// returns buf for reuse.
func base64Runs(t []byte, urlSafe bool, buf []byte, fn func(start int, dec []byte) bool) []byte {
	in := func(c byte) bool {
		if isAlnum(c) {
			return true
		}
		if urlSafe {
			return c == '-' || c == '_'
		}
		return c == '+' || c == '/'
	}
	enc := base64.RawStdEncoding
	if urlSafe {
		enc = base64.RawURLEncoding
	}
	for i := 0; i < len(t); {
		if !in(t[i]) || i > 0 && in(t[i-1]) {
			i++
			continue
		}
		start, line, width := i, 0, -1
		buf = buf[:0]
		special := false
		for i < len(t) {
			c := t[i]
			if in(c) {
				buf = append(buf, c)
				line++
				special = special || c == '-' || c == '_'
				i++
				continue
			}
			if c == '=' { // padding ends the run
				for i < len(t) && t[i] == '=' {
					i++
				}
				break
			}
			j := i
			if c == '\r' {
				j++
			}
			if width < 0 {
				width = line
			}
			if j < len(t) && t[j] == '\n' && line == width && line >= minB64Run && line%4 == 0 {
				k := j + 1
				for k < len(t) && (t[k] == ' ' || t[k] == '\t') {
					k++
				}
				if k < len(t) && in(t[k]) {
					i, line = k, 0
					continue
				}
			}
			break
		}
		if len(buf) < minB64Run || urlSafe && !special {
			continue
		}
		n := len(buf) - len(buf)%4
		if len(buf)%4 >= 2 {
			n = len(buf)
		}
		dec := make([]byte, enc.DecodedLen(n))
		m, _ := enc.Decode(dec, buf[:n])
		if m > 0 && !fn(start, dec[:m]) {
			return buf
		}
	}
	return buf
}

// hexRuns calls fn with the start and decoding of each run of at least
// minHexRun hex digits in t (an odd last digit dropped), until it returns
// false.
func hexRuns(t []byte, fn func(start int, dec []byte) bool) {
	for i := 0; i < len(t); {
		if !isHexByte(t[i]) {
			i++
			continue
		}
		j := i
		for j < len(t) && isHexByte(t[j]) {
			j++
		}
		if n := (j - i) &^ 1; n >= minHexRun {
			dec := make([]byte, n/2)
			if _, err := hex.Decode(dec, t[i:i+n]); err == nil && !fn(i, dec) {
				return
			}
		}
		i = j
	}
}

// percentDecode decodes every %XX in line; changed is false when there
// was none.
func percentDecode(line []byte) ([]byte, bool) {
	if bytes.IndexByte(line, '%') < 0 {
		return nil, false
	}
	out := make([]byte, 0, len(line))
	changed := false
	for i := 0; i < len(line); i++ {
		if line[i] == '%' && i+2 < len(line) && isHexByte(line[i+1]) && isHexByte(line[i+2]) {
			b, _ := strconv.ParseUint(string(line[i+1:i+3]), 16, 8)
			out = append(out, byte(b))
			i += 2
			changed = true
			continue
		}
		out = append(out, line[i])
	}
	return out, changed
}

// unescape decodes the backslash escapes of JSON, YAML double-quoted
// scalars, C and Python strings in line: \n \t \r \" \' \\ \/ \0 \a \b \f
// \v \e \xHH \uHHHH (surrogate pairs joined) \UHHHHHHHH. Unknown escapes
// are left as they are; changed is false when nothing was decoded.
func unescape(line []byte) ([]byte, bool) {
	if bytes.IndexByte(line, '\\') < 0 {
		return nil, false
	}
	out := make([]byte, 0, len(line))
	changed := false
	hexAt := func(i, n int) (rune, bool) {
		if i+n > len(line) {
			return 0, false
		}
		v, err := strconv.ParseUint(string(line[i:i+n]), 16, 32)
		return rune(v), err == nil
	}
	for i := 0; i < len(line); i++ {
		if line[i] != '\\' || i+1 == len(line) {
			out = append(out, line[i])
			continue
		}
		c := line[i+1]
		if b, ok := simpleEscape(c); ok {
			out = append(out, b)
			i++
			changed = true
			continue
		}
		n := 0
		switch c {
		case 'x':
			n = 2
		case 'u':
			n = 4
		case 'U':
			n = 8
		}
		r, ok := hexAt(i+2, n)
		if n == 0 || !ok {
			out = append(out, line[i])
			continue
		}
		i += 1 + n // at the escape's last digit
		changed = true
		if c == 'x' {
			out = append(out, byte(r))
			continue
		}
		if r >= 0xd800 && r < 0xdc00 && i+7 <= len(line) && line[i+1] == '\\' && line[i+2] == 'u' {
			if r2, ok := hexAt(i+3, 4); ok && r2 >= 0xdc00 && r2 < 0xe000 {
				r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
				i += 6
			}
		}
		out = utf8.AppendRune(out, r)
	}
	return out, changed
}

// simpleEscape returns the byte a one-character escape stands for.
func simpleEscape(c byte) (byte, bool) {
	switch c {
	case 'n':
		return '\n', true
	case 't':
		return '\t', true
	case 'r':
		return '\r', true
	case '"', '\'', '\\', '/':
		return c, true
	case '0':
		return 0, true
	case 'a':
		return 7, true
	case 'b':
		return 8, true
	case 'f':
		return 12, true
	case 'v':
		return 11, true
	case 'e':
		return 27, true
	}
	return 0, false
}

// privateKeyDER reports a private key at the start of decoded bytes: the
// DER of a PKCS#1, PKCS#8, SEC 1 (EC) or DSA private key (a SEQUENCE that
// opens with the INTEGER version 0 or 1, then an INTEGER, a SEQUENCE or an
// OCTET STRING), of an encrypted PKCS#8 key (a SEQUENCE opening with the
// PBES2 or a PKCS#12 PBE algorithm), or an OpenPGP secret key packet. This
// is what the body of a PEM or armored private key decodes to, so it is
// found without its BEGIN line.
func privateKeyDER(d []byte) string {
	if kind := pgpSecretKey(d); kind != "" {
		return kind
	}
	if len(d) < 8 || d[0] != 0x30 {
		return ""
	}
	i, ok := derSkipLength(d, 1)
	if !ok || i+3 > len(d) {
		return ""
	}
	// INTEGER 0 or 1 (the version), then the first field.
	if d[i] == 0x02 && d[i+1] == 0x01 && (d[i+2] == 0 || d[i+2] == 1) && i+3 < len(d) {
		switch d[i+3] {
		case 0x02, 0x30, 0x04:
			return kindPrivateKey + " (DER body without its BEGIN line)"
		}
		return ""
	}
	// EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE { OID pbes2 | pkcs12PBE ...
	if d[i] != 0x30 {
		return ""
	}
	j, ok := derSkipLength(d, i+1)
	if !ok || j+2 > len(d) || d[j] != 0x06 {
		return ""
	}
	oid := []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01}
	if d[j+1] >= 9 && bytes.HasPrefix(d[j+2:], oid) && j+2+len(oid) < len(d) {
		switch d[j+2+len(oid)] {
		case 0x05, 0x0c: // PKCS#5 (PBES2, PBES1), PKCS#12 PBE
			return kindPrivateKey + " (encrypted PKCS#8, DER body without its BEGIN line)"
		}
	}
	return ""
}

// derSkipLength returns the index after the DER length that starts at i.
func derSkipLength(d []byte, i int) (int, bool) {
	if i >= len(d) {
		return 0, false
	}
	switch l := d[i]; {
	case l < 0x80:
		return i + 1, true
	case l == 0x81 || l == 0x82 || l == 0x83:
		return i + 1 + int(l&0x7f), i+1+int(l&0x7f) <= len(d)
	}
	return 0, false
}

// pgpSecretKey reports an OpenPGP Secret-Key or Secret-Subkey packet (tags
// 5 and 7) at the start of d: the packet header, a length that fits in d
// and is long enough for a key, version 4, 5 or 6, a creation time and a
// known public-key algorithm.
func pgpSecretKey(d []byte) string {
	if len(d) < 8 || d[0]&0x80 == 0 {
		return ""
	}
	var tag, i, length int
	if d[0]&0x40 == 0 { // old format
		tag = int(d[0]>>2) & 0x0f
		switch d[0] & 3 {
		case 0:
			length, i = int(d[1]), 2
		case 1:
			length, i = int(d[1])<<8|int(d[2]), 3
		case 2:
			length, i = int(d[1])<<24|int(d[2])<<16|int(d[3])<<8|int(d[4]), 5
		default:
			return ""
		}
	} else { // new format
		tag = int(d[0] & 0x3f)
		switch l := int(d[1]); {
		case l < 192:
			length, i = l, 2
		case l < 224:
			length, i = (l-192)<<8+int(d[2])+192, 3
		case l == 255:
			length, i = int(d[2])<<24|int(d[3])<<16|int(d[4])<<8|int(d[5]), 6
		default:
			return ""
		}
	}
	if tag != 5 && tag != 7 || length < 40 || length > len(d)-i || i+6 > len(d) {
		return ""
	}
	if v := d[i]; v < 4 || v > 6 {
		return ""
	}
	switch d[i+5] { // RSA, ElGamal, DSA, ECDH, ECDSA, EdDSA (legacy), X25519, X448, Ed25519, Ed448
	case 1, 2, 3, 16, 17, 18, 19, 22, 25, 26, 27, 28:
		return kindPrivateKey + " (OpenPGP secret key, without its BEGIN line)"
	}
	return ""
}

// span is a byte range [from, to).
type span struct{ from, to int }

func inSpans(spans []span, i int) bool {
	for _, s := range spans {
		if i >= s.from && i < s.to {
			return true
		}
	}
	return false
}

// publicLabels are the PEM and armor labels of public material.
var publicLabels = [...]string{
	"CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CRL", "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST",
	"PUBLIC KEY", "RSA PUBLIC KEY", "PGP PUBLIC KEY BLOCK", "PGP SIGNATURE",
}

// sshKeyTypes prefix the base64 blob of an SSH public key.
var sshKeyTypes = [...]string{
	"ssh-ed25519 ", "ssh-rsa ", "ssh-dss ", "ecdsa-sha2-nistp256 ", "ecdsa-sha2-nistp384 ", "ecdsa-sha2-nistp521 ",
	"sk-ssh-ed25519@openssh.com ", "sk-ecdsa-sha2-nistp256@openssh.com ",
}

// publicSpans returns where t holds public key material: PEM blocks of
// certificates and public keys, armored PGP public keys and signatures
// (BEGIN line to END line, or to the end), and SSH public keys' blobs.
func publicSpans(t []byte) []span {
	var out []span
	for i := bytes.Index(t, []byte("-----BEGIN ")); i >= 0; {
		rest := t[i+len("-----BEGIN "):]
		end := len(t)
		for _, l := range publicLabels {
			if bytes.HasPrefix(rest, []byte(l+"-----")) {
				if e := bytes.Index(rest, []byte("-----END "+l+"-----")); e >= 0 {
					end = i + len("-----BEGIN ") + e + len("-----END "+l+"-----")
				}
				out = append(out, span{i, end})
				break
			}
		}
		next := bytes.Index(t[i+1:], []byte("-----BEGIN "))
		if next < 0 {
			break
		}
		i += 1 + next
	}
	for _, kt := range sshKeyTypes {
		for off := 0; ; {
			k := bytes.Index(t[off:], []byte(kt+"AAAA"))
			if k < 0 {
				break
			}
			from := off + k + len(kt)
			to := from
			for to < len(t) && (isAlnum(t[to]) || t[to] == '+' || t[to] == '/' || t[to] == '=') {
				to++
			}
			out = append(out, span{from, to})
			off = to
		}
	}
	return out
}

// value scans v, a field's value, and reports what it finds as an error
// for the field at l: a *SecretError, or a *FieldError for data it cannot
// scan.
func (s *scanner) value(v string, l loc) error {
	fd, ok, err := s.scan([]byte(v))
	if err != nil {
		if u, ok := errors.AsType[*errUnscannable](err); ok {
			return l.err(u.reason)
		}
		return err
	}
	if ok {
		return l.secret(fd.kind)
	}
	return nil
}
