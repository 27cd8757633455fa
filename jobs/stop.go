package jobs

import (
	"context"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/events"
)

// afterStop is what a stop leads to once the job's runs have exited.
type afterStop uint8

const (
	// stayStopped: the job is stopped (and held or paused by whoever asked).
	stayStopped afterStop = iota
	// afterUnhealthy: a health restart (health.on_failure = "restart"): what follows is
	// chosen as after a failed exit — backoff with a restart left, else waiting or failed.
	afterUnhealthy
	// startAgain: an API restart or overlap = "restart": the job starts again at once.
	startAgain
)

// stopOp is a stop in progress: it exists exactly while the job is Stopping, and its
// timers and channels go with it (docs/jobs.md, "Stopping a job").
type stopOp struct {
	waiters   []chan struct{}
	then      afterStop // what follows; a stop joined by another keeps the later of the two
	seq       uint64
	hooksDone chan struct{} // closed once the pre-stop work is over; nil when none is left
	signaled  bool
	graced    bool  // a hook's grace during the shutdown has run out (or was not due)
	graceT    timer // a hook's grace during the shutdown
	killT     timer // stop_timeout after the stop signal
}

// stopJob is a stop request (the API, a reload, the shutdown) in any state: the job is
// held in mode m (held or paused) unless pilotfish is shutting down. The returned channel
// closes once the job has stopped.
func (j *Job) stopJob(m mode) chan struct{} {
	if j.mode != shuttingDown {
		j.mode = m
	}
	return j.beginStop(stayStopped)
}

// beginStop starts stopping the job: stopping event, hooks, stop signal, SIGKILL at
// stop_timeout; then is what follows. A stop asked for while one runs joins it. A job with
// no run goes to Stopped at once (a final state stays as it is). The returned channel
// closes once the job has stopped.
func (j *Job) beginStop(then afterStop) chan struct{} {
	done := make(chan struct{})
	if j.state == Stopping {
		j.stop.waiters = append(j.stop.waiters, done)
		j.stop.then = max(j.stop.then, then)
		return done
	}
	j.debounceT.stop()
	if then == stayStopped {
		j.intervalT.stop()
		j.timeoutT.stop()
	}
	if len(j.runs) == 0 {
		switch {
		case then == startAgain:
			j.activate(j.lastEvent, true)
		case !j.state.Final():
			_ = j.setState(Stopped) // Waiting, Backoff, Scheduled, Listening
		}
		j.publishStatus()
		close(done)
		return done
	}
	if err := j.setState(Stopping); err != nil {
		close(done)
		return done
	}
	j.stop = &stopOp{waiters: []chan struct{}{done}, then: then}
	j.stop.seq = j.publish(events.Stopping, nil).Seq
	hooks := j.hookList()
	if len(hooks) == 0 && j.rt.PreStop == nil {
		j.signalRuns()
		return done
	}
	// Deregistration and pre-stop hooks run off the loop, bounded by stop_timeout.
	ok := make(chan struct{})
	j.stop.hooksDone = ok
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
// the work it was triggered for. The kind is disarmed first: a stopping job starts no run.
func (j *Job) signalRuns() {
	op := j.stop
	if op == nil || op.signaled {
		return
	}
	if j.mode == shuttingDown && j.isHook() && !op.graced {
		op.graced = true
		op.graceT.set(j.cfg.StopTimeout)
		return
	}
	op.signaled = true
	op.graceT.stop()
	if j.armed != nil {
		j.disarm()
	}
	for _, ar := range j.runs {
		if err := ar.run.Signal(j.cfg.StopSignal); err != nil {
			j.log.Debug("cannot signal", "err", err)
		}
	}
	op.killT.set(j.cfg.StopTimeout)
}

// killRuns is stop_timeout running out after the stop signal.
func (j *Job) killRuns() {
	if j.stop == nil || len(j.runs) == 0 {
		return
	}
	j.log.Warn("did not stop in time; killing it", "stop_timeout", j.cfg.StopTimeout)
	for _, ar := range j.runs {
		_ = ar.run.Signal(syscall.SIGKILL)
	}
}

// finishStop ends a stop once its last run exited (that run started at started): stopped is
// published, and a restart starts the job again (not during the shutdown). A health
// restart goes where a failed exit would, before stopped is published, so that whoever
// reacts to stopped reads the state after it.
func (j *Job) finishStop(started time.Time) {
	op := j.stop
	j.stop = nil
	op.killT.stop()
	op.graceT.stop()
	if op.then == afterUnhealthy && j.mode == normal {
		j.next(false, started, false) // leaving Stopping disarms the kind, as Stopped does
	} else {
		_ = j.setState(Stopped) // disarms a kind whose runs ended before the stop signal
	}
	j.publish(events.Stopped, nil)
	if op.then == startAgain && j.mode != shuttingDown {
		j.mode = normal
		j.activate(j.lastEvent, true)
	}
	j.publishStatus() // waiters read the status as soon as they wake
	for _, w := range op.waiters {
		close(w)
	}
}
