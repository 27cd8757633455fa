package core

import (
	"context"
	"math"
	"net/http"
	"syscall"

	"github.com/pilotfish/pilotfish/control"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/errdefs"
	"github.com/pilotfish/pilotfish/jobs"
)

// The Daemon is the control API's backend.
var _ control.Backend = (*Daemon)(nil)

// Version is the build's version.
func (d *Daemon) Version() string { return d.opts.Version }

// Bus is the event bus.
func (d *Daemon) Bus() *events.Bus { return d.bus }

// jobView is a job as the API shows it: the one place jobs.Status becomes api.Job.
func jobView(st jobs.Status, u jobs.Usage) api.Job {
	return api.Job{Name: st.Name, Kind: st.Kind, State: string(st.State), Pid: st.Pid, Restarts: st.Restarts,
		Health: string(st.Health), ExitCode: st.ExitCode, Since: st.Since, Status: st.Status,
		CPUSeconds: u.CPU.Seconds(), MemoryBytes: u.Memory, CPUPercent: math.Round(u.CPUPercent*10) / 10}
}

// jobViews shows jobs with what they use, read in one pass over /proc, and what their
// status snapshot does not hold: a cron job's next run.
func jobViews(list []*jobs.Job) []api.Job {
	use := jobs.Usages(list)
	out := make([]api.Job, len(list))
	for i, j := range list {
		out[i] = jobView(j.Status(), use[i])
		if t := j.NextRun(); !t.IsZero() {
			out[i].NextRun = &t
		}
	}
	return out
}

// Status lists every job in configuration order.
func (d *Daemon) Status() api.Status {
	out := api.Status{Jobs: jobViews(d.jobList()), Watches: d.watchViews()}
	d.mu.Lock()
	out.Maintenance = d.maintenance
	d.mu.Unlock()
	return out
}

func (d *Daemon) lookup(name string) (*jobs.Job, error) {
	if j := d.job(name); j != nil {
		return j, nil
	}
	return nil, errdefs.Errorf(errdefs.ErrNotFound, "there is no job %q", name)
}

// Job returns one job's status.
func (d *Daemon) Job(name string) (api.Job, error) {
	j, err := d.lookup(name)
	if err != nil {
		return api.Job{}, err
	}
	return jobViews([]*jobs.Job{j})[0], nil
}

// StartJob starts a job now.
func (d *Daemon) StartJob(ctx context.Context, name string) (api.Job, error) {
	return d.jobCall(ctx, name, (*jobs.Job).StartNow)
}

// StopJob stops a job and waits until it has stopped.
func (d *Daemon) StopJob(ctx context.Context, name string) (api.Job, error) {
	return d.jobCall(ctx, name, (*jobs.Job).Pause)
}

// RestartJob restarts a job.
func (d *Daemon) RestartJob(ctx context.Context, name string) (api.Job, error) {
	return d.jobCall(ctx, name, (*jobs.Job).Restart)
}

func (d *Daemon) jobCall(ctx context.Context, name string, fn func(*jobs.Job, context.Context) error) (api.Job, error) {
	if d.shuttingDown.Load() {
		return api.Job{}, errdefs.Errorf(errdefs.ErrUnavailable, "pilotfish is shutting down")
	}
	j, err := d.lookup(name)
	if err != nil {
		return api.Job{}, err
	}
	if err := fn(j, ctx); err != nil {
		return api.Job{}, err
	}
	return jobViews([]*jobs.Job{j})[0], nil
}

// SignalJob sends a signal to a job's processes.
func (d *Daemon) SignalJob(ctx context.Context, name string, sig syscall.Signal) error {
	j, err := d.lookup(name)
	if err != nil {
		return err
	}
	return j.Signal(ctx, sig)
}

// SetMaintenance switches maintenance mode and publishes the edge.
func (d *Daemon) SetMaintenance(ctx context.Context, on bool) error {
	d.mu.Lock()
	changed := d.maintenance != on
	d.maintenance = on
	d.mu.Unlock()
	if !changed {
		return nil
	}
	code := events.ExitMaintenance
	if on {
		code = events.EnterMaintenance
	}
	d.log.Info("maintenance", "on", on)
	if d.disc != nil {
		d.disc.SetMaintenance(ctx, on)
	}
	d.bus.Publish(code, events.Global, nil)
	return nil
}

// PutEnv records environment values for later job starts and the next reload.
func (d *Daemon) PutEnv(env map[string]string) error {
	if err := d.env.Set(env); err != nil {
		return err
	}
	d.log.Info("environment updated", "keys", len(env))
	d.envChanged()
	return nil
}

// Metrics serves the Prometheus exposition.
func (d *Daemon) Metrics() http.Handler { return d.tel.Handler() }

// Health is 200 when every job with a health check that should be up is healthy and
// maintenance is off.
func (d *Daemon) Health() (api.Health, bool) {
	h := api.Health{Status: "ok", Failing: []api.HealthProblem{}}
	for _, j := range d.jobList() {
		st := j.Status()
		if !st.HasHealth || st.State == jobs.Completed || st.State == jobs.Stopped {
			continue
		}
		if st.Health != jobs.HealthHealthy {
			h.Failing = append(h.Failing, api.HealthProblem{Job: st.Name, State: string(st.State), Health: string(st.Health)})
		}
	}
	d.mu.Lock()
	h.Maintenance = d.maintenance
	d.mu.Unlock()
	switch {
	case h.Maintenance:
		h.Status = "maintenance"
	case len(h.Failing) > 0:
		h.Status = "unhealthy"
	}
	return h, h.Status == "ok"
}

// Shutdown asks the supervisor to shut down.
func (d *Daemon) Shutdown(reason string) {
	select {
	case d.shutdownReq <- reason:
	default:
	}
}
