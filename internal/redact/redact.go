// Package redact copies an error chain with every message passed through a
// redaction function, for the packages (inject, provision) whose errors may
// quote a secret.
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
