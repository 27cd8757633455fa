package jobs

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// execKind runs a command; with restarts it is a service, without it a oneshot.
type execKind struct{}

func (execKind) Schema() *hcl.BodySchema         { return &hcl.BodySchema{} }
func (execKind) ExecRule() config.ExecRule       { return config.ExecRequired }
func (execKind) Emits(*config.Job) []events.Code { return processCodes }

var processCodes = []events.Code{events.Started, events.ExitSuccess, events.ExitFailed}

func (execKind) Decode(d *config.Decoder, j *config.Job, _ *hcl.BodyContent) {
	decodeOverlap(d, j, config.OverlapRestart, config.OverlapSkip)
	if j.When != nil && j.When.Interval > 0 && j.Restarts != 0 {
		d.Warnf(j.Range, "job %q runs every %s and also restarts after each exit (restarts = %d); you probably want restarts = \"never\"", j.Name, j.When.Interval, j.Restarts)
	}
}

// decodeOverlap fills the default overlap policy and checks the one given.
func decodeOverlap(d *config.Decoder, j *config.Job, def string, allowed ...string) {
	if j.Overlap == "" {
		j.Overlap = def
		if j.When != nil && j.When.Interval > 0 {
			j.Overlap = config.OverlapSkip
		}
		return
	}
	for _, a := range append(allowed, def) {
		if j.Overlap == a {
			return
		}
	}
	d.Errorf(j.Range, "job %q: overlap %q is not possible for a %s job; use one of %q", j.Name, j.Overlap, j.Kind, append(allowed, def))
}

func (execKind) NewDriver(job *config.Job, rt *Runtime) (Driver, error) {
	out, err := newJobOutput(job, rt)
	if err != nil {
		return nil, err
	}
	return &processDriver{job: job, rt: rt, out: out}, nil
}

// processDriver runs the job's command once per run; exec, and later kinds that wrap a
// process, build on it.
type processDriver struct {
	job *config.Job
	rt  *Runtime
	out *jobOutput
}

func (d *processDriver) Arm() (<-chan Activation, State, error) { return nil, "", nil }
func (d *processDriver) Disarm()                                {}
func (d *processDriver) Concurrent() bool                       { return false }
func (d *processDriver) Close()                                 { d.out.Close() }
func (d *processDriver) Start(req RunRequest) (Run, error) {
	return startProcess(d.job, d.rt, d.out, req)
}
