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
	"strings"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// activeRun is one run of the job that has started and not yet ended.
type activeRun struct {
	id       uint64
	run      Run
	started  time.Time
	healthy  bool      // the run has been healthy at least once
	lastFail time.Time // the last probe failure that counted
	// forceRestart: the run was killed for a missed watchdog; it restarts whatever
	// `restarts` says (docs/notify.md, "The watchdog").
	forceRestart bool
	// timedOut: the run outlived the job's timeout and was stopped; its exit counts as
	// a failure (docs/configuration.md, job `timeout`).
	timedOut bool
	deadline *time.Timer        // the job's timeout, then stop_timeout before SIGKILL
	cancel   context.CancelFunc // ends its probes and reports
}

// runExit is how one run ended, as its kind delivers it to the loop.
type runExit struct {
	id  uint64
	res Result
}

// runReport is a Report of one run.
type runReport struct {
	id uint64
	r  Report
}

// run starts one run. A job with no run active passes through Starting.
func (j *Job) run(ev events.Event, act Activation) {
	if len(j.runs) == 0 {
		_ = j.setState(Starting)
	}
	j.succ, j.fails = 0, 0 // health counts start afresh with every run
	j.nextRun++
	id := j.nextRun
	ctx, cancel := context.WithCancel(context.Background())
	ar := &activeRun{id: id, started: time.Now(), cancel: cancel}
	env := j.env(ev, act)
	req := RunRequest{Event: ev, Env: env, Activation: act,
		Report: func(r Report) {
			select {
			case j.reports <- runReport{id, r}:
			case <-ctx.Done(): // the run is over
			case <-j.loopDone:
			}
		},
		// The kind delivers the exit straight to the loop: nothing stands between them.
		Exit: func(res Result) {
			select {
			case j.exits <- runExit{id, res}:
			case <-j.loopDone:
			}
		},
	}
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
		// The reason stays in the status line until a run starts.
		j.statusLine, j.startErr = err.Error(), err.Error()
		code := 127 // as a shell reports "not found"
		if errors.Is(err, fs.ErrPermission) {
			code = 126 // found but not executable
		}
		j.ended(Result{Code: code, Err: err}, ar.started, false)
		return
	}
	ar.run = r
	j.runs[id] = ar
	if j.startErr != "" && j.statusLine == j.startErr {
		j.statusLine = ""
	}
	j.startErr = ""
	_ = j.setState(Running)
	attrs := map[string]string{}
	if pid := r.Pid(); pid > 0 {
		attrs["pid"] = strconv.Itoa(pid)
	}
	switch {
	case j.cfg.RegistrationOnly():
		j.log.Info("started (no command: registration and health only)", "trigger", ev.String())
	case r.Pid() > 0:
		j.log.Info("started", "pid", r.Pid(), "trigger", ev.String())
	default: // a run without a process of its own (webhook)
		j.log.Info("started", "trigger", ev.String())
	}
	j.publish(events.Started, attrs)
	if t := j.cfg.Timeout; t > 0 {
		ar.deadline = time.AfterFunc(t, func() {
			req.Report(Report{Kill: j.cfg.StopSignal, Message: fmt.Sprintf("timed out after %s", t), timedOut: true})
		})
	}
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
	if j.rt.EnvGen == nil {
		return mergeEnv(j.rt.Environ(), j.cfg.Env, trig)
	}
	// pilotfish's environment and the job's env change rarely (putenv, a reload): merge them
	// once per change, then add only the trigger, as mergeEnv would.
	if gen := j.rt.EnvGen(); j.envBase == nil || gen != j.envGen || j.envCfg != j.cfg {
		j.envBase = mergeEnv(j.rt.Environ(), j.cfg.Env)
		j.envGen, j.envCfg = gen, j.cfg
		j.envIdx = make(map[string]int, len(j.envBase))
		for i, kv := range j.envBase {
			k, _, _ := strings.Cut(kv, "=")
			j.envIdx[k] = i
		}
	}
	out := make([]string, len(j.envBase), len(j.envBase)+len(trig))
	copy(out, j.envBase)
	for _, k := range sortedKeys(trig) {
		if i, ok := j.envIdx[k]; ok {
			out[i] = k + "=" + trig[k]
		} else {
			out = append(out, k+"="+trig[k])
		}
	}
	return out
}

// onExit is a run's end, as its kind delivered it.
func (j *Job) onExit(x runExit) {
	ar, ok := j.runs[x.id]
	if !ok {
		return
	}
	delete(j.runs, x.id)
	j.addCPU(x.res.CPU)
	ar.cancel()
	if ar.deadline != nil {
		ar.deadline.Stop()
	}
	if ar.timedOut && x.res.Err == nil {
		x.res.Err = fmt.Errorf("timed out after %s", j.cfg.Timeout)
	}
	if j.state == Stopping {
		// A stop ends the job's whole process group, stragglers included.
		_ = ar.run.Signal(syscall.SIGKILL)
	}
	if ar.healthy {
		j.delay = 0 // a run that was healthy resets the backoff
	}
	j.ended(x.res, ar.started, ar.forceRestart)
}

// ended handles the end of a run (or a run that could not start, or a kind that could not
// be armed). The job's next state is set, and its status published, before the exit event
// goes out, so that whoever reacts to the event reads the state after it.
func (j *Job) ended(res Result, started time.Time, forceRestart bool) {
	code := res.Code
	if !j.cfg.RegistrationOnly() {
		j.exitCode = &code
	}
	attrs := map[string]string{events.AttrExitCode: strconv.Itoa(code)}
	how := fmt.Sprintf("exit status %d", code)
	if res.Signal != 0 {
		how = "killed by " + config.SignalName(res.Signal)
	}
	if res.Err != nil {
		attrs[events.AttrMessage] = res.Err.Error()
	}
	stopping := j.state == Stopping
	success := res.Success(j.cfg.SuccessCodes)
	exit := events.ExitSuccess
	switch {
	case j.cfg.RegistrationOnly():
		exit = "" // no process, no exit: only stopped follows
	case success:
		j.log.Info("exited", "status", how)
	default:
		exit = events.ExitFailed
		lvl := slog.LevelWarn
		if stopping {
			lvl = slog.LevelInfo
		}
		j.log.Log(context.Background(), lvl, "exited", "status", how)
	}
	lostHealth := false
	if len(j.runs) == 0 && j.health != HealthUnknown && j.hasHealth {
		lostHealth = j.health == HealthHealthy && !stopping
		j.health, j.succ, j.fails = HealthUnknown, 0, 0
	}
	if !stopping {
		j.next(success, started, forceRestart)
		j.publishSettling()
	}
	if exit != "" {
		j.publish(exit, attrs)
	}
	if lostHealth {
		j.publish(events.Unhealthy, map[string]string{events.AttrMessage: "process exited"})
	}
	switch {
	case stopping && len(j.runs) == 0:
		j.finishStop(started)
	case !stopping && (j.state == Completed || j.state == Failed):
		j.publish(events.Stopped, nil) // done for good: its hooks run, its service goes
	}
}

// next chooses what follows the end of the job's last active run, when no stop asked for
// it (or a health restart's stop): the armed state, backoff, waiting, completed or failed.
// success says whether the run ended with one of the job's success codes. While another
// run is active the job stays running.
func (j *Job) next(success bool, started time.Time, forceRestart bool) {
	switch {
	case len(j.runs) > 0:
	case j.armed != nil:
		// Armed kinds (cron, inetd): the schedule or the next connection starts the next
		// run; restarts do not apply.
		_ = j.setState(j.armedState)
	case j.canRestart() && (!success || j.cfg.RestartOn != config.RestartOnFailure) || forceRestart && j.mode == normal:
		if !started.IsZero() && time.Since(started) >= j.cfg.Backoff.Max {
			j.delay = 0
		}
		j.delay = nextDelay(j.delay, j.cfg.Backoff)
		j.log.Info("restarting after backoff", "in", j.delay.Round(time.Millisecond), "restart", j.restartsUsed+1, "of", restartsText(j.cfg.Restarts))
		if j.setState(Backoff) == nil {
			j.backoffT.set(j.delay)
		}
	case j.cfg.When.Repeats() && j.mode != shuttingDown:
		_ = j.setState(Waiting)
	case success:
		_ = j.setState(Completed)
	default:
		_ = j.setState(Failed)
	}
}

func (j *Job) canRestart() bool {
	if j.mode != normal {
		return false
	}
	return j.cfg.Restarts == config.Unlimited || j.restartsUsed < j.cfg.Restarts
}

func restartsText(n int) string {
	if n == config.Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// onBackoffEnd is the end of the backoff delay: the job starts again with the event of
// its last run, and spends one restart of its budget.
func (j *Job) onBackoffEnd() error {
	if j.state != Backoff {
		return j.cannot("restart", "")
	}
	j.restartsUsed++
	j.restarts++
	j.activate(j.lastEvent, false)
	return nil
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

// onProbe takes one health check of a run: healthy and unhealthy are published on edges
// only. Nothing is judged during a stop.
func (j *Job) onProbe(r probeResult) {
	if j.rt.OnProbe != nil && r.duration > 0 {
		j.rt.OnProbe(j.cfg.Name, r.duration)
	}
	ar, ok := j.runs[r.runID]
	if !ok || j.state == Stopping {
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
		j.onUnhealthy()
	}
}

// onUnhealthy applies health.on_failure to a verdict that just turned unhealthy
// (docs/jobs.md, "Health probes").
func (j *Job) onUnhealthy() {
	switch j.cfg.Health.OnFailure {
	case config.OnFailureRestart:
		if j.mode != normal || j.state != Running {
			return // held, paused or shutting down: nothing restarts
		}
		if j.canRestart() {
			j.log.Warn("restarting the unhealthy job", "on_failure", config.OnFailureRestart)
		} else {
			j.log.Warn("stopping the unhealthy job; no restart is left", "on_failure", config.OnFailureRestart, "restarts", restartsText(j.cfg.Restarts))
		}
		j.beginStop(afterUnhealthy)
	case config.OnFailureShutdown:
		// During the shutdown it changes nothing: the exit code stays the one of its cause.
		if !j.shutdown && j.mode != shuttingDown {
			j.log.Warn("unhealthy: shutting pilotfish down", "on_failure", config.OnFailureShutdown)
			j.shutdown = true
		}
	}
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
	stopping := j.state == Stopping
	switch {
	case r.Ready && j.health != HealthHealthy && !stopping:
		j.health, ar.healthy, j.delay = HealthHealthy, true, 0
		j.log.Info("ready", "message", r.Message)
		j.publish(events.Healthy, map[string]string{events.AttrMessage: r.Message})
	case r.Unready && j.health != HealthUnhealthy && !stopping:
		j.health = HealthUnhealthy
		j.log.Warn("not ready", "message", r.Message)
		j.publish(events.Unhealthy, map[string]string{events.AttrMessage: r.Message})
	}
	if r.Kill != 0 && !stopping {
		j.log.Warn("stopping the run", "signal", config.SignalName(r.Kill), "why", r.Message)
		ar.forceRestart = ar.forceRestart || r.Restart
		if r.timedOut && !ar.timedOut {
			// The run gets stop_timeout to end, as at any stop, then SIGKILL.
			ar.timedOut = true
			ar.deadline = time.AfterFunc(j.cfg.StopTimeout, func() {
				j.reportTo(x.id, Report{Kill: syscall.SIGKILL, Message: "did not stop in time after its timeout"})
			})
		}
		_ = ar.run.Signal(r.Kill)
	}
}

// reportTo delivers a report about run id to the loop from outside a RunRequest (a
// timer); it is dropped once the job is gone, and ignored by the loop once the run ended.
func (j *Job) reportTo(id uint64, r Report) {
	select {
	case j.reports <- runReport{id, r}:
	case <-j.loopDone:
	}
}

func (j *Job) publish(code events.Code, attrs map[string]string) events.Event {
	return j.rt.Bus.Publish(code, j.cfg.Name, attrs)
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
