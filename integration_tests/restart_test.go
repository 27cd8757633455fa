package integration

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// docs/guarantees.md#7: a crash loop backs off exponentially; a restart budget is honoured exactly.
func TestCrashLoopBacksOff(t *testing.T) {
	t.Parallel()
	crash := sh(`date +%s%N >> "$TESTDIR/runs"; exit 1`)

	t.Run("unlimited", func(t *testing.T) {
		t.Parallel()
		cfg := jsonLogs + `
job "crash" {
  exec     = ` + crash + `
  restarts = "unlimited"
  backoff  = { initial = "100ms", max = "1s" }
}
`
		p := start(t, opts{Config: cfg})
		runs := filepath.Join(p.Dir, "runs")
		const window = 3 * time.Second
		// Wait for the first run after the window (or a flood of runs, which fails below).
		waitFor(t, 15*time.Second, func() bool {
			ts := nanoTimes(t, runs)
			return len(ts) > 100 || len(ts) > 0 && ts[len(ts)-1].Sub(ts[0]) >= window
		}, "a run %s after the first", window)
		ts := nanoTimes(t, runs)
		n := 0
		for _, x := range ts {
			if x.Sub(ts[0]) < window {
				n++
			}
		}
		var gaps []time.Duration
		for i := 1; i < len(ts) && i < 8; i++ {
			gaps = append(gaps, ts[i].Sub(ts[i-1]).Round(time.Millisecond))
		}
		t.Logf("%d runs in the first %s (first gaps %v)", n, window, gaps)
		if n < 4 || n > 10 {
			t.Errorf("%d runs in %s, want a handful (about 5–8) with backoff 100ms..1s", n, window)
		}
		if len(gaps) > 0 && gaps[0] < 70*time.Millisecond {
			t.Errorf("first restart after %s, want about backoff.initial (100ms)", gaps[0])
		}
		if !p.Running() {
			t.Fatalf("pilotfish exited although the job restarts forever")
		}
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(5 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
	})

	// docs/configuration.md: the backoff "resets after the job has been up for max".
	t.Run("resets after up for max", func(t *testing.T) {
		t.Parallel()
		cfg := jsonLogs + `
job "slowcrash" {
  exec     = ` + sh(`date +%s%N >> "$TESTDIR/runs"; sleep 0.5; exit 1`) + `
  restarts = "unlimited"
  backoff  = { initial = "100ms", max = "400ms" }
}
`
		p := start(t, opts{Config: cfg})
		runs := filepath.Join(p.Dir, "runs")
		waitFor(t, 15*time.Second, func() bool { return len(fileLines(t, runs)) >= 5 }, "5 runs")
		ts := nanoTimes(t, runs)
		for i := 1; i < 5; i++ {
			// Up 0.5s >= max each time: every restart waits the initial 100ms (±20%), where
			// a growing backoff would wait 200ms, then 400ms.
			if gap := ts[i].Sub(ts[i-1]); gap > 800*time.Millisecond {
				t.Errorf("run %d started %s after run %d (up 0.5s, backoff should have reset to 100ms)", i+1, gap.Round(time.Millisecond), i)
			}
		}
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
	})

	t.Run("restarts = 2", func(t *testing.T) {
		t.Parallel()
		cfg := jsonLogs + `
exit_on_failure = true
job "crash" {
  exec     = ` + crash + `
  restarts = 2
  backoff  = { initial = "100ms", max = "1s" }
}
job "steady" {
  exec = "sleep 1000"
}
`
		p := start(t, opts{Config: cfg})
		// exit_on_failure turns "crash is failed" into exit code 1.
		if code := p.Wait(15 * time.Second); code != 1 {
			t.Fatalf("exit code %d, want 1 (crash failed after its restarts, exit_on_failure = true)", code)
		}
		if n := len(fileLines(t, filepath.Join(p.Dir, "runs"))); n != 3 {
			t.Errorf("crash ran %d times, want 3 (1 + 2 restarts)", n)
		}
		if n := p.CountLogs(is("restarting after backoff", "crash")); n != 2 {
			t.Errorf("%d restarts logged, want 2", n)
		}
		if n := p.CountLogs(func(e logEntry) bool { return is("state", "crash")(e) && e.str("to") == "failed" }); n != 1 {
			t.Errorf("crash entered state failed %d times, want 1", n)
		}
	})
}
