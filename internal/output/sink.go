package output

import (
	"bytes"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
)

// MaxLine is the longest line written as one piece; longer lines are split.
const MaxLine = 64 << 10

// Sink serialises writes to one destination (pilotfish's stdout or stderr).
//
// A write blocks for as long as the destination takes: a slow reader slows the writer and
// nothing is lost. At the shutdown deadline the daemon abandons a sink that still has a
// write in progress: every waiting and later write returns at once and counts as dropped.
//
// Why writes are abandoned this way, rather than with a non-blocking descriptor and write
// deadlines: O_NONBLOCK belongs to the open file description, which pilotfish shares with
// its parent (a shell, containerd) and with a main job given the terminal, so setting it
// would make their writes fail with EAGAIN. Instead, only expendable goroutines — the job
// output copiers, the syslog writers and the log queue's writer (LogWriter) — ever block in
// write(2). The turn to write is a channel, not a mutex, so a waiter can give up on it, and a
// goroutine stuck inside write(2) for a pipe nobody reads simply stays there until the
// process exits. The goroutines that pilotfish cannot lose (the supervisor, the jobs' loops)
// never write to a sink themselves: their log lines go through a LogWriter.
type Sink struct {
	w    io.Writer
	tty  bool
	turn chan struct{} // holds a token while a write is in progress
	gone chan struct{} // closed by Abandon
	once sync.Once

	mu       sync.Mutex // guards the counters below, never held across I/O
	inflight []byte     // the write in progress (its caller owns it and is blocked)
	dropped  Dropped
}

// Dropped counts output given up.
type Dropped struct {
	Lines, Bytes uint64
}

func (d *Dropped) add(p []byte) {
	d.Bytes += uint64(len(p))
	d.Lines += uint64(bytes.Count(p, []byte{'\n'}))
	if len(p) > 0 && p[len(p)-1] != '\n' {
		d.Lines++ // a partial line counts as one
	}
}

// NewSink wraps w. Colour is allowed ("auto") only when w is a terminal.
func NewSink(w io.Writer) *Sink {
	s := &Sink{w: w, turn: make(chan struct{}, 1), gone: make(chan struct{})}
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
	select {
	case s.turn <- struct{}{}:
	case <-s.gone:
		s.drop(p)
		return len(p), nil
	}
	defer func() { <-s.turn }()
	s.mu.Lock()
	select {
	case <-s.gone:
		s.dropped.add(p)
		s.mu.Unlock()
		return len(p), nil
	default:
	}
	s.inflight = p
	s.mu.Unlock()
	n, err := s.w.Write(p)
	s.mu.Lock()
	s.inflight = nil
	if s.abandoned() && n < len(p) {
		s.dropped.add(p[n:])
	}
	s.mu.Unlock()
	return n, err
}

func (s *Sink) drop(p []byte) {
	s.mu.Lock()
	s.dropped.add(p)
	s.mu.Unlock()
}

func (s *Sink) abandoned() bool {
	select {
	case <-s.gone:
		return true
	default:
		return false
	}
}

// Busy reports whether a write is in progress (a reader is slow, or reads nothing).
func (s *Sink) Busy() bool { return len(s.turn) > 0 }

// Abandon gives up on the destination for good: writes waiting for their turn and every
// later write return at once, counted as dropped, and so is the write in progress, whose
// goroutine stays blocked until the process exits.
func (s *Sink) Abandon() {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.gone)
		s.mu.Unlock()
	})
}

// Dropped is what was given up since Abandon, counting the write still blocked.
func (s *Sink) Dropped() Dropped {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dropped
	if s.abandoned() {
		d.add(s.inflight)
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
		l.dropped.add(p)
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

// Flush waits until every line queued so far is written (or dropped by an abandoned sink),
// or until deadline; it reports whether everything went out.
func (l *LogWriter) Flush(deadline time.Time) bool {
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
