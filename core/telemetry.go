package core

import (
	"errors"
	"maps"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/errdefs"
	"github.com/pilotfish/pilotfish/jobs"
	"github.com/pilotfish/pilotfish/telemetry"
)

// metricsSource adapts the daemon to what telemetry reads at scrape time.
type metricsSource struct{ d *Daemon }

var _ telemetry.Source = metricsSource{}

func (s metricsSource) Jobs() []telemetry.JobSample {
	list := s.d.jobList()
	use := jobs.Usages(list)
	out := make([]telemetry.JobSample, 0, len(list))
	for i, j := range list {
		st := j.Status()
		out = append(out, telemetry.JobSample{
			Name:        st.Name,
			State:       string(st.State),
			Restarts:    st.Restarts,
			HasHealth:   st.HasHealth,
			Healthy:     st.Health == jobs.HealthHealthy,
			Counters:    counters(j.Counters()),
			Processes:   j.RunsProcesses(),
			CPUSeconds:  use[i].CPU.Seconds(),
			MemoryBytes: use[i].Memory,
		})
	}
	return out
}

func counters(cs []jobs.Counter) []telemetry.CounterSample {
	out := make([]telemetry.CounterSample, len(cs))
	for i, c := range cs {
		out[i] = telemetry.CounterSample{Metric: c.Metric, Label: c.Label, Value: c.Value, N: c.N}
	}
	return out
}

func (s metricsSource) Bus() *events.Bus { return s.d.bus }
func (s metricsSource) Orphans() uint64  { return s.d.reaper.Orphans() }

func (s metricsSource) Reloads() map[string]uint64 {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return maps.Clone(s.d.reloads)
}

func (s metricsSource) ConsulErrors() map[string]uint64 {
	if s.d.disc == nil {
		return nil
	}
	return s.d.disc.Errors()
}

// applyTelemetry installs cfg's custom metrics and moves the TCP listener when its address
// changed. It runs before the configuration is swapped in, so a failure leaves the old one.
func (d *Daemon) applyTelemetry(cfg *config.Config) error {
	var defs []*config.Metric
	listen := ""
	if cfg.Telemetry != nil {
		defs, listen = cfg.Telemetry.Metrics, cfg.Telemetry.Listen
	}
	if listen != d.telListen {
		var next *telemetry.Listener
		if listen != "" {
			var err error
			if next, err = telemetry.Listen(listen, d.tel.Handler(), control.HealthHandler(d), d.log); err != nil {
				return err
			}
			d.log.Info("serving metrics and health", "listen", next.Addr())
		}
		if d.telListener != nil {
			d.telListener.Close()
		}
		d.telListener, d.telListen = next, listen
	}
	return d.tel.Apply(defs)
}

// PutMetrics updates custom metrics.
func (d *Daemon) PutMetrics(updates []api.Metric) error {
	us := make([]telemetry.Update, len(updates))
	for i, u := range updates {
		us[i] = telemetry.Update{Name: u.Name, Value: u.Value, Labels: u.Labels, Add: u.Add}
	}
	err := d.tel.Put(us)
	var ue *telemetry.UpdateError
	switch {
	case !errors.As(err, &ue):
		return err
	case ue.Unknown:
		return errdefs.Wrap(errdefs.ErrNotFound, err)
	}
	return errdefs.Wrap(errdefs.ErrInvalid, err)
}
