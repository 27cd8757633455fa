package jobs

import (
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

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

// loop is the job's one goroutine: it takes one input at a time and publishes the status
// after each.
func (j *Job) loop() {
	defer close(j.loopDone)
	defer j.teardown()
	for {
		// The stop's channels exist only while Stopping.
		var hooksDone <-chan struct{}
		var graceC, killC <-chan time.Time
		if op := j.stop; op != nil {
			hooksDone, graceC, killC = op.hooksDone, op.graceT.C, op.killT.C
		}
		select {
		case <-j.sub.Ready():
			j.catchUp()
		case c := <-j.cmds:
			j.catchUp()
			err := c.fn(j)
			j.publishStatus()
			c.reply <- err
		case x := <-j.exits:
			j.onExit(x)
		case r := <-j.healthC:
			j.onProbe(r)
		case r := <-j.reports:
			j.onReport(r)
		case act, ok := <-j.armed:
			if ok {
				j.refused(j.onActivation(act))
			} else {
				j.armed = nil // the kind will not activate again
			}
		case <-j.backoffT.C:
			j.backoffT = timer{}
			j.refused(j.onBackoffEnd())
		case <-j.timeoutT.C:
			j.timeoutT = timer{}
			j.refused(j.onTimeout())
		case <-j.intervalT.C:
			j.intervalT.set(j.cfg.When.Interval)
			j.refused(j.onTrigger(events.Event{Code: "interval", Source: events.Global, Time: time.Now()}))
		case <-j.debounceT.C:
			j.debounceT = timer{}
			j.refused(j.onTrigger(j.lastEvent))
		case <-graceC:
			j.stop.graceT = timer{}
			j.stop.graced = true
			j.signalRuns()
		case <-hooksDone:
			j.stop.hooksDone = nil
			j.signalRuns()
		case <-killC:
			j.stop.killT = timer{}
			j.killRuns()
		case <-j.quit:
			return
		}
		j.publishStatus()
	}
}

// refused logs an input the job turned down in its state: nobody waits for that answer.
func (j *Job) refused(err error) {
	if err != nil {
		j.log.Debug("input refused", "err", err)
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
	for _, t := range []*timer{&j.backoffT, &j.timeoutT, &j.intervalT, &j.debounceT} {
		t.stop()
	}
	if j.stop != nil {
		j.stop.graceT.stop()
		j.stop.killT.stop()
	}
	j.drv.Disarm()
	j.drv.Close()
}

// onEvent handles one bus event the job subscribed to: startup, or one of its triggers.
func (j *Job) onEvent(ev events.Event) {
	j.seen = ev.Seq
	if ev.Source == events.Global && ev.Code == events.Startup && !j.trig.startup {
		j.trig.startup = true
		j.onStartup(ev)
	}
	fire, debounce := j.trig.match(ev, j.mode == shuttingDown)
	switch {
	case fire:
		j.timeoutT.stop()
		j.refused(j.onTrigger(ev))
	case debounce:
		j.timeoutT.stop()
		j.lastEvent = ev
		j.debounceT.set(j.cfg.When.Debounce)
	}
}

// onStartup starts a job without when, and the interval and when.timeout timers; a job
// created by a reload whose trigger already holds fires with it.
func (j *Job) onStartup(ev events.Event) {
	w := j.cfg.When
	switch {
	case j.mode != normal:
		// Held, paused (autostart = false) or shutting down: no timer either; a start by
		// hand sets the interval going (rearmInterval).
	case w == nil:
		j.trig.fired = true
		j.refused(j.onTrigger(ev))
	case w.Interval > 0:
		j.intervalT.set(w.Interval)
		j.refused(j.onTrigger(ev))
	default:
		if primed, ok := j.trig.firePrimed(); ok {
			primed.Time = ev.Time
			j.refused(j.onTrigger(primed))
		} else if w.Timeout > 0 {
			j.timeoutT.set(w.Timeout)
		}
	}
}

// onTimeout is when.timeout running out: a job still waiting for its trigger expires.
func (j *Job) onTimeout() error {
	if j.state != Waiting || j.trig.fired {
		return j.cannot("expire", "")
	}
	j.log.Warn("trigger did not come in time; the job will not run", "trigger", config.DescribeWhen(j.cfg), "timeout", j.cfg.When.Timeout)
	if err := j.setState(Expired); err != nil {
		return err
	}
	j.publish(events.TimerExpired, nil)
	return nil
}

// onTrigger is the job's trigger firing (an event, an interval tick, the end of a
// debounce, startup).
func (j *Job) onTrigger(ev events.Event) error {
	switch {
	case j.mode == held || j.mode == paused:
		return j.cannot("trigger", "it is held until the API starts it")
	case j.mode == shuttingDown && !hookOnly(triggerKey{ev.Source, ev.Code}):
		return j.cannot("trigger", "")
	}
	switch j.state {
	case Waiting, Backoff, Completed, Failed:
		j.restartsUsed = 0
		j.activate(ev, true)
		return nil
	case Scheduled, Listening:
		// Armed: the kind starts the runs, and they get this event.
		j.restartsUsed = 0
		j.lastEvent = ev
		return nil
	case Starting, Running, Stopping:
		return j.triggerWhileBusy(ev)
	}
	return j.cannot("trigger", "") // Stopped, Expired
}

// triggerWhileBusy applies overlap to a trigger that fires while a run is active or being
// stopped (docs/jobs.md, "overlap").
func (j *Job) triggerWhileBusy(ev events.Event) error {
	if j.drv.Concurrent() {
		if j.state == Stopping {
			return j.cannot("trigger", "")
		}
		// Runs may overlap: this event starts its own (or, when armed, the kind's next).
		j.restartsUsed = 0
		j.activate(ev, true)
		return nil
	}
	if !j.cfg.When.Repeats() {
		j.log.Debug("trigger fired while the job runs; it was started by hand before its trigger came", "event", ev.String())
		return nil
	}
	switch j.cfg.Overlap {
	case config.OverlapRestart:
		j.log.Info("trigger fired while the job runs; restarting it", "event", ev.String())
		j.lastEvent = ev
		j.beginStop(startAgain)
	default:
		j.log.Debug("trigger fired while the job runs; skipped", "event", ev.String(), "overlap", j.cfg.Overlap)
	}
	return nil
}

// activate starts the job on ev: it arms the kind, or starts a run at once when the kind
// runs right away. An armed job only takes ev as the trigger of its next runs. fresh (a
// trigger or the API, not a restart after backoff) clears the status line once the kind
// is armed: whatever kept the job from running is over.
func (j *Job) activate(ev events.Event, fresh bool) {
	j.lastEvent = ev
	if j.armed != nil {
		return
	}
	if len(j.runs) == 0 {
		_ = j.setState(Starting)
	}
	err := j.prepare()
	var acts <-chan Activation
	var idle State
	if err == nil {
		acts, idle, err = j.drv.Arm()
	}
	if err != nil {
		j.log.Error("cannot arm job", "err", err)
		j.ended(Result{Code: 1, Err: err}, time.Time{}, false)
		return
	}
	if fresh {
		j.statusLine = ""
	}
	if acts == nil {
		j.run(ev, Activation{})
		return
	}
	j.armed, j.armedState = acts, idle
	if len(j.runs) == 0 {
		_ = j.setState(idle)
	}
}

// disarm undoes the kind's Arm: the schedule stops, the socket closes.
func (j *Job) disarm() {
	j.drv.Disarm()
	j.armed = nil
}

// onActivation is an armed kind starting a run: a due time, a connection.
func (j *Job) onActivation(act Activation) error {
	var err error
	switch {
	case j.mode == shuttingDown || j.state == Stopping:
		err = j.cannot("activate", "")
	case len(j.runs) > 0 && !j.drv.Concurrent():
		err = j.cannot("activate", "its kind runs one at a time")
	case j.state != Scheduled && j.state != Listening && j.state != Running:
		err = j.cannot("activate", "")
	}
	if err != nil {
		if act.Release != nil {
			act.Release(false)
		}
		return err
	}
	j.run(j.lastEvent, act)
	return nil
}
