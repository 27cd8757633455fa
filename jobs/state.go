package jobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/pilotfish/pilotfish/internal/errdefs"
)

// State is where a job is in its life (docs/jobs.md, "States"; /v1/status).
type State string

// The job states.
const (
	Waiting   State = "waiting"   // for its trigger
	Starting  State = "starting"  // its kind is being armed or a run started (never seen between two inputs)
	Running   State = "running"   // at least one run is active
	Backoff   State = "backoff"   // waiting to restart after an exit
	Stopping  State = "stopping"  // a stop is in progress
	Stopped   State = "stopped"   // stopped on request
	Completed State = "completed" // ran and exited 0, will not run again by itself
	Failed    State = "failed"    // ended badly with no restart left, will not run again by itself
	Expired   State = "expired"   // its when.timeout passed first
	Scheduled State = "scheduled" // armed kinds between runs (cron)
	Listening State = "listening" // armed kinds waiting for a connection (inetd, syslog)
)

// allStates lists every state, in the order of docs/jobs.md.
var allStates = []State{Waiting, Starting, Running, Backoff, Stopping, Stopped, Completed, Failed, Expired, Scheduled, Listening}

// Final reports whether a job in this state does nothing until asked again.
func (s State) Final() bool {
	return s == Stopped || s == Completed || s == Failed || s == Expired
}

// armable reports whether a job in this state may keep its kind armed (a schedule, a
// listening socket): leaving these states disarms it.
func (s State) armable() bool {
	return s == Starting || s == Running || s == Stopping || s == Scheduled || s == Listening
}

// transitions is the one table of legal moves, with what causes each (docs/jobs.md,
// "States", says the same in prose; a test holds the two together). setState refuses any
// move that is not here. A move passes through Starting whenever a job is started, so that
// "could not start" and "started" leave from one state.
var transitions = map[State]map[State]string{
	Waiting: {
		Starting: "the trigger fires (at startup for a job without when), or an API start or restart",
		Expired:  "when.timeout passes before the trigger",
		Stopped:  "a stop (API stop, reload, shutdown), or autostart = false at start-up",
		Failed:   "the kind cannot prepare what must exist before startup (a listening socket)",
	},
	Starting: {
		Running:   "a run started (started is published)",
		Scheduled: "a cron job was armed, or its run could not start",
		Listening: "an inetd or syslog job was armed, or its run could not start",
		Backoff:   "the run could not start (exit code 127 or 126) or the kind could not be armed, and a restart is left",
		Waiting:   "as for backoff, with no restart left and a repeating trigger",
		Failed:    "as for backoff, with no restart left and a trigger that does not repeat",
	},
	Running: {
		Backoff:   "the last run exited, a restart is left, and restart_on lets that exit restart",
		Waiting:   "the last run exited, no restart follows, and the trigger repeats",
		Completed: "the last run exited with a success code, no restart follows, and the trigger does not repeat",
		Failed:    "the last run exited with another code or was killed, no restart is left, and the trigger does not repeat",
		Scheduled: "the last run of a cron job ended",
		Listening: "the last run of an inetd job ended",
		Stopping:  "a stop or a restart (API, overlap = \"restart\", health.on_failure = \"restart\", reload, shutdown)",
	},
	Backoff: {
		Starting: "the delay ended, the trigger fired again, or an API start or restart",
		Stopped:  "a stop, or the shutdown",
	},
	Stopping: {
		Stopped: "the last run exited",
		Backoff: "the last run of a health restart exited and a restart is left",
		Waiting: "as for backoff, with no restart left and a repeating trigger",
		Failed:  "as for backoff, with no restart left and a trigger that does not repeat",
	},
	Stopped: {
		Starting: "an API start or restart, or the end of a restart's stop",
	},
	Completed: {
		Starting: "an API start or restart, or a trigger that can still fire (a hook, or a once trigger that had not come when the job was started by hand)",
	},
	Failed: {
		Starting: "an API start or restart, or a trigger that can still fire (as from completed)",
	},
	Expired: {
		Starting: "an API start or restart",
	},
	Scheduled: {
		Starting: "a due time came",
		Stopped:  "a stop",
	},
	Listening: {
		Starting: "a connection or datagram came",
		Stopped:  "a stop",
	},
}

// legal reports whether the table has the move from → to.
func legal(from, to State) bool {
	_, ok := transitions[from][to]
	return ok
}

// errIllegal is what setState answers to a move that is not in the table: a bug.
var errIllegal = errors.New("illegal state transition")

// setState moves the job along one edge of the table: it stamps the time, logs the move,
// and releases what belonged to the state it leaves (the backoff timer, the kind's
// arming). A move missing from the table is refused and logged as an error: the job
// stays where it is.
func (j *Job) setState(to State) error {
	from := j.state
	if to == from {
		return nil
	}
	if !legal(from, to) {
		j.log.Error(errIllegal.Error()+"; this is a bug in pilotfish", "from", from, "to", to)
		return fmt.Errorf("%w: %s to %s", errIllegal, from, to)
	}
	j.log.Debug("state", "from", from, "to", to)
	if from == Backoff {
		j.backoffT.stop()
	}
	if j.armed != nil && !to.armable() {
		j.disarm()
	}
	j.state = to
	j.since = time.Now()
	return nil
}

// mode is what a job does with its inputs besides its state. A job has exactly one.
type mode uint8

const (
	// normal: triggers fire and exits restart as configured.
	normal mode = iota
	// held: stopped on request (a reload, the daemon) or its kind could not prepare;
	// triggers are ignored and nothing restarts until an API start or restart.
	held
	// paused: held by an operator (pilotfish stop JOB), who may start it again: pilotfish
	// stays up for it.
	paused
	// shuttingDown: pilotfish is shutting down; only stopping/stopped hooks fire, nothing
	// restarts and no timer runs. No API call leaves this mode.
	shuttingDown
)

func (m mode) String() string {
	return [...]string{"normal", "held", "paused", "shutting down"}[m]
}

// cannot is the answer to an input the job refuses in its state or mode: "cannot X job N
// while Y", of class ErrConflict. hint, if given, says what to do instead.
func (j *Job) cannot(verb string, hint string) error {
	why := "it is " + string(j.state)
	if j.mode == shuttingDown {
		why = "pilotfish is shutting down"
	}
	msg := fmt.Sprintf("cannot %s job %q while %s", verb, j.cfg.Name, why)
	if hint != "" {
		msg += "; " + hint
	}
	return errdefs.Errorf(ErrConflict, "%s", msg)
}

// Health is the result of the job's probes.
type Health string

// The health values.
const (
	HealthUnknown   Health = "unknown"
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
)
