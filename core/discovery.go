package core

import (
	"context"
	"log"
	"log/slog"
	"reflect"
	"strings"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/discovery"
)

// startDiscovery connects to Consul when the configuration has a consul block. Consul does
// not need to be up: registrations and watches retry until it is.
func (d *Daemon) startDiscovery() error {
	if d.cfg.Consul == nil {
		return nil
	}
	backend, err := discovery.NewConsul(d.cfg.Consul)
	if err != nil {
		return err
	}
	// net/http reports a few things (an unsolicited answer on an idle connection, such as
	// Consul's 429 to a connection over its per-client limit) through the standard logger:
	// they go to pilotfish's log, not raw onto stderr.
	log.SetFlags(0)
	log.SetOutput(stdLogWriter{d.log.With("component", "http")})
	d.disc = discovery.New(discovery.Options{Backend: backend, Bus: d.bus, Log: d.log})
	if err := d.disc.Apply(context.Background(), d.cfg, d.selfAddr(d.cfg)); err != nil {
		return err
	}
	d.disc.Start()
	d.rt.PreStop = d.disc.PreStop
	return nil
}

// selfAddr is the telemetry listener's host:port to register as service "pilotfish", or "".
func (d *Daemon) selfAddr(cfg *config.Config) string {
	if cfg.Telemetry == nil || !cfg.Telemetry.Register || d.telListener == nil {
		return ""
	}
	return d.telListener.Addr()
}

// stopDiscovery deregisters what the agent may still hold, within what is left of the
// shutdown budget (docs/consul.md#deregistration).
func (d *Daemon) stopDiscovery() {
	if d.disc == nil {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), d.disc.CloseDeadline(d.config().StopTimeout))
	defer cancel()
	d.disc.Close(ctx)
}

func (d *Daemon) reloadDiscovery(old, cfg *config.Config) {
	if (old.Consul == nil) != (cfg.Consul == nil) || !reflect.DeepEqual(old.Consul, cfg.Consul) {
		d.log.Warn("consul block changes take effect at the next start")
	}
	if d.disc == nil {
		return
	}
	if err := d.disc.Apply(context.Background(), cfg, d.selfAddr(cfg)); err != nil {
		d.log.Warn("cannot apply services and watches", "err", err)
	}
}

func (d *Daemon) watchViews() []api.Watch {
	out := []api.Watch{}
	if d.disc == nil {
		return out
	}
	for _, w := range d.disc.Watches() {
		out = append(out, api.Watch{Name: w.Name, Healthy: w.Healthy, Instances: w.Instances})
	}
	return out
}

// stdLogWriter turns the standard logger's lines into warnings of pilotfish's log.
type stdLogWriter struct{ log *slog.Logger }

func (w stdLogWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}
