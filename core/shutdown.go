package core

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/jobs"
)

// shutdown stops every job in reverse dependency order within the top-level stop_timeout,
// then kills what is left, abandons what jobs owe to peers and output nobody reads, so that
// the whole shutdown ends within stop_timeout plus one second (docs/jobs.md, "Shutdown").
func (d *Daemon) shutdown(reason string) {
	d.shuttingDown.Store(true)
	d.stopLoads(errShuttingDown)
	start := time.Now()
	cfg := d.config()
	deadline := start.Add(cfg.StopTimeout)
	d.exitBy = deadline.Add(exitGrace)
	d.log.Info("shutting down", "reason", reason, "stop_timeout", cfg.StopTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// A second SIGINT (Ctrl-C pressed again) ends the wait at once. Repeated SIGTERMs are
	// ignored: wrappers such as timeout(1) deliver one to the process and one to its group.
	go func() {
		for {
			select {
			case sig := <-d.signals:
				switch sig {
				case syscall.SIGINT:
					d.log.Warn("second SIGINT: killing every job now")
					cancel()
					return
				case syscall.SIGTERM:
					d.log.Debug("already shutting down", "signal", sig)
				default:
					if s := sig.(syscall.Signal); d.wrapper || (s != syscall.SIGHUP && s != syscall.SIGUSR1) {
						d.forward(s)
					} else {
						d.log.Debug("already shutting down", "signal", sig)
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	// A reload in progress finishes first, within the budget.
	if d.lockReload(ctx) {
		defer d.reloadMu.Unlock()
	}
	d.bus.Publish(events.Shutdown, events.Global, nil)
	list := d.jobList()
	for _, j := range list {
		_ = j.BeginShutdown(ctx)
	}
	d.stopInOrder(ctx, cfg, list, nil)
	outputBy := deadline
	if ctx.Err() != nil {
		end := time.Now() // the deadline, or a second SIGINT
		d.exitBy = end.Add(exitGrace)
		outputBy = end.Add(outputGrace)
		d.log.Warn("shutdown budget spent; killing what is left", "stop_timeout", cfg.StopTimeout)
		// Nothing waits for a peer any more: a syslog queue toward a target that is down
		// is dropped (and counted) now.
		for _, j := range list {
			j.Abandon()
		}
		kctx, kcancel := context.WithDeadline(context.Background(), end.Add(killGrace))
		for _, j := range list {
			_ = j.KillAll(kctx)
		}
		for _, j := range list {
			_ = j.Stop(kctx)
		}
		kcancel()
	}
	for _, j := range list {
		j.Close()
	}
	// Every line the jobs wrote reaches the terminal before pilotfish exits, even a slow
	// one, until the deadline; what a stdout nobody reads still holds then is dropped.
	if !d.rt.WaitOutput(outputIdle, outputBy) && !d.dropOutput() {
		d.log.Debug("job output still open after shutdown; a leftover process holds it")
	}
	d.exitCode = d.finalCode()
	d.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond), "exit_code", d.exitCode)
}

// lockReload takes reloadMu, waiting at most until ctx ends (then it reports false).
func (d *Daemon) lockReload(ctx context.Context) bool {
	if d.reloadMu.TryLock() {
		return true
	}
	locked := make(chan struct{})
	go func() {
		d.reloadMu.Lock()
		close(locked)
	}()
	select {
	case <-locked:
		return true
	case <-ctx.Done():
		// The reload goes on holding the jobs it stops; the kill phase takes them all. The
		// lock, once the reload lets it go, stays with the goroutine: nothing reloads now.
		return false
	}
}

// dropOutput abandons pilotfish's stdout and stderr where a write is still blocked (nobody
// reads them), and reports what was dropped on stderr, if stderr takes it. It reports
// whether anything was abandoned.
func (d *Daemon) dropOutput() bool {
	abandoned := false
	for _, s := range []*output.Sink{d.stdout, d.stderr} {
		if s.Busy() {
			s.Abandon()
			abandoned = true
		}
	}
	out, errs, logs := d.stdout.Dropped(), d.stderr.Dropped(), d.logw.Dropped()
	if out.Bytes+errs.Bytes+logs.Bytes > 0 {
		d.log.Warn("output nobody read was dropped at the shutdown deadline",
			"stdout_lines", out.Lines, "stdout_bytes", out.Bytes,
			"stderr_lines", errs.Lines, "stderr_bytes", errs.Bytes, "log_lines", logs.Lines)
	}
	return abandoned
}

// flushLogs lets pilotfish's last log lines out before it exits, at most until exitBy (a
// stderr nobody reads must not hold the exit).
func (d *Daemon) flushLogs() {
	by := d.exitBy
	if by.IsZero() {
		by = time.Now().Add(time.Second)
	}
	d.logw.Flush(by)
}

// stopInOrder stops the jobs of list (only those in only, when it is not nil) layer by
// layer in cfg's shutdown order.
func (d *Daemon) stopInOrder(ctx context.Context, cfg *config.Config, list []*jobs.Job, only map[string]bool) {
	byName := map[string]*jobs.Job{}
	for _, j := range list {
		byName[j.Name()] = j
	}
	for _, layer := range cfg.ShutdownOrder() {
		var wg sync.WaitGroup
		for _, name := range layer {
			j := byName[name]
			if j == nil || (only != nil && !only[name]) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := j.Stop(ctx); err != nil {
					d.log.Debug("stop did not finish", "job", name, "err", err)
				}
			}()
		}
		wg.Wait()
	}
}

func (d *Daemon) finalCode() int {
	if m := d.job(config.MainJob); m != nil {
		if code := m.Status().ExitCode; code != nil {
			return *code
		}
		return ExitOK
	}
	if d.failedExit {
		return ExitJobFailed
	}
	return ExitOK
}
