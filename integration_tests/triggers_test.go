package integration

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probed is a health exec probe that counts its runs in NAME.probes and passes once the
// test created NAME.ok.
func probed(name string) string {
	return sh(`echo >> "$TESTDIR/` + name + `.probes"; test -f "$TESTDIR/` + name + `.ok"`)
}

// logIndex is the position of the first matching log entry, or -1.
func logIndex(logs []logEntry, match func(logEntry) bool) int {
	for i, e := range logs {
		if match(e) {
			return i
		}
	}
	return -1
}

// docs/guarantees.md#13, docs/jobs.md#triggers: `after` waits for every listed event, in any order.
func TestWaitsForTwoHealthyJobs(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "a" {
  exec = "sleep 1000"
  health {
    exec     = ` + probed("a") + `
    interval = "100ms"
  }
}
job "b" {
  exec = "sleep 1000"
  health {
    exec     = ` + probed("b") + `
    interval = "100ms"
  }
}
job "c" {
  exec = ` + sh(`date +%s%N > "$TESTDIR/c.started"; env > "$TESTDIR/c.tmp"; mv "$TESTDIR/c.tmp" "$TESTDIR/c.env"; exec sleep 1000`) + `
  when {
    after = { a = "healthy", b = "healthy" }
  }
}
`
	p := start(t, opts{Config: cfg})
	p.WaitLog(10*time.Second, is("started", "a"), "a started")
	p.WaitLog(10*time.Second, is("started", "b"), "b started")
	writeFile(t, filepath.Join(p.Dir, "a.ok"), "", 0o644)
	p.WaitLog(10*time.Second, is("healthy", "a"), "a healthy")

	// While b goes on failing its checks for a while, c must not start.
	bProbes := filepath.Join(p.Dir, "b.probes")
	n := len(fileLines(t, bProbes))
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, bProbes)) >= n+5 }, "5 more probes of b")
	if exists(filepath.Join(p.Dir, "c.started")) || p.CountLogs(is("started", "c")) > 0 {
		t.Fatalf("c started when only a was healthy")
	}

	bOK := time.Now()
	writeFile(t, filepath.Join(p.Dir, "b.ok"), "", 0o644)
	waitFor(t, 10*time.Second, func() bool { return exists(filepath.Join(p.Dir, "c.env")) }, "c to start")
	if cAt := stamp(t, filepath.Join(p.Dir, "c.started")); cAt.Before(bOK) {
		t.Errorf("c started %s before b could be healthy", bOK.Sub(cAt))
	}
	logs := p.Logs()
	if hb, sc := logIndex(logs, is("healthy", "b")), logIndex(logs, is("started", "c")); hb < 0 || sc < hb {
		t.Errorf("c started (log #%d) before b was healthy (log #%d)", sc, hb)
	}
	env := envFile(t, filepath.Join(p.Dir, "c.env"))
	if env["PILOTFISH_EVENT"] != "healthy" || env["PILOTFISH_EVENT_SOURCE"] != "b" {
		t.Errorf("c was triggered by %s.%s, want b.healthy", env["PILOTFISH_EVENT_SOURCE"], env["PILOTFISH_EVENT"])
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// docs/jobs.md#triggers: `once` starts the job once, however often the event comes.
func TestTriggerOnce(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "a" {
  exec     = ["echo", "a ran"]
  restarts = 2
  backoff  = { initial = "50ms", max = "100ms" }
}
job "b" {
  exec = ` + sh(`echo run >> "$TESTDIR/b.runs"`) + `
  when {
    source = "a"
    once   = "exitSuccess"
  }
}
`
	p := start(t, opts{Config: cfg})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if n := strings.Count(p.Stdout.String(), "[a] a ran\n"); n != 3 {
		t.Fatalf("a ran %d times, want 3", n)
	}
	if n := len(fileLines(t, filepath.Join(p.Dir, "b.runs"))); n != 1 {
		t.Fatalf("b ran %d times on 3 a.exitSuccess, want once", n)
	}
}

// docs/jobs.md#triggers: `each` runs the job on every event and restarts it if it still runs (unless
// overlap = "skip").
func TestTriggerEachRestartsOnOverlap(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "a" {
  exec     = ["echo", "a ran"]
  restarts = 3
  backoff  = { initial = "300ms", max = "300ms" }
}
job "b" {
  exec = ` + sh(`trap 'echo term >> "$TESTDIR/b.log"; exit 0' TERM
echo "run $PILOTFISH_EVENT_SOURCE.$PILOTFISH_EVENT" >> "$TESTDIR/b.log"
sleep 1000 & wait`) + `
  when {
    source = "a"
    each   = "exitSuccess"
  }
}
job "c" {
  exec    = ` + sh(`echo run >> "$TESTDIR/c.log"; exec sleep 1000`) + `
  overlap = "skip"
  when {
    source = "a"
    each   = "exitSuccess"
  }
}
`
	p := start(t, opts{Config: cfg})
	bLog := filepath.Join(p.Dir, "b.log")
	waitFor(t, 20*time.Second, func() bool {
		return p.CountLogs(is("exited", "a")) == 4 && strings.Count(readFile(t, bLog), "run ") == 4 &&
			p.CountLogs(is("started", "b")) == 4
	}, "4 runs of a and 4 runs of b")
	want := "run a.exitSuccess\nterm\nrun a.exitSuccess\nterm\nrun a.exitSuccess\nterm\nrun a.exitSuccess\n"
	if got := readFile(t, bLog); got != want {
		t.Errorf("b's runs:\n%s\nwant (each event restarts the running job):\n%s", got, want)
	}
	if n := len(fileLines(t, filepath.Join(p.Dir, "c.log"))); n != 1 {
		t.Errorf("c (overlap = skip) ran %d times, want once", n)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// docs/jobs.md#triggers: `interval` runs the job at start-up and then periodically.
func TestTriggerInterval(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "tick" {
  exec = ` + sh(`date +%s%N >> "$TESTDIR/ticks"`) + `
  when {
    interval = "300ms"
  }
}
`
	p := start(t, opts{Config: cfg})
	ticksFile := filepath.Join(p.Dir, "ticks")
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, ticksFile)) >= 5 }, "5 runs")
	ticks := nanoTimes(t, ticksFile)
	started := p.WaitLog(time.Second, is("pilotfish started", ""), "start").time()
	if d := ticks[0].Sub(started); d > time.Second {
		t.Errorf("first run %s after start-up, want at start-up", d)
	}
	avg := ticks[4].Sub(ticks[0]) / 4
	t.Logf("average interval over 4 runs: %s", avg)
	if avg < 250*time.Millisecond || avg > 600*time.Millisecond {
		t.Errorf("average interval %s, want about 300ms", avg)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// docs/jobs.md#triggers: `any` with `debounce` coalesces a burst of events into one run.
func TestTriggerAnyDebounce(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "a" {
  exec     = ["echo", "a ran"]
  restarts = 3
  backoff  = { initial = "50ms", max = "100ms" }
}
job "b" {
  exec     = ["echo", "b ran"]
  restarts = 3
  backoff  = { initial = "50ms", max = "100ms" }
}
job "c" {
  exec = ` + sh(`echo "$PILOTFISH_EVENT_SOURCE.$PILOTFISH_EVENT" >> "$TESTDIR/c.runs"`) + `
  when {
    any      = { a = "exitSuccess", b = "exitSuccess" }
    debounce = "1s"
  }
}
`
	p := start(t, opts{Config: cfg})
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	runs := fileLines(t, filepath.Join(p.Dir, "c.runs"))
	if len(runs) != 1 {
		t.Fatalf("c ran %d times (%q) on a burst of 8 events, want once", len(runs), runs)
	}
	if runs[0] != "a.exitSuccess" && runs[0] != "b.exitSuccess" {
		t.Errorf("c was triggered by %q", runs[0])
	}
	var lastExit time.Time
	for _, e := range p.Logs() {
		if e.msg() == "exited" && (e.job() == "a" || e.job() == "b") {
			lastExit = e.time()
		}
	}
	cStart := p.WaitLog(time.Second, is("started", "c"), "c started").time()
	if d := cStart.Sub(lastExit); d < 900*time.Millisecond {
		t.Errorf("c started %s after the last event, want after the 1s debounce", d)
	}
}

// docs/events.md, docs/jobs.md#triggers: `timeout` expires the job and publishes timerExpired, which can trigger
// another job.
func TestTriggerTimeoutExpires(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "a" {
  exec = "sleep 1000"
  health {
    exec     = ["false"]
    interval = "100ms"
  }
}
job "w" {
  exec = ["echo", "w ran"]
  when {
    source  = "a"
    once    = "healthy"
    timeout = "500ms"
  }
}
job "x" {
  exec = ` + sh(`env > "$TESTDIR/x.tmp"; mv "$TESTDIR/x.tmp" "$TESTDIR/x.env"`) + `
  when {
    source = "w"
    once   = "timerExpired"
  }
}
`
	p := start(t, opts{Config: cfg})
	started := p.WaitLog(10*time.Second, is("pilotfish started", ""), "start").time()
	xEnv := filepath.Join(p.Dir, "x.env")
	waitFor(t, 10*time.Second, func() bool { return exists(xEnv) }, "x to run on w.timerExpired")
	env := envFile(t, xEnv)
	if env["PILOTFISH_EVENT"] != "timerExpired" || env["PILOTFISH_EVENT_SOURCE"] != "w" {
		t.Errorf("x was triggered by %s.%s, want w.timerExpired", env["PILOTFISH_EVENT_SOURCE"], env["PILOTFISH_EVENT"])
	}
	exp := p.WaitLog(time.Second, func(e logEntry) bool { return is("state", "w")(e) && e.str("to") == "expired" }, "w expired")
	if d := exp.time().Sub(started); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("w expired %s after start-up, want about its 500ms timeout", d)
	}
	if p.CountLogs(is("started", "w")) != 0 || strings.Contains(p.Stdout.String(), "w ran") {
		t.Errorf("w ran although its trigger never came")
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
