package output

import (
	"bytes"
	"io"
	"sync/atomic"
	"time"

	"github.com/pilotfish/pilotfish/internal/jsonstr"
	"github.com/pilotfish/pilotfish/internal/logtail"
)

// Copier moves one stream of a job to its destinations.
type Copier struct {
	// Sink receives the output; nil discards it.
	Sink io.Writer
	// Prefix is put before every line ("[app] ", maybe coloured). Raw passes bytes through
	// untouched instead of by lines.
	Prefix []byte
	Raw    bool
	// Time puts each line's time before the prefix (`timestamps = true`).
	Time bool
	// JSON, if set, writes each line as one JSON object instead, with these fields between
	// the time and the message (made by JSONFields): top-level `format = "json"`. Time,
	// Prefix and Raw are then ignored (docs/jobs.md#logging).
	JSON []byte
	// File, if set, receives every line without prefix.
	File io.Writer
	// OnLine, if set, sees every line (without its newline); it must not keep the slice.
	OnLine func([]byte)
	// Tail, if set, keeps every line, with its time and Stream, for GET /v1/logs.
	Tail   *logtail.Ring
	Stream logtail.Stream
	// Activity, if set, records reads and writes, so that a waiter can tell a slow
	// destination (still writing) from a pipe nobody writes to any more.
	Activity *Activity
}

// Activity tracks output in progress across copiers.
type Activity struct {
	writing atomic.Int64 // copiers inside a Write
	last    atomic.Int64 // unix nanoseconds of the last read or write
}

func (a *Activity) touch() {
	if a != nil {
		a.last.Store(time.Now().UnixNano())
	}
}

// Idle reports whether no copier is writing and none has read or written for d.
func (a *Activity) Idle(d time.Duration) bool {
	return a.writing.Load() == 0 && time.Since(time.Unix(0, a.last.Load())) >= d
}

func (c *Copier) write(w io.Writer, p []byte) {
	if a := c.Activity; a != nil {
		a.writing.Add(1)
		defer a.writing.Add(-1)
		defer a.touch()
	}
	_, _ = w.Write(p)
}

// Copy reads r until EOF or error. Its read buffer starts small (most jobs say little)
// and grows while the job floods, so fifty quiet jobs cost little memory.
func (c *Copier) Copy(r io.Reader) {
	if c.Raw && c.JSON == nil && !c.Time {
		c.copyRaw(r)
		return
	}
	buf := make([]byte, 4<<10)
	var pend, batch, fileBatch []byte // pend: the line not yet ended
	var now time.Time                 // when the lines of this read came
	var stamp []byte                  // now, formatted, for Time and JSON
	timed := c.Tail != nil || c.Time || c.JSON != nil
	emit := func(body []byte) {
		for {
			part := body[:min(len(body), MaxLine)]
			if c.JSON != nil {
				batch = append(batch, `{"time":"`...)
				batch = append(batch, stamp...)
				batch = append(batch, c.JSON...)
				batch = jsonstr.Append(batch, part, false) // a log line is not HTML
				batch = append(batch, "}\n"...)
			} else {
				if c.Time {
					batch = append(batch, stamp...)
					batch = append(batch, ' ')
				}
				batch = append(batch, c.Prefix...)
				batch = append(batch, part...)
				batch = append(batch, '\n')
			}
			if c.File != nil {
				fileBatch = append(fileBatch, part...)
				fileBatch = append(fileBatch, '\n')
			}
			if c.OnLine != nil {
				c.OnLine(part)
			}
			if c.Tail != nil {
				c.Tail.Append(now, c.Stream, part)
			}
			if body = body[len(part):]; len(body) == 0 {
				return
			}
		}
	}
	for {
		n, err := r.Read(buf)
		c.Activity.touch()
		if timed && (n > 0 || len(pend) > 0) {
			now = time.Now()
			if c.JSON != nil {
				stamp = now.AppendFormat(stamp[:0], time.RFC3339Nano)
			} else if c.Time {
				stamp = now.AppendFormat(stamp[:0], TimeFormat)
			}
		}
		data := buf[:n]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			if len(pend) > 0 {
				pend = append(pend, data[:i]...)
				emit(pend)
				pend = pend[:0]
			} else {
				emit(data[:i])
			}
			data = data[i+1:]
		}
		pend = append(pend, data...)
		if len(pend) >= MaxLine { // a line longer than MaxLine goes out in pieces
			whole := len(pend) / MaxLine * MaxLine
			emit(pend[:whole])
			pend = append(pend[:0], pend[whole:]...)
		}
		if err != nil && len(pend) > 0 {
			emit(pend)
		}
		c.flush(batch, fileBatch)
		batch, fileBatch = shrink(batch), shrink(fileBatch)
		if err != nil {
			return
		}
		if n == len(buf) && len(buf) < MaxLine {
			buf = make([]byte, 2*len(buf)) // a flood: read more at a time
		}
	}
}

// TimeFormat is the time before a line on pilotfish's stdout (`timestamps = true`): RFC 3339
// with milliseconds, as pilotfish's own text log lines. JSON lines carry RFC 3339 with
// nanoseconds, as its own JSON log lines.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// shrink empties a batch, and lets go of its memory when a flood made it large.
func shrink(b []byte) []byte {
	if cap(b) > 4*MaxLine {
		return nil
	}
	return b[:0]
}

func (c *Copier) flush(batch, fileBatch []byte) {
	if len(batch) == 0 {
		return
	}
	if c.Sink != nil {
		c.write(c.Sink, batch)
	}
	if c.File != nil {
		c.write(c.File, fileBatch)
	}
}

// copyRaw passes chunks through as they come; lines are still split out for the file copy,
// OnLine and the tail.
func (c *Copier) copyRaw(r io.Reader) {
	buf := make([]byte, 32<<10)
	var partial []byte
	lines := c.OnLine != nil || c.Tail != nil
	var now time.Time
	line := func(p []byte) {
		if c.OnLine != nil {
			c.OnLine(p)
		}
		if c.Tail != nil {
			c.Tail.Append(now, c.Stream, p)
		}
	}
	for {
		n, err := r.Read(buf)
		c.Activity.touch()
		if n > 0 {
			chunk := buf[:n]
			if c.Sink != nil {
				c.write(c.Sink, chunk)
			}
			if c.File != nil {
				c.write(c.File, chunk)
			}
			if lines {
				now = time.Now()
				partial = append(partial, chunk...)
				for {
					i := bytes.IndexByte(partial, '\n')
					if i < 0 {
						break
					}
					line(partial[:i])
					partial = partial[i+1:]
				}
				if len(partial) > MaxLine {
					line(partial)
					partial = partial[:0]
				}
				partial = append([]byte(nil), partial...)
			}
		}
		if err != nil {
			if len(partial) > 0 && lines {
				line(partial)
			}
			return
		}
	}
}
