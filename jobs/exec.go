package jobs

import (
	"sync"
	"syscall"

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
	if job.RegistrationOnly() {
		return serviceDriver{}, nil
	}
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

// serviceDriver is the driver of a job that runs no command (docs/configuration.md, "A job
// that runs nothing"): a run is the service being up, from the job's trigger until it is
// stopped; the stop signal ends it at once.
type serviceDriver struct{}

func (serviceDriver) Arm() (<-chan Activation, State, error) { return nil, "", nil }
func (serviceDriver) Disarm()                                {}
func (serviceDriver) Concurrent() bool                       { return false }
func (serviceDriver) Close()                                 {}
func (serviceDriver) Start(req RunRequest) (Run, error)      { return &serviceRun{exit: req.Exit}, nil }

type serviceRun struct {
	once sync.Once
	exit func(Result)
}

func (r *serviceRun) Pid() int { return 0 }

// Signal ends the run: there is no process to keep running. The exit is delivered off the
// caller's goroutine, which is the job's loop.
func (r *serviceRun) Signal(syscall.Signal) error {
	r.once.Do(func() { go r.exit(Result{}) })
	return nil
}
