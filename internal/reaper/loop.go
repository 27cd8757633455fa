package reaper

import (
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batching of orphans (doc.go): a reap of an orphan that comes within burstGap of the
// previous reap waits up to batchWindow for the rest of the burst. Variables for tests.
var (
	burstGap    = 2 * time.Millisecond
	batchWindow = 5 * time.Millisecond
)

// siginfo is the start of the kernel's siginfo_t for SIGCHLD on 64-bit Linux.
type siginfo struct {
	signo, errno, code, _ int32
	pid                   int32
	_                     [108]byte
}

// waitid peeks at an exited child without reaping it (WNOWAIT): reaping stays in reap,
// under the lock.
func waitid(si *siginfo, options int) error {
	return unix.Waitid(unix.P_ALL, 0, (*unix.Siginfo)(unsafe.Pointer(si)), unix.WEXITED|unix.WNOWAIT|options, nil)
}

// loop blocks in waitid until a child has exited, then reaps. No SIGCHLD handler runs and no
// other goroutine is woken on the way: one thread wakes per batch. During a burst of orphans
// it does not go back to waitid between batches (which would wake it at the next orphan):
// it gathers the next batch at once, until a batch brings no orphan.
func (r *Reaper) loop() {
	defer close(r.done)
	defer r.closeFds()
	r.tid.Store(int32(unix.Gettid()))
	var last time.Time
	burst := false
	for {
		if !burst {
			var si siginfo
			switch err := waitid(&si, 0); err {
			case nil:
			case unix.EINTR:
				continue
			default: // ECHILD: no child at all
				if !r.idle() {
					return
				}
				continue
			}
			r.mu.Lock()
			_, job := r.waiters[int(si.pid)]
			r.mu.Unlock()
			burst = !job && time.Since(last) < burstGap
		}
		if burst {
			r.gather()
		}
		before := r.orphans.Load()
		r.reap()
		last = time.Now()
		burst = burst && r.orphans.Load() > before
		r.mu.Lock()
		stopped := r.stopped
		r.mu.Unlock()
		if stopped {
			return
		}
	}
}

// idle waits until pilotfish has a child again. A child comes from Spawn, or from the kernel
// reparenting an orphan (a process `docker exec` left behind), which nothing announces but
// its SIGCHLD: so Go's handler is installed while idle, before the check for a child.
func (r *Reaper) idle() bool {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return false
	}
	r.sigchld.set(true)
	r.idling = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.idling = false
		if !r.stopped {
			r.sigchld.set(false)
		}
		r.mu.Unlock()
	}()
	for {
		select {
		case <-r.sigs:
		default:
		}
		var si siginfo
		if waitid(&si, unix.WNOHANG) == nil {
			return true // a child exists (it may be running still)
		}
		select {
		case <-r.kick:
		case <-r.sigs:
		case <-r.quit:
			return false
		}
	}
}

// gather holds back the reap of an orphan for up to batchWindow so that a burst of orphans
// is reaped in one pass. It ends early when a registered process exits (its pidfd becomes
// readable) or is registered (wakeGather), so a job's exit is never held back. Without
// pidfds (Linux < 5.3, no descriptors left) it does not wait.
func (r *Reaper) gather() {
	r.mu.Lock()
	if r.stopped || r.efd < 0 {
		r.mu.Unlock()
		return
	}
	fds := append(r.pollfds[:0], unix.PollFd{Fd: int32(r.efd), Events: unix.POLLIN})
	for pid := range r.waiters {
		fd, ok := r.pidfds[pid]
		if !ok {
			var err error
			fd, err = unix.PidfdOpen(pid, 0)
			if err == unix.ESRCH {
				continue // an adopted process that is not a child and is gone: it cannot exit now
			}
			if err != nil {
				r.mu.Unlock()
				return
			}
			r.pidfds[pid] = fd
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	r.pollfds = fds
	r.gathering = true
	r.mu.Unlock()
	for end := time.Now().Add(batchWindow); ; {
		left := time.Until(end)
		if left <= 0 {
			break
		}
		// A signal handler run on this thread ends poll with EINTR: wait out the window.
		if _, err := unix.Poll(fds, int((left+time.Millisecond-1)/time.Millisecond)); err != unix.EINTR {
			break
		}
	}
	r.mu.Lock()
	r.gathering = false
	if fds[0].Revents != 0 {
		var b [8]byte
		_, _ = unix.Read(r.efd, b[:])
	}
	r.mu.Unlock()
}

// wakeGather ends a gather at once. Call with mu held.
func (r *Reaper) wakeGather() {
	if r.gathering {
		b := [8]byte{1}
		_, _ = unix.Write(r.efd, b[:])
		r.gathering = false
	}
}

// forget closes the pidfd of a pid no longer registered. Call with mu held.
func (r *Reaper) forget(pid int) {
	if fd, ok := r.pidfds[pid]; ok {
		unix.Close(fd)
		delete(r.pidfds, pid)
	}
}

func (r *Reaper) closeFds() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid := range r.pidfds {
		r.forget(pid)
	}
	if r.efd >= 0 {
		unix.Close(r.efd)
		r.efd = -1
	}
}

// The main thread. The kernel offers process-wide signals to the main thread first; when
// that thread is the one blocked in waitid, a signal wakes no other thread.
var (
	mainThread = make(chan func())
	mainServed atomic.Bool
)

// ServeMain runs fn on a new goroutine and lends the calling goroutine's thread to the
// reaper's loop; it never returns (fn ends the process). Call it from main, with the main
// thread locked by runtime.LockOSThread in an init function.
func ServeMain(fn func()) {
	mainServed.Store(true)
	go fn()
	for f := range mainThread {
		f()
	}
}

// runLoop runs loop on the main thread if it is lent and free, else on a thread of its own.
func runLoop(loop func()) {
	if mainServed.Load() {
		select {
		case mainThread <- loop:
			return
		default:
		}
	}
	go func() {
		runtime.LockOSThread() // the thread exits with the goroutine: it is not reused
		loop()
	}()
}
