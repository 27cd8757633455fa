package errdefs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestClassedErrors(t *testing.T) {
	err := Errorf(ErrConflict, "job %q is stopping: %w", "web", fs.ErrClosed)
	if got := err.Error(); got != `job "web" is stopping: file already closed` {
		t.Errorf("message %q repeats the class or loses the text", got)
	}
	if !errors.Is(err, ErrConflict) || !errors.Is(err, fs.ErrClosed) || errors.Is(err, ErrNotFound) {
		t.Errorf("errors.Is: conflict %v, wrapped %v, not-found %v", errors.Is(err, ErrConflict), errors.Is(err, fs.ErrClosed), errors.Is(err, ErrNotFound))
	}
	outer := fmt.Errorf("cannot stop: %w", err)
	if !errors.Is(outer, ErrConflict) {
		t.Error("the class is lost when the error is wrapped again")
	}
	var pe *fs.PathError
	if w := Wrap(ErrInvalid, &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}); !errors.As(w, &pe) || !errors.Is(w, ErrInvalid) || w.Error() != "open x: file does not exist" {
		t.Errorf("Wrap: %v", w)
	}
	if Wrap(ErrInvalid, nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
	if !errors.Is(fmt.Errorf("reload: %w", context.DeadlineExceeded), ErrTimeout) {
		t.Error("a deadline is not ErrTimeout")
	}
}
