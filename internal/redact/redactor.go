package redact

import (
	"encoding/binary"
	"slices"
	"strings"
)

// Redacted replaces what a Redactor finds.
const Redacted = "[REDACTED]"

// MinLen is the shortest value (without surrounding white space, nor
// line breaks and the blanks around them) that a Redactor looks for;
// shorter ones are counted by Skipped.
const MinLen = 4

// Window is the fragment length: every Window consecutive bytes of a
// secret of at least Window bytes, or of one of its encodings, are
// redacted wherever they occur.
const Window = 12

// MinLineLen is the shortest line of a multi-line whole value that is
// also redacted on its own.
const MinLineLen = 16

// MaxFragmentLen bounds the secrets whose fragments are looked for: the
// index of windows costs about 300 bytes of memory per byte of secret.
// A longer secret is looked for whole, like a whole value.
const MaxFragmentLen = 8 << 10

// maxEncodedLen bounds the whole values whose encodings are looked for:
// a file's content is looked for as it is, and line by line.
const maxEncodedLen = 4 << 10

// edgeMin is the shortest leading fragment that Tail redacts.
const edgeMin = MinLen

// Redactor finds secret values in text, in the forms and fragments the
// package doc lists, and replaces them with Redacted. A nil *Redactor
// redacts nothing. Safe for concurrent use.
type Redactor struct {
	filter  *[1 << 10]uint64          // a bit per hash of the first 4 bytes of every window and whole form
	windows map[[Window]byte]struct{} // every Window-byte window of the forms of long secrets
	whole   map[uint32][]string       // forms matched whole, by their first 4 bytes
	exact   []string                  // the forms Holds looks for (no alignment cores)
	edges   []string                  // every form, for Tail's leading fragment
	spaced  int                       // how far a form holding a space reaches (0: none), see redact
	skipped int
}

// New returns a Redactor for secrets, found in every form and fragment
// the package doc lists, and for whole values, found only whole (in the
// same forms): text that holds secrets among other things, such as a
// file's content, whose fragments would be ordinary words. Values of
// fewer than MinLen bytes without surrounding white space are left out
// (see Skipped).
func New(secrets, whole []string) *Redactor {
	r := &Redactor{filter: new([1 << 10]uint64), windows: map[[Window]byte]struct{}{}, whole: map[uint32][]string{}}
	wholes := map[string]bool{}
	exact := map[string]bool{}
	edges := map[string]bool{}
	add := func(v string, fragments bool) {
		if v == "" {
			return
		}
		t := strings.TrimSpace(v)
		if len(normalize(t)) < MinLen {
			r.skipped++
			return
		}
		long := fragments && len(normalize(t)) >= Window && len(t) <= MaxFragmentLen
		raws := []string{t}
		if t != v {
			raws = append(raws, v)
		}
		for _, raw := range raws {
			fms := []form{{s: raw}}
			if len(raw) <= maxEncodedLen || long {
				fms = forms(raw)
			}
			for _, fm := range fms {
				f := normalize(fm.s)
				if len(f) < MinLen || raw != t && strings.Contains(f, t) {
					// The value with its surrounding white space, as
					// it is (or JSON- or percent-encoded), holds t:
					// it would only take the blanks around t along.
					continue
				}
				edges[f] = true
				if !fm.core {
					exact[f] = true
				}
				if strings.Contains(f, " ") {
					reach := len(f)
					if long {
						reach = min(reach, Window) // found by its windows
					}
					r.spaced = max(r.spaced, reach)
				}
				if long {
					for j := 0; j+Window <= len(f); j++ {
						r.windows[[Window]byte([]byte(f[j:j+Window]))] = struct{}{}
						r.set(key(f[j:]))
					}
				} else {
					wholes[f] = true
				}
			}
		}
	}
	for _, v := range secrets {
		add(v, true)
	}
	for _, v := range whole {
		add(v, false)
		if strings.Contains(strings.TrimSpace(v), "\n") {
			for line := range strings.Lines(v) {
				if l := normalize(strings.TrimSpace(line)); len(l) >= MinLineLen {
					wholes[l] = true
					exact[l] = true
					edges[l] = true
					if strings.Contains(l, " ") {
						r.spaced = max(r.spaced, len(l))
					}
				}
			}
		}
	}
	for f := range wholes {
		k := key(f)
		r.whole[k] = append(r.whole[k], f)
		r.set(k)
	}
	for _, list := range r.whole {
		// Longest first, so that a form containing another is replaced
		// whole at a position where both start.
		slices.SortFunc(list, func(a, b string) int { return len(b) - len(a) })
	}
	r.exact = sortedKeys(exact)
	r.edges = sortedKeys(edges)
	if len(r.windows) == 0 && len(r.whole) == 0 {
		return &Redactor{skipped: r.skipped}
	}
	return r
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return out
}

func key(f string) uint32 { return binary.LittleEndian.Uint32([]byte(f[:4])) }

// bit returns the filter's word and bit for key k.
func bit(k uint32) (int, uint64) {
	h := (k * 0x9e3779b1) >> 16
	return int(h >> 6), 1 << (h & 63)
}

func (r *Redactor) set(k uint32) {
	w, b := bit(k)
	r.filter[w] |= b
}

// Skipped reports how many values were too short to look for.
func (r *Redactor) Skipped() int {
	if r == nil {
		return 0
	}
	return r.skipped
}

// Empty reports whether r looks for nothing.
func (r *Redactor) Empty() bool { return r == nil || len(r.windows) == 0 && len(r.whole) == 0 }

// String returns s with every secret found replaced by Redacted.
func (r *Redactor) String(s string) string { return r.redact(s, false) }

// Tail is String for the end of a longer text (a tail kept of a
// stream): a fragment of at least MinLen bytes at its start that ends a
// secret's form, cut by the start of the tail, is redacted too.
func (r *Redactor) Tail(s string) string { return r.redact(s, true) }

// Error returns err with its message, and the message of every error it
// wraps, redacted; see Chain.
func (r *Redactor) Error(err error) error {
	if r.Empty() {
		return err
	}
	return Chain(err, r.String)
}

// Holds reports whether s contains a whole value, or a whole encoding
// of one, that r looks for (not a mere fragment).
func (r *Redactor) Holds(s string) bool {
	if r.Empty() {
		return false
	}
	v, _, cuts := view(s, r.spaced > 0)
	vs := []string{v}
	if len(cuts) > 0 {
		j, _ := join(v, cuts)
		vs = append(vs, j)
	}
	for _, f := range r.exact {
		for _, v := range vs {
			if strings.Contains(v, f) {
				return true
			}
		}
	}
	return false
}

// span is a half-open range of bytes.
type span struct{ from, to int }

// redact reads s twice where it has line breaks: with each line break
// and the blanks around it dropped (a value wrapped mid-word), and, when
// a form holds a space, with each read as one space (a value wrapped
// where it had a space); the spans found either way are replaced. In
// the second reading only the positions from which a form holding a
// space reaches one of those spaces are looked at: a match elsewhere
// reads the same in the first.
func (r *Redactor) redact(s string, tail bool) string {
	if r.Empty() || len(s) < MinLen {
		return s
	}
	v, pos, cuts := view(s, r.spaced > 0)
	found := r.find(v, pos, nil, tail)
	if len(cuts) > 0 {
		j, gaps := join(v, cuts)
		found = union(found, r.find(j, pos, gaps, tail))
	}
	if len(found) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, f := range found {
		b.WriteString(s[last:f.from])
		b.WriteString(Redacted)
		last = f.to
	}
	b.WriteString(s[last:])
	return b.String()
}

// find returns the spans of text, in order and apart, whose view v
// holds what r looks for; pos maps the bytes of the view without line
// breaks to the text's (nil when that view is the text). gaps, when not
// nil, are the offsets in v of the spaces that stand for line breaks
// (v is then that view joined): only matches that may reach one are
// looked for, and a span keeps none at its ends (the line break stays).
func (r *Redactor) find(v string, pos, gaps []int32, tail bool) []span {
	var found []span
	mark := func(from, to int) {
		if n := len(found); n > 0 && from < found[n-1].to {
			found[n-1].to = max(found[n-1].to, to)
			return
		}
		found = append(found, span{from, to})
	}
	if tail {
		if k := r.edge(v); k >= edgeMin {
			mark(0, k)
		}
	}
	last := len(v) - MinLen + 1 // one past the last position a form fits at
	if gaps == nil {
		r.scan(v, 0, last, mark)
	} else {
		next := 0
		for _, g := range gaps {
			from, to := max(int(g)-r.spaced+1, next), min(int(g)+1, last)
			if from < to {
				r.scan(v, from, to, mark)
				next = to
			}
		}
	}
	// unjoin returns the offset in the view without line breaks of
	// byte i of v, and whether it is a gap instead.
	unjoin := func(i int) (int, bool) {
		n, ok := slices.BinarySearch(gaps, int32(i)) // n gaps before i
		return i - n, ok
	}
	for k, f := range found {
		from, last := f.from, f.to-1
		if gaps != nil {
			// A span holds at least MinLen bytes and no two gaps
			// are next to each other: trimmed, it keeps two.
			if _, ok := unjoin(from); ok {
				from++
			}
			if _, ok := unjoin(last); ok {
				last--
			}
			from, _ = unjoin(from)
			last, _ = unjoin(last)
		}
		if pos != nil {
			from, last = int(pos[from]), int(pos[last])
		}
		found[k] = span{from, last + 1}
	}
	return found
}

// scan marks what r finds in v at the positions from to to (excluded).
func (r *Redactor) scan(v string, from, to int, mark func(from, to int)) {
	var w [Window]byte
	for i := from; i < to; i++ {
		k := key(v[i:])
		if wd, b := bit(k); r.filter[wd]&b == 0 {
			continue
		}
		end := i
		if len(r.windows) > 0 && i+Window <= len(v) {
			copy(w[:], v[i:i+Window])
			if _, ok := r.windows[w]; ok {
				end = i + Window
			}
		}
		for _, f := range r.whole[k] {
			if i+len(f) > end && strings.HasPrefix(v[i:], f) {
				end = i + len(f)
				break
			}
		}
		if end > i {
			mark(i, end)
		}
	}
}

// union merges two lists of spans in order and apart into one.
func union(a, b []span) []span {
	if len(b) == 0 {
		return a
	}
	out := make([]span, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		var f span
		if len(b) == 0 || len(a) > 0 && a[0].from <= b[0].from {
			f, a = a[0], a[1:]
		} else {
			f, b = b[0], b[1:]
		}
		if n := len(out); n > 0 && f.from < out[n-1].to {
			out[n-1].to = max(out[n-1].to, f.to)
			continue
		}
		out = append(out, f)
	}
	return out
}

// edge returns the length of the longest start of v that is a proper
// suffix of one of r's forms, in time linear in their lengths (the
// Knuth-Morris-Pratt automaton of v's start run over each form).
func (r *Redactor) edge(v string) int {
	longest := 0
	for _, f := range r.edges {
		longest = max(longest, len(f)-1)
	}
	p := v[:min(len(v), longest)]
	if len(p) < edgeMin {
		return 0
	}
	fail := make([]int, len(p)) // fail[i]: the longest proper border of p[:i+1]
	for i, k := 1, 0; i < len(p); i++ {
		for k > 0 && p[i] != p[k] {
			k = fail[k-1]
		}
		if p[i] == p[k] {
			k++
		}
		fail[i] = k
	}
	best := 0
	for _, f := range r.edges {
		q := 0 // how much of p ends here in f
		for i := 0; i < len(f); i++ {
			for q > 0 && (q == len(p) || f[i] != p[q]) {
				q = fail[q-1]
			}
			if f[i] == p[q] {
				q++
			}
		}
		for q >= len(f) { // a proper suffix only
			q = fail[q-1]
		}
		best = max(best, q)
	}
	return best
}

// isBreak reports whether c belongs to a line break with the blanks
// around it, which view drops (and join reads as one space).
func isBreak(c byte) bool { return c == '\n' || c == '\r' || c == ' ' || c == '\t' }

// view returns s with its line breaks, and the spaces and tabs around
// them, dropped, so that a value wrapped over lines mid-word reads as
// one; for each byte of the view its offset in s (nil when the view is
// s: s has no line break); and, if cut, the offsets in the view where
// such runs were dropped, in order (see join).
func view(s string, cut bool) (v string, pos, cuts []int32) {
	if !strings.ContainsAny(s, "\r\n") {
		return s, nil, nil
	}
	b := make([]byte, 0, len(s))
	pos = make([]int32, 0, len(s))
	for i := 0; i < len(s); {
		if isBreak(s[i]) {
			j := i
			nl := false
			for j < len(s) && isBreak(s[j]) {
				nl = nl || s[j] == '\n' || s[j] == '\r'
				j++
			}
			if nl {
				if cut {
					cuts = append(cuts, int32(len(b)))
				}
				i = j
				continue
			}
			for ; i < j; i++ {
				b = append(b, s[i])
				pos = append(pos, int32(i))
			}
			continue
		}
		b = append(b, s[i])
		pos = append(pos, int32(i))
		i++
	}
	return string(b), pos, cuts
}

// join returns v, a view of s, with a space at each of its cuts: s with
// each line break and the blanks around it read as one space, so that a
// value wrapped where it had a space reads as one; and the offsets of
// those spaces in it (gaps), in order.
func join(v string, cuts []int32) (string, []int32) {
	b := make([]byte, 0, len(v)+len(cuts))
	gaps := make([]int32, len(cuts))
	last := 0
	for k, c := range cuts {
		b = append(b, v[last:c]...)
		gaps[k] = int32(len(b))
		b = append(b, ' ')
		last = int(c)
	}
	b = append(b, v[last:]...)
	return string(b), gaps
}

// normalize is view without the offsets: the form a value is looked for
// in.
func normalize(s string) string {
	v, _, _ := view(s, false)
	return v
}
