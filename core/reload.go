package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/errdefs"
	"github.com/pilotfish/pilotfish/internal/memtrim"
	"github.com/pilotfish/pilotfish/jobs"
)

var errShuttingDown = errors.New("pilotfish is shutting down")

// Reload results counted in pilotfish_reloads_total.
const (
	ReloadOK      = "ok"
	ReloadInvalid = "invalid"
	ReloadFailed  = "failed"
)

// Reload re-reads the configuration and applies the difference: unchanged jobs keep
// running untouched, changed jobs restart, removed jobs stop, added jobs start. An invalid
// file changes nothing. Build new, diff, swap, stop old (caddy's order): if a new job
// cannot be built, nothing was stopped yet.
func (d *Daemon) Reload(ctx context.Context) (api.Reload, error) {
	if d.shuttingDown.Load() { // shutdown holds reloadMu: answer now, not when it is over
		return api.Reload{}, errdefs.Errorf(errdefs.ErrUnavailable, "pilotfish is shutting down")
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.shuttingDown.Load() {
		return api.Reload{}, errdefs.Errorf(errdefs.ErrUnavailable, "pilotfish is shutting down")
	}
	old := d.config()
	// The load is bounded (docs/configuration.md#limits) and holds no lock that ping, status
	// or the bus need; shutdown cuts it short.
	copts := configOptions(d.env.Map())
	copts.Main, copts.Context = d.opts.Main, d.loads
	cfg, diags := config.Load(old.Sources, copts)
	if cfg == nil {
		if d.loads.Err() != nil {
			return api.Reload{}, errdefs.Errorf(errdefs.ErrUnavailable, "pilotfish is shutting down")
		}
		d.countReload(ReloadInvalid)
		// A refused file may have taken much memory to read and evaluate: give it back now,
		// not at the runtime's leisure, with the parser's pages.
		memtrim.Trim()
		return api.Reload{}, &control.ConfigError{Diagnostics: config.FormatDiagnostics(diags), Errors: countErrors(diags)}
	}
	res := api.Reload{Changed: []string{}, Added: []string{}, Removed: []string{}}
	current := map[string]*jobs.Job{}
	for _, j := range d.jobList() {
		current[j.Name()] = j
	}
	keep := map[string]*jobs.Job{}
	stop := map[string]bool{}
	for _, jc := range cfg.Jobs {
		prev := old.Job(jc.Name)
		switch {
		case prev == nil:
			res.Added = append(res.Added, jc.Name)
		case prev.Equal(jc):
			keep[jc.Name] = current[jc.Name]
		default:
			res.Changed = append(res.Changed, jc.Name)
			stop[jc.Name] = true
		}
	}
	for _, jc := range old.Jobs {
		if cfg.Job(jc.Name) == nil {
			res.Removed = append(res.Removed, jc.Name)
			stop[jc.Name] = true
		}
	}

	d.reloading.Store(true)
	defer func() {
		d.reloading.Store(false)
		d.poke()
	}()
	next, err := d.buildJobs(cfg, keep)
	if err == nil {
		if err = d.applyTelemetry(cfg); err != nil {
			for _, j := range next {
				if keep[j.Name()] == nil {
					j.Close()
				}
			}
		}
	}
	if err != nil {
		d.countReload(ReloadFailed)
		return api.Reload{}, fmt.Errorf("cannot apply the new configuration (nothing was changed): %w", err)
	}
	var fresh []*jobs.Job
	for _, j := range next {
		if keep[j.Name()] == nil {
			fresh = append(fresh, j)
		}
	}

	// Stop what goes away in the old configuration's reverse dependency order.
	stopCtx, cancel := context.WithTimeout(context.Background(), old.StopTimeout)
	d.stopInOrder(stopCtx, old, d.jobList(), stop)
	cancel()
	for name := range stop {
		current[name].Close()
		if cfg.Job(name) == nil {
			d.tel.ForgetJob(name)
		}
	}

	if d.shuttingDown.Load() {
		// The shutdown stopped waiting for this reload (its budget ran out) and took the
		// job list as it was: start nothing it would not stop.
		for _, j := range fresh {
			j.Close()
		}
		d.countReload(ReloadFailed)
		return api.Reload{}, errdefs.Errorf(errdefs.ErrUnavailable, "pilotfish is shutting down")
	}
	levels := d.levels(keep)
	for _, j := range fresh {
		if err := j.Prime(levels(j.Config())); err != nil {
			d.log.Error("cannot prime job", "err", err) // fresh jobs have not started: a bug
		}
	}
	d.mu.Lock()
	d.cfg, d.jobs = cfg, next
	d.mu.Unlock()
	d.applySettings(old, cfg)
	d.keepLogs(cfg)
	d.reloadDiscovery(old, cfg)
	d.reloadTemplates(cfg)
	for _, j := range fresh {
		j.Start()
	}
	d.countReload(ReloadOK)
	d.log.Info("configuration reloaded", "changed", res.Changed, "added", res.Added, "removed", res.Removed)
	d.bus.Publish(events.Reload, events.Global, nil)
	d.bus.Publish(events.Startup, events.Global, nil)
	memtrim.Trim() // the parser's pages, and what the old configuration held
	return res, nil
}

// levels returns, for a job built by a reload, which of its triggers on kept jobs already
// hold (jobs.Job.Holds), so that it does not wait for an edge that happened before it
// existed. The job itself uses them only for once and after.
func (d *Daemon) levels(kept map[string]*jobs.Job) func(*config.Job) []config.Trigger {
	return func(jc *config.Job) []config.Trigger {
		var out []config.Trigger
		for _, t := range jc.When.Triggers() {
			if src, ok := kept[t.Source]; ok && src.Holds(t) {
				out = append(out, t)
			}
		}
		return out
	}
}

// applySettings takes over the top-level settings that can change while running.
func (d *Daemon) applySettings(old, cfg *config.Config) {
	d.logLevel.Set(parseLevel(cfg.Logging.Level))
	if old.Logging.Format != cfg.Logging.Format {
		d.log.Warn("logging.format changes take effect at the next start")
	}
	if old.Control != cfg.Control {
		d.log.Warn("control socket changes take effect at the next start")
	}
}

func (d *Daemon) countReload(result string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reloads[result]++
}
