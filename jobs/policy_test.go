package jobs

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// The restart and exit policies (docs/jobs.md, "Restarts and backoff" and "Health probes").

// restart_on = "failure": a failed exit restarts the job, a successful one ends it completed.
func TestRestartOnFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "w" {
  exec       = "w"
  restarts   = "unlimited"
  restart_on = "failure"
  backoff    = { initial = "1s", max = "1s" }
}`)
		d, j := w.drivers["w"], w.jobs["w"]
		w.startup()
		synctest.Wait()
		d.last().end(Result{Code: 1})
		synctest.Wait()
		if st := j.Status(); st.State != Backoff {
			t.Fatalf("after exit 1: %s", st.State)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		d.last().end(Result{})
		synctest.Wait()
		st := j.Status()
		if d.count() != 2 || st.State != Completed || st.Restarts != 1 {
			t.Fatalf("%d runs, status %+v", d.count(), st)
		}
		got := strings.Join(w.events(), " ")
		if got != "w.started w.exitFailed w.started w.exitSuccess w.stopped" {
			t.Fatalf("events %s", got)
		}
	})
}

// The default, restart_on = "any", restarts after a successful exit too.
func TestRestartOnAnyRestartsSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "w" {
  exec     = "w"
  restarts = 1
  backoff  = { initial = "1s", max = "1s" }
}`)
		d, j := w.drivers["w"], w.jobs["w"]
		w.startup()
		synctest.Wait()
		d.last().end(Result{})
		synctest.Wait()
		if st := j.Status(); st.State != Backoff {
			t.Fatalf("after exit 0: %s", st.State)
		}
	})
}

// success_codes decide exitSuccess and exitFailed, and completed and failed; a death by
// signal is never a success, even when its 128+N is listed.
func TestSuccessCodes(t *testing.T) {
	for _, c := range []struct {
		name  string
		res   Result
		event string
		state State
	}{
		{"exit 0", Result{}, "exitSuccess", Completed},
		{"exit 3", Result{Code: 3}, "exitSuccess", Completed},
		{"exit 143 by itself", Result{Code: 143}, "exitSuccess", Completed},
		{"exit 1", Result{Code: 1}, "exitFailed", Failed},
		{"killed by SIGTERM", Result{Code: 143, Signal: syscall.SIGTERM}, "exitFailed", Failed},
		{"could not start", Result{Code: 3, Err: errors.New("no")}, "exitFailed", Failed},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, `
job "w" {
  exec          = "w"
  success_codes = [0, 3, 143]
}`)
				w.startup()
				synctest.Wait()
				w.drivers["w"].last().end(c.res)
				synctest.Wait()
				if st := w.jobs["w"].Status(); st.State != c.state || *st.ExitCode != c.res.Code {
					t.Fatalf("status %+v, want %s", st, c.state)
				}
				if got := strings.Join(w.events(), " "); got != "w.started w."+c.event+" w.stopped" {
					t.Fatalf("events %s", got)
				}
			})
		})
	}
}

// healthRestart is a job restarted when unhealthy, with a stopping hook; the test gives the
// verdicts (its log probe runs no prober).
const healthRestart = `
job "app" {
  exec     = "app"
  restarts = 2
  backoff  = { initial = "1s", max = "10s" }
  health {
    log        = "ready"
    interval   = "1s"
    failures   = 2
    on_failure = "restart"
  }
}
job "drain" {
  exec = "drain"
  when {
    source = "app"
    once   = "stopping"
  }
}`

// verdict hands job j one health verdict about its latest run.
func verdict(w *world, job string, ok bool) {
	w.jobs[job].healthC <- probeResult{runID: uint64(w.drivers[job].count()), ok: ok, msg: "check"}
	synctest.Wait()
}

// twoFailures makes job app of healthRestart unhealthy: two failures, one interval apart
// (before a run's first pass, failures count at most once per interval).
func twoFailures(w *world) {
	verdict(w, "app", false)
	time.Sleep(time.Second)
	verdict(w, "app", false)
}

// An unhealthy verdict with on_failure = "restart" stops the job with its hooks and starts
// it again after backoff: counted under restarts, with a delay that grows, and the job
// ends failed once no restart is left.
func TestHealthRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, healthRestart)
		w.drivers["drain"].auto = &Result{}
		d, j := w.drivers["app"], w.jobs["app"]
		w.startup()
		synctest.Wait()
		verdict(w, "app", false)
		if st := j.Status(); st.State != Running || st.Health != HealthUnknown {
			t.Fatalf("after one failure of two: %+v", st)
		}
		time.Sleep(time.Second)
		verdict(w, "app", false)
		st := j.Status()
		if st.State != Backoff || st.Restarts != 0 || st.Health != HealthUnknown {
			t.Fatalf("after the unhealthy verdict: %+v", st)
		}
		want := "app.started app.unhealthy app.stopping drain.started drain.exitSuccess drain.stopped app.exitFailed app.stopped"
		if got := strings.Join(w.events(), " "); got != want {
			t.Fatalf("events\n%s\nwant\n%s", got, want)
		}
		// The first delay is initial (1s ±20%).
		first := untilRuns(t, d, 2, 1200*time.Millisecond)
		if first < 800*time.Millisecond {
			t.Fatalf("restarted %s after the stop, before the backoff delay", first)
		}
		if st := j.Status(); st.State != Running || st.Restarts != 1 {
			t.Fatalf("after the delay: %+v", st)
		}
		if got := strings.Join(w.events(), " "); got != "app.started" {
			t.Fatalf("events after the delay: %s", got)
		}
		// Never healthy: the second delay is the first doubled (±20%).
		twoFailures(w)
		second := untilRuns(t, d, 3, first*12/5+runStep)
		if second < first*8/5-2*runStep { // first is measured up to one step long
			t.Fatalf("the second restart came %s after the stop; the first delay was %s, so not doubled", second, first)
		}
		if st := j.Status(); st.Restarts != 2 {
			t.Fatalf("status %+v", st)
		}
		// No restart left: the job is stopped for good and ends failed.
		w.events()
		twoFailures(w)
		if st := j.Status(); st.State != Failed || st.Restarts != 2 {
			t.Fatalf("with no restart left: %+v", st)
		}
		want = "app.unhealthy app.stopping drain.started drain.exitSuccess drain.stopped app.exitFailed app.stopped"
		if got := strings.Join(w.events(), " "); got != want {
			t.Fatalf("events\n%s\nwant\n%s", got, want)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if d.count() != 3 {
			t.Fatalf("a failed job ran again: %d runs", d.count())
		}
	})
}

// runStep is the resolution of untilRuns.
const runStep = 10 * time.Millisecond

// untilRuns lets the bubble's clock run in steps until driver d has started n runs, and
// returns how long that took (to runStep); past limit the test fails.
func untilRuns(t *testing.T, d *fakeDriver, n int, limit time.Duration) time.Duration {
	t.Helper()
	var took time.Duration
	for synctest.Wait(); d.count() < n; synctest.Wait() {
		if took > limit {
			t.Fatalf("%d runs after %s, want %d", d.count(), took, n)
		}
		time.Sleep(runStep)
		took += runStep
	}
	return took
}

// A run that was healthy before it turned unhealthy restarts after the initial delay, and
// each new run gets its grace again.
func TestHealthRestartGraceAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "app" {
  exec     = "app"
  restarts = "unlimited"
  backoff  = { initial = "1s", max = "1m" }
  health {
    log        = "ready"
    failures   = 1
    grace      = "10s"
    on_failure = "restart"
  }
}`)
		d, j := w.drivers["app"], w.jobs["app"]
		w.startup()
		synctest.Wait()
		verdict(w, "app", false) // within grace: ignored
		if st := j.Status(); st.State != Running || st.Health != HealthUnknown {
			t.Fatalf("a failure within grace counted: %+v", st)
		}
		verdict(w, "app", true)
		time.Sleep(11 * time.Second)
		verdict(w, "app", false)
		if st := j.Status(); st.State != Backoff {
			t.Fatalf("after grace: %+v", st)
		}
		time.Sleep(1200 * time.Millisecond)
		synctest.Wait()
		if d.count() != 2 {
			t.Fatalf("%d runs: a run that was healthy did not restart after the initial delay", d.count())
		}
		verdict(w, "app", false) // the new run's grace
		if st := j.Status(); st.State != Running {
			t.Fatalf("the restarted run has no grace: %+v", st)
		}
	})
}

// A stop or the shutdown during a health restart's stop wins: the job ends stopped, and
// an API restart then starts it at once.
func TestHealthRestartYieldsToStops(t *testing.T) {
	for _, v := range []string{"stop", "shutdown", "restart"} {
		t.Run(v, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, `
job "app" {
  exec         = "app"
  restarts     = "unlimited"
  stop_timeout = "10s"
  health {
    log        = "ready"
    failures   = 1
    on_failure = "restart"
  }
}`)
				d, j := w.drivers["app"], w.jobs["app"]
				d.exitOn = nil // the run ignores SIGTERM: the stop lasts stop_timeout
				w.startup()
				synctest.Wait()
				verdict(w, "app", false)
				if st := j.Status(); st.State != Stopping {
					t.Fatalf("not stopping: %+v", st)
				}
				done := make(chan error, 1)
				go func() { done <- apply(j, v) }()
				synctest.Wait()
				if v == "shutdown" {
					go func() { done <- apply(j, "stop") }()
					<-done
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				want := map[string]State{"stop": Stopped, "shutdown": Stopped, "restart": Running}[v]
				if st := j.Status(); st.State != want || st.Restarts != 0 {
					t.Fatalf("after %s: %+v, want %s", v, st, want)
				}
				time.Sleep(time.Minute)
				synctest.Wait()
				if n := map[string]int{"stop": 1, "shutdown": 1, "restart": 2}[v]; d.count() != n {
					t.Fatalf("%d runs, want %d", d.count(), n)
				}
			})
		})
	}
}

// runningApp starts job "app", running, whose health turns with one verdict and whose
// health.on_failure is policy.
func runningApp(t *testing.T, policy string) (*world, *Job) {
	w := newWorld(t, `
job "app" {
  exec     = "app"
  restarts = "unlimited"
  health {
    log        = "ready"
    failures   = 1
    on_failure = "`+policy+`"
  }
}`)
	w.startup()
	synctest.Wait()
	return w, w.jobs["app"]
}

// on_failure = "shutdown" asks pilotfish to shut down (Status.Shutdown); the job itself
// keeps running until the shutdown stops it. The default, ignore, only publishes.
func TestHealthShutdownAndIgnore(t *testing.T) {
	for _, policy := range []string{"shutdown", "ignore"} {
		t.Run(policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, j := runningApp(t, policy)
				if j.Status().Shutdown {
					t.Fatal("asked for a shutdown while healthy")
				}
				verdict(w, "app", false)
				st := j.Status()
				if st.State != Running || st.Health != HealthUnhealthy || st.Shutdown != (policy == "shutdown") {
					t.Fatalf("status %+v", st)
				}
				if got := strings.Join(w.events(), " "); got != "app.started app.unhealthy" {
					t.Fatalf("events %s", got)
				}
			})
		})
	}
}

// Once the shutdown has begun, an unhealthy verdict does nothing but the event: no health
// restart, and no request to shut down (which would turn the exit code into 1).
func TestOnFailureDuringShutdown(t *testing.T) {
	for _, policy := range []string{"restart", "shutdown"} {
		t.Run(policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, j := runningApp(t, policy)
				if err := apply(j, "shutdown"); err != nil {
					t.Fatal(err)
				}
				verdict(w, "app", true)
				verdict(w, "app", false)
				verdict(w, "app", true)
				verdict(w, "app", false)
				st := j.Status()
				if st.State != Running || st.Shutdown || st.Restarts != 0 {
					t.Fatalf("status %+v", st)
				}
				if got, want := strings.Join(w.events(), " "), "app.started app.healthy app.unhealthy app.healthy app.unhealthy"; got != want {
					t.Fatalf("events %s, want %s", got, want)
				}
			})
		})
	}
}

// autostart = false: the job is stopped at start-up, its kind opens nothing, its trigger
// is ignored, and pilotfish stays up for it. Started by hand, it behaves as configured.
func TestAutostartFalse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := buildWorld(t, `
job "w" {
  exec      = "w"
  autostart = false
  restarts  = 1
  backoff   = { initial = "1s", max = "1s" }
  when {
    source = "global"
    each   = "enterMaintenance"
  }
}`)
		d, j := w.drivers["w"], w.jobs["w"]
		d.prepErr = errors.New("address in use") // not opened at start-up, so no failure
		w.start()
		w.startup()
		w.bus.Publish(events.EnterMaintenance, events.Global, nil)
		synctest.Wait()
		st := j.Status()
		if st.State != Stopped || d.count() != 0 || !j.Live(st) || !strings.Contains(st.Status, "autostart = false") {
			t.Fatalf("at start-up: %+v, %d runs, live %v", st, d.count(), j.Live(st))
		}
		if got := w.events(); len(got) != 1 || got[0] != "global.enterMaintenance" {
			t.Fatalf("events %v", got)
		}
		// What the kind opens is opened at the first start, and its failure is the start's.
		if err := j.StartNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st := j.Status(); st.State != Backoff || st.Status != "" {
			t.Fatalf("after a start that could not prepare: %+v", st)
		}
		d.mu.Lock()
		d.prepErr = nil
		d.mu.Unlock()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if st := j.Status(); st.State != Running || d.count() != 1 || st.Status != "" {
			t.Fatalf("after the restart: %+v, %d runs", st, d.count())
		}
		// From now on the trigger and the restart policy apply.
		w.bus.Publish(events.EnterMaintenance, events.Global, nil) // overlap = "restart"
		synctest.Wait()
		if d.count() != 2 {
			t.Fatalf("%d runs: the trigger was ignored after the start by hand", d.count())
		}
	})
}

// The kinds refuse what they cannot do: a cron or inetd job is not restarted, and a
// webhook cannot wait stopped for a start by hand.
func TestKindsRefusePolicies(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"cron restart": {`kind = "cron"
schedule = "@hourly"
exec = "x"
health {
  tcp = "h:1"
  on_failure = "restart"
}`, `kind "cron" restarts nothing`},
		"inetd restart": {`kind = "inetd"
listen = "tcp://127.0.0.1:7007"
mode = "activate"
exec = "x"
health {
  tcp = "h:1"
  on_failure = "restart"
}`, `kind "inetd" restarts nothing`},
		"webhook autostart": {`kind = "webhook"
url = "http://127.0.0.1:1/"
autostart = false`, `remove autostart = false`},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, diags := config.Parse("t.hcl", []byte("job \"j\" {\n"+c.src+"\n}\n"), config.Options{Kinds: ConfigKinds()})
			if cfg != nil || !strings.Contains(strings.Join(config.FormatDiagnostics(diags), "\n"), c.want) {
				t.Fatalf("want an error with %q: %v", c.want, config.FormatDiagnostics(diags))
			}
			// The kind's error says it all: no warning about restarts beside it.
			if len(diags) != 1 {
				t.Errorf("want the one error, got %v", config.FormatDiagnostics(diags))
			}
		})
	}
	for _, ok := range []string{
		"kind = \"cron\"\nschedule = \"@hourly\"\nexec = \"x\"\nautostart = false\nsuccess_codes = [0, 1]\nhealth {\ntcp = \"h:1\"\non_failure = \"shutdown\"\n}",
		"kind = \"inetd\"\nlisten = \"tcp://127.0.0.1:7007\"\nexec = \"x\"\nautostart = false",
		"kind = \"notify\"\nexec = \"x\"\nautostart = false\nrestarts = 1\nrestart_on = \"failure\"",
		"kind = \"syslog\"\nautostart = false\noutput \"all\" {\nstdout = true\n}",
	} {
		if cfg, diags := config.Parse("t.hcl", []byte("job \"j\" {\n"+ok+"\n}\n"), config.Options{Kinds: ConfigKinds()}); cfg == nil {
			t.Errorf("refused:\n%s\n%v", ok, config.FormatDiagnostics(diags))
		}
	}
}
