package jobs

import (
	"time"

	"github.com/pilotfish/pilotfish/config"
)

// State is where a job is in its life (SPEC §4, /v1/status).
type State string

// The job states.
const (
	Waiting   State = "waiting"   // for its trigger
	Starting  State = "starting"  // a run is being started
	Running   State = "running"   // a run is active
	Backoff   State = "backoff"   // waiting to restart after an exit
	Stopping  State = "stopping"  // stop in progress
	Stopped   State = "stopped"   // stopped on request
	Completed State = "completed" // ran and exited 0, will not run again
	Failed    State = "failed"    // exited non-zero with no restarts left
	Expired   State = "expired"   // its when.timeout passed first
	Scheduled State = "scheduled" // armed kinds between runs (cron)
	Listening State = "listening" // armed kinds waiting for a connection (inetd, syslog)
)

// Final reports whether a job in this state does nothing until asked again.
func (s State) Final() bool {
	return s == Stopped || s == Completed || s == Failed || s == Expired
}

// Health is the result of the job's probes.
type Health string

// The health values.
const (
	HealthUnknown   Health = "unknown"
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
)

// Status is a snapshot of one job.
type Status struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	State    State     `json:"state"`
	Pid      int       `json:"pid"`
	Restarts int       `json:"restarts"`
	Health   Health    `json:"health"`
	ExitCode *int      `json:"exit_code"`
	Since    time.Time `json:"since"`
	Status   string    `json:"status"`

	// Seen is the sequence number of the last bus event the job has handled.
	Seen uint64 `json:"-"`
	// Paused is true for a job an operator stopped: it may be started again.
	Paused bool `json:"-"`
	// Settling is true while the events of a run that just ended are being published.
	Settling bool `json:"-"`
	// Pending lists the triggers still awaited while Waiting (for liveness).
	Pending []config.Trigger `json:"-"`
	// TimerArmed is true while a when.timeout or interval timer is running.
	TimerArmed bool `json:"-"`
	// Runs is the number of active runs.
	Runs int `json:"-"`
	// HasHealth tells whether the job is expected to report health.
	HasHealth bool `json:"-"`
}
