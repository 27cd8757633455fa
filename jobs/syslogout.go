package jobs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilotfish/pilotfish/internal/logtail"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/internal/syslogmsg"
)

// syslogOutput is one destination with its queue. Its writer goroutine runs from start to
// drain; a give-up (drain's deadline, Abandon) cancels the writer's context, which ends its
// write toward a peer and every wait at once.
type syslogOutput struct {
	d       *syslogDriver
	cfg     *SyslogOutput
	sel     *syslogmsg.Selector
	match   *regexp.Regexp
	prefix  []byte
	w       io.Writer     // a sink or a file; nil for a forward output
	sink    bool          // w is pilotfish's stdout or stderr
	tail    *logtail.Ring // the job's tail, which keeps what goes to stdout and stderr
	stream  logtail.Stream
	file    *output.RotatingFile
	fwd     *forwarder
	queue   chan *syslogmsg.Message
	written atomic.Uint64
	// pending is the size of the batch being written; whoever takes it (the writer once
	// it is written, a give-up otherwise) counts it, so that no message counts twice.
	pending atomic.Uint64

	mu      sync.Mutex
	running bool
	idle    chan struct{} // closed when the writer goroutine ends
	ctx     context.Context
	cancel  context.CancelFunc
}

// giveUpWait is how long a give-up waits for the writer to leave its write: a forward or
// a file returns at once; a write to a stdout nobody reads only when the daemon abandons
// that sink at the shutdown deadline.
const giveUpWait = 100 * time.Millisecond

func newSyslogOutput(d *syslogDriver, c *SyslogOutput) (*syslogOutput, error) {
	o := &syslogOutput{d: d, cfg: c, queue: make(chan *syslogmsg.Message, SyslogQueue)}
	o.sel, _ = syslogmsg.ParseSelector(c.Selector)
	if c.Match != "" {
		o.match = regexp.MustCompile(c.Match)
	}
	lg := d.job.Logging
	switch {
	case c.Stdout || c.Stderr:
		sink := d.rt.Stdout
		if c.Stderr {
			sink, o.stream = d.rt.Stderr, logtail.Stderr
		}
		o.w, o.sink = sink, true
		if lg.Prefix {
			o.prefix = output.Prefix(d.job.Name, lg.Color, colorIndex(d.job.Name), sink.IsTerminal())
		}
	case c.File != "":
		o.file = &output.RotatingFile{Path: c.File, OnError: func(err error) {
			d.rt.Log.Warn("cannot write syslog file", "job", d.job.Name, "output", c.Name, "err", err)
		}}
		if r := c.Rotate; r != nil {
			o.file.Size, o.file.Keep, o.file.Compress = r.Size, r.Keep, r.Compress
		}
		if err := o.file.Open(); err != nil {
			return nil, fmt.Errorf("output %q: %w", c.Name, err)
		}
		o.w = o.file
	default:
		network, addr, _ := parseListen(c.Forward, "udp", "tcp")
		o.fwd = newForwarder(network, addr, d.rt.Log.With("job", d.job.Name, "output", c.Name))
	}
	return o, nil
}

func (o *syslogOutput) selects(m *syslogmsg.Message) bool {
	return o.sel.Match(m.Facility, m.Severity) &&
		(o.cfg.Program == "" || m.Program == o.cfg.Program) &&
		(o.match == nil || o.match.MatchString(m.Text))
}

func (o *syslogOutput) start() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running {
		return
	}
	o.running, o.idle = true, make(chan struct{})
	o.ctx, o.cancel = context.WithCancel(context.Background())
	if o.sink && o.tail == nil { // set once: a writer of the last run may still read it
		o.tail = tailOf(o.d.job, o.d.rt)
	}
	go o.write(o.ctx, o.idle)
}

// write takes queued messages in batches and writes each batch at once, until the drain
// marker (nil) or until ctx ends.
func (o *syslogOutput) write(ctx context.Context, idle chan struct{}) {
	defer close(idle)
	var buf []byte
	for {
		var m *syslogmsg.Message
		select {
		case m = <-o.queue:
		case <-ctx.Done():
			return
		}
		if m == nil {
			return // drain marker
		}
		buf = o.appendOne(buf[:0], m)
		n, last := 1, false
	batch:
		for n < 512 {
			select {
			case m := <-o.queue:
				if m == nil {
					last = true
					break batch
				}
				buf = o.appendOne(buf, m)
				n++
			default:
				break batch
			}
		}
		if !o.flush(ctx, buf, n) || last {
			return
		}
	}
}

func (o *syslogOutput) appendOne(buf []byte, m *syslogmsg.Message) []byte {
	if o.fwd != nil {
		return o.fwd.append(buf, m, o.d.host)
	}
	buf = append(buf, o.prefix...)
	start := len(buf)
	buf = syslogmsg.AppendFormat(buf, m, o.cfg.Format, o.d.host)
	if o.tail != nil {
		o.tail.Append(time.Now(), o.stream, bytes.TrimSuffix(buf[start:], []byte{'\n'}))
	}
	return buf
}

// flush writes one batch of n messages; false means the output gave up (ctx ended), and
// the batch is left for the give-up to count.
func (o *syslogOutput) flush(ctx context.Context, buf []byte, n int) bool {
	o.pending.Store(uint64(n))
	var err error
	if o.fwd != nil {
		err = o.fwd.Send(ctx, buf)
	} else {
		_, err = o.w.Write(buf)
	}
	if err != nil && ctx.Err() != nil {
		return false
	}
	if n := o.pending.Swap(0); err == nil {
		o.written.Add(n)
	}
	return true
}

// drain lets the writer write what is queued, at most until deadline, and stops it until
// the next start. At the deadline, or on Abandon meanwhile, the output gives up: what it
// still holds is dropped, counted and logged.
func (o *syslogOutput) drain(deadline time.Time) {
	o.mu.Lock()
	running, idle, ctx, cancel := o.running, o.idle, o.ctx, o.cancel
	o.running = false
	o.mu.Unlock()
	if !running {
		return
	}
	if o.d.abandoned.Load() {
		deadline = time.Now()
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case o.queue <- nil:
		select {
		case <-idle:
		case <-ctx.Done():
		case <-t.C:
		}
	case <-idle:
	case <-ctx.Done():
	case <-t.C:
	}
	written := false
	select {
	case <-idle:
		written = ctx.Err() == nil
	default:
	}
	cancel()
	if written {
		return
	}
	select {
	case <-idle:
	case <-time.After(giveUpWait):
	}
	o.dropQueued()
}

// dropQueued counts what a given-up output still held: the batch it was writing and its
// queue.
func (o *syslogOutput) dropQueued() {
	lost := o.pending.Swap(0)
	for more := true; more; {
		select {
		case m := <-o.queue:
			if m != nil {
				lost++
			}
		default:
			more = false
		}
	}
	if lost == 0 {
		return
	}
	o.d.dropped.Add(lost)
	to := "stdout"
	switch {
	case o.fwd != nil:
		to = o.fwd.target()
	case o.file != nil:
		to = o.cfg.File
	case o.cfg.Stderr:
		to = "stderr"
	}
	o.d.rt.Log.Warn("syslog output gave up; queued messages dropped", "job", o.d.job.Name, "output", o.cfg.Name,
		"to", to, "dropped", lost)
}

// abandon ends the writer's current write and waits at once.
func (o *syslogOutput) abandon() {
	o.mu.Lock()
	cancel := o.cancel
	o.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (o *syslogOutput) close() {
	o.drain(time.Now().Add(o.d.job.StopTimeout))
	if o.file != nil {
		o.file.Close()
	}
	if o.fwd != nil {
		o.fwd.Close()
	}
}
