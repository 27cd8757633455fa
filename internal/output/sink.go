package output

import (
	"bytes"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-isatty"
)

// MaxLine is the longest line written as one piece; longer lines are split.
const MaxLine = 64 << 10

// Sink serialises writes to one destination (pilotfish's stdout or stderr).
//
// A write blocks for as long as the destination takes: a slow reader slows the writer and
// nothing is lost. At the shutdown deadline the daemon abandons a sink that still has a
// write in progress: every later write returns at once, and what is given up is counted.
//
// Why writes are abandoned this way, rather than with a non-blocking descriptor and write
// deadlines: O_NONBLOCK belongs to the open file description, which pilotfish shares with
// its parent (a shell, containerd) and with a main job given the terminal, so setting it
// would make their writes fail with EAGAIN. Instead, only expendable goroutines — the job
// output copiers, the syslog writers and the log queue's writer (LogWriter) — ever write to
// a sink. One of them stuck inside write(2) on a pipe nobody reads, and those waiting for
// their turn behind it, simply stay there until the process exits; the goroutines pilotfish
// cannot lose (the supervisor, the jobs' loops) never write to a sink themselves: their log
// lines go through a LogWriter, and every wait for output has a deadline.
type Sink struct {
	w   io.Writer
	tty bool
	mu  sync.Mutex // the turn to write

	gone     atomic.Bool
	inflight atomic.Pointer[[]byte] // the write in progress
	waiting  counter                // writes waiting for their turn
	dropped  counter                // writes given up since Abandon
}

type counter struct{ lines, bytes atomic.Int64 }

func (c *counter) add(p []byte, sign int64) {
	c.bytes.Add(sign * int64(len(p)))
	c.lines.Add(sign * lines(p))
}

// lines counts the lines of p, a last one without a newline included.
func lines(p []byte) int64 {
	n := int64(bytes.Count(p, []byte{'\n'}))
	if len(p) > 0 && p[len(p)-1] != '\n' {
		n++
	}
	return n
}

// Dropped counts output given up.
type Dropped struct {
	Lines, Bytes uint64
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
// chunks). Once the sink is abandoned, p is counted as dropped and Write returns at once.
func (s *Sink) Write(p []byte) (int, error) {
	if s.gone.Load() {
		s.dropped.add(p, 1)
		return len(p), nil
	}
	if !s.mu.TryLock() {
		s.waiting.add(p, 1) // counted only on this slow path
		s.mu.Lock()
		s.waiting.add(p, -1)
	}
	defer s.mu.Unlock()
	if s.gone.Load() {
		s.dropped.add(p, 1)
		return len(p), nil
	}
	s.inflight.Store(&p)
	n, err := s.w.Write(p)
	s.inflight.Store(nil)
	if n < len(p) && s.gone.Load() {
		s.dropped.add(p[n:], 1)
	}
	return n, err
}

// Busy reports whether a write is in progress (a reader is slow, or reads nothing).
func (s *Sink) Busy() bool { return s.inflight.Load() != nil }

// Abandon gives up on the destination for good: every later write returns at once.
func (s *Sink) Abandon() { s.gone.Store(true) }

// Dropped is what was given up since Abandon: later writes, and those still blocked (in
// progress or waiting for their turn) that will never be written.
func (s *Sink) Dropped() Dropped {
	if !s.gone.Load() {
		return Dropped{}
	}
	d := Dropped{Lines: uint64(s.dropped.lines.Load() + s.waiting.lines.Load()),
		Bytes: uint64(s.dropped.bytes.Load() + s.waiting.bytes.Load())}
	if p := s.inflight.Load(); p != nil {
		d.Lines += uint64(lines(*p))
		d.Bytes += uint64(len(*p))
	}
	return d
}

// LogWriter queues pilotfish's own log lines for a sink and writes them from a goroutine of
// its own, started when lines are waiting and ended when none are, so that the goroutine
// that logs (the supervisor, a job's loop) never waits for a reader of stderr. At most
// LogQueue bytes wait; beyond that, lines are dropped and counted. Flush waits, with a
// deadline, for what is queued.
type LogWriter struct {
	sink *Sink

	mu      sync.Mutex
	queue   []byte
	running bool
	idle    chan struct{} // closed when the writer goroutine ends
	dropped Dropped
}

// LogQueue is how many bytes of log lines may wait for a slow or stuck stderr.
const LogQueue = 512 << 10

// NewLogWriter queues lines for s.
func NewLogWriter(s *Sink) *LogWriter {
	idle := make(chan struct{})
	close(idle)
	return &LogWriter{sink: s, idle: idle}
}

// Write queues a copy of p (one log line) and returns at once.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue)+len(p) > LogQueue {
		l.dropped.Bytes += uint64(len(p))
		l.dropped.Lines += uint64(lines(p))
		return len(p), nil
	}
	l.queue = append(l.queue, p...)
	if !l.running {
		l.running, l.idle = true, make(chan struct{})
		go l.write(l.idle)
	}
	return len(p), nil
}

// write writes what is queued, in one piece each time, until nothing is.
func (l *LogWriter) write(idle chan struct{}) {
	var buf []byte
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.running = false
			close(idle)
			l.mu.Unlock()
			return
		}
		buf, l.queue = l.queue, buf[:0]
		l.mu.Unlock()
		_, _ = l.sink.Write(buf)
		if cap(buf) > 4*MaxLine {
			buf = nil
		}
	}
}

// Flush waits until every line queued so far is written, or until deadline; it reports
// whether everything went out. Once the sink is abandoned, nothing more can: it returns at
// once.
func (l *LogWriter) Flush(deadline time.Time) bool {
	if l.sink.gone.Load() {
		return false
	}
	l.mu.Lock()
	idle := l.idle
	l.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// Dropped counts the lines dropped because the queue was full.
func (l *LogWriter) Dropped() Dropped {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}
