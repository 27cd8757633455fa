package core

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control"
	"github.com/pilotfish/pilotfish/discovery"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/logtail"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/internal/reaper"
	"github.com/pilotfish/pilotfish/jobs"
	"github.com/pilotfish/pilotfish/telemetry"
	"github.com/pilotfish/pilotfish/template"
)

// Exit codes of docs/jobs.md besides the main job's own.
const (
	ExitOK          = 0
	ExitJobFailed   = 1
	ExitConfigError = 2
)

// Options are what main hands to Run.
type Options struct {
	// ConfigPaths are the files and directories of the configuration
	// (docs/configuration.md#configuration-in-layers).
	ConfigPaths []string
	// ConfigOptional: the paths are the default, not asked for; with a main command and no
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
	logs     *logtail.Store    // the tail of every job's output (core/logs.go)
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
	checked     checkCache // the snapshots check read (only the supervise loop checks)
	startLeft   int        // the first job that may not have forked its first run; -1: start-up is over
	startGC     int        // the GC percent to restore when start-up is over; -1: none set
}

// ServeMainThread runs fn, which ends the process, on another goroutine and lends the
// calling thread, the main one, to the reaper (internal/reaper/doc.go).
func ServeMainThread(fn func()) { reaper.ServeMain(fn) }

// Run is pilotfish's `run` command: it returns the process exit code. Start-up goes in
// phases, each commented where it happens: signals and config here, then (Daemon.Run) the
// jobs are built, the control socket opens, the jobs are installed, and startup is
// published.
func Run(opts Options) int {
	// Phase 1, signals: the handlers go in first, before the configuration is read
	// (docs/jobs.md#pid-1-duties-and-signals).
	sigs := catchSignals(opts.Signals)
	defer sigs.stop()

	// Phase 2, config: loaded while a SIGTERM can still end pilotfish at once.
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
					" while the configuration was loading; no job was started", "config", strings.Join(opts.ConfigPaths, ", "), "exit_code", ExitOK)
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
	cfg, diags := config.Load(opts.ConfigPaths, copts)
	wrapper := false
	if files, _ := config.ListFiles(opts.ConfigPaths); cfg == nil && len(files) == 0 && opts.ConfigOptional && len(opts.Main) > 0 {
		// No file where the default paths point: the command alone, as if the file were
		// empty; a reload reads the same paths (a file added there is taken).
		if cfg, diags = config.Parse(config.DefaultPath, nil, copts); cfg != nil {
			cfg.Sources = opts.ConfigPaths
			wrapper = true
		}
	}
	for _, line := range config.FormatDiagnostics(diags) {
		fmt.Fprintln(opts.Stderr, line)
	}
	if cfg == nil {
		fmt.Fprintf(opts.Stderr, "error: %s is not valid (%s)\n", strings.Join(opts.ConfigPaths, ", "), config.Plural(countErrors(diags), "error"))
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
		logs:        logtail.NewStore(),
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
		opts.ReplaceAttr = durationText
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationText writes durations in JSON logs as the text logs and the configuration do
// ("1.5s"), not as a bare count of nanoseconds (docs/configuration.md#logging-pilotfishs-own-log).
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// Run starts everything, supervises until shutdown and returns the exit code.
func (d *Daemon) Run() int {
	defer d.flushLogs() // first in, so last out: after everything else has logged
	d.reaper.OnOrphan = func(st reaper.Status) {
		if d.log.Enabled(context.Background(), slog.LevelDebug) { // no formatting per orphan at info
			d.log.Debug("reaped orphan", "pid", st.Pid, "status", st.String())
		}
	}
	if err := d.reaper.Start(); err != nil {
		d.log.Error("cannot reap children", "err", err)
		return ExitJobFailed
	}
	defer d.reaper.Stop()

	d.rt = &jobs.Runtime{
		Bus:     d.bus,
		Spawner: d.reaper,
		Stdout:  d.stdout,
		Stderr:  d.stderr,
		// Job lines as JSON too, so that a log shipper reads one format; never in wrapper
		// mode, where the command's output passes through untouched.
		JSONLines:  d.cfg.Logging.Format == "json" && !d.wrapper,
		Logs:       d.logs,
		Log:        d.log,
		Environ:    d.env.List,
		EnvGen:     d.env.Gen,
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
	// Templates that read only the environment are written now, before any job starts
	// (docs/templates.md); the others render as Consul answers.
	d.startTemplates()
	defer d.stopTemplates()
	// Phase 3, jobs built: nothing runs yet, and a job that cannot be built (its log file)
	// stops pilotfish before the socket exists.
	built, err := d.buildJobs(d.cfg, nil)
	if err != nil {
		d.log.Error("cannot set up jobs", "err", err)
		return ExitJobFailed
	}
	// Phase 4, jobs installed: the API sees them from its first answer.
	d.mu.Lock()
	d.jobs = built
	d.mu.Unlock()
	// Phase 5, socket: the control API answers before the first job starts; calls that
	// change something get 503 "still starting" until phase 6 (startJobs).
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

	// A SIGTERM that came while setting up ends pilotfish before any job starts.
	reason := d.takeSignals()
	if reason == "" {
		// Phase 6, startup: the jobs start and startup is published; then supervise.
		d.startJobs(built)
		reason = d.supervise()
	} else {
		// No job has started: nothing to stop, and a job whose loop never ran would keep
		// the shutdown waiting for its whole budget.
		for _, j := range built {
			j.Close()
		}
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
	d.startGC = -1
	if os.Getenv("GOGC") == "" {
		// While the jobs fork, collect less often: a collection stops the goroutines that
		// fork. afterStartup restores the target before it gives memory back.
		d.startGC = debug.SetGCPercent(startupGCPercent)
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
	hooks := stoppingHooks(cfg, byName)
	for _, j := range out {
		j.SetHooks(hooks[j.Name()])
	}
	return out, nil
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
