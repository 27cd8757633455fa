package jobs

import (
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
// gets a signal in dieOn.
type fakeDriver struct {
	mu     sync.Mutex
	runs   []*fakeRun
	exitOn map[syscall.Signal]bool // signals that end a run (SIGKILL always does)
	auto   *Result                 // when set, every run ends at once with this result
}

type fakeRun struct {
	pid     int
	done    chan Result
	signals []syscall.Signal
	once    sync.Once
	ended   bool
	d       *fakeDriver
	env     []string
}

func (d *fakeDriver) Arm() (<-chan Activation, State, error) { return nil, "", nil }
func (d *fakeDriver) Disarm()                                {}
func (d *fakeDriver) Concurrent() bool                       { return false }
func (d *fakeDriver) Close()                                 {}
func (d *fakeDriver) Start(req RunRequest) (Run, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := &fakeRun{pid: 1000 + len(d.runs), done: make(chan Result, 1), d: d, env: req.Env}
	d.runs = append(d.runs, r)
	if d.auto != nil {
		r.ended = true
		r.once.Do(func() { r.done <- *d.auto })
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

func (r *fakeRun) Pid() int            { return r.pid }
func (r *fakeRun) Done() <-chan Result { return r.done }
func (r *fakeRun) end(res Result) {
	r.once.Do(func() {
		r.d.mu.Lock()
		r.ended = true
		r.d.mu.Unlock()
		r.done <- res
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

// world is a set of jobs on one bus, built from HCL.
type world struct {
	t       *testing.T
	bus     *events.Bus
	rt      *Runtime
	cfg     *config.Config
	jobs    map[string]*Job
	drivers map[string]*fakeDriver
	all     *events.Subscription
}

func newWorld(t *testing.T, src string) *world {
	t.Helper()
	cfg, diags := config.Parse("test.hcl", []byte(src), config.Options{Kinds: ConfigKinds()})
	if cfg == nil {
		t.Fatal(strings.Join(config.FormatDiagnostics(diags), "\n"))
	}
	w := &world{t: t, bus: events.NewBus(nil), cfg: cfg, jobs: map[string]*Job{}, drivers: map[string]*fakeDriver{}}
	w.rt = &Runtime{Bus: w.bus, Stdout: output.NewSink(io.Discard), Stderr: output.NewSink(io.Discard),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Environ: func() []string { return []string{"BASE=1"} }}
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
	for _, j := range w.jobs {
		j.Start()
	}
	t.Cleanup(func() {
		for _, j := range w.jobs {
			j.Close()
		}
		w.all.Close()
	})
	return w
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
