package jobs

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/logtail"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/internal/reaper"
)

// Kind is one job kind: its configuration half and a constructor for its runtime half.
type Kind interface {
	config.Kind
	NewDriver(job *config.Job, rt *Runtime) (Driver, error)
}

// Driver is the kind-specific part of one job.
type Driver interface {
	// Arm is called when the job's trigger fires. A nil channel means "run now". Otherwise
	// every value received from the channel starts a run, and the job shows waitState
	// between runs (scheduled, listening).
	Arm() (activations <-chan Activation, waitState State, err error)
	// Disarm undoes Arm when the job stops.
	Disarm()
	// Start begins one run.
	Start(req RunRequest) (Run, error)
	// Concurrent reports whether runs may overlap (each activation its own run, never
	// restarted), as for inetd's accept mode.
	Concurrent() bool
	// Close releases what the driver holds; the job is gone.
	Close()
}

// abandoner is a driver that owes the outside world work it can give up at once (a queue
// toward a peer), from any goroutine, counting what it drops.
type abandoner interface {
	Abandon()
}

// Activation is what an armed driver hands to one run: a connection, a listening socket.
type Activation struct {
	Stdin, Stdout *os.File   // replace /dev/null and the stdout pipe when set
	Files         []*os.File // passed as fd 3, 4, …
	Env           []string   // added to the run's environment
	// Release is called once the run has started (started true) or when the activation
	// was not used (false): the parent's copies of the files can go.
	Release func(started bool)
	// PidVars names environment variables to set to the run's own PID, known only after
	// fork (LISTEN_PID for socket activation, WATCHDOG_PID for sd_notify's watchdog).
	PidVars []string
}

// RunRequest is everything a driver needs to start one run.
type RunRequest struct {
	Event      events.Event // what triggered the run
	Env        []string
	Activation Activation
	// OnLine sees every output line (for the log probe); nil when nobody needs it.
	OnLine func([]byte)
	// Report tells the job what the kind learned about this run; it may block briefly.
	Report func(Report)
	// Exit hands how the run ended straight to the job's loop. The kind calls it exactly
	// once for a run that started, from a goroutine of its own (never from Start or
	// Signal, which run on the loop), and never when Start fails.
	Exit func(Result)
}

// beforeExit returns req with f called on the run's result before the job gets it.
func (req RunRequest) beforeExit(f func(Result)) RunRequest {
	exit := req.Exit
	req.Exit = func(res Result) {
		f(res)
		exit(res)
	}
	return req
}

// Report is what a kind tells the job about a run.
type Report struct {
	Ready   bool           // the run is ready: healthy
	Unready bool           // the run is not ready any more: unhealthy
	Status  *string        // the status line shown in /v1/status
	Message string         // why, for logs and the event's message
	Kill    syscall.Signal // stop the run with this signal (a missed watchdog)
	Restart bool           // after Kill, start again whatever `restarts` says
	// timedOut: Kill because the run outlived the job's timeout (its exit is a failure).
	timedOut bool
}

// Run is one execution: a process, or an HTTP call. How it ends goes to RunRequest.Exit.
type Run interface {
	Pid() int // 0 when there is no process
	Signal(sig syscall.Signal) error
}

// Result is how a run ended.
type Result struct {
	Code   int            // exit code; 128+N when killed by signal N
	Signal syscall.Signal // the killing signal, or 0
	Err    error          // set when the run could not start or the call failed
	// CPU is the CPU time the run's process used, with the children it waited for.
	CPU time.Duration
}

// Success reports a clean end: no error, no death by signal, and an exit code among codes
// (the job's success_codes; nil means [0]).
func (r Result) Success(codes []int) bool {
	if r.Err != nil || r.Signal != 0 {
		return false
	}
	if codes == nil {
		return r.Code == 0
	}
	return slices.Contains(codes, r.Code)
}

// Spawner starts processes whose exit status it delivers (the reaper).
type Spawner interface {
	Spawn(reaper.Spec) (*reaper.Process, error)
}

// Runtime is what jobs share: the bus, the reaper, the output sinks.
type Runtime struct {
	Bus     *events.Bus
	Spawner Spawner
	Stdout  *output.Sink
	Stderr  *output.Sink
	// JSONLines writes the jobs' output lines as JSON objects (top-level logging format
	// "json", docs/jobs.md#json-lines), but those of jobs with prefix = false.
	JSONLines bool
	// Logs keeps the tail of every job's output (GET /v1/logs); nil keeps none.
	Logs *logtail.Store
	Log  *slog.Logger
	// Environ returns the base environment of every run: pilotfish's own plus putenv values.
	Environ func() []string
	// EnvGen, if set, changes whenever what Environ returns changes: runs reuse their
	// merged environment until it does.
	EnvGen func() uint64
	// OnChange is called after any job's status changed. It must not block.
	OnChange func()
	// PreStop, if set, runs when a job starts stopping, before its processes get the stop
	// signal (discovery deregisters the job's service there). ctx ends at stop_timeout.
	PreStop func(ctx context.Context, job string)
	// Lookup returns a job's state (webhooks describe their trigger's source with it).
	Lookup func(job string) string
	// Self is pilotfish's own executable; runs that need their PID in their environment
	// (LISTEN_PID, WATCHDOG_PID) are exec'ed through it, as systemd sets them.
	Self string
	// RuntimeDir holds per-job sockets (sd_notify); "" means /run/pilotfish.
	RuntimeDir string
	// Clock drives schedules; nil means the real clock.
	Clock Clock
	// OnProbe, if set, sees the duration of every health check.
	OnProbe func(job string, d time.Duration)

	copiers  sync.WaitGroup // output copiers still reading a pipe
	activity output.Activity
}

// WaitOutput waits until every job's output has been written out, at most until deadline.
// It gives up earlier once no output has moved for idle (a process outside pilotfish's
// control may hold a pipe open without writing), and reports whether all of it was written.
func (rt *Runtime) WaitOutput(idle time.Duration, deadline time.Time) bool {
	done := make(chan struct{})
	go func() {
		rt.copiers.Wait()
		close(done)
	}()
	tick := time.NewTicker(idle / 10)
	defer tick.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	for {
		select {
		case <-done:
			return true
		case <-end.C:
			return false
		case <-tick.C:
			if rt.activity.Idle(idle) {
				return false
			}
		}
	}
}

// Kinds is the table of job kinds. Adding a kind is one file and one line here.
func Kinds() map[string]Kind {
	return map[string]Kind{
		"exec":    execKind{},
		"cron":    cronKind{},
		"webhook": webhookKind{},
		"inetd":   inetdKind{},
		"notify":  notifyKind{},
		"syslog":  syslogKind{},
	}
}

// ConfigKinds is Kinds seen by package config.
func ConfigKinds() map[string]config.Kind {
	out := map[string]config.Kind{}
	for n, k := range Kinds() {
		out[n] = k
	}
	return out
}
