package reaper

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Status is how a process ended.
type Status struct {
	Pid    int
	Exit   int            // exit code when it exited
	Signal syscall.Signal // the signal that killed it, or 0
	// CPU is the user and system time it used, with that of the children it waited for
	// (wait4's rusage).
	CPU time.Duration
}

// Code is the exit code a shell would report: the exit status, or 128+N for signal N.
func (s Status) Code() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Exit
}

// Success reports whether the process exited with status 0.
func (s Status) Success() bool { return s.Signal == 0 && s.Exit == 0 }

func (s Status) String() string {
	if s.Signal != 0 {
		return fmt.Sprintf("killed by %s", unix.SignalName(s.Signal))
	}
	return fmt.Sprintf("exit status %d", s.Exit)
}

// Spec describes a process to start.
type Spec struct {
	Path  string   // absolute or relative path of the program (no PATH search here)
	Args  []string // argv, Args[0] included
	Env   []string
	Dir   string
	Files []*os.File // fd 0, 1, 2, then 3...; nil entries are closed in the child
	Sys   *syscall.SysProcAttr
}

// Process is a started child.
type Process struct {
	Pid  int
	Done <-chan Status // receives exactly one Status
}

// Reaper reaps children. Create with New and call Start before the first Spawn.
type Reaper struct {
	mu      sync.Mutex
	waiters map[int]chan Status
	orphans atomic.Uint64
	sigs    chan os.Signal
	quit    chan struct{}
	done    chan struct{}
	// OnOrphan, if set before Start, is called (without the lock) for each reaped orphan.
	OnOrphan func(Status)
}

// New returns a reaper that is not yet running.
func New() *Reaper {
	return &Reaper{
		waiters: map[int]chan Status{},
		sigs:    make(chan os.Signal, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Start makes pilotfish a child subreaper when it is not PID 1 (so orphans of its jobs come
// back to it) and starts reaping on SIGCHLD.
func (r *Reaper) Start() error {
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("cannot become a child subreaper: %w", err)
		}
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.loop()
	return nil
}

// Stop ends reaping. Processes still running are not waited for.
func (r *Reaper) Stop() {
	signal.Stop(r.sigs)
	close(r.quit)
	<-r.done
}

// Orphans is the number of processes reaped that pilotfish did not start itself.
func (r *Reaper) Orphans() uint64 { return r.orphans.Load() }

// Adopt asks for the exit status of a process pilotfish did not start but will reap: a
// daemon that its job's process left behind (orphans are reparented to pilotfish). The
// channel gets one Status; it is closed without one if the process is already gone.
func (r *Reaper) Adopt(pid int) <-chan Status {
	ch := make(chan Status, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.waiters[pid]; ok || syscall.Kill(pid, 0) == syscall.ESRCH {
		close(ch) // someone waits already, or it is gone
		return ch
	}
	r.waiters[pid] = ch
	return ch
}

// Spawn starts a process and registers it, under the same lock the reaper holds while it
// reaps, so its exit status always reaches Process.Done.
func (r *Reaper) Spawn(s Spec) (*Process, error) {
	files := make([]uintptr, len(s.Files))
	for i, f := range s.Files {
		if f == nil {
			files[i] = ^uintptr(0)
		} else {
			files[i] = f.Fd()
		}
	}
	attr := &syscall.ProcAttr{Dir: s.Dir, Env: s.Env, Files: files, Sys: s.Sys}
	ch := make(chan Status, 1)
	r.mu.Lock()
	pid, err := syscall.ForkExec(s.Path, s.Args, attr)
	if err == nil {
		r.waiters[pid] = ch
	}
	r.mu.Unlock()
	for _, f := range s.Files {
		if f != nil {
			// ForkExec read the descriptors; keep the files alive until here.
			_ = f.Fd()
		}
	}
	if err != nil {
		return nil, err
	}
	return &Process{Pid: pid, Done: ch}, nil
}

func (r *Reaper) loop() {
	defer close(r.done)
	r.reap()
	for {
		select {
		case <-r.sigs:
			r.reap()
		case <-r.quit:
			return
		}
	}
}

// reap collects every exited child. SIGCHLD coalesces, so one signal may stand for many.
func (r *Reaper) reap() {
	var orphans []Status
	r.mu.Lock()
	for {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, &ru)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			break
		}
		st := Status{Pid: pid, CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
		switch {
		case ws.Exited():
			st.Exit = ws.ExitStatus()
		case ws.Signaled():
			st.Signal = ws.Signal()
		default:
			continue // stopped or continued: not an exit
		}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- st
		} else {
			r.orphans.Add(1)
			orphans = append(orphans, st)
		}
	}
	r.mu.Unlock()
	if r.OnOrphan != nil {
		for _, st := range orphans {
			r.OnOrphan(st)
		}
	}
}
