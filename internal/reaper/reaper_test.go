package reaper

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newReaper(t *testing.T) *Reaper {
	t.Helper()
	r := New()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
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
	select {
	case st := <-p.Done:
		return st
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d not reaped", p.Pid)
	}
	return Status{}
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
