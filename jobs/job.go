package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/errdefs"
)

// Errors returned by the job's API, in the classes of internal/errdefs (the control plane
// maps them to status codes).
var (
	ErrConflict = errdefs.ErrConflict                                // the request does not fit the job's state
	ErrGone     = errdefs.Errorf(errdefs.ErrNotFound, "job is gone") // the job was removed
)

// apiEvent stands for the trigger of a job started through the control API.
var apiEvent = events.Event{Code: "start", Source: "api"}

// Job is one configured job at run time: a typed state machine.
//
// Concurrency: one goroutine, the job's loop, owns every field below "owned by the loop".
// Every input reaches it as a message on a channel it selects on: a bus event, the exit
// of a run, a timer, a health result, a kind's report or activation, and the API calls,
// which are commands run on the loop (do). Other goroutines read Status, a snapshot the
// loop publishes under mu after each step, so a busy job never blocks a reader.
//
// State: state is one of the states of docs/jobs.md and changes only through setState,
// which refuses any move missing from the transitions table. Besides its state the job is
// in one mode (normal, held, paused, shutting down; see mode) that says what it does with
// triggers and restarts. Each input is a method that switches on state and mode and either
// moves along an edge of the table or refuses with "cannot X while Y" (ErrConflict). Data
// that belongs to one state lives and dies with it: stop exists exactly while Stopping,
// the backoff timer only in Backoff, the kind's arming (armed) only in the armable states.
type Job struct {
	cfg       *config.Job
	hasHealth bool // a health block, or a kind that reports readiness
	runsProcs bool // the kind runs processes (see RunsProcesses)
	drv       Driver
	rt        *Runtime
	log       *slog.Logger

	// The merged base environment of the runs (env in run.go), for one generation of
	// pilotfish's environment and one configuration; only the loop uses them.
	envBase []string
	envIdx  map[string]int
	envGen  uint64
	envCfg  *config.Job

	sub      *events.Subscription
	cmds     chan command
	exits    chan runExit
	healthC  chan probeResult
	reports  chan runReport
	quit     chan struct{}
	loopDone chan struct{}
	closed   sync.Once

	cpuSeen atomic.Int64 // the highest CPU time Usages reported, in nanoseconds

	mu      sync.Mutex // guards status, changed and hooks
	status  Status
	changed chan struct{}
	version atomic.Uint64 // bumped at each change of status, read without mu
	hooks   []*Job

	// Owned by the loop.
	state        State
	mode         mode
	since        time.Time
	trig         *trigger
	stop         *stopOp           // the stop in progress, exactly while Stopping
	armed        <-chan Activation // the kind's activations while it is armed, else nil
	armedState   State             // what an armed job shows between runs
	runs         map[uint64]*activeRun
	nextRun      uint64
	lastEvent    events.Event // what the next run, or a restart, gets as its trigger
	seen         uint64
	restartsUsed int // restarts of the budget spent since the trigger or the API started it
	restarts     int // every restart after backoff, never reset
	delay        time.Duration
	health       Health
	succ, fails  int
	exitCode     *int
	cpuDone      time.Duration // CPU time of the runs that ended
	statusLine   string        // shown in /v1/status: a kind's STATUS= or why the job cannot run
	prepared     bool          // the kind has opened what must exist before a run (Prepare)
	shutdown     bool          // unhealthy with health.on_failure = "shutdown": pilotfish must end
	startErr     string        // why the last start failed, shown as statusLine until a run starts
	backoffT     timer         // only in Backoff
	timeoutT     timer
	intervalT    timer
	debounceT    timer
}

type command struct {
	fn    func(j *Job) error
	reply chan error
}

// New builds a job. It does not run until Start.
func New(cfg *config.Job, rt *Runtime) (*Job, error) {
	kind, ok := Kinds()[cfg.Kind]
	if !ok {
		return nil, fmt.Errorf("job %q: unknown kind %q", cfg.Name, cfg.Kind)
	}
	drv, err := kind.NewDriver(cfg, rt)
	if err != nil {
		return nil, fmt.Errorf("job %q: %w", cfg.Name, err)
	}
	return newJob(cfg, rt, drv), nil
}

func newJob(cfg *config.Job, rt *Runtime, drv Driver) *Job {
	j := &Job{
		cfg:      cfg,
		drv:      drv,
		rt:       rt,
		log:      rt.Log.With("job", cfg.Name),
		cmds:     make(chan command),
		exits:    make(chan runExit),
		healthC:  make(chan probeResult),
		reports:  make(chan runReport),
		quit:     make(chan struct{}),
		loopDone: make(chan struct{}),
		changed:  make(chan struct{}),
		state:    Waiting,
		since:    time.Now(),
		trig:     newTrigger(cfg.When),
		runs:     map[uint64]*activeRun{},
		health:   HealthUnknown,
	}
	j.hasHealth = slices.Contains(config.Emits(ConfigKinds(), cfg), events.Healthy)
	j.runsProcs = runsProcesses(cfg)
	j.status = j.snapshot()
	return j
}

// Name is the job's name.
func (j *Job) Name() string { return j.cfg.Name }

// Config is the job's configuration.
func (j *Job) Config() *config.Job { return j.cfg }

// SetHooks tells the job which jobs are its stopping hooks: its stop waits for them.
func (j *Job) SetHooks(hooks []*Job) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.hooks = hooks
}

func (j *Job) hookList() []*Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.hooks
}

// Prime tells a job created by a reload which of its once/after triggers already hold
// (see Holds): the events happened before it existed. Call it before Start; a job that
// runs already refuses.
func (j *Job) Prime(levels []config.Trigger) error {
	if j.sub != nil {
		return errdefs.Errorf(ErrConflict, "cannot prime job %q once it has started", j.cfg.Name)
	}
	for _, t := range levels {
		j.trig.primed[triggerKey{t.Source, t.Code}] = true
	}
	return nil
}

// Start subscribes the job to the bus, lets its driver open what must exist before
// startup is published (listening sockets), and starts its loop. The job then waits for
// startup (or its trigger). A driver that cannot prepare leaves the job failed and held.
// A job with autostart = false opens nothing: it is stopped, as if an operator had
// stopped it, until the API starts it (docs/jobs.md, "Starting and stopping by hand").
func (j *Job) Start() {
	j.sub = j.rt.Bus.Subscribe(events.SubscribeOptions{Name: "job:" + j.cfg.Name, Filter: j.trig.wants})
	switch {
	case !j.cfg.Autostart:
		j.log.Info("not started: autostart = false")
		j.mode, j.statusLine = paused, j.autostartNote()
		_ = j.setState(Stopped)
		j.publishStatus()
	default:
		if err := j.prepare(); err != nil {
			j.log.Error("cannot prepare job; it will not run", "err", err)
			j.mode, j.statusLine = held, err.Error()
			_ = j.setState(Failed)
			j.publishStatus()
		}
	}
	go j.loop()
}

// autostartNote is the status line of a job that autostart = false keeps stopped.
func (j *Job) autostartNote() string {
	return "autostart = false: pilotfish start " + j.cfg.Name + " runs it"
}

// prepare lets the driver open what must exist before a run (a listening socket, the
// notify socket), once: at Start, or at the first start of a job with autostart = false.
func (j *Job) prepare() error {
	if j.prepared {
		return nil
	}
	if p, ok := j.drv.(interface{ Prepare() error }); ok {
		if err := p.Prepare(); err != nil {
			return err
		}
	}
	j.prepared = true
	return nil
}

// Counter is one kind-specific counter of a job, for telemetry: a metric name, an optional
// extra label (name and value) and the count.
type Counter struct {
	Metric       string
	Label, Value string
	N            float64
}

// NextRun is when a scheduled job (cron) runs next; zero when it has no schedule armed.
func (j *Job) NextRun() time.Time {
	if s, ok := j.drv.(interface{ NextRun() time.Time }); ok {
		return s.NextRun()
	}
	return time.Time{}
}

// Counters returns the job's kind-specific counters (cron runs, inetd connections, syslog
// messages…); nil for kinds that have none.
func (j *Job) Counters() []Counter {
	if c, ok := j.drv.(interface{ Counters() []Counter }); ok {
		return c.Counters()
	}
	return nil
}

// do runs fn on the job's loop, after the loop has handled every bus event published
// before the call.
func (j *Job) do(ctx context.Context, fn func(j *Job) error) error {
	c := command{fn: fn, reply: make(chan error, 1)}
	select {
	case j.cmds <- c:
	case <-j.loopDone:
		return ErrGone
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.reply:
		return err
	case <-j.loopDone:
		return ErrGone
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StartNow starts the job at once, whatever its trigger (pilotfish start JOB). A job that
// runs already is left alone, like systemctl start; a stopping job refuses.
func (j *Job) StartNow(ctx context.Context) error {
	return j.do(ctx, (*Job).start)
}

// Stop stops the job and waits until it has stopped or ctx ends. Stopping a job that is
// not running only marks it stopped. The job is held: its triggers are ignored until the
// API starts it again.
func (j *Job) Stop(ctx context.Context) error {
	return j.stopAndWait(ctx, held)
}

// Pause is Stop on an operator's request (pilotfish stop JOB): the job stays stopped until
// started again, and pilotfish stays up for it even when nothing else runs.
func (j *Job) Pause(ctx context.Context) error {
	return j.stopAndWait(ctx, paused)
}

func (j *Job) stopAndWait(ctx context.Context, m mode) error {
	var done chan struct{}
	err := j.do(ctx, func(j *Job) error {
		done = j.stopJob(m)
		return nil
	})
	if err != nil {
		return err
	}
	return wait(ctx, done)
}

// Restart stops the job if it runs and starts it again.
func (j *Job) Restart(ctx context.Context) error {
	var done chan struct{}
	err := j.do(ctx, func(j *Job) (err error) {
		done, err = j.restart()
		return err
	})
	if err != nil {
		return err
	}
	return wait(ctx, done)
}

// Signal sends sig to the job's processes.
func (j *Job) Signal(ctx context.Context, sig syscall.Signal) error {
	return j.do(ctx, func(j *Job) error { return j.signal(sig) })
}

// BeginShutdown puts the job in the shutting-down mode: it ignores every trigger but its
// stopping/stopped hooks, and its pending restart and timers are cancelled. The job keeps
// running until Stop.
func (j *Job) BeginShutdown(ctx context.Context) error {
	return j.do(ctx, func(j *Job) error {
		j.beginShutdown()
		return nil
	})
}

// KillAll sends SIGKILL to every process of the job at once (the shutdown budget ran out).
func (j *Job) KillAll(ctx context.Context) error {
	return j.do(ctx, func(j *Job) error {
		for _, ar := range j.runs {
			_ = ar.run.Signal(syscall.SIGKILL)
		}
		return nil
	})
}

// Abandon makes the job give up at once, from any goroutine, on what it still owes the
// outside world — a syslog output's queue toward a target that is down — dropping and
// counting it: the shutdown budget is spent (docs/jobs.md, "Shutdown").
func (j *Job) Abandon() {
	if a, ok := j.drv.(abandoner); ok {
		a.Abandon()
	}
}

// Close ends the job's loop, unsubscribes it and releases its driver. Stop it first; what
// still runs is killed and what it still owes a peer is abandoned, so Close never waits on
// the outside world. A job that never started only releases its driver.
func (j *Job) Close() {
	j.closed.Do(func() {
		j.Abandon()
		if j.sub == nil {
			j.drv.Close()
			close(j.loopDone)
			return
		}
		close(j.quit)
		<-j.loopDone
	})
}

func wait(ctx context.Context, done <-chan struct{}) error {
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The API verbs, as the loop runs them. Each switches on the state and mode.

// start is pilotfish start JOB.
func (j *Job) start() error {
	switch {
	case j.mode == shuttingDown:
		return j.cannot("start", "")
	case j.state == Stopping:
		return j.cannot("start", "start it once it has stopped, or use restart")
	case j.state == Starting || j.state == Running:
		return nil // already running: nothing to do, like systemctl start
	}
	// Waiting, Backoff, a final state: start now. Scheduled, Listening: armed already.
	j.mode = normal
	j.restartsUsed = 0
	j.clearAutostartNote()
	j.rearmInterval()
	j.activate(apiEvent, true)
	return nil
}

// restart is pilotfish restart JOB. A running job is stopped first; the returned channel
// closes once it has stopped (nil when there was nothing to stop).
func (j *Job) restart() (chan struct{}, error) {
	if j.mode == shuttingDown {
		return nil, j.cannot("restart", "")
	}
	j.mode = normal
	j.restartsUsed = 0
	j.clearAutostartNote()
	j.rearmInterval()
	switch j.state {
	case Running, Stopping:
		return j.beginStop(startAgain), nil
	}
	j.activate(apiEvent, true)
	return nil, nil
}

// clearAutostartNote drops the status line of autostart = false once the job is started.
func (j *Job) clearAutostartNote() {
	if j.statusLine == j.autostartNote() {
		j.statusLine = ""
	}
}

// rearmInterval sets the interval timer again after a stop cleared it, so that an
// interval job started by hand keeps its period.
func (j *Job) rearmInterval() {
	if w := j.cfg.When; w != nil && w.Interval > 0 && !j.intervalT.armed() && j.mode != shuttingDown {
		j.intervalT.set(w.Interval)
	}
}

// signal is pilotfish signal JOB SIG: only a job with a process takes it.
func (j *Job) signal(sig syscall.Signal) error {
	if len(j.runs) == 0 {
		return j.cannot("signal", "it has no process")
	}
	for _, ar := range j.runs {
		if err := ar.run.Signal(sig); err != nil {
			return fmt.Errorf("cannot signal job %q: %w", j.cfg.Name, err)
		}
	}
	return nil
}

// beginShutdown enters the shutting-down mode, in any state: timers and a pending restart
// are cancelled (a job in backoff is stopped).
func (j *Job) beginShutdown() {
	j.mode = shuttingDown
	j.intervalT.stop()
	j.debounceT.stop()
	j.timeoutT.stop()
	if j.state == Backoff {
		_ = j.setState(Stopped)
	}
}
