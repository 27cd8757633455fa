package core

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/internal/reaper"
	"github.com/pilotfish/pilotfish/jobs"
)

// Exit codes of SPEC §6 besides the main job's own.
const (
	ExitOK          = 0
	ExitJobFailed   = 1
	ExitConfigError = 2
)

// Options are what main hands to Run.
type Options struct {
	ConfigPath string
	Main       []string // the command after --
	Env        []string // pilotfish's environment
	Stdout     io.Writer
	Stderr     io.Writer
	Version    string
}

// forwarded are the signals passed on to the main job. SIGURG is left alone (the Go runtime
// uses it) and SIGTTIN/SIGTTOU are ignored so that pilotfish never stops itself on the
// terminal it handed to the main job.
var forwarded = []os.Signal{syscall.SIGQUIT, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGALRM,
	syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGPWR, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGXCPU, syscall.SIGXFSZ}

// Daemon is one running pilotfish.
type Daemon struct {
	opts   Options
	cfg    *config.Config
	log    *slog.Logger
	bus    *events.Bus
	reaper *reaper.Reaper
	env    *environ
	rt     *jobs.Runtime

	mu   sync.Mutex
	jobs []*jobs.Job // in configuration order

	pokes   chan struct{}
	signals chan os.Signal

	shutdownOnce sync.Once
	shutdownReq  chan string
	exitCode     int
	failedExit   bool
}

// Run is pilotfish's `run` command: it returns the process exit code.
func Run(opts Options) int {
	// Signal handlers go in first: from here on SIGTERM means a graceful shutdown.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1}, forwarded...)...)
	signal.Ignore(syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE)
	defer signal.Stop(sigs)

	env := newEnviron(opts.Env)
	cfg, diags := config.Load(opts.ConfigPath, config.Options{Env: env.Map(), Kinds: jobs.ConfigKinds(), Main: opts.Main})
	for _, line := range config.FormatDiagnostics(diags) {
		fmt.Fprintln(opts.Stderr, line)
	}
	if cfg == nil {
		fmt.Fprintf(opts.Stderr, "error: %s is not valid (%d errors)\n", opts.ConfigPath, countErrors(diags))
		return ExitConfigError
	}
	d := &Daemon{
		opts:        opts,
		cfg:         cfg,
		log:         newLogger(opts.Stderr, cfg.Logging.Level, cfg.Logging.Format),
		bus:         events.NewBus(nil),
		reaper:      reaper.New(),
		env:         env,
		pokes:       make(chan struct{}, 1),
		signals:     sigs,
		shutdownReq: make(chan string, 1),
	}
	return d.run()
}

func countErrors(diags hcl.Diagnostics) int {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (d *Daemon) run() int {
	d.reaper.OnOrphan = func(st reaper.Status) { d.log.Debug("reaped orphan", "pid", st.Pid, "status", st.String()) }
	if err := d.reaper.Start(); err != nil {
		d.log.Error("cannot reap children", "err", err)
		return ExitJobFailed
	}
	defer d.reaper.Stop()

	d.rt = &jobs.Runtime{
		Bus:      d.bus,
		Spawner:  d.reaper,
		Stdout:   output.NewSink(d.opts.Stdout),
		Stderr:   output.NewSink(d.opts.Stderr),
		Log:      d.log,
		Environ:  d.env.List,
		OnChange: d.poke,
	}
	built, err := d.buildJobs(d.cfg)
	if err != nil {
		d.log.Error("cannot set up jobs", "err", err)
		return ExitJobFailed
	}
	d.jobs = built
	for _, j := range d.jobs {
		j.Start()
	}
	d.log.Info("pilotfish started", "version", d.opts.Version, "pid", os.Getpid(), "config", d.cfg.Path, "jobs", len(d.jobs))
	d.bus.Publish(events.Startup, events.Global, nil)
	d.poke()

	reason := d.supervise()
	d.shutdown(reason)
	return d.exitCode
}

// buildJobs creates the jobs of cfg and tells each which jobs are its stopping hooks.
func (d *Daemon) buildJobs(cfg *config.Config) ([]*jobs.Job, error) {
	var out []*jobs.Job
	byName := map[string]*jobs.Job{}
	for _, jc := range cfg.Jobs {
		j, err := jobs.New(jc, d.rt)
		if err != nil {
			for _, b := range out {
				b.Close()
			}
			return nil, err
		}
		out = append(out, j)
		byName[jc.Name] = j
	}
	for _, j := range out {
		j.SetHooks(stoppingHooks(cfg, j.Name(), byName))
	}
	return out, nil
}

// stoppingHooks are the jobs triggered by name's stopping event: its stop waits for them.
func stoppingHooks(cfg *config.Config, name string, byName map[string]*jobs.Job) []*jobs.Job {
	var hooks []*jobs.Job
	for _, jc := range cfg.Jobs {
		for _, t := range jc.When.Triggers() {
			if t.Source == name && t.Code == events.Stopping {
				hooks = append(hooks, byName[jc.Name])
				break
			}
		}
	}
	return hooks
}

func (d *Daemon) poke() {
	select {
	case d.pokes <- struct{}{}:
	default:
	}
}

// supervise runs until pilotfish must shut down and says why.
func (d *Daemon) supervise() string {
	for {
		select {
		case sig := <-d.signals:
			if reason := d.onSignal(sig.(syscall.Signal)); reason != "" {
				return reason
			}
		case reason := <-d.shutdownReq:
			return reason
		case <-d.pokes:
			if reason := d.check(); reason != "" {
				return reason
			}
		}
	}
}

func (d *Daemon) onSignal(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		return "received " + config.SignalName(sig)
	case syscall.SIGHUP:
		d.log.Warn("SIGHUP asks for a reload; reload is not available in this build yet")
	case syscall.SIGUSR1:
		d.log.Warn("SIGUSR1 toggles maintenance; maintenance is not available in this build yet")
	default:
		if m := d.job(config.MainJob); m != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := m.Signal(ctx, sig); err != nil {
				d.log.Debug("cannot forward signal to the main job", "signal", config.SignalName(sig), "err", err)
			}
		} else {
			d.log.Debug("signal ignored: there is no main job to forward it to", "signal", config.SignalName(sig))
		}
	}
	return ""
}

func (d *Daemon) job(name string) *jobs.Job {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.jobs {
		if j.Name() == name {
			return j
		}
	}
	return nil
}

func (d *Daemon) jobList() []*jobs.Job {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*jobs.Job(nil), d.jobs...)
}

// check decides, after any job changed, whether pilotfish must end: the main job exited, a
// job failed for good with exit_on_failure, or nothing can ever run again.
func (d *Daemon) check() string {
	list := d.jobList()
	status := make(map[string]jobs.Status, len(list))
	for _, j := range list {
		status[j.Name()] = j.Status()
	}
	if m, ok := status[config.MainJob]; ok && m.State.Final() && m.ExitCode != nil {
		return fmt.Sprintf("the main job ended with exit code %d", *m.ExitCode)
	}
	if d.cfg.ExitOnFailure {
		for _, st := range status {
			if st.State == jobs.Failed {
				d.failedExit = true
				return fmt.Sprintf("job %q failed and exit_on_failure is set", st.Name)
			}
		}
	}
	if !anyLive(list, status) {
		return "no job is running or can start again"
	}
	return ""
}

// anyLive reports whether some job runs, or could still be started by an event that can
// still come.
func anyLive(list []*jobs.Job, status map[string]jobs.Status) bool {
	live := map[string]bool{}
	for _, j := range list {
		st := status[j.Name()]
		switch st.State {
		case jobs.Starting, jobs.Running, jobs.Backoff, jobs.Stopping, jobs.Scheduled, jobs.Listening:
			live[st.Name] = true
		case jobs.Waiting:
			if st.TimerArmed || st.Runs > 0 || j.Behind() {
				live[st.Name] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, j := range list {
			st := status[j.Name()]
			if live[st.Name] || st.State != jobs.Waiting {
				continue
			}
			for _, p := range st.Pending {
				if canCome(p, live) {
					live[st.Name], changed = true, true
					break
				}
			}
		}
	}
	return len(live) > 0
}

// canCome reports whether an awaited event may still be published.
func canCome(t config.Trigger, live map[string]bool) bool {
	switch {
	case strings.HasPrefix(t.Source, events.WatchPrefix):
		return true
	case t.Source == events.Global:
		// Reload and maintenance can be asked for at any time; startup and shutdown are
		// behind us or the end.
		return t.Code == events.Reload || t.Code == events.EnterMaintenance || t.Code == events.ExitMaintenance
	}
	return live[t.Source]
}

// shutdown stops every job in reverse dependency order within the top-level stop_timeout.
func (d *Daemon) shutdown(reason string) {
	start := time.Now()
	d.log.Info("shutting down", "reason", reason, "stop_timeout", d.cfg.StopTimeout)
	d.bus.Publish(events.Shutdown, events.Global, nil)
	list := d.jobList()
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.StopTimeout)
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
					d.log.Debug("already shutting down")
				default:
					d.onSignal(sig.(syscall.Signal))
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	for _, j := range list {
		_ = j.BeginShutdown(ctx)
	}
	byName := map[string]*jobs.Job{}
	for _, j := range list {
		byName[j.Name()] = j
	}
	for _, layer := range d.cfg.ShutdownOrder() {
		var wg sync.WaitGroup
		for _, name := range layer {
			j := byName[name]
			if j == nil {
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
	if ctx.Err() != nil {
		d.log.Warn("shutdown budget spent; killing what is left", "stop_timeout", d.cfg.StopTimeout)
		kctx, kcancel := context.WithTimeout(context.Background(), time.Second)
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
	d.exitCode = d.finalCode()
	d.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond), "exit_code", d.exitCode)
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
