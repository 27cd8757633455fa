package jobs

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
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
