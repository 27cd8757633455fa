package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docs/guarantees.md#3: with nothing left to stop, shutdown is immediate (no fixed sleep).
func TestShutdownIsImmediateWhenIdle(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		cfg, ready string
	}{
		// Nothing runs: the only job waits for an event that can still come (a reload).
		"nothing running": {cfg: jsonLogs + `
job "on-reload" {
  exec = "true"
  when {
    source = "global"
    each   = "reload"
  }
}
`},
		// One job that ends at once on SIGTERM.
		"one job that stops at once": {cfg: jsonLogs + `
job "sleeper" {
  exec = "sleep 1000"
}
`, ready: "sleeper"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := start(t, opts{Config: c.cfg})
			p.WaitStarted()
			if c.ready != "" {
				p.WaitLog(10*time.Second, is("started", c.ready), c.ready+" started")
			}
			if !p.Running() {
				t.Fatalf("pilotfish exited before SIGTERM")
			}
			code, took := p.SignalWait(syscall.SIGTERM, 10*time.Second)
			t.Logf("%s: SIGTERM → exit took %s (pilotfish says %s)", name, took,
				p.WaitLog(time.Second, is("stopped", ""), "stopped").str("took"))
			if code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			if took > time.Second {
				t.Fatalf("idle shutdown took %s, want milliseconds (< 1s)", took)
			}
		})
	}
}

// docs/guarantees.md#3: a job's own stop_timeout is honoured: SIGKILL after it, not after the top-level
// budget.
func TestStopTimeoutKillsIgnoringJob(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
stop_timeout = "30s"
job "stubborn" {
  exec         = ["/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]
  stop_timeout = "1s"
}
`
	p := start(t, opts{Config: cfg})
	p.WaitStdout(10*time.Second, `^\[stubborn\] ready$`)
	code, took := p.SignalWait(syscall.SIGTERM, 15*time.Second)
	t.Logf("job ignoring SIGTERM with stop_timeout 1s: pilotfish exited %s after SIGTERM", took)
	if code != 0 {
		t.Errorf("exit code %d, want 0 (shutdown by signal, even if a job had to be killed)", code)
	}
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("shutdown took %s, want about the job's stop_timeout of 1s (0.9s–3s)", took)
	}
	p.WaitLog(time.Second, is("did not stop in time; killing it", "stubborn"), "the kill of stubborn")
	if e := p.WaitLog(time.Second, is("exited", "stubborn"), "stubborn exited"); e.str("status") != "killed by SIGKILL" {
		t.Errorf("stubborn ended with %q, want killed by SIGKILL", e.str("status"))
	}
}

// docs/guarantees.md#11, docs/guarantees.md#13, docs/jobs.md#triggers: shutdown follows the dependency edges in reverse; a stopping hook
// runs (and finishes) before its job is signalled.
func TestReverseOrderShutdown(t *testing.T) {
	t.Parallel()
	// Each service records when it got SIGTERM and, 200 ms later, when it exits.
	svc := func(name string) string {
		return sh(fmt.Sprintf(`trap 'date +%%s%%N > "$TESTDIR/%[1]s.term"; sleep 0.2; date +%%s%%N > "$TESTDIR/%[1]s.exit"; exit 0' TERM
echo up
sleep 1000 & wait`, name))
	}
	cfg := jsonLogs + `
stop_timeout = "20s"
job "db" {
  exec = ` + svc("db") + `
  health {
    exec     = ["true"]
    interval = "200ms"
  }
}
job "app" {
  exec = ` + svc("app") + `
  when {
    source = "db"
    once   = "healthy"
  }
}
job "web" {
  exec = ` + svc("web") + `
  when {
    source = "app"
    once   = "started"
  }
}
job "prestop" {
  exec = ` + sh(`date +%s%N > "$TESTDIR/prestop.start"; sleep 0.3; date +%s%N > "$TESTDIR/prestop.done"`) + `
  when {
    source = "app"
    once   = "stopping"
  }
}
`
	p := start(t, opts{Config: cfg})
	for _, j := range []string{"db", "app", "web"} {
		p.WaitStdout(10*time.Second, `^\[`+j+`\] up$`)
	}
	if exists(filepath.Join(p.Dir, "prestop.start")) {
		t.Fatalf("the stopping hook ran before anything stopped")
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	at := func(f string) time.Time { return stamp(t, filepath.Join(p.Dir, f)) }
	web, app, db := at("web.term"), at("app.term"), at("db.term")
	t.Logf("SIGTERM received: web +0, app %+v, db %+v", app.Sub(web), db.Sub(web))
	if !(web.Before(app) && app.Before(db)) {
		t.Errorf("jobs got SIGTERM in the wrong order: web %v, app %v, db %v (want web, app, db)", web, app, db)
	}
	if we := at("web.exit"); app.Before(we) {
		t.Errorf("app was signalled %s before web had exited", we.Sub(app))
	}
	if ae := at("app.exit"); db.Before(ae) {
		t.Errorf("db was signalled %s before app had exited", ae.Sub(db))
	}
	if hookDone := at("prestop.done"); app.Before(hookDone) {
		t.Errorf("app was signalled %s before its stopping hook finished", hookDone.Sub(app))
	}
	if hookStart := at("prestop.start"); hookStart.Before(at("web.exit")) {
		t.Errorf("app's stopping hook ran before web (which depends on app) had stopped")
	}
}

// docs/jobs.md: the whole shutdown ends within the top-level stop_timeout, even when a job's own
// stop_timeout is longer.
func TestShutdownBudgetBoundsEverything(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
stop_timeout = "1s"
job "stubborn" {
  exec         = ["/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]
  stop_timeout = "30s"
}
`
	p := start(t, opts{Config: cfg})
	p.WaitStdout(10*time.Second, `^\[stubborn\] ready$`)
	code, took := p.SignalWait(syscall.SIGTERM, 15*time.Second)
	t.Logf("top-level stop_timeout 1s, job stop_timeout 30s: exited %s after SIGTERM", took)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took > 3*time.Second {
		t.Errorf("shutdown took %s, want it bounded by the top-level stop_timeout of 1s", took)
	}
}

// docs/jobs.md: SIGINT shuts down gracefully like SIGTERM; a second SIGINT (Ctrl-C again) stops
// waiting and kills what is left.
func TestSIGINTShutsDownAndSecondKills(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
stop_timeout = "30s"
job "polite" {
  exec = ` + sh(`trap 'echo got INT >> "$TESTDIR/polite"; exit 0' INT TERM; echo ready; sleep 1000 & wait`) + `
}
job "stubborn" {
  exec         = ["/bin/sh", "-c", "trap '' TERM INT; echo ready; while :; do sleep 0.1; done"]
  stop_timeout = "30s"
}
`
	p := start(t, opts{Config: cfg})
	p.WaitStdout(10*time.Second, `^\[polite\] ready$`)
	p.WaitStdout(10*time.Second, `^\[stubborn\] ready$`)
	p.Signal(syscall.SIGINT)
	p.WaitLog(5*time.Second, is("shutting down", ""), "shutting down")
	waitFor(t, 5*time.Second, func() bool { return exists(filepath.Join(p.Dir, "polite")) }, "polite to be stopped")
	if p.ExitsWithin(0) {
		t.Fatalf("pilotfish did not wait for the job that ignores SIGTERM")
	}
	code, took := p.SignalWait(syscall.SIGINT, 5*time.Second)
	t.Logf("second SIGINT → exit in %s", took)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took > 2*time.Second {
		t.Errorf("the second SIGINT took %s to end pilotfish", took)
	}
}

// docs/configuration.md: stop_signal is what a job gets when it is stopped.
func TestStopSignal(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "intjob" {
  exec        = ` + sh(`trap 'echo INT > "$TESTDIR/intjob"; exit 0' INT; trap 'echo TERM > "$TESTDIR/intjob"; exit 0' TERM; echo ready; sleep 1000 & wait`) + `
  stop_signal = "SIGINT"
}
job "hupjob" {
  exec        = ` + sh(`trap 'echo HUP > "$TESTDIR/hupjob"; exit 0' HUP; trap 'echo TERM > "$TESTDIR/hupjob"; exit 0' TERM; echo ready; sleep 1000 & wait`) + `
  stop_signal = "HUP"
}
`
	p := start(t, opts{Config: cfg})
	p.WaitStdout(10*time.Second, `^\[intjob\] ready$`)
	p.WaitStdout(10*time.Second, `^\[hupjob\] ready$`)
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	for job, want := range map[string]string{"intjob": "INT", "hupjob": "HUP"} {
		if got := strings.TrimSpace(readFile(t, filepath.Join(p.Dir, job))); got != want {
			t.Errorf("job %s was stopped with %q, want %s", job, got, want)
		}
	}
}

// docs/events.md: `shutdown` is an event like any other: a job triggered by it runs when
// pilotfish shuts down (bounded by its stop_timeout), it is not killed as it starts.
func TestShutdownEventTriggersJob(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "app" {
  exec = "sleep 1000"
}
job "farewell" {
  exec = ` + sh(`echo begin >> "$TESTDIR/farewell"; sleep 0.3; echo done >> "$TESTDIR/farewell"`) + `
  stop_timeout = "3s"
  when {
    source = "global"
    once   = "shutdown"
  }
}
`
	p := start(t, opts{Config: cfg})
	p.WaitLog(10*time.Second, is("started", "app"), "app started")
	if exists(filepath.Join(p.Dir, "farewell")) {
		t.Fatalf("farewell ran before the shutdown")
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	got := readFile(t, filepath.Join(p.Dir, "farewell"))
	if got != "begin\ndone\n" {
		e := p.WaitLog(time.Second, is("exited", "farewell"), "farewell exited")
		t.Fatalf("the job triggered by global.shutdown wrote %q (it ended with %s), want it to run to completion", got, e.str("status"))
	}
}
