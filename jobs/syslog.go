package jobs

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/internal/syslogmsg"
)

// syslogKind is a syslog server on the bus: it receives messages on /dev/log (and UDP or
// TCP) and routes them to outputs by selector. It runs no process.
type syslogKind struct{}

// SyslogSpec is the syslog kind's part of a job's configuration.
type SyslogSpec struct {
	Listen  []string        `json:"listen"`
	Outputs []*SyslogOutput `json:"outputs"`
}

// SyslogOutput is one `output "NAME" {}` block.
type SyslogOutput struct {
	Name     string         `json:"name"`
	Selector string         `json:"selector,omitempty"`
	Program  string         `json:"program,omitempty"`
	Match    string         `json:"match,omitempty"`
	Stdout   bool           `json:"stdout,omitempty"`
	Stderr   bool           `json:"stderr,omitempty"`
	File     string         `json:"file,omitempty"`
	Forward  string         `json:"forward,omitempty"`
	Format   string         `json:"format"`
	Rotate   *config.Rotate `json:"rotate,omitempty"`
}

// Equal reports whether other is the same syslog spec.
func (s *SyslogSpec) Equal(other config.Spec) bool {
	o, ok := other.(*SyslogSpec)
	return ok && slices.Equal(s.Listen, o.Listen) && slices.EqualFunc(s.Outputs, o.Outputs, (*SyslogOutput).Equal)
}

// Equal reports whether two outputs are the same.
func (s *SyslogOutput) Equal(o *SyslogOutput) bool {
	if s == nil || o == nil {
		return s == o
	}
	a, b := *s, *o
	a.Rotate, b.Rotate = nil, nil
	return a == b && s.Rotate.Equal(o.Rotate)
}

// Syslog defaults and bounds.
const (
	DefaultSyslogListen = "unixgram:///dev/log"
	// SyslogQueue is how many messages an output may fall behind before new ones are
	// dropped (and counted): a slow output never blocks a client.
	SyslogQueue      = 8192
	maxSyslogMessage = 64 << 10
)

var syslogOutputSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "selector"}, {Name: "program"}, {Name: "match"}, {Name: "stdout"}, {Name: "stderr"},
	{Name: "file"}, {Name: "forward"}, {Name: "format"}, {Name: "rotate"},
}}

func (syslogKind) Schema() *hcl.BodySchema {
	return &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "listen"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "output", LabelNames: []string{"name"}}},
	}
}
func (syslogKind) ExecRule() config.ExecRule       { return config.ExecForbidden }
func (syslogKind) Emits(*config.Job) []events.Code { return nil }

func (syslogKind) Decode(d *config.Decoder, j *config.Job, c *hcl.BodyContent) {
	spec := &SyslogSpec{Listen: []string{DefaultSyslogListen}}
	if d.StringList(c.Attributes, "listen", &spec.Listen) {
		for _, l := range spec.Listen {
			if _, _, err := parseListen(l, "unixgram", "udp", "tcp"); err != nil {
				d.Errorf(c.Attributes["listen"].Expr.Range(), "%s", err)
			}
		}
	}
	names := map[string]bool{}
	for _, b := range c.Blocks {
		o := decodeSyslogOutput(d, b)
		if names[o.Name] {
			d.Errorf(b.LabelRanges[0], "output %q is defined twice", o.Name)
		}
		names[o.Name] = true
		spec.Outputs = append(spec.Outputs, o)
	}
	if len(spec.Outputs) == 0 {
		d.Errorf(j.Range, "syslog job %q needs at least one output block, such as output \"console\" { stdout = true }", j.Name)
	}
	if j.Health != nil {
		d.Errorf(j.Range, "a syslog job runs no process to check; remove its health block")
	}
	j.Spec = spec
}

func decodeSyslogOutput(d *config.Decoder, b *hcl.Block) *SyslogOutput {
	o := &SyslogOutput{Name: b.Labels[0], Format: syslogmsg.FormatText}
	content, diags := b.Body.Content(syslogOutputSchema)
	d.Diags = append(d.Diags, diags...)
	a := content.Attributes
	if d.String(a, "selector", &o.Selector) {
		if _, err := syslogmsg.ParseSelector(o.Selector); err != nil {
			d.Errorf(a["selector"].Expr.Range(), "bad selector: %s", err)
		}
	}
	d.String(a, "program", &o.Program)
	d.Regexp(a, "match", &o.Match)
	d.Bool(a, "stdout", &o.Stdout)
	d.Bool(a, "stderr", &o.Stderr)
	d.String(a, "file", &o.File)
	if d.String(a, "forward", &o.Forward) {
		if _, _, err := parseListen(o.Forward, "udp", "tcp"); err != nil {
			d.Errorf(a["forward"].Expr.Range(), "%s", err)
		}
	}
	if d.String(a, "format", &o.Format) {
		d.OneOf(a, "format", o.Format, syslogmsg.FormatText, syslogmsg.FormatRFC3164, syslogmsg.FormatRFC5424, syslogmsg.FormatJSON)
	}
	n := 0
	for _, set := range []bool{o.Stdout, o.Stderr, o.File != "", o.Forward != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		d.Errorf(b.DefRange, "output %q needs exactly one destination: stdout = true, stderr = true, file or forward", o.Name)
	}
	if o.Rotate = d.Rotate(a, "rotate"); o.Rotate != nil {
		if o.File == "" {
			d.Errorf(a["rotate"].NameRange, "\"rotate\" applies to a file output")
		}
	}
	return o
}

func (syslogKind) NewDriver(job *config.Job, rt *Runtime) (Driver, error) {
	spec := job.Spec.(*SyslogSpec)
	host, _ := os.Hostname()
	d := &syslogDriver{job: job, rt: rt, spec: spec, host: host}
	for _, oc := range spec.Outputs {
		o, err := newSyslogOutput(d, oc)
		if err != nil {
			d.closeOutputs()
			return nil, err
		}
		d.outputs = append(d.outputs, o)
	}
	return d, nil
}

// syslogDriver receives, parses and routes. Each listener has its own reader goroutine
// (and parser); each output has a bounded queue and a writer goroutine.
type syslogDriver struct {
	job     *config.Job
	rt      *Runtime
	spec    *SyslogSpec
	host    string
	outputs []*syslogOutput

	mu        sync.Mutex
	listeners []syslogListener
	stop      chan struct{}
	readers   sync.WaitGroup

	parseErrors atomic.Uint64
	dropped     atomic.Uint64
	abandoned   atomic.Bool // outputs write nothing more that would wait (Abandon)
}

func (d *syslogDriver) Concurrent() bool { return false }
func (d *syslogDriver) Start(RunRequest) (Run, error) {
	return nil, fmt.Errorf("a syslog job runs no process")
}

// Prepare opens the listeners, so that clients can log from the moment startup is out.
func (d *syslogDriver) Prepare() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.openLocked()
}

func (d *syslogDriver) openLocked() error {
	if d.listeners != nil {
		return nil
	}
	for _, l := range d.spec.Listen {
		network, addr, _ := parseListen(l, "unixgram", "udp", "tcp")
		ln, err := openSyslogListener(network, addr)
		if err != nil {
			d.closeListenersLocked()
			return fmt.Errorf("cannot listen on %s: %w", l, err)
		}
		d.listeners = append(d.listeners, ln)
		d.rt.Log.Info("listening", "job", d.job.Name, "listen", l)
	}
	return nil
}

func (d *syslogDriver) closeListenersLocked() {
	for _, l := range d.listeners {
		l.Close()
	}
	d.listeners = nil
}

// Arm starts receiving. The job shows `listening`; there are no runs.
func (d *syslogDriver) Arm() (<-chan Activation, State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.openLocked(); err != nil {
		return nil, "", err
	}
	if d.stop == nil {
		d.stop = make(chan struct{})
		for _, o := range d.outputs {
			o.start()
		}
		for _, l := range d.listeners {
			d.readers.Add(1)
			go func(l syslogListener, stop <-chan struct{}) { // not d.stop: Disarm clears it
				defer d.readers.Done()
				l.Serve(d.handle, stop)
			}(l, d.stop)
		}
	}
	return make(chan Activation), Listening, nil
}

// Disarm stops receiving, then lets every output write what it queued, all of them together
// within the job's stop_timeout (at once after Abandon); what is left then is dropped and
// counted (docs/syslog.md, "Queues and drops").
func (d *syslogDriver) Disarm() {
	d.mu.Lock()
	stop := d.stop
	d.stop = nil
	if stop != nil {
		close(stop)
	}
	d.closeListenersLocked()
	d.mu.Unlock()
	if stop == nil {
		return
	}
	d.readers.Wait()
	deadline := time.Now().Add(d.job.StopTimeout)
	var wg sync.WaitGroup
	for _, o := range d.outputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.drain(deadline)
		}()
	}
	wg.Wait()
}

// Abandon makes every output give up at once on what it still has to write: the shutdown
// budget is spent, or the job is being closed. Safe from any goroutine.
func (d *syslogDriver) Abandon() {
	d.abandoned.Store(true)
	for _, o := range d.outputs {
		o.abandon()
	}
}

func (d *syslogDriver) Close() {
	d.Disarm()
	d.closeOutputs()
}

func (d *syslogDriver) closeOutputs() {
	for _, o := range d.outputs {
		o.close()
	}
}

// handle parses one message and queues it for every output that selects it. It never
// blocks: a full queue drops the message and counts it.
func (d *syslogDriver) handle(p *syslogmsg.Parser, raw []byte) {
	m, err := p.Parse(raw)
	if err != nil {
		if d.parseErrors.Add(1) == 1 {
			d.rt.Log.Warn("malformed syslog message dropped (further ones are only counted)", "job", d.job.Name, "err", err)
		}
		return
	}
	var msg *syslogmsg.Message
	for _, o := range d.outputs {
		if !o.selects(&m) {
			continue
		}
		if msg == nil {
			msg = &m
		}
		select {
		case o.queue <- msg:
		default:
			if d.dropped.Add(1)%1000 == 1 {
				d.rt.Log.Warn("syslog output falls behind; dropping messages", "job", d.job.Name, "output", o.cfg.Name, "queue", SyslogQueue)
			}
		}
	}
}

// Counters reports pilotfish_syslog_messages_total{output}, pilotfish_syslog_dropped_total
// and pilotfish_syslog_parse_errors_total.
func (d *syslogDriver) Counters() []Counter {
	out := make([]Counter, 0, len(d.outputs)+2)
	for _, o := range d.outputs {
		out = append(out, Counter{Metric: "pilotfish_syslog_messages_total", Label: "output", Value: o.cfg.Name, N: float64(o.written.Load())})
	}
	return append(out,
		Counter{Metric: "pilotfish_syslog_dropped_total", N: float64(d.dropped.Load())},
		Counter{Metric: "pilotfish_syslog_parse_errors_total", N: float64(d.parseErrors.Load())})
}

// syslogOutput is one destination with its queue. Its writer goroutine runs from start to
// drain; a give-up (drain's deadline, Abandon) cancels the writer's context, which ends its
// write toward a peer and every wait at once.
type syslogOutput struct {
	d       *syslogDriver
	cfg     *SyslogOutput
	sel     *syslogmsg.Selector
	match   *regexp.Regexp
	prefix  []byte
	w       io.Writer // a sink or a file; nil for a forward output
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
			sink = d.rt.Stderr
		}
		o.w = sink
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
	return syslogmsg.AppendFormat(buf, m, o.cfg.Format, o.d.host)
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
