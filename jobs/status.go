package jobs

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// Status is a snapshot of one job, published by its loop after every step.
type Status struct {
	Name     string
	Kind     string
	State    State
	Pid      int // of the only run, 0 with none or several
	Restarts int // restarts after backoff since the job was created
	Health   Health
	ExitCode *int // of the last run, nil before the first one ended
	Since    time.Time
	Status   string // what the kind reported (sd_notify's STATUS=) or why the job cannot run
	// HasHealth tells whether the job is expected to report health (a health block, or a
	// kind that reports readiness).
	HasHealth bool
	// Shutdown: the job became unhealthy with health.on_failure = "shutdown"; pilotfish
	// shuts down with exit code 1 (docs/jobs.md, "When pilotfish exits by itself").
	Shutdown bool

	seen       uint64           // the sequence number of the last bus event handled
	paused     bool             // held by an operator, who may start it again
	settling   bool             // the events of a run that just ended are being published
	pending    []config.Trigger // the triggers still awaited while waiting
	timerArmed bool             // a when.timeout, interval or debounce timer runs
	runs       int              // active runs
	procs      []procRef        // where the active runs' processes are (see Usages)
	cpuDone    time.Duration    // CPU time of the runs that ended
}

// Status returns the latest snapshot.
func (j *Job) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

// StatusVersion counts the changes of status. Read before Status, it tells a reader that
// kept an older snapshot whether it must take a new one; it takes no lock.
func (j *Job) StatusVersion() uint64 { return j.version.Load() }

// Changed returns a channel closed at the next status change.
func (j *Job) Changed() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.changed
}

// Live reports whether the job, as of its snapshot st, runs or can still do something by
// itself: a run is active or on its way, its kind is armed, a timer of its own will fire,
// an operator may start it again, or it has events queued that it has not handled yet.
// Judge a snapshot by itself, not by a newer one, or a job that moved on in between looks
// idle (docs/jobs.md, "When pilotfish exits by itself").
func (j *Job) Live(st Status) bool {
	if st.settling || st.runs > 0 {
		return true // a run is active, or the events of the last one are on their way
	}
	switch st.State {
	case Starting, Running, Backoff, Stopping, Scheduled, Listening:
		return true
	case Waiting:
		return st.timerArmed || j.behind(st)
	case Stopped:
		return st.paused
	}
	return false
}

// CouldStart reports whether a job that is waiting, as of its snapshot st, can still be
// started by an event that may yet come: a watch or template event, a global event the API
// can cause at any time, or an event of a job that live says is live.
func (st Status) CouldStart(live func(job string) bool) bool {
	if st.State != Waiting {
		return false
	}
	for _, t := range st.pending {
		switch {
		case strings.HasPrefix(t.Source, events.WatchPrefix), strings.HasPrefix(t.Source, events.TemplatePrefix):
			return true
		case t.Source == events.Global:
			// reload and maintenance can be asked for at any time through the control API;
			// startup is behind us and shutdown is the end.
			if t.Code == events.Reload || t.Code == events.EnterMaintenance || t.Code == events.ExitMaintenance {
				return true
			}
		case live(t.Source):
			return true
		}
	}
	return false
}

// Holds reports whether t, an event of this job, holds now as a level: the job is healthy
// (healthy), runs (started), or ended completed (exitSuccess) or failed (exitFailed). A
// job added by a reload is primed with the triggers that hold, so it does not wait for an
// edge that came before it existed (docs/jobs.md, "Reload").
func (j *Job) Holds(t config.Trigger) bool {
	if t.Source != j.cfg.Name {
		return false
	}
	st := j.Status()
	switch t.Code {
	case events.Healthy:
		return st.Health == HealthHealthy
	case events.Started:
		return st.runs > 0
	case events.ExitSuccess:
		return st.State == Completed
	case events.ExitFailed:
		return st.State == Failed
	}
	return false
}

// behind reports whether events were queued for the job after the ones its snapshot st
// reflects: the job may still act on them.
func (j *Job) behind(st Status) bool {
	if j.sub == nil {
		return false
	}
	return j.sub.LastSeq() > st.seen
}

// WaitIdleAfter waits until the job has handled every event up to seq, has no run active
// and has published the events of its last run: what a stopping job waits for from its
// hooks, so that their events come before the job's own exit (docs/jobs.md, "Stopping a
// job").
func (j *Job) WaitIdleAfter(ctx context.Context, seq uint64) error {
	for {
		ch := j.Changed()
		st := j.Status()
		if st.seen >= seq && st.runs == 0 && !st.settling && st.State != Starting && st.State != Backoff {
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
		HasHealth: j.hasHealth,
		Shutdown:  j.shutdown,
		paused:    j.mode == paused,
		seen:      j.seen,
		runs:      len(j.runs),
		procs:     j.procRefs(),
		cpuDone:   j.cpuDone,
	}
	if len(j.runs) == 1 {
		for _, ar := range j.runs {
			st.Pid = ar.run.Pid()
		}
	}
	if j.state == Waiting {
		st.pending = j.trig.pending()
		st.timerArmed = j.timeoutT.armed() || j.intervalT.armed() || j.debounceT.armed()
	}
	return st
}

// publishStatus publishes a new snapshot if anything in it changed, and tells the daemon.
func (j *Job) publishStatus() { j.setStatus(j.snapshot()) }

// publishSettling publishes the state a run's end led to while its events are still to
// go out: whoever reacts to them reads the new state, and the job counts as live until
// they are out, so that a job waiting for them does not look like it waits in vain.
func (j *Job) publishSettling() {
	st := j.snapshot()
	st.settling = true
	j.setStatus(st)
}

func (j *Job) setStatus(st Status) {
	j.mu.Lock()
	same := st.State == j.status.State && st.Pid == j.status.Pid && st.Restarts == j.status.Restarts &&
		st.settling == j.status.settling && st.paused == j.status.paused &&
		st.Health == j.status.Health && st.seen == j.status.seen && st.runs == j.status.runs &&
		st.timerArmed == j.status.timerArmed && st.Status == j.status.Status && st.Shutdown == j.status.Shutdown &&
		slices.Equal(st.pending, j.status.pending) && sameCode(st.ExitCode, j.status.ExitCode) &&
		slices.Equal(st.procs, j.status.procs) && st.cpuDone == j.status.cpuDone
	if !same {
		j.status = st
		j.version.Add(1)
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

// CaughtUp reports whether the job, as of its snapshot st, has handled every event queued
// for it: a job started by the startup event has forked its first run by then.
func (j *Job) CaughtUp(st Status) bool { return !j.behind(st) }
