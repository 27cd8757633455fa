package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/pilotfish/pilotfish/control"
	"github.com/pilotfish/pilotfish/control/client"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/jobs"
)

// The Daemon is the control API's backend.
var _ control.Backend = (*Daemon)(nil)

// Version is the build's version.
func (d *Daemon) Version() string { return d.opts.Version }

// Bus is the event bus.
func (d *Daemon) Bus() *events.Bus { return d.bus }

func jobView(st jobs.Status) client.Job {
	return client.Job{Name: st.Name, Kind: st.Kind, State: string(st.State), Pid: st.Pid, Restarts: st.Restarts,
		Health: string(st.Health), ExitCode: st.ExitCode, Since: st.Since, Status: st.Status}
}

// Status lists every job in configuration order.
func (d *Daemon) Status() client.Status {
	out := client.Status{Jobs: []client.Job{}, Watches: d.watchViews()}
	for _, j := range d.jobList() {
		out.Jobs = append(out.Jobs, jobView(j.Status()))
	}
	d.mu.Lock()
	out.Maintenance = d.maintenance
	d.mu.Unlock()
	return out
}

func (d *Daemon) lookup(name string) (*jobs.Job, error) {
	if j := d.job(name); j != nil {
		return j, nil
	}
	return nil, fmt.Errorf("%w: there is no job %q", control.ErrNotFound, name)
}

// Job returns one job's status.
func (d *Daemon) Job(name string) (client.Job, error) {
	j, err := d.lookup(name)
	if err != nil {
		return client.Job{}, err
	}
	return jobView(j.Status()), nil
}

// StartJob starts a job now.
func (d *Daemon) StartJob(ctx context.Context, name string) (client.Job, error) {
	return d.jobCall(ctx, name, (*jobs.Job).StartNow)
}

// StopJob stops a job and waits until it has stopped.
func (d *Daemon) StopJob(ctx context.Context, name string) (client.Job, error) {
	return d.jobCall(ctx, name, (*jobs.Job).Pause)
}

// RestartJob restarts a job.
func (d *Daemon) RestartJob(ctx context.Context, name string) (client.Job, error) {
	return d.jobCall(ctx, name, (*jobs.Job).Restart)
}

func (d *Daemon) jobCall(ctx context.Context, name string, fn func(*jobs.Job, context.Context) error) (client.Job, error) {
	if d.shuttingDown.Load() {
		return client.Job{}, fmt.Errorf("%w: pilotfish is shutting down", control.ErrUnavailable)
	}
	j, err := d.lookup(name)
	if err != nil {
		return client.Job{}, err
	}
	if err := fn(j, ctx); err != nil {
		return client.Job{}, jobError(err)
	}
	return jobView(j.Status()), nil
}

// SignalJob sends a signal to a job's processes.
func (d *Daemon) SignalJob(ctx context.Context, name string, sig syscall.Signal) error {
	j, err := d.lookup(name)
	if err != nil {
		return err
	}
	return jobError(j.Signal(ctx, sig))
}

func jobError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jobs.ErrConflict):
		return fmt.Errorf("%w: %s", control.ErrConflict, strings.TrimPrefix(err.Error(), jobs.ErrConflict.Error()+": "))
	case errors.Is(err, jobs.ErrGone):
		return fmt.Errorf("%w: %v", control.ErrNotFound, err)
	}
	return err
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
func (d *Daemon) Health() (client.Health, bool) {
	h := client.Health{Status: "ok", Failing: []client.HealthProblem{}}
	for _, j := range d.jobList() {
		st := j.Status()
		if !st.HasHealth || st.State == jobs.Completed || st.State == jobs.Stopped {
			continue
		}
		if st.Health != jobs.HealthHealthy {
			h.Failing = append(h.Failing, client.HealthProblem{Job: st.Name, State: string(st.State), Health: string(st.Health)})
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
