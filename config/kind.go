package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/events"
)

// ExecRule says whether a kind needs the `exec` key.
type ExecRule int

// The ExecRule values.
const (
	ExecRequired ExecRule = iota
	ExecOptional
	ExecForbidden
)

// Kind is the configuration half of a job kind. Package jobs implements one per kind and
// hands the table to Load.
type Kind interface {
	// Schema lists the attributes and blocks the kind adds to a job block.
	Schema() *hcl.BodySchema
	// ExecRule tells whether `exec` is required, optional or not allowed.
	ExecRule() ExecRule
	// Decode reads the kind's own keys into job.Spec, fills kind-specific defaults (such as
	// Overlap) and checks that the common keys make sense for the kind.
	Decode(d *Decoder, job *Job, content *hcl.BodyContent)
	// Emits lists the job codes this job publishes besides stopping and stopped, which every
	// job publishes, and healthy/unhealthy and timerExpired, which follow from `health` and
	// `when.timeout`.
	Emits(job *Job) []events.Code
}

// Armed is implemented by the kinds whose runs are started by a trigger of their own (a
// schedule, a connection). Such a kind refuses health.on_failure = "restart" itself, in its
// own words, so the common checks say nothing more of it.
type Armed interface{ Armed() bool }

// Emits lists every code the job can publish.
func Emits(kinds map[string]Kind, job *Job) []events.Code {
	out := []events.Code{events.Stopping, events.Stopped}
	switch k, ok := kinds[job.Kind]; {
	case job.RegistrationOnly():
		out = append(out, events.Started) // the service is up: no process, no exit
	case ok:
		out = append(out, k.Emits(job)...)
	}
	if job.Health != nil {
		out = append(out, events.Healthy, events.Unhealthy)
	}
	if job.When != nil && job.When.Timeout > 0 {
		out = append(out, events.TimerExpired)
	}
	return out
}
