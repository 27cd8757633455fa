package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control"
	"github.com/pilotfish/pilotfish/discovery"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/internal/reaper"
	"github.com/pilotfish/pilotfish/jobs"
	"github.com/pilotfish/pilotfish/telemetry"
	"github.com/pilotfish/pilotfish/template"
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
	// ConfigOptional: the path is the default, not asked for; with a main command and no
	// file there, pilotfish runs the command alone (ENTRYPOINT ["pilotfish", "--"]).
	ConfigOptional bool
	Main           []string // the command after --
	Env            []string // pilotfish's environment
	Stdout         io.Writer
	Stderr         io.Writer
	Version        string
	// Signals, if set, has been catching SIGTERM and SIGINT since the process started
	// (internal/sigearly); Run adds the other signals to it.
	Signals chan os.Signal
}

// outputIdle is how long an exiting pilotfish waits for job output that has stopped moving.
const outputIdle = 500 * time.Millisecond

// The shutdown budget past the top-level stop_timeout (docs/jobs.md, "Shutdown"): the
// whole shutdown ends within stop_timeout plus one second, whatever the outside world does.
const (
	killGrace   = 400 * time.Millisecond // SIGKILL what is left and see it die
	outputGrace = 500 * time.Millisecond // the last output of a job killed at the deadline
	exitGrace   = 800 * time.Millisecond // pilotfish's own last log lines; then it exits
)

// Daemon is one running pilotfish.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	stdout   *output.Sink      // pilotfish's stdout and stderr, shared by every job
	stderr   *output.Sink      // (docs/jobs.md, "Logging")
	logw     *output.LogWriter // pilotfish's own log lines, queued for stderr
	exitBy   time.Time         // when the last log lines must be out (set by shutdown)
	logLevel *slog.LevelVar
	bus      *events.Bus
	reaper   *reaper.Reaper
	env      *environ
	rt       *jobs.Runtime
	ctl      *control.Server
	tel      *telemetry.Telemetry
	disc     *discovery.Manager // nil without a consul block
	outer    *outerNotify       // nil without NOTIFY_SOCKET

	tmpls atomic.Pointer[template.Engine] // the template blocks (core/templates.go)

	telListener *telemetry.Listener
	telListen   string

	mu          sync.Mutex
	cfg         *config.Config
	jobs        []*jobs.Job // in configuration order
	maintenance bool

	reloadMu     sync.Mutex
	reloading    atomic.Bool
	shuttingDown atomic.Bool
	stopLoads    context.CancelCauseFunc // at shutdown: a reload's load ends at once
	loads        context.Context
	reloads      map[string]uint64 // by result, under mu

	pokes     chan struct{}
	signals   <-chan os.Signal
	pending   []os.Signal      // signals that came before supervise, handled first
	inherited []syscall.Signal // ignored when pilotfish started: left ignored, for its jobs too
	// wrapper: `pilotfish -- CMD` without a configuration file, a drop-in for tini: every
	// signal goes to the command and its output is passed through untouched.
	wrapper     bool
	shutdownReq chan string
	exitCode    int
	failedExit  bool
}

// Run is pilotfish's `run` command: it returns the process exit code.
func Run(opts Options) int {
	// Signal handlers go in first, before the configuration is read (docs/jobs.md#pid-1-duties-and-signals).
	sigs := catchSignals(opts.Signals)
	defer sigs.stop()

	d, code, pending := loadAbandonably(opts, sigs.C)
	if d == nil {
		return code
	}
	d.signals, d.pending, d.inherited = sigs.C, pending, sigs.inherited
	return d.Run()
}

// loadAbandonably runs New while watching the signals: a SIGTERM or SIGINT ends the wait
// at once (the load goes on in its goroutine until the process exits). Other signals are
// kept, in order, for when the daemon runs.
func loadAbandonably(opts Options, sigs <-chan os.Signal) (*Daemon, int, []os.Signal) {
	type loaded struct {
		d    *Daemon
		code int
	}
	done := make(chan loaded, 1)
	go func() {
		d, code := New(opts)
		done <- loaded{d, code}
	}()
	var pending []os.Signal
	for {
		select {
		case l := <-done:
			return l.d, l.code, pending
		case sig := <-sigs:
			if isShutdownSignal(sig) {
				log := newLogger(opts.Stderr, slog.LevelInfo, "text")
				log.Info("shutting down", "reason", "received "+config.SignalName(sig.(syscall.Signal))+
					" while the configuration was loading; no job was started", "config", opts.ConfigPath, "exit_code", ExitOK)
				return nil, ExitOK, nil
			}
			pending = append(pending, sig)
		}
	}
}

func isShutdownSignal(sig os.Signal) bool { return sig == syscall.SIGTERM || sig == syscall.SIGINT }

// New loads the configuration and builds the daemon without starting anything. On a
// configuration error it prints the diagnostics and returns nil with exit code 2.
func New(opts Options) (*Daemon, int) {
	env := newEnviron(withoutNotifySocket(opts.Env))
	copts := configOptions(env.Map())
	copts.Main = opts.Main
	cfg, diags := config.Load(opts.ConfigPath, copts)
	wrapper := false
	if _, err := os.Stat(opts.ConfigPath); cfg == nil && os.IsNotExist(err) && opts.ConfigOptional && len(opts.Main) > 0 {
		cfg, diags = config.Parse(opts.ConfigPath, nil, copts)
		wrapper = cfg != nil
	}
	for _, line := range config.FormatDiagnostics(diags) {
		fmt.Fprintln(opts.Stderr, line)
	}
	if cfg == nil {
		fmt.Fprintf(opts.Stderr, "error: %s is not valid (%d errors)\n", opts.ConfigPath, countErrors(diags))
		return nil, ExitConfigError
	}
	level := &slog.LevelVar{}
	level.Set(parseLevel(cfg.Logging.Level))
	stderr := output.NewSink(opts.Stderr)
	logw := output.NewLogWriter(stderr)
	d := &Daemon{
		opts:        opts,
		cfg:         cfg,
		logLevel:    level,
		log:         newLogger(logw, level, cfg.Logging.Format),
		stdout:      output.NewSink(opts.Stdout),
		stderr:      stderr,
		logw:        logw,
		bus:         events.NewBus(nil),
		reaper:      reaper.New(),
		env:         env,
		reloads:     map[string]uint64{},
		outer:       newOuterNotify(opts.Env),
		pokes:       make(chan struct{}, 1),
		signals:     make(chan os.Signal, 16),
		shutdownReq: make(chan string, 1),
		wrapper:     wrapper,
	}
	if wrapper {
		// A drop-in for tini: the command's output reaches the log shipper as it wrote it.
		for _, j := range cfg.Jobs {
			if j.Main {
				j.Logging.Prefix = false
			}
		}
	}
	d.loads, d.stopLoads = context.WithCancelCause(context.Background())
	d.tel = telemetry.New(metricsSource{d})
	return d, ExitOK
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

func parseLevel(s string) slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(s))
	return lvl
}

func newLogger(w io.Writer, level slog.Leveler, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run starts everything, supervises until shutdown and returns the exit code.
func (d *Daemon) Run() int {
	defer d.flushLogs() // first in, so last out: after everything else has logged
	d.reaper.OnOrphan = func(st reaper.Status) { d.log.Debug("reaped orphan", "pid", st.Pid, "status", st.String()) }
	if err := d.reaper.Start(); err != nil {
		d.log.Error("cannot reap children", "err", err)
		return ExitJobFailed
	}
	defer d.reaper.Stop()

	d.rt = &jobs.Runtime{
		Bus:        d.bus,
		Spawner:    d.reaper,
		Stdout:     d.stdout,
		Stderr:     d.stderr,
		Log:        d.log,
		Environ:    d.env.List,
		OnChange:   d.poke,
		OnProbe:    d.tel.ObserveProbe,
		Self:       selfExecutable(),
		RuntimeDir: runtimeDir(),
		Lookup: func(name string) string {
			if j := d.job(name); j != nil {
				return string(j.Status().State)
			}
			return ""
		},
	}
	if err := d.applyTelemetry(d.cfg); err != nil {
		d.log.Error("cannot set up telemetry", "err", err)
		return ExitJobFailed
	}
	defer func() {
		if d.telListener != nil {
			d.telListener.Close()
		}
	}()
	if err := d.startDiscovery(); err != nil {
		d.log.Error("cannot set up discovery", "err", err)
		return ExitJobFailed
	}
	defer d.stopDiscovery()
	d.startTemplates()
	defer d.stopTemplates()
	built, err := d.buildJobs(d.cfg, nil)
	if err != nil {
		d.log.Error("cannot set up jobs", "err", err)
		return ExitJobFailed
	}
	// The control socket answers before the first job starts (SPEC §1 readiness).
	ctl, err := control.Listen(d.cfg.Control, d, d.log)
	switch {
	case err == nil:
		d.ctl = ctl
		ctl.Serve()
		// Jobs reach the daemon with `pilotfish putmetric …` and friends without -socket.
		if abs, err := filepath.Abs(ctl.Path()); err == nil {
			d.env.addBase("PILOTFISH_SOCKET=" + abs)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			ctl.Close(ctx)
		}()
	case d.cfg.Control.Socket == config.DefaultSocket:
		// Nobody asked for this socket: run without the API rather than not at all (a
		// non-root user, a read-only /var/run, a second pilotfish on one host).
		d.log.Warn("running without the control API; set control { socket = \"...\" } to a path you can create", "err", err)
	default:
		d.log.Error("cannot serve the control API", "err", err)
		for _, j := range built {
			j.Close()
		}
		return ExitJobFailed
	}

	d.mu.Lock()
	d.jobs = built
	d.mu.Unlock()
	// A SIGTERM that came while setting up ends pilotfish before any job starts.
	reason := d.takeSignals()
	if reason == "" {
		d.startJobs(built)
		reason = d.supervise()
	}
	d.outer.stopping()
	d.shutdown(reason)
	return d.exitCode
}

// startJobs opens the control API to mutating calls (every job is installed) and starts
// the jobs. A reload waits until they are all started.
func (d *Daemon) startJobs(built []*jobs.Job) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.ctl != nil {
		d.ctl.Started()
	}
	for _, j := range built {
		j.Start()
	}
	socket := ""
	if d.ctl != nil {
		socket = d.ctl.Path()
	}
	d.log.Info("pilotfish started", "version", d.opts.Version, "pid", os.Getpid(), "config", d.cfg.Path,
		"jobs", len(built), "socket", socket)
	if len(d.inherited) > 0 {
		d.log.Debug("signals ignored by pilotfish's parent stay ignored, for its jobs too", "signals", signalNames(d.inherited))
	}
	d.bus.Publish(events.Startup, events.Global, nil)
	d.poke()
	// Parsing and setting up leave garbage that a long-lived PID 1 should not keep resident.
	debug.FreeOSMemory()
}

// takeSignals moves the signals that are waiting to the pending list and reports a
// shutdown if one of them asks for it.
func (d *Daemon) takeSignals() string {
	for {
		select {
		case sig := <-d.signals:
			if isShutdownSignal(sig) {
				return "received " + config.SignalName(sig.(syscall.Signal)) + " during start-up"
			}
			d.pending = append(d.pending, sig)
		default:
			return ""
		}
	}
}

// buildJobs creates the jobs of cfg, reusing the ones in keep, and tells each which jobs
// are its stopping hooks. Only the new jobs are returned in order with the kept ones.
func (d *Daemon) buildJobs(cfg *config.Config, keep map[string]*jobs.Job) ([]*jobs.Job, error) {
	var out, fresh []*jobs.Job
	byName := map[string]*jobs.Job{}
	for _, jc := range cfg.Jobs {
		j, ok := keep[jc.Name]
		if !ok {
			var err error
			if err = runnable(jc, d.log); err != nil {
				for _, b := range fresh {
					b.Close()
				}
				return nil, err
			}
			if j, err = jobs.New(jc, d.rt); err != nil {
				for _, b := range fresh {
					b.Close()
				}
				return nil, err
			}
			fresh = append(fresh, j)
		}
		out = append(out, j)
		byName[jc.Name] = j
	}
	hooks := stoppingHooks(cfg, byName)
	for _, j := range out {
		j.SetHooks(hooks[j.Name()])
	}
	return out, nil
}

// runnable refuses what the configuration accepts but the jobs runtime does not run yet: a
// job without exec (registration and health only); a run timeout is not enforced yet.
func runnable(jc *config.Job, log *slog.Logger) error {
	if jc.RegistrationOnly() {
		return fmt.Errorf("job %q runs no command (no exec): this version of pilotfish validates such jobs but cannot run them yet", jc.Name)
	}
	if jc.Timeout > 0 {
		log.Warn("the run timeout of this job is not enforced by this version of pilotfish", "job", jc.Name, "timeout", jc.Timeout)
	}
	return nil
}

// stoppingHooks are, by job name, the jobs triggered by its stopping event: its stop waits
// for them. One pass over the triggers: a configuration may hold tens of thousands of jobs.
func stoppingHooks(cfg *config.Config, byName map[string]*jobs.Job) map[string][]*jobs.Job {
	hooks := map[string][]*jobs.Job{}
	for _, jc := range cfg.Jobs {
		j := byName[jc.Name]
		for _, t := range jc.When.Triggers() {
			// A job's triggers come together: a second one on the same source is the last.
			if hs := hooks[t.Source]; t.Code == events.Stopping && (len(hs) == 0 || hs[len(hs)-1] != j) {
				hooks[t.Source] = append(hs, j)
			}
		}
	}
	return hooks
}

// selfExecutable is pilotfish's own binary, which socket-activated programs are exec'ed
// through; "" if it cannot be found (LISTEN_PID is then not set).
func selfExecutable() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}

func (d *Daemon) poke() {
	select {
	case d.pokes <- struct{}{}:
	default:
	}
}

// supervise runs until pilotfish must shut down and says why.
func (d *Daemon) supervise() string {
	for len(d.pending) > 0 {
		sig := d.pending[0]
		d.pending = d.pending[1:]
		if reason := d.onSignal(sig.(syscall.Signal)); reason != "" {
			return reason
		}
	}
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
	switch {
	case isShutdownSignal(sig):
		return "received " + config.SignalName(sig)
	case sig == syscall.SIGHUP && !d.wrapper:
		go d.reloadOnSignal()
	case sig == syscall.SIGUSR1 && !d.wrapper:
		go func() {
			d.mu.Lock()
			on := !d.maintenance
			d.mu.Unlock()
			_ = d.SetMaintenance(context.Background(), on)
		}()
	default:
		d.forward(sig)
	}
	return ""
}

// forward passes a signal on to the main job, if there is one.
func (d *Daemon) forward(sig syscall.Signal) {
	m := d.job(config.MainJob)
	if m == nil {
		d.log.Debug("signal ignored: there is no main job to forward it to", "signal", config.SignalName(sig))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.Signal(ctx, sig); err != nil {
		d.log.Debug("cannot forward signal to the main job", "signal", config.SignalName(sig), "err", err)
	}
}

func signalNames(sigs []syscall.Signal) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = config.SignalName(s)
	}
	return out
}

func (d *Daemon) reloadOnSignal() {
	res, err := d.Reload(context.Background())
	if err != nil {
		var cfgErr *control.ConfigError
		if errors.As(err, &cfgErr) {
			for _, line := range cfgErr.Diagnostics {
				fmt.Fprintln(d.logw, line)
			}
		}
		d.log.Error("reload on SIGHUP refused", "err", err)
		return
	}
	d.log.Info("reloaded on SIGHUP", "changed", res.Changed, "added", res.Added, "removed", res.Removed)
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

func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

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
