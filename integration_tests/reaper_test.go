package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// burstPy forks N children that each fork a grandchild and exit at once, so the grandchildren
// are orphaned to PID 1. The grandchildren block on a pipe; closing it makes all of them exit
// together: a burst of SIGCHLDs for orphans.
const burstPy = `
import os
N = 1000
r, w = os.pipe()
for i in range(N):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
print("forked", N, flush=True)
os.close(w)
print("released", flush=True)
`

// checkSh samples the namespace's /proc from inside: zombies and process count.
const checkSh = `i=0
while :; do
  i=$((i+1)); z=0; n=0
  for s in /proc/[0-9]*/stat; do
    read -r line < "$s" 2>/dev/null || continue
    n=$((n+1))
    st=${line##*) }; st=${st%% *}
    [ "$st" = Z ] && z=$((z+1))
  done
  echo "$i $z $n" > "$TESTDIR/check.tmp"; mv "$TESTDIR/check.tmp" "$TESTDIR/check"
  sleep 0.05
done`

// docs/guarantees.md#12, docs/jobs.md: as PID 1, pilotfish reaps a burst of orphans and nothing else notices.
func TestOrphanBurstIsReaped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePython(t, dir, "burst.py", burstPy)
	cfg := jsonLogs + `
job "steady" {
  exec = ["sleep", "1000"]
}
job "check" {
  exec = ` + sh(checkSh) + `
}
job "coder" {
  exec     = ["/bin/sh", "-c", "exit 7"]
  restarts = "unlimited"
  backoff  = { initial = "10ms", max = "20ms" }
  when {
    source = "steady"
    once   = "started"
  }
}
job "burst" {
  exec = ["` + python + `", "${env.TESTDIR}/burst.py"]
  when {
    source = "steady"
    once   = "started"
  }
}
`
	p := start(t, opts{Config: cfg, Dir: dir})
	steady := p.WaitLog(10*time.Second, is("started", "steady"), "steady started")
	type sample struct{ iter, zombies, procs int }
	read := func() (s sample, ok bool) {
		_, err := fmt.Sscan(readFile(t, filepath.Join(dir, "check")), &s.iter, &s.zombies, &s.procs)
		return s, err == nil
	}
	p.WaitStdout(60*time.Second, `^\[burst\] released$`)
	before, _ := read()
	if e := p.WaitLog(30*time.Second, is("exited", "burst"), "burst exited"); e.str("status") != "exit status 0" {
		t.Fatalf("burst ended with %s", e.str("status"))
	}
	var last sample
	ok := poll(60*time.Second, func() bool {
		s, ok := read()
		if ok {
			last = s
		}
		// A fresh sample, taken after the burst, showing no zombie and the orphans gone.
		return ok && s.iter > before.iter+1 && s.zombies == 0 && s.procs < 20
	})
	if !ok {
		t.Fatalf("the namespace did not get clean: last sample %+v (iteration, zombies, processes); before release %+v", last, before)
	}
	t.Logf("inside the namespace after the burst: %d processes, %d zombies", last.procs, last.zombies)

	// A job exiting all the while kept its exit status: none was taken by the orphan reaping.
	coderKeptStatus(t, p)

	// Seen from the host too: no zombie below pilotfish.
	waitFor(t, 10*time.Second, func() bool { return len(zombiesBelow(p.PID())) == 0 }, "no zombie below pilotfish (host view)")
	if n := p.CountLogs(is("reaped orphan", "")); n < 1000 {
		t.Errorf("pilotfish logged %d reaped orphans, want at least 1000", n)
	}

	// The unrelated job is undisturbed: same process, still running, no exit.
	if !p.Running() {
		t.Fatalf("pilotfish exited during the orphan burst")
	}
	if n := p.CountLogs(is("exited", "steady")); n != 0 {
		t.Errorf("job steady exited %d times during the burst", n)
	}
	if n := p.CountLogs(is("started", "steady")); n != 1 {
		t.Errorf("job steady started %d times, want once", n)
	}
	if pids := nsPIDsOf(p.PID(), "sleep\x001000\x00"); len(pids) != 1 || strconv.Itoa(pids[0]) != steady.str("pid") {
		t.Errorf("steady's process: found namespace pids %v, want exactly the one started (%s)", pids, steady.str("pid"))
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// docs/guarantees.md#12: a job's sh loop leaves 2,000 orphans one after the other; pilotfish
// reaps them in batches, counts each exactly once, leaves no zombie, and a job exiting all
// the while keeps its exit status.
func TestOrphanBurstCountedExactly(t *testing.T) {
	t.Parallel()
	const n = 2000
	k := startPF(t, fmt.Sprintf(`
job "burst" {
  exec = ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do (true &); i=$((i+1)); done; exit 3"]
}
job "coder" {
  exec     = ["/bin/sh", "-c", "exit 7"]
  restarts = "unlimited"
  backoff  = { initial = "10ms", max = "20ms" }
}
`, n))
	if e := k.WaitLog(120*time.Second, is("exited", "burst"), "burst exited"); e.str("status") != "exit status 3" {
		t.Fatalf("burst ended with %s", e.str("status"))
	}
	orphans := func() float64 { return k.sumMetric("pilotfish_orphans_reaped_total") }
	waitFor(t, 30*time.Second, func() bool { return orphans() >= n }, "%d orphans counted", n)
	waitFor(t, 10*time.Second, func() bool { return len(zombiesBelow(k.PID())) == 0 }, "no zombie below pilotfish")
	if got := orphans(); got != n {
		t.Fatalf("pilotfish_orphans_reaped_total is %v, want %d", got, n)
	}
	coderKeptStatus(t, k.instance)
	if code, took := k.SignalWait(syscall.SIGTERM, 15*time.Second); code != 0 || took > 11*time.Second {
		t.Fatalf("exit code %d after %s", code, took)
	}
}

// coderKeptStatus checks that job coder (`exit 7`, restarting) ran at least 10 times and
// always ended with its own status, none taken by the reaping of orphans.
func coderKeptStatus(t *testing.T, p *instance) {
	t.Helper()
	coder := 0
	for _, e := range p.Logs() {
		if is("exited", "coder")(e) {
			coder++
			if e.str("status") != "exit status 7" {
				t.Errorf("job coder (always exit 7) ended with %q during the burst", e.str("status"))
			}
		}
	}
	if coder < 10 {
		t.Errorf("job coder ran only %d times", coder)
	}
}

// zombiesBelow lists the zombie processes below pid.
func zombiesBelow(pid int) []int {
	var out []int
	for _, c := range descendants(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(s[i+1:], " Z") {
			out = append(out, c)
		}
	}
	return out
}

// nsPIDsOf returns the namespace PIDs of the processes below pid whose cmdline is cmdline.
func nsPIDsOf(pid int, cmdline string) []int {
	var out []int
	for _, c := range descendants(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
		if err != nil || string(b) != cmdline {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "NSpid:" {
				n, _ := strconv.Atoi(f[len(f)-1])
				out = append(out, n)
			}
		}
	}
	return out
}

// docs/jobs.md: not PID 1, pilotfish is a child subreaper: its jobs' orphans come back to it and
// are reaped.
func TestSubreaperWhenNotPID1(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	cfg := jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "orphaner" {
  exec = ` + sh(`sleep 1000 & echo $! > "$TESTDIR/orphan.pid"`) + `
}
`
	p := start(t, opts{Config: cfg, Plain: true})
	pidFile := filepath.Join(p.Dir, "orphan.pid")
	p.WaitLog(10*time.Second, is("exited", "orphaner"), "orphaner exited")
	orphan, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if err != nil {
		t.Fatalf("orphan.pid: %v", err)
	}
	ppid := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", orphan))
		if err != nil {
			return -1
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		n, _ := strconv.Atoi(f[1])
		return n
	}
	waitFor(t, 5*time.Second, func() bool { return ppid() == p.PID() }, "the orphan (pid %d) to be reparented to pilotfish (pid %d)", orphan, p.PID())
	if err := syscall.Kill(orphan, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Reaped: the process disappears entirely instead of staying a zombie.
	waitFor(t, 5*time.Second, func() bool { return !exists(fmt.Sprintf("/proc/%d", orphan)) }, "the killed orphan to be reaped")
	p.WaitLog(5*time.Second, func(e logEntry) bool { return is("reaped orphan", "")(e) && e.str("pid") == strconv.Itoa(orphan) }, "the orphan reaped")
	if !p.Running() || p.CountLogs(is("exited", "steady")) != 0 {
		t.Fatalf("the orphan's death disturbed pilotfish or job steady")
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
