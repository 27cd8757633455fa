package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
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
}

// forwarded are the signals passed on to the main job. SIGURG is left alone (the Go runtime
// uses it) and SIGTTIN/SIGTTOU are ignored so that pilotfish never stops itself on the
// terminal it handed to the main job.
var forwarded = []os.Signal{syscall.SIGQUIT, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGALRM,
	syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGPWR, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGXCPU, syscall.SIGXFSZ}

// outputIdle is how long an exiting pilotfish waits for job output that has stopped moving.
const outputIdle = 500 * time.Millisecond

// Daemon is one running pilotfish.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	logLevel *slog.LevelVar
	bus      *events.Bus
	reaper   *reaper.Reaper
	env      *environ
	rt       *jobs.Runtime
	ctl      *control.Server
	tel      *telemetry.Telemetry
	disc     *discovery.Manager // nil without a consul block
	outer    *outerNotify       // nil without NOTIFY_SOCKET

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

	pokes       chan struct{}
	signals     chan os.Signal
	shutdownReq chan string
	exitCode    int
	failedExit  bool
}

// Run is pilotfish's `run` command: it returns the process exit code.
func Run(opts Options) int {
	// Signal handlers go in first: from here on SIGTERM means a graceful shutdown.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1}, forwarded...)...)
	signal.Ignore(syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE)
	defer signal.Stop(sigs)

	d, code := New(opts)
	if d == nil {
		return code
	}
	d.signals = sigs
	return d.Run()
}

// New loads the configuration and builds the daemon without starting anything. On a
// configuration error it prints the diagnostics and returns nil with exit code 2.
func New(opts Options) (*Daemon, int) {
	env := newEnviron(withoutNotifySocket(opts.Env))
	copts := config.Options{Env: env.Map(), Kinds: jobs.ConfigKinds(), Main: opts.Main}
	cfg, diags := config.Load(opts.ConfigPath, copts)
	if _, err := os.Stat(opts.ConfigPath); cfg == nil && os.IsNotExist(err) && opts.ConfigOptional && len(opts.Main) > 0 {
		cfg, diags = config.Parse(opts.ConfigPath, nil, copts)
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
	d := &Daemon{
		opts:        opts,
		cfg:         cfg,
		logLevel:    level,
		log:         newLogger(opts.Stderr, level, cfg.Logging.Format),
		bus:         events.NewBus(nil),
		reaper:      reaper.New(),
		env:         env,
		reloads:     map[string]uint64{},
		outer:       newOuterNotify(opts.Env),
		pokes:       make(chan struct{}, 1),
		signals:     make(chan os.Signal, 16),
		shutdownReq: make(chan string, 1),
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
	d.reaper.OnOrphan = func(st reaper.Status) { d.log.Debug("reaped orphan", "pid", st.Pid, "status", st.String()) }
	if err := d.reaper.Start(); err != nil {
		d.log.Error("cannot reap children", "err", err)
		return ExitJobFailed
	}
	defer d.reaper.Stop()

	d.rt = &jobs.Runtime{
		Bus:        d.bus,
		Spawner:    d.reaper,
		Stdout:     output.NewSink(d.opts.Stdout),
		Stderr:     output.NewSink(d.opts.Stderr),
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
			d.env.base = append(d.env.base, "PILOTFISH_SOCKET="+abs)
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
	for _, j := range built {
		j.Start()
	}
	socket := ""
	if d.ctl != nil {
		socket = d.ctl.Path()
	}
	d.log.Info("pilotfish started", "version", d.opts.Version, "pid", os.Getpid(), "config", d.cfg.Path,
		"jobs", len(built), "socket", socket)
	d.bus.Publish(events.Startup, events.Global, nil)
	d.poke()
	// Parsing and setting up leave garbage that a long-lived PID 1 should not keep resident.
	debug.FreeOSMemory()

	reason := d.supervise()
	d.outer.stopping()
	d.shutdown(reason)
	return d.exitCode
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
		go d.reloadOnSignal()
	case syscall.SIGUSR1:
		go func() {
			d.mu.Lock()
			on := !d.maintenance
			d.mu.Unlock()
			_ = d.SetMaintenance(context.Background(), on)
		}()
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

func (d *Daemon) reloadOnSignal() {
	res, err := d.Reload(context.Background())
	if err != nil {
		var cfgErr *control.ConfigError
		if errors.As(err, &cfgErr) {
			for _, line := range cfgErr.Diagnostics {
				fmt.Fprintln(d.opts.Stderr, line)
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

// shutdown stops every job in reverse dependency order within the top-level stop_timeout.
func (d *Daemon) shutdown(reason string) {
	d.shuttingDown.Store(true)
	d.stopLoads(errShuttingDown)
	start := time.Now()
	cfg := d.config()
	d.log.Info("shutting down", "reason", reason, "stop_timeout", cfg.StopTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout)
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
				case syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1:
					d.log.Debug("already shutting down", "signal", sig)
				default:
					d.onSignal(sig.(syscall.Signal))
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	// A reload in progress finishes first (bounded by its own stop budget).
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.bus.Publish(events.Shutdown, events.Global, nil)
	list := d.jobList()
	for _, j := range list {
		_ = j.BeginShutdown(ctx)
	}
	d.stopInOrder(ctx, cfg, list, nil)
	if ctx.Err() != nil {
		d.log.Warn("shutdown budget spent; killing what is left", "stop_timeout", cfg.StopTimeout)
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
	// Every line the jobs wrote reaches the terminal before pilotfish exits, even a slow one.
	if !d.rt.WaitOutput(outputIdle) {
		d.log.Debug("job output still open after shutdown; a leftover process holds it")
	}
	d.exitCode = d.finalCode()
	d.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond), "exit_code", d.exitCode)
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
