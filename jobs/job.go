package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// Errors returned by the job's API, for the control plane to map to status codes.
var (
	ErrConflict = errors.New("conflict")    // the request does not fit the job's state
	ErrGone     = errors.New("job is gone") // the job was removed
)

// apiEvent stands for the trigger of a job started through the control API.
var apiEvent = events.Event{Code: "start", Source: "api"}

// Job is one configured job at run time. See the package doc for its concurrency rule.
type Job struct {
	cfg       *config.Job
	hasHealth bool // a health block, or a kind that reports readiness
	drv       Driver
	rt        *Runtime
	log       *slog.Logger
	hooks     []*Job

	sub      *events.Subscription
	cmds     chan command
	runDone  chan runExit
	healthC  chan probeResult
	reports  chan runReport
	hooksOK  chan struct{}
	quit     chan struct{}
	loopDone chan struct{}
	closed   sync.Once

	mu      sync.Mutex
	status  Status
	changed chan struct{}

	// Owned by the loop.
	state        State
	since        time.Time
	trig         *trigger
	shutdown     bool
	held         bool // stopped on request: triggers are ignored until started again
	paused       bool // stopped by an operator, who may start it again
	settling     bool // a run ended and its events are being published
	runs         map[uint64]*activeRun
	nextRun      uint64
	restartsUsed int
	restarts     int
	delay        time.Duration
	health       Health
	succ, fails  int
	exitCode     *int
	statusLine   string // shown in /v1/status: a kind's STATUS= or why the job cannot run
	lastEvent    events.Event
	seen         uint64
	activations  <-chan Activation
	waitState    State
	stop         *stopOp
	backoffT     timer
	timeoutT     timer
	intervalT    timer
	debounceT    timer
	killT        timer
	graceT       timer
}

type activeRun struct {
	id       uint64
	run      Run
	started  time.Time
	healthy  bool      // the run has been healthy at least once
	lastFail time.Time // the last probe failure that counted
	// forceRestart: the run was killed for a missed watchdog; it restarts whatever
	// `restarts` says, as the specification has it ("missed → unhealthy, then restart").
	forceRestart bool
	cancel       context.CancelFunc
}

type runExit struct {
	id  uint64
	res Result
}

type stopOp struct {
	waiters  []chan struct{}
	restart  bool // start again once stopped
	seq      uint64
	signaled bool
	graced   bool
	killed   bool
}

type command struct {
	fn    func(j *Job) error
	reply chan error
}

// timer is a stoppable one-shot timer whose channel is nil while unset, so the loop can
// select on it unconditionally.
type timer struct {
	t *time.Timer
	C <-chan time.Time
}

func (t *timer) set(d time.Duration) {
	t.stop()
	t.t = time.NewTimer(d)
	t.C = t.t.C
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t, t.C = nil, nil
	}
}

func (t *timer) armed() bool { return t.t != nil }

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
		runDone:  make(chan runExit),
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

// Prime tells a job created by a reload which of its once/after triggers already hold:
// the events happened before it existed (its source is healthy, running, or done). Call
// before Start.
func (j *Job) Prime(levels []config.Trigger) {
	for _, t := range levels {
		j.trig.primed[triggerKey{t.Source, t.Code}] = true
	}
}

// Start subscribes the job to the bus, lets its driver open what must exist before
// startup is published (listening sockets), and starts its loop. The job then waits for
// startup (or its trigger). A driver that cannot prepare leaves the job failed.
func (j *Job) Start() {
	j.sub = j.rt.Bus.Subscribe(events.SubscribeOptions{Name: "job:" + j.cfg.Name, Filter: j.trig.wants})
	if p, ok := j.drv.(interface{ Prepare() error }); ok {
		if err := p.Prepare(); err != nil {
			j.log.Error("cannot prepare job; it will not run", "err", err)
			j.state, j.statusLine, j.held = Failed, err.Error(), true
			j.publishStatus()
		}
	}
	go j.loop()
}

// Status returns the latest snapshot.
func (j *Job) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

// Behind reports whether events were queued for the job after the ones the status
// snapshot st reflects: the job may still act on them. Judge a snapshot by itself, not by
// a newer one, or a job that moved on in between looks idle.
func (j *Job) Behind(st Status) bool {
	if j.sub == nil {
		return false
	}
	return j.sub.LastSeq() > st.Seen
}

// Counter is one kind-specific counter of a job, for telemetry: a metric name, an optional
// extra label (name and value) and the count.
type Counter struct {
	Metric       string
	Label, Value string
	N            float64
}

// Counters returns the job's kind-specific counters (cron runs, inetd connections, syslog
// messages…); nil for kinds that have none.
func (j *Job) Counters() []Counter {
	if c, ok := j.drv.(interface{ Counters() []Counter }); ok {
		return c.Counters()
	}
	return nil
}

// Changed returns a channel closed at the next status change.
func (j *Job) Changed() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.changed
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

// StartNow starts the job at once, whatever its trigger (pilotfish start JOB).
func (j *Job) StartNow(ctx context.Context) error {
	return j.do(ctx, func(j *Job) error {
		if j.stop != nil {
			return fmt.Errorf("%w: job %q is stopping; start it once it has stopped, or use restart", ErrConflict, j.cfg.Name)
		}
		if len(j.runs) > 0 || j.state == Starting {
			return nil // already running: nothing to do, like systemctl start
		}
		j.held, j.paused = false, false
		j.restartsUsed = 0
		j.backoffT.stop()
		j.rearmInterval()
		j.activate(apiEvent)
		return nil
	})
}

// rearmInterval sets the interval timer again after a stop cleared it, so that an
// interval job started by hand keeps its period.
func (j *Job) rearmInterval() {
	if w := j.cfg.When; w != nil && w.Interval > 0 && !j.intervalT.armed() && !j.shutdown {
		j.intervalT.set(w.Interval)
	}
}

// Stop stops the job and waits until it has stopped or ctx ends. Stopping a job that is
// not running only marks it stopped.
func (j *Job) Stop(ctx context.Context) error {
	return j.stopNow(ctx, false)
}

// Pause is Stop on an operator's request (pilotfish stop JOB): the job stays stopped until
// started again, and pilotfish stays up for it even when nothing else runs.
func (j *Job) Pause(ctx context.Context) error {
	return j.stopNow(ctx, true)
}

func (j *Job) stopNow(ctx context.Context, pause bool) error {
	var done chan struct{}
	err := j.do(ctx, func(j *Job) error {
		j.held = true
		j.paused = pause && !j.shutdown
		done = j.beginStop(false)
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
	err := j.do(ctx, func(j *Job) error {
		if j.shutdown {
			return fmt.Errorf("%w: pilotfish is shutting down", ErrConflict)
		}
		j.held, j.paused = false, false
		j.restartsUsed = 0
		j.rearmInterval()
		if len(j.runs) == 0 && j.stop == nil {
			j.backoffT.stop()
			j.activate(apiEvent)
			return nil
		}
		done = j.beginStop(true)
		return nil
	})
	if err != nil || done == nil {
		return err
	}
	return wait(ctx, done)
}

// Signal sends sig to the job's processes.
func (j *Job) Signal(ctx context.Context, sig syscall.Signal) error {
	return j.do(ctx, func(j *Job) error {
		if len(j.runs) == 0 {
			return fmt.Errorf("%w: job %q has no process to signal (it is %s)", ErrConflict, j.cfg.Name, j.state)
		}
		for _, ar := range j.runs {
			if err := ar.run.Signal(sig); err != nil {
				return fmt.Errorf("cannot signal job %q: %w", j.cfg.Name, err)
			}
		}
		return nil
	})
}

// BeginShutdown makes the job ignore every trigger but its stopping/stopped hooks and
// cancels pending restarts and timers. The job keeps running until Stop.
func (j *Job) BeginShutdown(ctx context.Context) error {
	return j.do(ctx, func(j *Job) error {
		j.shutdown = true
		j.backoffT.stop()
		j.intervalT.stop()
		j.debounceT.stop()
		j.timeoutT.stop()
		if j.state == Backoff {
			j.setState(Stopped)
		}
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

// WaitIdleAfter waits until the job has handled every event up to seq and has no run
// active: what a stopping job waits for from its hooks.
func (j *Job) WaitIdleAfter(ctx context.Context, seq uint64) error {
	for {
		ch := j.Changed()
		st := j.Status()
		if st.Seen >= seq && st.Runs == 0 && st.State != Starting && st.State != Backoff {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-j.loopDone:
			return nil
		}
	}
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

func (j *Job) loop() {
	defer close(j.loopDone)
	defer j.teardown()
	for {
		select {
		case <-j.sub.Ready():
			j.catchUp()
		case c := <-j.cmds:
			j.catchUp()
			err := c.fn(j)
			j.publishStatus()
			c.reply <- err
		case x := <-j.runDone:
			j.onExit(x)
		case r := <-j.healthC:
			j.onProbe(r)
		case r := <-j.reports:
			j.onReport(r)
		case act, ok := <-j.activations:
			if ok {
				j.onActivation(act)
			} else {
				j.activations = nil
			}
		case <-j.backoffT.C:
			j.backoffT = timer{}
			j.restartsUsed++
			j.restarts++
			j.run(j.lastEvent, Activation{})
		case <-j.timeoutT.C:
			j.timeoutT = timer{}
			j.onTimeout()
		case <-j.intervalT.C:
			j.intervalT.set(j.cfg.When.Interval)
			j.fire(events.Event{Code: "interval", Source: events.Global, Time: time.Now()})
		case <-j.debounceT.C:
			j.debounceT = timer{}
			j.fire(j.lastEvent)
		case <-j.graceT.C:
			j.graceT = timer{}
			j.stop.graced = true
			j.signalRuns()
		case <-j.hooksOK:
			j.hooksOK = nil
			j.signalRuns()
		case <-j.killT.C:
			j.killT = timer{}
			j.killRuns()
		case <-j.quit:
			return
		}
		j.publishStatus()
	}
}

// catchUp handles the events already queued for the job, so that a command sees every
// event published before it was sent.
func (j *Job) catchUp() {
	for {
		ev, ok := j.sub.Next()
		if !ok {
			return
		}
		j.onEvent(ev)
	}
}

func (j *Job) teardown() {
	j.sub.Close()
	for _, ar := range j.runs {
		ar.cancel()
		_ = ar.run.Signal(syscall.SIGKILL)
	}
	for _, t := range []*timer{&j.backoffT, &j.timeoutT, &j.intervalT, &j.debounceT, &j.killT, &j.graceT} {
		t.stop()
	}
	j.drv.Disarm()
	j.drv.Close()
}

func (j *Job) onEvent(ev events.Event) {
	j.seen = ev.Seq
	if ev.Source == events.Global && ev.Code == events.Startup && !j.trig.startup {
		j.trig.startup = true
		j.onStartup(ev)
	}
	fire, debounce := j.trig.match(ev, j.shutdown)
	switch {
	case fire:
		j.timeoutT.stop()
		j.fire(ev)
	case debounce:
		j.timeoutT.stop()
		j.lastEvent = ev
		j.debounceT.set(j.cfg.When.Debounce)
	}
}

func (j *Job) onStartup(ev events.Event) {
	w := j.cfg.When
	switch {
	case j.shutdown:
	case w == nil:
		j.trig.fired = true
		j.fire(ev)
	case w.Interval > 0:
		j.intervalT.set(w.Interval)
		j.fire(ev)
	default:
		if primed, ok := j.trig.firePrimed(); ok {
			primed.Time = ev.Time
			j.fire(primed)
		} else if w.Timeout > 0 {
			j.timeoutT.set(w.Timeout)
		}
	}
}

func (j *Job) onTimeout() {
	if j.trig.fired || len(j.runs) > 0 || j.state != Waiting {
		return
	}
	j.log.Warn("trigger did not come in time; the job will not run", "trigger", config.DescribeWhen(j.cfg), "timeout", j.cfg.When.Timeout)
	j.setState(Expired)
	j.publish(events.TimerExpired, nil)
}

// fire is the job's trigger firing.
func (j *Job) fire(ev events.Event) {
	if j.held || j.state == Expired || (j.shutdown && !hookOnly(triggerKey{ev.Source, ev.Code})) {
		return
	}
	busy := len(j.runs) > 0 || j.stop != nil
	if busy && !j.drv.Concurrent() {
		if !j.cfg.When.Repeats() {
			return // started by hand before its trigger came
		}
		switch j.cfg.Overlap {
		case config.OverlapSkip:
			j.log.Debug("trigger fired while the job runs; skipped", "event", ev.String())
			return
		case config.OverlapRestart:
			j.log.Info("trigger fired while the job runs; restarting it", "event", ev.String())
			j.lastEvent = ev
			j.beginStop(true)
			return
		}
	}
	j.restartsUsed = 0
	j.backoffT.stop()
	j.activate(ev)
}

// activate arms the driver, or starts a run at once when the kind runs right away.
func (j *Job) activate(ev events.Event) {
	j.lastEvent = ev
	if j.activations == nil {
		acts, waitState, err := j.drv.Arm()
		if err != nil {
			j.log.Error("cannot arm job", "err", err)
			j.ended(Result{Code: 1, Err: err}, time.Time{}, false)
			return
		}
		j.statusLine = "" // whatever kept the job from running is over
		if acts != nil {
			j.activations, j.waitState = acts, waitState
			if len(j.runs) == 0 {
				j.setState(waitState)
			}
			return
		}
	} else {
		return // armed already: activations start the runs
	}
	j.run(ev, Activation{})
}

func (j *Job) onActivation(act Activation) {
	if j.stop != nil || j.shutdown || (len(j.runs) > 0 && !j.drv.Concurrent()) {
		if act.Release != nil {
			act.Release(false)
		}
		return
	}
	j.run(j.lastEvent, act)
}

// run starts one run.
func (j *Job) run(ev events.Event, act Activation) {
	j.setState(Starting)
	j.succ, j.fails = 0, 0 // health counts start afresh with every run
	j.nextRun++
	id := j.nextRun
	ctx, cancel := context.WithCancel(context.Background())
	ar := &activeRun{id: id, started: time.Now(), cancel: cancel}
	env := j.env(ev, act)
	req := RunRequest{Event: ev, Env: env, Activation: act, Report: func(r Report) {
		select {
		case j.reports <- runReport{id, r}:
		case <-ctx.Done(): // the run is over
		case <-j.loopDone:
		}
	}}
	h := j.cfg.Health
	if h != nil && h.Probe() == "log" {
		req.OnLine = j.logMatcher(h.Log, id)
	}
	r, err := j.drv.Start(req)
	if act.Release != nil {
		act.Release(err == nil)
	}
	if err != nil {
		cancel()
		j.log.Error("cannot start job", "err", err)
		code := 127 // as a shell reports "not found"
		if errors.Is(err, fs.ErrPermission) {
			code = 126 // found but not executable
		}
		j.ended(Result{Code: code, Err: err}, ar.started, false)
		return
	}
	ar.run = r
	j.runs[id] = ar
	go func() {
		res := <-r.Done()
		select {
		case j.runDone <- runExit{id, res}:
		case <-j.loopDone:
		}
	}()
	j.setState(Running)
	attrs := map[string]string{}
	if pid := r.Pid(); pid > 0 {
		attrs["pid"] = strconv.Itoa(pid)
	}
	j.log.Info("started", "pid", r.Pid(), "trigger", ev.String())
	j.publish(events.Started, attrs)
	if h != nil && h.Probe() != "log" {
		p := &prober{h: h, check: j.newCheck(h, r.Pid(), env), out: j.healthC, runID: id}
		go p.loop(ctx)
	}
}

// env builds a run's environment: pilotfish's (with putenv values), the job's env, then the
// trigger.
func (j *Job) env(ev events.Event, act Activation) []string {
	trig := map[string]string{
		"PILOTFISH_JOB":          j.cfg.Name,
		"PILOTFISH_EVENT":        string(ev.Code),
		"PILOTFISH_EVENT_SOURCE": ev.Source,
	}
	if inst, ok := ev.Attrs[events.AttrInstances]; ok {
		trig["PILOTFISH_WATCH_INSTANCES"] = inst
	}
	if v, ok := ev.Attrs[events.AttrValue]; ok {
		trig["PILOTFISH_WATCH_VALUE"] = v
	}
	for _, kv := range act.Env {
		k, v, _ := splitKV(kv)
		trig[k] = v
	}
	return mergeEnv(j.rt.Environ(), j.cfg.Env, trig)
}

func (j *Job) onExit(x runExit) {
	ar, ok := j.runs[x.id]
	if !ok {
		return
	}
	delete(j.runs, x.id)
	ar.cancel()
	if j.stop != nil {
		// A stop ends the job's whole process group, stragglers included.
		_ = ar.run.Signal(syscall.SIGKILL)
	}
	if ar.healthy {
		j.delay = 0 // a run that was healthy resets the backoff
	}
	j.ended(x.res, ar.started, ar.forceRestart)
}

// ended handles the end of a run (or a run that could not start). The job's next state is
// set, and its status published, before the exit event goes out, so that whoever reacts
// to the event reads the state after it.
func (j *Job) ended(res Result, started time.Time, forceRestart bool) {
	code := res.Code
	j.exitCode = &code
	attrs := map[string]string{events.AttrExitCode: strconv.Itoa(code)}
	how := fmt.Sprintf("exit status %d", code)
	if res.Signal != 0 {
		how = "killed by " + config.SignalName(res.Signal)
	}
	if res.Err != nil {
		attrs[events.AttrMessage] = res.Err.Error()
	}
	exit := events.ExitSuccess
	if res.Success() {
		j.log.Info("exited", "status", how)
	} else {
		exit = events.ExitFailed
		lvl := slog.LevelWarn
		if j.stop != nil {
			lvl = slog.LevelInfo
		}
		j.log.Log(context.Background(), lvl, "exited", "status", how)
	}
	lostHealth := false
	if len(j.runs) == 0 && j.health != HealthUnknown && j.hasHealth {
		lostHealth = j.health == HealthHealthy && j.stop == nil
		j.health, j.succ, j.fails = HealthUnknown, 0, 0
	}
	if j.stop == nil {
		j.next(res, started, forceRestart)
		// The new state is visible before the events, but the job counts as live until
		// they are out: a job waiting for them must not look like it waits in vain.
		j.settling = true
		j.publishStatus()
	}
	j.publish(exit, attrs)
	if lostHealth {
		j.publish(events.Unhealthy, map[string]string{events.AttrMessage: "process exited"})
	}
	switch {
	case j.stop != nil && len(j.runs) == 0:
		j.finishStop()
	case j.stop == nil && (j.state == Completed || j.state == Failed):
		j.publish(events.Stopped, nil) // done for good: its hooks run, its service goes
	}
	j.settling = false
}

// next chooses what follows a run that ended on its own.
func (j *Job) next(res Result, started time.Time, forceRestart bool) {
	switch {
	case j.activations != nil:
		// Armed kinds (cron, inetd): the schedule or the next connection starts the next
		// run; restarts do not apply.
		if len(j.runs) == 0 {
			j.setState(j.waitState)
		}
	case j.canRestart() || forceRestart && !j.shutdown && !j.held:
		if !started.IsZero() && time.Since(started) >= j.cfg.Backoff.Max {
			j.delay = 0
		}
		j.delay = nextDelay(j.delay, j.cfg.Backoff)
		j.log.Info("restarting after backoff", "in", j.delay.Round(time.Millisecond), "restart", j.restartsUsed+1, "of", restartsText(j.cfg.Restarts))
		j.backoffT.set(j.delay)
		j.setState(Backoff)
	case j.cfg.When.Repeats() && !j.shutdown:
		j.setState(Waiting)
	case res.Success():
		j.setState(Completed)
	default:
		j.setState(Failed)
	}
}

func restartsText(n int) string {
	if n == config.Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func (j *Job) canRestart() bool {
	if j.shutdown || j.held {
		return false
	}
	return j.cfg.Restarts == config.Unlimited || j.restartsUsed < j.cfg.Restarts
}

// nextDelay doubles the backoff delay and jitters it by ±20%, within max. At the cap the
// delay is still random (80–100% of max), so crash-looping jobs do not restart in
// lock-step.
func nextDelay(prev time.Duration, b config.Backoff) time.Duration {
	d := b.Initial
	if prev > 0 {
		d = 2 * prev
	}
	if d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64())); d > b.Max {
		d = time.Duration(float64(b.Max) * (0.8 + 0.2*rand.Float64()))
	}
	return d
}

func (j *Job) onProbe(r probeResult) {
	if j.rt.OnProbe != nil && r.duration > 0 {
		j.rt.OnProbe(j.cfg.Name, r.duration)
	}
	ar, ok := j.runs[r.runID]
	if !ok || j.stop != nil {
		return
	}
	h := j.cfg.Health
	if r.ok {
		j.fails = 0
		j.succ++
		if j.health != HealthHealthy && j.succ >= h.Successes {
			j.health = HealthHealthy
			ar.healthy = true
			j.log.Info("healthy", "check", r.msg)
			j.publish(events.Healthy, map[string]string{events.AttrMessage: r.msg})
		}
		return
	}
	if time.Since(ar.started) < h.Grace {
		return
	}
	// Before a run's first success the probe runs faster than interval to notice readiness
	// early; its failures still count at most once per interval, as at the normal pace.
	if !ar.healthy && !ar.lastFail.IsZero() && time.Since(ar.lastFail) < h.Interval {
		return
	}
	ar.lastFail = time.Now()
	j.succ = 0
	j.fails++
	if j.health != HealthUnhealthy && j.fails >= h.Failures {
		j.health = HealthUnhealthy
		j.log.Warn("unhealthy", "check", r.msg)
		j.publish(events.Unhealthy, map[string]string{events.AttrMessage: r.msg})
	}
}

// runReport is a Report of one run.
type runReport struct {
	id uint64
	r  Report
}

// onReport takes what a kind learned about a run (sd_notify's READY=1, STATUS=, a missed
// watchdog…).
func (j *Job) onReport(x runReport) {
	ar, ok := j.runs[x.id]
	if !ok {
		return
	}
	r := x.r
	if r.Status != nil {
		j.statusLine = *r.Status
	}
	switch {
	case r.Ready && j.health != HealthHealthy && j.stop == nil:
		j.health, ar.healthy, j.delay = HealthHealthy, true, 0
		j.log.Info("ready", "message", r.Message)
		j.publish(events.Healthy, map[string]string{events.AttrMessage: r.Message})
	case r.Unready && j.health != HealthUnhealthy && j.stop == nil:
		j.health = HealthUnhealthy
		j.log.Warn("not ready", "message", r.Message)
		j.publish(events.Unhealthy, map[string]string{events.AttrMessage: r.Message})
	}
	if r.Kill != 0 && j.stop == nil {
		j.log.Warn("stopping the run", "signal", config.SignalName(r.Kill), "why", r.Message)
		ar.forceRestart = ar.forceRestart || r.Restart
		_ = ar.run.Signal(r.Kill)
	}
}

// beginStop starts stopping the job: stopping event, hooks, stop signal, SIGKILL at
// stop_timeout. The returned channel closes once the job has stopped.
func (j *Job) beginStop(restart bool) chan struct{} {
	done := make(chan struct{})
	if j.stop != nil {
		j.stop.waiters = append(j.stop.waiters, done)
		j.stop.restart = j.stop.restart || restart
		return done
	}
	j.backoffT.stop()
	j.debounceT.stop()
	if !restart {
		j.intervalT.stop()
		j.timeoutT.stop()
	}
	if len(j.runs) == 0 {
		if j.activations != nil {
			j.drv.Disarm()
			j.activations = nil
		}
		if restart {
			j.activate(j.lastEvent)
		} else if !j.state.Final() {
			j.setState(Stopped)
		}
		j.publishStatus()
		close(done)
		return done
	}
	j.stop = &stopOp{waiters: []chan struct{}{done}, restart: restart}
	j.setState(Stopping)
	j.stop.seq = j.publish(events.Stopping, nil).Seq
	hooks := j.hookList()
	if len(hooks) == 0 && j.rt.PreStop == nil {
		j.signalRuns()
		return done
	}
	// Deregistration and pre-stop hooks run off the loop, bounded by stop_timeout.
	ok := make(chan struct{})
	j.hooksOK = ok
	seq, budget, name, preStop := j.stop.seq, j.cfg.StopTimeout, j.cfg.Name, j.rt.PreStop
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		if preStop != nil {
			preStop(ctx, name)
		}
		for _, h := range hooks {
			_ = h.WaitIdleAfter(ctx, seq)
		}
		close(ok)
	}()
	return done
}

// isHook reports whether the job runs because something is stopping (a job's stopping or
// stopped, or the container's shutdown): when shutdown stops it, it first gets its
// stop_timeout to finish that work.
func (j *Job) isHook() bool {
	for _, t := range j.cfg.When.Triggers() {
		if t.IsHook() || t.Source == events.Global && t.Code == events.Shutdown {
			return true
		}
	}
	return false
}

// signalRuns sends the stop signal, after the grace a hook gets during shutdown to finish
// the work it was triggered for.
func (j *Job) signalRuns() {
	if j.stop == nil || j.stop.signaled {
		return
	}
	if j.shutdown && j.isHook() && !j.stop.graced {
		j.stop.graced = true
		j.graceT.set(j.cfg.StopTimeout)
		return
	}
	j.stop.signaled = true
	j.graceT.stop()
	if j.activations != nil {
		j.drv.Disarm()
		j.activations = nil
	}
	for _, ar := range j.runs {
		if err := ar.run.Signal(j.cfg.StopSignal); err != nil {
			j.log.Debug("cannot signal", "err", err)
		}
	}
	j.killT.set(j.cfg.StopTimeout)
}

func (j *Job) killRuns() {
	if j.stop == nil || len(j.runs) == 0 {
		return
	}
	j.stop.killed = true
	j.log.Warn("did not stop in time; killing it", "stop_timeout", j.cfg.StopTimeout)
	for _, ar := range j.runs {
		_ = ar.run.Signal(syscall.SIGKILL)
	}
}

func (j *Job) finishStop() {
	op := j.stop
	j.stop = nil
	j.killT.stop()
	j.graceT.stop()
	j.hooksOK = nil
	j.publish(events.Stopped, nil)
	j.setState(Stopped)
	if op.restart && !j.shutdown {
		j.held = false
		j.activate(j.lastEvent)
	}
	j.publishStatus() // waiters read the status as soon as they wake
	for _, w := range op.waiters {
		close(w)
	}
}

func (j *Job) publish(code events.Code, attrs map[string]string) events.Event {
	return j.rt.Bus.Publish(code, j.cfg.Name, attrs)
}

func (j *Job) setState(s State) {
	if s == j.state {
		return
	}
	j.log.Debug("state", "from", j.state, "to", s)
	j.state = s
	j.since = time.Now()
}

func (j *Job) snapshot() Status {
	st := Status{
		Name:      j.cfg.Name,
		Kind:      j.cfg.Kind,
		State:     j.state,
		Restarts:  j.restarts,
		Health:    j.health,
		ExitCode:  j.exitCode,
		Since:     j.since,
		Status:    j.statusLine,
		Paused:    j.paused,
		Settling:  j.settling,
		Seen:      j.seen,
		Runs:      len(j.runs),
		HasHealth: j.hasHealth,
	}
	if len(j.runs) == 1 {
		for _, ar := range j.runs {
			st.Pid = ar.run.Pid()
		}
	}
	if j.state == Waiting {
		st.Pending = j.trig.pending()
		st.TimerArmed = j.timeoutT.armed() || j.intervalT.armed() || j.debounceT.armed()
	}
	return st
}

func (j *Job) publishStatus() {
	st := j.snapshot()
	j.mu.Lock()
	same := st.State == j.status.State && st.Pid == j.status.Pid && st.Restarts == j.status.Restarts &&
		st.Settling == j.status.Settling && st.Paused == j.status.Paused &&
		st.Health == j.status.Health && st.Seen == j.status.Seen && st.Runs == j.status.Runs &&
		st.TimerArmed == j.status.TimerArmed && st.Status == j.status.Status &&
		slices.Equal(st.Pending, j.status.Pending) && sameCode(st.ExitCode, j.status.ExitCode)
	if !same {
		j.status = st
		close(j.changed)
		j.changed = make(chan struct{})
	}
	j.mu.Unlock()
	if !same && j.rt.OnChange != nil {
		j.rt.OnChange()
	}
}

func sameCode(a, b *int) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

func splitKV(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
