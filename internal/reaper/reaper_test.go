package reaper

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// As in cmd/pilotfish: the main thread is lent to the reaper.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) { ServeMain(func() { os.Exit(m.Run()) }) }

func newReaper(t *testing.T) *Reaper {
	t.Helper()
	r := New()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		// The loop may be blocked in waitid: a child's exit wakes it, and it ends without
		// reaping, so the next test gets the main thread. The child is reaped here after.
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("the reaper's loop did not end after Stop")
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
	})
	return r
}

// The loop runs on the main thread lent by ServeMain, with SIGCHLD at SIG_DFL while it
// has a child; a reparented orphan is reaped whichever way it comes.
func TestLoopOnMainThread(t *testing.T) {
	r := newReaper(t)
	p := sh(t, r, "exit 0")
	wait(t, p)
	if tid := r.tid.Load(); int(tid) != os.Getpid() {
		t.Fatalf("loop runs on thread %d, not the main thread %d", tid, os.Getpid())
	}
}

func sh(t *testing.T, r *Reaper, script string) *Process {
	t.Helper()
	path, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Spawn(Spec{Path: path, Args: []string{"sh", "-c", script}, Env: os.Environ(),
		Files: []*os.File{nil, os.Stdout, os.Stderr}, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func wait(t *testing.T, p *Process) Status {
	t.Helper()
	return waitWithin(t, p, 10*time.Second)
}

func waitWithin(t *testing.T, p *Process, d time.Duration) Status {
	t.Helper()
	select {
	case st := <-p.Done:
		return st
	case <-time.After(d):
		t.Fatalf("pid %d not reaped within %s", p.Pid, d)
	}
	return Status{}
}

// waitFor polls cond until it holds, for up to 30 s.
func waitFor(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+what, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestExitStatusAndSignal(t *testing.T) {
	r := newReaper(t)
	if st := wait(t, sh(t, r, "exit 3")); st.Code() != 3 || st.Success() {
		t.Fatalf("got %v", st)
	}
	if st := wait(t, sh(t, r, "kill -TERM $$")); st.Signal != syscall.SIGTERM || st.Code() != 143 {
		t.Fatalf("got %v", st)
	}
	if st := wait(t, sh(t, r, "true")); !st.Success() || st.String() != "exit status 0" {
		t.Fatalf("got %v", st)
	}
}

// Orphans (grandchildren whose parent exited) come back to the subreaper and are reaped
// without disturbing the exit status of the process that made them.
func TestOrphansAreReaped(t *testing.T) {
	r := newReaper(t)
	p := sh(t, r, "for i in $(seq 1 200); do (sleep 0.01 &) ; done; exit 7")
	if st := wait(t, p); st.Exit != 7 {
		t.Fatalf("got %v", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Orphans() < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("reaped %d orphans of 200", r.Orphans())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if z := zombies(t); z != 0 {
		t.Fatalf("%d zombies left", z)
	}
}

// A burst of orphans is reaped, each counted once, while the jobs started all the while
// keep their exact exit status.
func TestOrphanBurstWhileJobsExit(t *testing.T) {
	const n = 2000
	r := newReaper(t)
	burst := sh(t, r, `i=0; while [ "$i" -lt `+strconv.Itoa(n)+` ]; do (true &); i=$((i+1)); done; exit 7`)
	done := false
	for i := 0; !done; i++ {
		code := i % 100
		if st := wait(t, sh(t, r, "exit "+strconv.Itoa(code))); st.Exit != code || st.Signal != 0 {
			t.Fatalf("job exited with %v during the burst, want exit status %d", st, code)
		}
		select {
		case st := <-burst.Done:
			if st.Exit != 7 {
				t.Fatalf("burst: %v", st)
			}
			done = true
		default:
		}
	}
	waitFor(t, func() bool { return r.Orphans() >= n }, "%d orphans reaped", n)
	waitFor(t, func() bool { return zombies(t) == 0 }, "no zombie")
	if got := r.Orphans(); got != n {
		t.Fatalf("counted %d orphans, want %d", got, n)
	}
}

// While a batch of orphans is being gathered, a registered process that exits, or one
// that is started, is reaped at once: the wait is for orphans only. (The window is a
// minute here; the jobs' bound of 20 s shows they did not wait for it.)
func TestGatherEndsForJobs(t *testing.T) {
	gap, window := burstGap, batchWindow
	t.Cleanup(func() { burstGap, batchWindow = gap, window })
	burstGap, batchWindow = time.Hour, time.Minute // every orphan after the first waits
	r := newReaper(t)
	job := sh(t, r, "exec sleep 1000")

	// orphan leaves a process that exits when its pipe gets a byte, after its parent is gone.
	orphan := func() *os.File {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		p, err := r.Spawn(Spec{Path: "/bin/sh", Args: []string{"sh", "-c", "(head -c1 <&3 >/dev/null &)"},
			Env: os.Environ(), Files: []*os.File{nil, os.Stdout, os.Stderr, pr}})
		if err != nil {
			t.Fatal(err)
		}
		wait(t, p)
		return pw
	}
	release := func(pw *os.File) {
		if _, err := pw.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		pw.Close()
	}
	gathering := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.gathering
	}
	// The orphan's parent was reaped just before: the orphan waits for company.
	release(orphan())
	waitFor(t, gathering, "a gather for the first orphan")
	if err := syscall.Kill(job.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := waitWithin(t, job, 20*time.Second); st.Signal != syscall.SIGTERM {
		t.Fatalf("job: %v", st)
	}
	waitFor(t, func() bool { return r.Orphans() == 1 }, "the first orphan reaped with the job")

	release(orphan())
	waitFor(t, gathering, "a gather for the second orphan")
	if st := waitWithin(t, sh(t, r, "exit 4"), 20*time.Second); st.Exit != 4 {
		t.Fatalf("job started during a gather: %v", st)
	}
	waitFor(t, func() bool { return r.Orphans() == 2 }, "the second orphan reaped")
}

// Without any child, the loop waits for one. A child that Spawn did not start (in a
// container, the orphan of a `docker exec`, which the kernel reparents to PID 1) is still
// reaped, and so is the orphan it leaves.
func TestIdleReapsUnannouncedChild(t *testing.T) {
	r := newReaper(t)
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.idling
	}, "the loop idle, without a child")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	before := r.Orphans()
	_, err = syscall.ForkExec("/bin/sh", []string{"sh", "-c", "(head -c1 <&3 >/dev/null &)"},
		&syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{^uintptr(0), 1, 2, pr.Fd()}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return r.Orphans() == before+1 }, "the unannounced child reaped")
	pw.Write([]byte{1})
	pw.Close()
	waitFor(t, func() bool { return r.Orphans() == before+2 }, "its orphan reaped")
	if z := zombies(t); z != 0 {
		t.Fatalf("%d zombies left", z)
	}
}

func TestExecFailureIsAnError(t *testing.T) {
	r := newReaper(t)
	_, err := r.Spawn(Spec{Path: "/nonexistent/prog", Args: []string{"prog"}, Files: []*os.File{nil, nil, nil}})
	if err == nil {
		t.Fatal("spawning a missing program succeeded")
	}
}

// zombies counts zombie children of this process.
func zombies(t *testing.T) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	n := 0
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[0] == "Z" && f[1] == me {
			n++
		}
	}
	return n
}

// The exit status carries the CPU time of the process and of the children it waited for.
func TestStatusCarriesCPU(t *testing.T) {
	r := newReaper(t)
	st := wait(t, sh(t, r, `(i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done); exit 0`))
	if st.CPU < 10*time.Millisecond {
		t.Fatalf("a busy child (in a subshell) shows %s of CPU", st.CPU)
	}
}
