package inject

import (
	"bytes"
	"cmp"
	"slices"
	"strings"

	"github.com/hatchery-dev/hatchery/internal/redact"
)

// Redacted replaces every secret value in errors, log lines and StepError
// fields.
const Redacted = "[REDACTED]"

// MinRedactLen is the shortest value that is redacted. Shorter values (a
// "1", "yes" or "on" in a file, a port number) are left as they are:
// replacing them everywhere would garble every message (and show where
// they occur), and a value that short is no secret worth the name. Give
// secrets at least this many bytes.
const MinRedactLen = 4

// minLineLen is the shortest line of a multi-line stdin value that is
// redacted on its own: long enough for a key or token line, short enough
// to catch one line of a PEM block quoted in an error.
const minLineLen = 16

// redactor replaces secret values with Redacted, longest first.
type redactor struct {
	r       *strings.Replacer
	skipped int // values shorter than MinRedactLen
}

// newRedactor builds a redactor for the explicit values and every step's
// stdin: each value without surrounding white space and, for multi-line
// values, each line of at least minLineLen bytes.
func newRedactor(values []string, steps []Step) *redactor {
	set := map[string]bool{}
	rd := &redactor{}
	add := func(v string) {
		if v == "" {
			return
		}
		if len(strings.TrimSpace(v)) < MinRedactLen {
			rd.skipped++
			return
		}
		// The value without surrounding white space: a substring of the
		// value, so this hides the value too, and leaves the line breaks
		// around it in place.
		set[strings.TrimSpace(v)] = true
	}
	for _, v := range values {
		add(v)
	}
	for _, s := range steps {
		in := bytes.TrimSuffix(s.Stdin, []byte(eofMark))
		if len(in) == 0 {
			continue
		}
		v := string(in)
		add(v)
		if strings.Contains(strings.TrimSpace(v), "\n") {
			for line := range strings.Lines(v) {
				if l := strings.TrimSpace(line); len(l) >= minLineLen {
					set[l] = true
				}
			}
		}
	}
	if len(set) == 0 {
		return rd
	}
	list := make([]string, 0, len(set))
	for v := range set {
		list = append(list, v)
	}
	// Longest first: strings.Replacer tries the old strings in argument
	// order at each position, so a secret that contains another is
	// replaced whole.
	slices.SortFunc(list, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	args := make([]string, 0, 2*len(list))
	for _, v := range list {
		args = append(args, v, Redacted)
	}
	rd.r = strings.NewReplacer(args...)
	return rd
}

// String returns s with every secret replaced.
func (rd *redactor) String(s string) string {
	if rd == nil || rd.r == nil {
		return s
	}
	return rd.r.Replace(s)
}

// Error returns err with a redacted message, and redacted messages all
// the way down its Unwrap chain (nil stays nil); see internal/redact.Chain.
func (rd *redactor) Error(err error) error {
	return redact.Chain(err, rd.String)
}

// tail redacts b and keeps at most the last n bytes of the result;
// redacting first means a cut can never leave half a secret visible.
func (rd *redactor) tail(b []byte, n int) string {
	s := rd.String(string(b))
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
