package inject

import (
	"bytes"

	"github.com/hatchery-dev/hatchery/internal/redact"
)

// Redacted replaces every secret value in errors, log lines and StepError
// fields.
const Redacted = redact.Redacted

// MinRedactLen is the shortest value that is redacted. Shorter values (a
// "1", "yes" or "on" in a file, a port number) are left as they are:
// replacing them everywhere would garble every message (and show where
// they occur), and a value that short is no secret worth the name. Give
// secrets at least this many bytes.
const MinRedactLen = redact.MinLen

// RedactWindow is the fragment length: every fragment of RedactWindow
// bytes or more of a value given with WithRedact (of at least that
// length), or of one of its encodings, is redacted.
const RedactWindow = redact.Window

// redactor redacts a Run's secrets: the values given with WithRedact in
// every form and fragment, and every step's stdin whole (a file's
// content mixes secrets with words that are not).
type redactor struct {
	*redact.Redactor
}

func newRedactor(values []string, steps []Step) *redactor {
	var whole []string
	for _, s := range steps {
		if in := bytes.TrimSuffix(s.Stdin, []byte(eofMark)); len(in) > 0 {
			whole = append(whole, string(in))
		}
	}
	return &redactor{redact.New(values, whole)}
}

// text redacts a tail of output (cut: it lost its start) and keeps at
// most its last n bytes; redacting first means a cut can never leave
// part of a secret visible.
func (rd *redactor) text(b []byte, cut bool, n int) string {
	var s string
	if cut {
		s = rd.Tail(string(b))
	} else {
		s = rd.String(string(b))
	}
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
