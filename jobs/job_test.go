package jobs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

func TestCrashLoopBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "crash" {
  exec     = "false"
  restarts = "unlimited"
  backoff  = { initial = "100ms", max = "1s" }
}`)
		w.drivers["crash"].auto = &Result{Code: 1}
		w.startup()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		// 100+200+400+800 ms (±20%), then one per second: 8 to 10 runs in 5 s.
		if n := w.drivers["crash"].count(); n < 7 || n > 11 {
			t.Fatalf("%d runs in 5s", n)
		}
		if st := w.jobs["crash"].Status(); st.State != Backoff || st.Restarts < 6 {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestRestartLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "flaky" {
  exec     = "false"
  restarts = 2
  backoff  = { initial = "10ms", max = "20ms" }
}`)
		w.drivers["flaky"].auto = &Result{Code: 2}
		w.startup()
		time.Sleep(time.Second)
		synctest.Wait()
		st := w.jobs["flaky"].Status()
		if n := w.drivers["flaky"].count(); n != 3 || st.State != Failed || st.Restarts != 2 || *st.ExitCode != 2 {
			t.Fatalf("%d runs, status %+v", n, st)
		}
		evs := w.events()
		if c := strings.Count(strings.Join(evs, " "), "flaky.exitFailed"); c != 3 {
			t.Fatalf("exitFailed %d times: %v", c, evs)
		}
	})
}

func TestBackoffResetsAfterLongRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "svc" {
  exec     = "svc"
  restarts = "unlimited"
  backoff  = { initial = "1s", max = "4s" }
}`)
		d := w.drivers["svc"]
		w.startup()
		synctest.Wait()
		for i := 0; i < 3; i++ { // quick crashes: delays 1s, 2s, 4s
			d.last().end(Result{Code: 1})
			time.Sleep(5 * time.Second)
			synctest.Wait()
		}
		time.Sleep(10 * time.Second) // up for longer than max
		d.last().end(Result{Code: 1})
		synctest.Wait()
		t0 := time.Now()
		for d.count() < 5 {
			time.Sleep(10 * time.Millisecond)
		}
		if el := time.Since(t0); el > 1300*time.Millisecond {
			t.Fatalf("after a long run the delay was %s, want the initial 1s", el)
		}
	})
}

func TestTimeoutExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "never" {
  exec = "x"
  when {
    source  = "global"
    once    = "enterMaintenance"
    timeout = "2s"
  }
}
job "alert" {
  exec = "alert"
  when {
    source = "never"
    once   = "timerExpired"
  }
}`)
		w.startup()
		time.Sleep(1900 * time.Millisecond)
		synctest.Wait()
		if st := w.jobs["never"].Status(); st.State != Waiting || !st.timerArmed {
			t.Fatalf("before the timeout: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if st := w.jobs["never"].Status(); st.State != Expired {
			t.Fatalf("after the timeout: %+v", st)
		}
		if w.drivers["never"].count() != 0 || w.drivers["alert"].count() != 1 {
			t.Fatal("expired job ran, or the timerExpired trigger did not")
		}
		w.bus.Publish(events.EnterMaintenance, events.Global, nil)
		synctest.Wait()
		if w.drivers["never"].count() != 0 {
			t.Fatal("expired job ran on a late trigger")
		}
	})
}

// docs/guarantees.md#13: start only after several jobs are ready.
func TestAfterWaitsForAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "a" { exec = "a" }
job "b" { exec = "b" }
job "c" {
  exec = "c"
  when {
    after = { a = "exitSuccess", b = "exitSuccess" }
  }
}`)
		w.startup()
		synctest.Wait()
		w.drivers["a"].last().end(Result{})
		synctest.Wait()
		if w.drivers["c"].count() != 0 {
			t.Fatal("c started after a alone")
		}
		w.drivers["b"].last().end(Result{})
		synctest.Wait()
		if w.drivers["c"].count() != 1 {
			t.Fatal("c did not start after a and b")
		}
		env := strings.Join(w.drivers["c"].last().env, " ")
		if !strings.Contains(env, "PILOTFISH_EVENT=exitSuccess") || !strings.Contains(env, "PILOTFISH_EVENT_SOURCE=b") ||
			!strings.Contains(env, "PILOTFISH_JOB=c") || !strings.Contains(env, "BASE=1") {
			t.Fatalf("env %s", env)
		}
	})
}

func TestAnyDebounces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "a" { exec = "a" }
job "b" { exec = "b" }
job "react" {
  exec = "react"
  when {
    any      = { a = "started", b = "started" }
    debounce = "500ms"
  }
}`)
		w.startup() // a and b start together: one run of react
		time.Sleep(time.Second)
		synctest.Wait()
		if n := w.drivers["react"].count(); n != 1 {
			t.Fatalf("react ran %d times", n)
		}
	})
}

func TestEachRestartsOrSkips(t *testing.T) {
	for _, overlap := range []string{"restart", "skip"} {
		t.Run(overlap, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, `
job "src" {
  exec = "src"
  restarts = "unlimited"
  backoff = { initial = "1s", max = "1s" }
}
job "each" {
  exec    = "each"
  overlap = "`+overlap+`"
  when {
    source = "src"
    each   = "started"
  }
}`)
				w.startup()
				synctest.Wait()
				w.drivers["src"].last().end(Result{Code: 1}) // src starts again after 1s
				time.Sleep(1500 * time.Millisecond)
				synctest.Wait()
				d := w.drivers["each"]
				want := map[string]int{"restart": 2, "skip": 1}[overlap]
				if d.count() != want {
					t.Fatalf("%d runs, want %d", d.count(), want)
				}
				if overlap == "restart" && !slices.Equal(d.runs[0].gotSignals(), []syscall.Signal{syscall.SIGTERM}) {
					t.Fatalf("first run got %v", d.runs[0].gotSignals())
				}
			})
		})
	}
}

func TestIntervalSkipsWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "tick" {
  exec = "tick"
  when {
    interval = "1s"
  }
}`)
		w.startup()
		synctest.Wait()
		d := w.drivers["tick"]
		if d.count() != 1 {
			t.Fatal("interval job did not run at startup")
		}
		time.Sleep(2500 * time.Millisecond) // still running: both ticks skipped
		synctest.Wait()
		if d.count() != 1 {
			t.Fatalf("ran %d times while the first run was going", d.count())
		}
		d.last().end(Result{})
		synctest.Wait()
		if st := w.jobs["tick"].Status(); st.State != Waiting {
			t.Fatalf("between runs: %s", st.State)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if d.count() != 2 {
			t.Fatalf("ran %d times", d.count())
		}
	})
}

func TestStopKillsAfterStopTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "stubborn" {
  exec         = "x"
  stop_signal  = "SIGINT"
  stop_timeout = "3s"
}`)
		w.startup()
		synctest.Wait()
		t0 := time.Now()
		if err := w.jobs["stubborn"].Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(t0); el != 3*time.Second {
			t.Fatalf("stopped after %s", el)
		}
		if got := w.drivers["stubborn"].last().gotSignals(); !slices.Equal(got, []syscall.Signal{syscall.SIGINT, syscall.SIGKILL}) {
			t.Fatalf("signals %v", got)
		}
		st := w.jobs["stubborn"].Status()
		if st.State != Stopped || *st.ExitCode != 137 {
			t.Fatalf("status %+v", st)
		}
		evs := strings.Join(w.events(), " ")
		if evs != "stubborn.started stubborn.stopping stubborn.exitFailed stubborn.stopped" {
			t.Fatalf("events %s", evs)
		}
	})
}

// hookedApp is a job with a stopping hook.
const hookedApp = `
job "app" { exec = "app" }
job "drain" {
  exec = "drain"
  when {
    source = "app"
    once   = "stopping"
  }
}`

// A stopping hook runs before the job is signalled, and the job waits for it.
func TestStoppingHookRunsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, hookedApp)
		w.startup()
		synctest.Wait()
		stopped := make(chan error)
		go func() { stopped <- w.jobs["app"].Stop(context.Background()) }()
		synctest.Wait()
		if w.drivers["drain"].count() != 1 {
			t.Fatal("hook did not run")
		}
		if s := w.drivers["app"].last().gotSignals(); len(s) != 0 {
			t.Fatalf("app signalled before its hook finished: %v", s)
		}
		time.Sleep(time.Second)
		w.drivers["drain"].last().end(Result{})
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		if s := w.drivers["app"].last().gotSignals(); !slices.Equal(s, []syscall.Signal{syscall.SIGTERM}) {
			t.Fatalf("app got %v", s)
		}
	})
}

// Health events are published on changes only (docs/guarantees.md#9).
func TestHealthEdgesOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "svc" {
  exec = "svc"
  health {
    exec     = ["check"]
    interval = "1s"
    failures = 2
  }
}`)
		j := w.jobs["svc"]
		w.startup()
		synctest.Wait()
		run := func(ok bool) {
			j.healthC <- probeResult{runID: 1, ok: ok, msg: "m"}
			synctest.Wait()
		}
		for _, ok := range []bool{true, true, true, false, true, false, false, false, true, true} {
			run(ok)
		}
		got := strings.Join(w.events(), " ")
		if got != "svc.started svc.healthy svc.unhealthy svc.healthy" {
			t.Fatalf("events %s", got)
		}
	})
}

// A once = "stopping" hook fires at every stop of the job it hooks, not once per lifetime.
func TestStoppingHookFiresAtEveryStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, hookedApp)
		w.drivers["drain"].auto = &Result{}
		w.startup()
		synctest.Wait()
		app := w.jobs["app"]
		for i := 1; i <= 3; i++ {
			if err := app.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if n := w.drivers["drain"].count(); n != i {
				t.Fatalf("after restart %d the hook ran %d times", i, n)
			}
		}
		if err := app.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := w.drivers["drain"].count(); n != 4 {
			t.Fatalf("after the final stop the hook ran %d times", n)
		}
	})
}

// An interval job stopped and started by hand ticks again.
func TestIntervalRearmsAfterStopStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, `
job "tick" {
  exec = "tick"
  when {
    interval = "1s"
  }
}`)
		d := w.drivers["tick"]
		d.auto = &Result{}
		w.startup()
		synctest.Wait()
		j := w.jobs["tick"]
		if err := j.Pause(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		held := d.count()
		if err := j.StartNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if got := d.count() - held; got != 4 {
			t.Fatalf("%d runs in 3.5 s after the start by hand, want 4 (one at once, then a tick a second)", got)
		}
		if st := j.Status(); st.State != Waiting || !st.timerArmed {
			t.Fatalf("between ticks: %+v", st)
		}
	})
}

// A job added by a reload whose once trigger already holds runs with that event.
func TestPrimedTriggerGivesItsEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := buildWorld(t, `
job "db" { exec = "db" }
job "app" {
  exec = "app"
  when {
    source = "db"
    once   = "exitSuccess"
  }
}`)
		if err := w.jobs["app"].Prime([]config.Trigger{{Source: "db", Code: events.ExitSuccess}}); err != nil {
			t.Fatal(err)
		}
		w.start()
		if err := w.jobs["app"].Prime(nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("a started job took a priming: %v", err)
		}
		w.startup()
		synctest.Wait()
		d := w.drivers["app"]
		if d.count() != 1 {
			t.Fatal("primed job did not start")
		}
		env := strings.Join(d.last().env, " ")
		if !strings.Contains(env, "PILOTFISH_EVENT=exitSuccess") || !strings.Contains(env, "PILOTFISH_EVENT_SOURCE=db") {
			t.Fatalf("env %s", env)
		}
	})
}

// At the cap, the delay stays random: crash loops do not restart in lock-step.
func TestBackoffJitterAtCap(t *testing.T) {
	b := config.Backoff{Initial: time.Second, Max: 4 * time.Second}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := nextDelay(4*time.Second, b)
		if d < 3200*time.Millisecond || d > 4*time.Second {
			t.Fatalf("delay %s outside 80–100%% of max", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct delays at the cap", len(seen))
	}
}
