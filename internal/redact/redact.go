// Package redact finds secret values in text meant for people (errors,
// logs, events, a failing command's stderr) and replaces them with
// [REDACTED]; Chain does it to every message of an error chain. inject and
// provision use it.
//
// # What a Redactor finds
//
// For each secret value v given to New, and for v without its
// surrounding white space when that differs (a value read from a file
// often ends in a newline: both forms are looked for, and both are
// encoded below), a Redactor finds
//
//   - v itself;
//   - its base64 encodings: standard and URL alphabets, with and without
//     padding, and v inside a longer base64 text (the characters that
//     depend on v's bytes alone, for each of the three offsets modulo 3
//     at which v can start; from 8 characters);
//   - its hex encoding, lower and upper case;
//   - its percent-encodings: as url.QueryEscape (space as +) and
//     url.PathEscape write them, and with every byte but RFC 3986's
//     unreserved ones escaped; hex digits in upper and lower case;
//   - its JSON string escapings: Go's encoding/json (<, > and & escaped),
//     plain (JavaScript), every non-ASCII character escaped (Python's
//     json.dumps), and that with the slash escaped too (PHP);
//   - any of these cut by line breaks: text is searched twice, with its
//     line breaks, and the spaces and tabs around them, left out, and
//     with each such run read as one space, so a value wrapped over two
//     or more lines, mid-word (a log line cut at a column, base64
//     wrapped at 64 or 76 columns, a PEM block re-flowed) or where it
//     has a space (a passphrase word-wrapped: the space replaced by the
//     line break, kept before it, the next line indented), is found and
//     replaced whole, the line breaks inside it included;
//   - for a value of at least Window (12) bytes without surrounding white
//     space: every fragment of Window bytes or more of any of these forms
//     (v's first 20 bytes, its last 12, base64 or hex of a part of it),
//     each replaced whole.
//
// Whole values (New's second list) are found in the same forms, but only
// whole, and each line of MinLineLen bytes or more of a multi-line one
// on its own: they are text that holds secrets among other things (a
// file's content), whose fragments would be ordinary words.
//
// Tail, for the end kept of a longer output, also redacts a fragment of
// MinLen bytes or more at its start that ends one of these forms: the
// part of a secret after the cut.
//
// # What it does not find
//
//   - values shorter than MinLen (4) bytes without surrounding white space
//     and line breaks (counted by Skipped); values of MinLen to Window-1
//     such bytes are found only whole, in the forms above;
//   - fragments shorter than Window bytes (a secret's first 11 bytes),
//     but for Tail's leading fragment;
//   - other encodings: base32, base58, quoted-printable, HTML entities,
//     UTF-16, shell escaping with backslashes, gzip and other
//     compression, encryption, ROT13, mixed-case hex, a value whose case
//     changed;
//   - encodings of encodings (base64 of hex, JSON escaping of JSON
//     escaping), but for their fragments that happen to be fragments of
//     one of the forms above;
//   - a value cut by anything but line breaks and blanks (a log prefix
//     at the start of the continuation line, an ellipsis): only its
//     parts of Window bytes or more are found;
//   - a value wrapped both mid-word and where it has a space, or where
//     it has a tab or several blanks in a row: only its parts of Window
//     bytes or more that one of the two readings holds whole are found;
//   - text that never passes through a Redactor.
//
// Matching is exact and costs one or two map lookups per byte of text
// (an index of every Window-byte window, and the whole forms by their
// first 4 bytes); the second reading, only when a value has a space,
// looks again at the bytes before each line break that such a value
// could reach across it. A Redactor for 20 secrets redacts 16 KiB in
// well under a millisecond (BenchmarkRedact); New builds the index, in
// time and memory proportional to the total length of the values.
package redact

import "errors"

// MaxDepth bounds how deep Chain copies a chain; below it, Unwrap returns
// nil (errors.Is and errors.As still see the whole original).
const MaxDepth = 64

// Chain returns err with its message, and the message of every error it
// wraps, passed through redact; nil stays nil. The copy's Unwrap returns
// only redacted errors (the link the original wraps, redacted the same
// way), so no walk down the chain reaches an unredacted message, while
// errors.Is and errors.As still reach the original chain through Is and As
// methods (a typed error found with errors.As is the original: its fields
// are not redacted).
func Chain(err error, redact func(string) string) error {
	return chain(err, redact, 0)
}

func chain(err error, redact func(string) string, depth int) error {
	if err == nil {
		return nil
	}
	msg := redact(err.Error())
	if depth >= MaxDepth {
		return &single{msg: msg, orig: err}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return &single{msg: msg, orig: err, next: chain(u.Unwrap(), redact, depth+1)}
	case interface{ Unwrap() []error }:
		var next []error
		for _, e := range u.Unwrap() {
			if e != nil {
				next = append(next, chain(e, redact, depth+1))
			}
		}
		return &joined{msg: msg, orig: err, next: next}
	}
	return &single{msg: msg, orig: err}
}

// single carries the redacted message of an error that wraps at most one.
type single struct {
	msg  string
	orig error
	next error
}

func (e *single) Error() string        { return e.msg }
func (e *single) Unwrap() error        { return e.next }
func (e *single) Is(target error) bool { return errors.Is(e.orig, target) }
func (e *single) As(target any) bool   { return errors.As(e.orig, target) }

// joined is single for an original that wraps several errors
// (errors.Join, fmt.Errorf with several %w).
type joined struct {
	msg  string
	orig error
	next []error
}

func (e *joined) Error() string        { return e.msg }
func (e *joined) Unwrap() []error      { return e.next }
func (e *joined) Is(target error) bool { return errors.Is(e.orig, target) }
func (e *joined) As(target any) bool   { return errors.As(e.orig, target) }
