// Package errdefs is pilotfish's one vocabulary of error classes (containerd's errdefs
// manner): a layer puts an error in a class, and the control API maps the class to an HTTP
// status and a kind in one table (control.HTTPStatus, docs/api.md#errors). Any package may
// import it; it imports nothing of pilotfish.
//
// Test a class with errors.Is(err, errdefs.ErrConflict). Build an error of a class with
// Errorf or Wrap: its message is the text alone, since the kind on the wire already names
// the class ("conflict: job …" would say it twice).
package errdefs

import (
	"context"
	"errors"
	"fmt"
)

// The classes.
var (
	// ErrInvalid: the request is malformed or names something impossible.
	ErrInvalid = errors.New("invalid")
	// ErrInvalidConfig: the configuration file has errors.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrNotFound: no such job, metric or endpoint.
	ErrNotFound = errors.New("not found")
	// ErrMethodNotAllowed: the endpoint exists, the method does not.
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrConflict: the request does not fit the current state.
	ErrConflict = errors.New("conflict")
	// ErrTooLarge: the request, or what it would make grow, is over its limit.
	ErrTooLarge = errors.New("too large")
	// ErrTooMany: every slot of a capped resource is taken; retry once one is free.
	ErrTooMany = errors.New("too many")
	// ErrStarting: start-up has not finished; retry in a moment.
	ErrStarting = errors.New("starting")
	// ErrUnavailable: pilotfish cannot do it now (it is shutting down).
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout is context.DeadlineExceeded: a deadline passed before the work was done.
	ErrTimeout = context.DeadlineExceeded
)

// Errorf returns an error of class whose message is the formatted text (%w wraps as in
// fmt.Errorf).
func Errorf(class error, format string, args ...any) error {
	return &classed{class: class, err: fmt.Errorf(format, args...)}
}

// Wrap puts err in class, keeping its message; nil stays nil.
func Wrap(class, err error) error {
	if err == nil {
		return nil
	}
	return &classed{class: class, err: err}
}

type classed struct {
	class, err error
}

func (e *classed) Error() string { return e.err.Error() }

// Unwrap lets errors.Is find the class, and errors.Is and errors.As what err wraps.
func (e *classed) Unwrap() []error { return []error{e.class, e.err} }
