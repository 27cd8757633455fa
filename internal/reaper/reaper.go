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

// Reaper reaps children. Create with New and call Start before the first Spawn. One
// Reaper runs at a time in a process (it sets the process's SIGCHLD disposition).
type Reaper struct {
	mu      sync.Mutex
	waiters map[int]chan Status
	orphans atomic.Uint64
	sigs    chan os.Signal // SIGCHLD, delivered only while pilotfish has no child (idle)
	kick    chan struct{}  // a child was started or adopted
	quit    chan struct{}
	done    chan struct{}
	stopped bool // under mu: the loop reaps nothing more
	// Batching of orphans, see gather. Under mu.
	pidfds    map[int]int // pidfd of a registered pid, opened when first needed
	efd       int         // eventfd that ends a gather early; -1 when batching is off
	gathering bool
	idling    bool // for tests
	pollfds   []unix.PollFd
	sigchld   sigchldState
	tid       atomic.Int32 // the thread the loop runs on, for tests
	// OnOrphan, if set before Start, is called (without the lock) for each reaped orphan.
	OnOrphan func(Status)
}

// New returns a reaper that is not yet running.
func New() *Reaper {
	return &Reaper{
		waiters: map[int]chan Status{},
		sigs:    make(chan os.Signal, 1),
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		pidfds:  map[int]int{},
		efd:     -1,
	}
}

// Start makes pilotfish a child subreaper when it is not PID 1 (so orphans of its jobs come
// back to it) and starts reaping, on the main thread when ServeMain lent it.
func (r *Reaper) Start() error {
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("cannot become a child subreaper: %w", err)
		}
	}
	if fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err == nil {
		r.efd = fd
	}
	// Go's handler delivers SIGCHLD to r.sigs while it is installed (idle); the rest of the
	// time the disposition is SIG_DFL and the kernel drops the signal.
	signal.Notify(r.sigs, syscall.SIGCHLD)
	r.sigchld.init()
	r.sigchld.set(false)
	runLoop(r.loop)
	return nil
}

// Stop ends reaping: nothing is reaped after it returns. Processes still running are not
// waited for. The loop may stay blocked in waitid until the next child exits (no signal
// can interrupt it), but it reaps nothing more.
func (r *Reaper) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.sigchld.set(true)
	r.wakeGather()
	r.mu.Unlock()
	signal.Stop(r.sigs)
	close(r.quit)
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
	r.wakeGather()
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
		r.wakeGather()
	}
	r.mu.Unlock()
	if err == nil {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
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

// reap collects every exited child. SIGCHLD coalesces, so one signal may stand for many.
func (r *Reaper) reap() {
	var orphans []Status
	r.mu.Lock()
	for !r.stopped {
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
			r.forget(pid)
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
