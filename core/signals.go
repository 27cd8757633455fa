package core

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control"
)

// Signals and what they mean are in docs/jobs.md#pid-1-duties-and-signals.
//
// Go resets a caught signal to its default action in a child (exec does), but an ignored one
// stays ignored. So pilotfish catches what it must not die of instead of ignoring it, and
// leaves ignored only what its parent had ignored: each job then starts with the signal
// state pilotfish was given, not pilotfish's own.

// controlSignals mean something to pilotfish itself (outside wrapper mode).
var controlSignals = []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1}

// ownSignals are caught only so that pilotfish neither dies of a broken pipe nor stops on a
// terminal it handed to the main job. They are never forwarded: the kernel raises them for
// pilotfish's own writes and reads.
var ownSignals = []syscall.Signal{syscall.SIGPIPE, syscall.SIGTTIN, syscall.SIGTTOU}

// forwarded are the other catchable signals; they go to the main job. Not here: SIGKILL and
// SIGSTOP (cannot be caught), SIGCHLD (the reaper's), SIGURG and SIGPROF (the Go runtime's
// preemption and profiler), the synchronous ones Go turns into panics (SIGSEGV, SIGBUS,
// SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGSTKFLT) and 32-34 (libc's).
var forwarded = func() []syscall.Signal {
	sigs := []syscall.Signal{syscall.SIGQUIT, syscall.SIGABRT, syscall.SIGUSR2, syscall.SIGALRM,
		syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM,
		syscall.SIGWINCH, syscall.SIGIO, syscall.SIGPWR}
	for n := 35; n <= 64; n++ {
		sigs = append(sigs, syscall.Signal(n))
	}
	return sigs
}()

// signalSet is pilotfish's signal handling, installed before anything else happens.
type signalSet struct {
	// C receives the control and forwarded signals.
	C chan os.Signal
	// own takes ownSignals; nobody reads it (a full channel drops, it never blocks).
	own chan os.Signal
	// inherited are the signals pilotfish was started with ignored: it leaves them ignored,
	// so its jobs inherit them ignored too.
	inherited []syscall.Signal
}

// catchSignals installs pilotfish's handlers, on early if it is set (a channel that has
// been catching SIGTERM and SIGINT since the process started). Call it first: until then
// SIGTERM ends the process with Go's default action (exit 2, silently, as PID 1).
func catchSignals(early chan os.Signal) *signalSet {
	s := &signalSet{C: early, own: make(chan os.Signal, 1)}
	if s.C == nil {
		s.C = make(chan os.Signal, 64)
	}
	ignored := ignoredAtStart()
	var catch, own []os.Signal
	add := func(list *[]os.Signal, sigs []syscall.Signal) {
		for _, sig := range sigs {
			if ignored[sig] {
				s.inherited = append(s.inherited, sig)
				continue
			}
			*list = append(*list, sig)
		}
	}
	add(&catch, controlSignals)
	add(&catch, forwarded)
	add(&own, ownSignals)
	signal.Notify(s.C, catch...)
	signal.Notify(s.own, own...) // last: a caught SIGTTIN shows that SIGTERM is handled
	return s
}

// stop hands the control and forwarded signals back to Go's defaults. ownSignals stay
// caught: a write to a closed stdout while pilotfish exits must not kill it.
func (s *signalSet) stop() { signal.Stop(s.C) }

// ignoredAtStart are the signals whose disposition is "ignore" now. Before any Notify that
// is what the parent set, for those the Go runtime leaves alone at start-up: SIGHUP and
// SIGINT, and the job-control signals SIGCONT, SIGTSTP, SIGTTIN and SIGTTOU. (Go installs its
// own handler on every other signal before pilotfish runs, so a parent's ignored SIGTERM
// or SIGSEGV cannot be seen; see docs/jobs.md#pid-1-duties-and-signals.)
func ignoredAtStart() map[syscall.Signal]bool {
	out := map[syscall.Signal]bool{}
	if mask, ok := procSigIgn(); ok {
		for n := 1; n <= 64; n++ {
			if mask&(1<<(n-1)) != 0 {
				out[syscall.Signal(n)] = true
			}
		}
		return out
	}
	for _, sig := range append(append([]syscall.Signal{}, controlSignals...), forwarded...) {
		if signal.Ignored(sig) {
			out[sig] = true
		}
	}
	return out
}

// procSigIgn reads the SigIgn mask of /proc/self/status.
func procSigIgn() (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "SigIgn:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
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
			d.afterStartup()
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
