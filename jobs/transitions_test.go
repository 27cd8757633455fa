package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// Every move missing from the table is refused by setState, and the job stays where it
// was; every move in it is taken.
func TestSetStateRefusesIllegalMoves(t *testing.T) {
	cfg, diags := config.Parse("t.hcl", []byte(`job "j" { exec = "x" }`), config.Options{Kinds: ConfigKinds()})
	if cfg == nil {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	var logged strings.Builder
	rt := &Runtime{Log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelError}))}
	j := newJob(cfg.Jobs[0], rt, &fakeDriver{})
	for _, from := range allStates {
		for _, to := range allStates {
			j.state = from
			logged.Reset()
			err := j.setState(to)
			switch {
			case from == to:
				if err != nil {
					t.Errorf("%s to itself: %v", from, err)
				}
			case legal(from, to):
				if err != nil || j.state != to {
					t.Errorf("%s to %s is in the table but was refused: %v", from, to, err)
				}
			default:
				if !errors.Is(err, errIllegal) || j.state != from {
					t.Errorf("%s to %s is not in the table but was taken (state %s, err %v)", from, to, j.state, err)
				}
				if !strings.Contains(logged.String(), "level=ERROR") {
					t.Errorf("%s to %s was refused without an error in the log", from, to)
				}
			}
		}
	}
	for from, tos := range transitions {
		if !slices.Contains(allStates, from) {
			t.Errorf("the table moves from %q, which is not a state", from)
		}
		for to := range tos {
			if !slices.Contains(allStates, to) {
				t.Errorf("the table moves to %q, which is not a state", to)
			}
		}
	}
}

// walk is one way through the machine: it drives job "j" of its configuration and expects
// the moves in want among the job's moves.
type walk struct {
	name  string
	hcl   string
	setup func(d *fakeDriver) // before the jobs start
	steps func(t *testing.T, w *world, j *Job, d *fakeDriver)
	want  []edge
}

var (
	plainJob = `job "j" { exec = "x" }`
	onceJob  = `
job "j" {
  exec = "x"
  when {
    source = "global"
    once   = "enterMaintenance"
  }
}`
	timeoutJob = `
job "j" {
  exec = "x"
  when {
    source  = "global"
    once    = "enterMaintenance"
    timeout = "1s"
  }
}`
	restartJob = `
job "j" {
  exec     = "x"
  restarts = "unlimited"
  backoff  = { initial = "1m", max = "1m" }
}`
	intervalJob = `
job "j" {
  exec = "x"
  when {
    interval = "1m"
  }
}`
	stubbornJob = `
job "j" {
  exec         = "x"
  stop_timeout = "10s"
}`
	eachJob = `
job "j" {
  exec     = "x"
  restarts = "unlimited"
  backoff  = { initial = "1m", max = "1m" }
  when {
    source = "global"
    each   = "enterMaintenance"
  }
}`
	// healthRestartJob is restarted at its first unhealthy verdict; its log probe runs no
	// prober of its own, so the test gives the verdicts (probe).
	healthRestartJob = `
job "j" {
  exec     = "x"
  restarts = "unlimited"
  backoff  = { initial = "1m", max = "1m" }
  health {
    log        = "ready"
    failures   = 1
    on_failure = "restart"
  }
}`
	healthLastJob = `
job "j" {
  exec = "x"
  health {
    log        = "ready"
    failures   = 1
    on_failure = "restart"
  }
}`
	healthEachJob = `
job "j" {
  exec = "x"
  health {
    log        = "ready"
    failures   = 1
    on_failure = "restart"
  }
  when {
    source = "global"
    each   = "enterMaintenance"
  }
}`
	manualJob = `
job "j" {
  exec      = "x"
  autostart = false
}`
	onFailureJob = `
job "j" {
  exec          = "x"
  restarts      = "unlimited"
  restart_on    = "failure"
  success_codes = [0, 3]
}`
)

func startup(_ *testing.T, w *world, _ *Job, _ *fakeDriver) {
	w.startup()
	synctest.Wait()
}

func then(steps ...func(t *testing.T, w *world, j *Job, d *fakeDriver)) func(t *testing.T, w *world, j *Job, d *fakeDriver) {
	return func(t *testing.T, w *world, j *Job, d *fakeDriver) {
		for _, s := range steps {
			s(t, w, j, d)
			synctest.Wait()
		}
	}
}

func endRun(res Result) func(*testing.T, *world, *Job, *fakeDriver) {
	return func(_ *testing.T, _ *world, _ *Job, d *fakeDriver) { d.last().end(res) }
}

func sleep(d time.Duration) func(*testing.T, *world, *Job, *fakeDriver) {
	return func(*testing.T, *world, *Job, *fakeDriver) { time.Sleep(d) }
}

func verb(name string) func(*testing.T, *world, *Job, *fakeDriver) {
	return func(t *testing.T, _ *world, j *Job, _ *fakeDriver) {
		if err := apply(j, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func publish(code events.Code) func(*testing.T, *world, *Job, *fakeDriver) {
	return func(_ *testing.T, w *world, _ *Job, _ *fakeDriver) { w.bus.Publish(code, events.Global, nil) }
}

func activation(t *testing.T, _ *world, _ *Job, d *fakeDriver) { d.activate(t) }

// probe hands the job one verdict of its health probe about its latest run.
func probe(ok bool) func(*testing.T, *world, *Job, *fakeDriver) {
	return func(_ *testing.T, _ *world, j *Job, d *fakeDriver) {
		j.healthC <- probeResult{runID: uint64(d.count()), ok: ok, msg: "probe"}
	}
}

func armed(s State) func(d *fakeDriver) { return func(d *fakeDriver) { d.arm = s } }

var walks = []walk{
	{name: "a job without when starts at startup", hcl: plainJob, steps: startup,
		want: []edge{{Waiting, Starting}, {Starting, Running}}},
	{name: "when.timeout passes", hcl: timeoutJob, steps: then(startup, sleep(2*time.Second)),
		want: []edge{{Waiting, Expired}}},
	{name: "a waiting job is stopped", hcl: onceJob, steps: then(startup, verb("stop")),
		want: []edge{{Waiting, Stopped}}},
	{name: "the kind cannot prepare", hcl: plainJob, setup: func(d *fakeDriver) { d.prepErr = errors.New("no socket") },
		want: []edge{{Waiting, Failed}}},
	{name: "a cron job is armed", hcl: plainJob, setup: armed(Scheduled), steps: startup,
		want: []edge{{Waiting, Starting}, {Starting, Scheduled}}},
	{name: "an inetd job is armed", hcl: plainJob, setup: armed(Listening), steps: startup,
		want: []edge{{Waiting, Starting}, {Starting, Listening}}},
	{name: "a start fails with a restart left", hcl: restartJob, setup: func(d *fakeDriver) { d.startErr = errors.New("not found") },
		steps: startup, want: []edge{{Starting, Backoff}}},
	{name: "a start fails and the trigger repeats", hcl: intervalJob, setup: func(d *fakeDriver) { d.startErr = errors.New("not found") },
		steps: startup, want: []edge{{Starting, Waiting}}},
	{name: "a start fails for good", hcl: plainJob, setup: func(d *fakeDriver) { d.startErr = errors.New("not found") },
		steps: startup, want: []edge{{Starting, Failed}}},
	{name: "arming fails for good", hcl: plainJob, setup: func(d *fakeDriver) { d.armErr = errors.New("address in use") },
		steps: startup, want: []edge{{Starting, Failed}}},
	{name: "an exit with a restart left", hcl: restartJob, steps: then(startup, endRun(Result{Code: 1}), sleep(2*time.Minute)),
		want: []edge{{Running, Backoff}, {Backoff, Starting}, {Starting, Running}}},
	{name: "an exit and the trigger repeats", hcl: intervalJob, steps: then(startup, endRun(Result{})),
		want: []edge{{Running, Waiting}}},
	{name: "an exit 0 for good", hcl: plainJob, steps: then(startup, endRun(Result{})),
		want: []edge{{Running, Completed}}},
	{name: "an exit 1 for good", hcl: plainJob, steps: then(startup, endRun(Result{Code: 1})),
		want: []edge{{Running, Failed}}},
	{name: "a cron run", hcl: plainJob, setup: armed(Scheduled), steps: then(startup, activation, endRun(Result{})),
		want: []edge{{Scheduled, Starting}, {Starting, Running}, {Running, Scheduled}}},
	{name: "an inetd connection", hcl: plainJob, setup: armed(Listening), steps: then(startup, activation, endRun(Result{})),
		want: []edge{{Listening, Starting}, {Starting, Running}, {Running, Listening}}},
	{name: "a running job is stopped", hcl: plainJob, steps: then(startup, verb("stop")),
		want: []edge{{Running, Stopping}, {Stopping, Stopped}}},
	{name: "a job in backoff is stopped", hcl: restartJob, steps: then(startup, endRun(Result{Code: 1}), verb("stop")),
		want: []edge{{Running, Backoff}, {Backoff, Stopped}}},
	{name: "the shutdown cancels a restart", hcl: restartJob, steps: then(startup, endRun(Result{Code: 1}), verb("shutdown")),
		want: []edge{{Backoff, Stopped}}},
	{name: "a stopped job is started", hcl: plainJob, steps: then(startup, verb("stop"), verb("start")),
		want: []edge{{Stopped, Starting}}},
	{name: "a restart", hcl: plainJob, steps: then(startup, verb("restart")),
		want: []edge{{Running, Stopping}, {Stopping, Stopped}, {Stopped, Starting}, {Starting, Running}}},
	{name: "a completed job is started", hcl: plainJob, steps: then(startup, endRun(Result{}), verb("start")),
		want: []edge{{Completed, Starting}}},
	{name: "a failed job is restarted", hcl: plainJob, steps: then(startup, endRun(Result{Code: 1}), verb("restart")),
		want: []edge{{Failed, Starting}}},
	{name: "an expired job is started", hcl: timeoutJob, steps: then(startup, sleep(2*time.Second), verb("start")),
		want: []edge{{Expired, Starting}}},
	{name: "a cron job is stopped", hcl: plainJob, setup: armed(Scheduled), steps: then(startup, verb("stop")),
		want: []edge{{Scheduled, Stopped}}},
	{name: "an inetd job is stopped", hcl: plainJob, setup: armed(Listening), steps: then(startup, verb("stop")),
		want: []edge{{Listening, Stopped}}},
	{name: "a health restart with a restart left", hcl: healthRestartJob, steps: then(startup, probe(false), sleep(2*time.Minute)),
		want: []edge{{Running, Stopping}, {Stopping, Backoff}, {Backoff, Starting}, {Starting, Running}}},
	{name: "a health restart with no restart left", hcl: healthLastJob, steps: then(startup, probe(false)),
		want: []edge{{Running, Stopping}, {Stopping, Failed}}},
	{name: "a health restart with no restart left and a repeating trigger", hcl: healthEachJob,
		steps: then(startup, publish(events.EnterMaintenance), probe(false)),
		want:  []edge{{Running, Stopping}, {Stopping, Waiting}}},
	{name: "autostart = false, then a start by hand", hcl: manualJob, steps: then(startup, verb("start")),
		want: []edge{{Waiting, Stopped}, {Stopped, Starting}, {Starting, Running}}},
	{name: "restart_on = failure and a success code", hcl: onFailureJob, steps: then(startup, endRun(Result{Code: 3})),
		want: []edge{{Running, Completed}}},
	{name: "a trigger starts a job in backoff", hcl: eachJob, steps: then(startup, publish(events.EnterMaintenance), endRun(Result{Code: 1}), publish(events.EnterMaintenance)),
		want: []edge{{Running, Backoff}, {Backoff, Starting}}},
}

// apply runs an API verb on j.
func apply(j *Job, verb string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch verb {
	case "start":
		return j.StartNow(ctx)
	case "stop":
		return j.Stop(ctx)
	case "pause":
		return j.Pause(ctx)
	case "restart":
		return j.Restart(ctx)
	case "signal":
		return j.Signal(ctx, syscall.SIGHUP)
	case "shutdown":
		return j.BeginShutdown(ctx)
	}
	panic("unknown verb " + verb)
}

// Together the walks take every edge of the table, and only edges of the table (an
// illegal move fails the test where it is logged).
func TestEveryEdgeIsWalked(t *testing.T) {
	walked := map[edge]bool{}
	for _, wk := range walks {
		t.Run(wk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := buildWorld(t, wk.hcl)
				d, j := w.drivers["j"], w.jobs["j"]
				if wk.setup != nil {
					wk.setup(d)
				}
				w.start()
				synctest.Wait()
				if wk.steps != nil {
					wk.steps(t, w, j, d)
				}
				synctest.Wait()
				got := w.moves.of("j")
				for _, e := range got {
					walked[e] = true
				}
				for _, e := range wk.want {
					if !slices.Contains(got, e) {
						t.Errorf("no move from %s to %s; the job moved %v", e.from, e.to, got)
					}
				}
			})
		})
	}
	for from, tos := range transitions {
		for to := range tos {
			if !walked[edge{from, to}] {
				t.Errorf("no walk takes the edge from %s to %s", from, to)
			}
		}
	}
}

// reach brings job "j" of a fresh world to state s (any state but the passing Starting).
func reach(t *testing.T, s State) (*world, *Job) {
	t.Helper()
	src, setup := plainJob, func(*fakeDriver) {}
	var steps []func(*testing.T, *world, *Job, *fakeDriver)
	switch s {
	case Waiting:
		src = onceJob
	case Running:
	case Backoff:
		src = restartJob
		steps = append(steps, endRun(Result{Code: 1}))
	case Stopping:
		// The run ignores SIGTERM: it stops at stop_timeout, when the stop kills it.
		src, setup = stubbornJob, func(d *fakeDriver) { d.exitOn = nil }
		steps = append(steps, func(t *testing.T, _ *world, j *Job, _ *fakeDriver) {
			go func() { _ = apply(j, "stop") }()
		})
	case Stopped:
		steps = append(steps, verb("pause"))
	case Completed:
		steps = append(steps, endRun(Result{}))
	case Failed:
		steps = append(steps, endRun(Result{Code: 1}))
	case Expired:
		src = timeoutJob
		steps = append(steps, sleep(2*time.Second))
	case Scheduled, Listening:
		setup = armed(s)
	default:
		t.Fatalf("cannot reach %s", s)
	}
	w := buildWorld(t, src)
	j, d := w.jobs["j"], w.drivers["j"]
	setup(d)
	w.start()
	w.startup()
	synctest.Wait()
	for _, step := range steps {
		step(t, w, j, d)
		synctest.Wait()
	}
	if st := j.Status(); st.State != s {
		t.Fatalf("reached %s, not %s", st.State, s)
	}
	return w, j
}

// outcome is what an API verb does in one state: the state it leads to, or a refusal.
type outcome struct {
	state    State
	conflict bool
}

var (
	refused = outcome{conflict: true}
	to      = func(s State) outcome { return outcome{state: s} }
)

// What each API verb does in each state (docs/jobs.md, "Starting and stopping by hand").
var verbsByState = map[State]map[string]outcome{
	Waiting:   {"start": to(Running), "stop": to(Stopped), "restart": to(Running), "signal": refused},
	Running:   {"start": to(Running), "stop": to(Stopped), "restart": to(Running), "signal": to(Running)},
	Backoff:   {"start": to(Running), "stop": to(Stopped), "restart": to(Running), "signal": refused},
	Stopping:  {"start": refused, "stop": to(Stopped), "restart": to(Running), "signal": to(Stopping)},
	Stopped:   {"start": to(Running), "stop": to(Stopped), "restart": to(Running), "signal": refused},
	Completed: {"start": to(Running), "stop": to(Completed), "restart": to(Running), "signal": refused},
	Failed:    {"start": to(Running), "stop": to(Failed), "restart": to(Running), "signal": refused},
	Expired:   {"start": to(Running), "stop": to(Expired), "restart": to(Running), "signal": refused},
	Scheduled: {"start": to(Scheduled), "stop": to(Stopped), "restart": to(Scheduled), "signal": refused},
	Listening: {"start": to(Listening), "stop": to(Stopped), "restart": to(Listening), "signal": refused},
}

func TestVerbsInEveryState(t *testing.T) {
	for _, s := range allStates {
		if s == Starting {
			continue // never seen between two inputs
		}
		for _, v := range []string{"start", "stop", "restart", "signal"} {
			want := verbsByState[s][v]
			t.Run(fmt.Sprintf("%s in %s", v, s), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					_, j := reach(t, s)
					// Whatever the verb did, a stop that waits for stop_timeout ends before
					// the bubble does.
					defer time.Sleep(time.Minute)
					err := apply(j, v)
					synctest.Wait()
					if want.conflict {
						if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "cannot "+v+" job \"j\" while it is "+string(s)) {
							t.Fatalf("%s in %s: %v, want cannot %s while %s", v, s, err, v, s)
						}
						if st := j.Status(); st.State != s {
							t.Fatalf("a refused %s moved the job from %s to %s", v, s, st.State)
						}
						return
					}
					if err != nil {
						t.Fatalf("%s in %s: %v", v, s, err)
					}
					if st := j.Status(); st.State != want.state {
						t.Fatalf("%s in %s led to %s, want %s", v, s, st.State, want.state)
					}
				})
			})
		}
	}
}

// While pilotfish shuts down, start and restart are refused in every state; stop is not.
func TestShutdownModeRefusesStarts(t *testing.T) {
	for _, s := range []State{Waiting, Running, Stopped, Completed, Listening} {
		t.Run(string(s), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, j := reach(t, s)
				if err := apply(j, "shutdown"); err != nil {
					t.Fatal(err)
				}
				for _, v := range []string{"start", "restart"} {
					if err := apply(j, v); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "while pilotfish is shutting down") {
						t.Errorf("%s during the shutdown: %v", v, err)
					}
				}
				if err := apply(j, "stop"); err != nil {
					t.Errorf("stop during the shutdown: %v", err)
				}
				synctest.Wait()
				if st := j.Status(); !st.State.Final() {
					t.Errorf("after the stop: %s", st.State)
				}
			})
		})
	}
}

// A stopped job ignores its trigger until the API starts it: stopped is final.
func TestStoppedIgnoresTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, eachJob)
		w.startup()
		w.bus.Publish(events.EnterMaintenance, events.Global, nil)
		synctest.Wait()
		j, d := w.jobs["j"], w.drivers["j"]
		if err := j.Pause(context.Background()); err != nil {
			t.Fatal(err)
		}
		w.bus.Publish(events.EnterMaintenance, events.Global, nil)
		synctest.Wait()
		if n := d.count(); n != 1 || j.Status().State != Stopped {
			t.Fatalf("%d runs, state %s", n, j.Status().State)
		}
		if err := j.StartNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		w.bus.Publish(events.EnterMaintenance, events.Global, nil) // overlap restart
		synctest.Wait()
		if n := d.count(); n != 3 {
			t.Fatalf("%d runs after a start and a trigger, want 3", n)
		}
	})
}

// A stopped armed kind is disarmed even when its run ended before the stop signal.
func TestStopDisarmsWhenTheRunEndsDuringHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := buildWorld(t, hookedApp)
		d := w.drivers["app"]
		d.arm = Listening
		w.start()
		w.startup()
		synctest.Wait()
		d.activate(t)
		synctest.Wait()
		j := w.jobs["app"]
		stopped := make(chan error)
		go func() { stopped <- j.Stop(context.Background()) }()
		synctest.Wait() // the hook runs; app waits for it
		d.last().end(Result{})
		synctest.Wait()
		w.drivers["drain"].last().end(Result{})
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		if st := j.Status(); st.State != Stopped || d.armed() {
			t.Fatalf("state %s, armed %v", st.State, d.armed())
		}
	})
}
