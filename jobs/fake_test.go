package jobs

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/output"
)

// fakeDriver stands in for a process in the timing tests, which run in a synctest bubble
// where real processes cannot take part. Each run ends when the test says so, or when it
// gets a signal in exitOn. With arm set it is an armed kind (cron, inetd): the test hands
// it activations.
type fakeDriver struct {
	mu       sync.Mutex
	runs     []*fakeRun
	exitOn   map[syscall.Signal]bool // signals that end a run (SIGKILL always does)
	auto     *Result                 // when set, every run ends at once with this result
	arm      State                   // Scheduled or Listening: an armed kind
	prepErr  error                   // Prepare fails with it
	armErr   error                   // Arm fails with it
	startErr error                   // Start fails with it
	acts     chan Activation         // while armed
	armings  int
}

type fakeRun struct {
	pid     int
	exit    func(Result)
	signals []syscall.Signal
	once    sync.Once
	ended   bool
	d       *fakeDriver
	env     []string
}

func (d *fakeDriver) Arm() (<-chan Activation, State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.armErr != nil {
		return nil, "", d.armErr
	}
	if d.arm == "" {
		return nil, "", nil
	}
	d.armings++
	d.acts = make(chan Activation)
	return d.acts, d.arm, nil
}

func (d *fakeDriver) Disarm() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acts = nil
}

// activate hands the job one activation, as a due time or a connection would.
func (d *fakeDriver) activate(t *testing.T) {
	d.mu.Lock()
	acts := d.acts
	d.mu.Unlock()
	if acts == nil {
		t.Fatal("the kind is not armed")
	}
	acts <- Activation{}
}

func (d *fakeDriver) armed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.acts != nil
}

func (d *fakeDriver) Prepare() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.prepErr
}

func (d *fakeDriver) Concurrent() bool { return false }
func (d *fakeDriver) Close()           {}
func (d *fakeDriver) Start(req RunRequest) (Run, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.startErr != nil {
		return nil, d.startErr
	}
	r := &fakeRun{pid: 1000 + len(d.runs), exit: req.Exit, d: d, env: req.Env}
	d.runs = append(d.runs, r)
	if d.auto != nil {
		r.ended = true
		res := *d.auto
		r.once.Do(func() { go r.exit(res) })
	}
	return r, nil
}

func (d *fakeDriver) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.runs)
}

func (d *fakeDriver) last() *fakeRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runs[len(d.runs)-1]
}

func (r *fakeRun) Pid() int { return r.pid }

// end ends the run with res. The exit goes to the job from a goroutine of its own, as a
// kind's would: end may be called on the job's loop (from Signal).
func (r *fakeRun) end(res Result) {
	r.once.Do(func() {
		r.d.mu.Lock()
		r.ended = true
		r.d.mu.Unlock()
		go r.exit(res)
	})
}

// Signal records signals sent while the run is alive; afterwards the process is gone.
func (r *fakeRun) Signal(sig syscall.Signal) error {
	r.d.mu.Lock()
	if r.ended {
		r.d.mu.Unlock()
		return syscall.ESRCH
	}
	r.signals = append(r.signals, sig)
	die := sig == syscall.SIGKILL || r.d.exitOn[sig]
	r.d.mu.Unlock()
	if die {
		r.end(Result{Code: 128 + int(sig), Signal: sig})
	}
	return nil
}

func (r *fakeRun) gotSignals() []syscall.Signal {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	return append([]syscall.Signal(nil), r.signals...)
}

// edge is one move of a job from a state to another.
type edge struct{ from, to State }

// moves is a slog handler that records every state move the jobs log, and fails the test
// at an illegal one: setState logs those at error.
type moves struct {
	t     *testing.T
	mu    sync.Mutex
	byJob map[string][]edge
	attrs []slog.Attr
}

func (m *moves) Enabled(context.Context, slog.Level) bool { return true }
func (m *moves) WithGroup(string) slog.Handler            { return m }
func (m *moves) WithAttrs(as []slog.Attr) slog.Handler {
	return &movesView{m: m, attrs: as}
}
func (m *moves) Handle(ctx context.Context, r slog.Record) error {
	return (&movesView{m: m}).Handle(ctx, r)
}

// movesView is the handler with the job's attributes (log.With("job", …)).
type movesView struct {
	m     *moves
	attrs []slog.Attr
}

func (v *movesView) Enabled(context.Context, slog.Level) bool { return true }
func (v *movesView) WithGroup(string) slog.Handler            { return v }
func (v *movesView) WithAttrs(as []slog.Attr) slog.Handler {
	return &movesView{m: v.m, attrs: append(append([]slog.Attr(nil), v.attrs...), as...)}
}

func (v *movesView) Handle(_ context.Context, r slog.Record) error {
	vals := map[string]string{}
	for _, a := range v.attrs {
		vals[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		vals[a.Key] = a.Value.String()
		return true
	})
	if strings.HasPrefix(r.Message, errIllegal.Error()) {
		v.m.t.Errorf("job %s: %s from %s to %s", vals["job"], r.Message, vals["from"], vals["to"])
	}
	if r.Message == "state" {
		v.m.mu.Lock()
		v.m.byJob[vals["job"]] = append(v.m.byJob[vals["job"]], edge{State(vals["from"]), State(vals["to"])})
		v.m.mu.Unlock()
	}
	return nil
}

// of returns the moves of one job so far.
func (m *moves) of(job string) []edge {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]edge(nil), m.byJob[job]...)
}

// world is a set of jobs on one bus, built from HCL.
type world struct {
	t       *testing.T
	bus     *events.Bus
	rt      *Runtime
	cfg     *config.Config
	jobs    map[string]*Job
	drivers map[string]*fakeDriver
	all     *events.Subscription
	moves   *moves
}

func newWorld(t *testing.T, src string) *world {
	t.Helper()
	w := buildWorld(t, src)
	w.start()
	return w
}

// buildWorld builds the jobs without starting them.
func buildWorld(t *testing.T, src string) *world {
	t.Helper()
	cfg, diags := config.Parse("test.hcl", []byte(src), config.Options{Kinds: ConfigKinds()})
	if cfg == nil {
		t.Fatal(strings.Join(config.FormatDiagnostics(diags), "\n"))
	}
	w := &world{t: t, bus: events.NewBus(nil), cfg: cfg, jobs: map[string]*Job{}, drivers: map[string]*fakeDriver{},
		moves: &moves{t: t, byJob: map[string][]edge{}}}
	w.rt = &Runtime{Bus: w.bus, Stdout: output.NewSink(io.Discard), Stderr: output.NewSink(io.Discard),
		Log: slog.New(w.moves), Environ: func() []string { return []string{"BASE=1"} }}
	w.all = w.bus.Subscribe(events.SubscribeOptions{Name: "test"})
	for _, jc := range cfg.Jobs {
		d := &fakeDriver{exitOn: map[syscall.Signal]bool{syscall.SIGTERM: true}}
		w.drivers[jc.Name] = d
		w.jobs[jc.Name] = newJob(jc, w.rt, d)
	}
	for _, jc := range cfg.Jobs {
		var hooks []*Job
		for _, other := range cfg.Jobs {
			for _, tr := range other.When.Triggers() {
				if tr.Source == jc.Name && tr.Code == events.Stopping {
					hooks = append(hooks, w.jobs[other.Name])
				}
			}
		}
		w.jobs[jc.Name].SetHooks(hooks)
	}
	t.Cleanup(func() {
		for _, j := range w.jobs {
			j.Close()
		}
		w.all.Close()
	})
	return w
}

// start starts every job, in configuration order.
func (w *world) start() {
	for _, jc := range w.cfg.Jobs {
		w.jobs[jc.Name].Start()
	}
}

func (w *world) startup() { w.bus.Publish(events.Startup, events.Global, nil) }

// events returns the events seen so far as "source.code" strings, without startup.
func (w *world) events() []string {
	var out []string
	for {
		ev, ok := w.all.Next()
		if !ok {
			return out
		}
		if ev.Code != events.Startup {
			out = append(out, ev.String())
		}
	}
}
