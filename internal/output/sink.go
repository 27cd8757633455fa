package output

import (
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
)

// MaxLine is the longest line written as one piece; longer lines are split.
const MaxLine = 64 << 10

// Sink serialises writes to one destination.
type Sink struct {
	mu  sync.Mutex
	w   io.Writer
	tty bool
}

// NewSink wraps w. Colour is allowed ("auto") only when w is a terminal.
func NewSink(w io.Writer) *Sink {
	s := &Sink{w: w}
	if f, ok := w.(*os.File); ok {
		s.tty = isatty.IsTerminal(f.Fd())
	}
	return s
}

// IsTerminal reports whether the sink writes to a terminal.
func (s *Sink) IsTerminal() bool { return s.tty }

// Write writes p in one piece. Callers pass whole lines (or, for pass-through jobs, raw
// chunks).
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
