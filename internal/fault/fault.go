// Package fault is the one shape of an expected "no" from a domain
// package: a Kind (what sort of refusal it is), a Code (snake_case, from
// the API contract), a Message for a person, optional public Details, and
// an optional private Cause that reaches only the logs. Domain packages
// return faults and know nothing of HTTP; package server alone maps a
// Kind to a status.
package fault

import (
	"errors"
	"time"
)

// Kind is the sort of refusal. The zero Kind is not a refusal.
type Kind int

const (
	_ Kind = iota
	// Invalid: the request itself is wrong (a bad name, both or neither
	// of two fields).
	Invalid
	// Rejected: the request is well formed but what it carries breaks a
	// rule (a playbook that fails validation).
	Rejected
	// NotFound: there is no such thing, or not for this caller.
	NotFound
	// Conflict: the state of things forbids it now (someone else edits
	// it, a name is taken, a limit is reached).
	Conflict
	// Gone: it existed and has ended (an ended session).
	Gone
	// Busy: too much is under way; try again after RetryAfter.
	Busy
	// Unavailable: a dependency does not answer; try again later.
	Unavailable
	// Forbidden: the caller may not do this.
	Forbidden
	// TooLarge: the input is over a size limit.
	TooLarge
	// NotImplemented: this gateway does not offer it.
	NotImplemented
)

var kindNames = map[Kind]string{Invalid: "invalid", Rejected: "rejected", NotFound: "not found", Conflict: "conflict",
	Gone: "gone", Busy: "busy", Unavailable: "unavailable", Forbidden: "forbidden", TooLarge: "too large", NotImplemented: "not implemented"}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "internal"
}

// Error is a refusal. Code and Message are public; so are Details (fields
// an API answer documents next to the error). Cause is private.
type Error struct {
	Kind       Kind
	Code       string
	Message    string
	Details    map[string]any
	RetryAfter time.Duration // for Busy
	Cause      error
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Cause != nil {
		s += " (" + e.Cause.Error() + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// New is a refusal without a cause.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Wrap is a refusal with a private cause.
func Wrap(kind Kind, code, message string, cause error) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Cause: cause}
}

// With returns a copy of e with one more public detail.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Details = make(map[string]any, len(e.Details)+1)
	for k, v := range e.Details {
		c.Details[k] = v
	}
	c.Details[key] = value
	return &c
}

// As finds the refusal in err's chain.
func As(err error) (*Error, bool) {
	var f *Error
	ok := errors.As(err, &f)
	return f, ok
}

// KindOf is the kind of the refusal in err's chain, or 0.
func KindOf(err error) Kind {
	if f, ok := As(err); ok {
		return f.Kind
	}
	return 0
}

// CodeOf is the code of the refusal in err's chain, or "".
func CodeOf(err error) string {
	if f, ok := As(err); ok {
		return f.Code
	}
	return ""
}
