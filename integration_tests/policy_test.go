package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// The restart and exit policies of docs/jobs.md ("Restarts and backoff", "Health probes"):
// restart_on, success_codes, autostart and health.on_failure, from the binary.

// A job that exits 3 with success_codes = [0, 3] and restart_on = "failure" ends
// completed; an exit not listed is a failure and restarts it.
func TestSuccessCodesAndRestartOn(t *testing.T) {
	t.Parallel()
	// First run exits 4 (a failure: restarted), the second 3 (a success: done).
	worker := sh(`n=$(cat "$TESTDIR/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$TESTDIR/n"; [ $n = 1 ] && exit 4; exit 3`)
	k := startPF(t, `
job "worker" {
  exec          = `+worker+`
  restarts      = "unlimited"
  restart_on    = "failure"
  success_codes = [0, 3]
  backoff       = { initial = "100ms", max = "1s" }
}
job "steady" {
  exec = "sleep 1000"
}
`)
	j := k.waitState(15*time.Second, "worker", "completed")
	if j.Restarts != 1 || j.ExitCode == nil || *j.ExitCode != 3 {
		t.Fatalf("worker: %+v, want 1 restart and exit code 3", j)
	}
	want := []string{"started", "exitFailed", "started", "exitSuccess", "stopped"}
	if got := eventCodes(k.waitEvents(10*time.Second, "worker", func(evs []client.Event) bool { return len(evs) >= 5 }, "worker's events"), ""); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for result, n := range map[string]float64{"success": 1, "failure": 1} {
		if v := k.metric("pilotfish_job_exits_total", map[string]string{"job": "worker", "result": result}); v != n {
			t.Errorf("pilotfish_job_exits_total{result=%q} = %v, want %v", result, v, n)
		}
	}
	if v := k.metric("pilotfish_job_restarts_total", map[string]string{"job": "worker"}); v != 1 {
		t.Errorf("pilotfish_job_restarts_total = %v, want 1", v)
	}
	if code, _ := k.SignalWait(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// Exiting by itself, pilotfish reports a job that ended failed: an exit code listed in
// success_codes is not a failure, and a death by signal always is.
func TestSuccessCodesDecideTheExitCode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		script string
		code   int
	}{
		{"listed", "exit 3", 0},
		{"not listed", "exit 4", 1},
		{"signal", "kill -TERM $$", 1}, // 143 is listed, but a signal is never a success
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, opts{Config: jsonLogs + `
job "once" {
  exec          = ` + sh(c.script) + `
  success_codes = [0, 3, 143]
}
`})
			if code := p.Wait(15 * time.Second); code != c.code {
				t.Fatalf("exit code %d, want %d", code, c.code)
			}
		})
	}
}

// A health failure with on_failure = "restart" stops the job with its hooks and starts it
// again after backoff, counted under restarts; with no restart left the job ends failed.
func TestHealthRestartsWithBackoff(t *testing.T) {
	t.Parallel()
	port := freePort(t) // nothing listens there: the probe always fails
	k := startPF(t, fmt.Sprintf(`
job "app" {
  exec     = %s
  restarts = 2
  backoff  = { initial = "500ms", max = "10s" }
  health {
    tcp        = "127.0.0.1:%d"
    interval   = "200ms"
    timeout    = "100ms"
    failures   = 2
    on_failure = "restart"
  }
}
job "drain" {
  exec = %s
  when {
    source = "app"
    once   = "stopping"
  }
}
job "steady" {
  exec = "sleep 1000"
}
`, sh(`date +%s%N >> "$TESTDIR/runs"; exec sleep 1000`), port, sh(`echo drained >> "$TESTDIR/drained"`)))
	k.waitCode(20*time.Second, "app", "started", 2)
	if v := k.waitMetric(5*time.Second, "pilotfish_job_restarts_total", map[string]string{"job": "app"}, func(v float64) bool { return v == 1 }); v != 1 {
		t.Fatalf("restarts metric %v", v)
	}
	j := k.waitState(30*time.Second, "app", "failed")
	if j.Restarts != 2 {
		t.Fatalf("app: %+v, want 2 restarts", j)
	}
	runs := nanoTimes(t, filepath.Join(k.Dir, "runs"))
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3 (1 + 2 restarts)", len(runs))
	}
	// Each gap is the time to turn unhealthy plus the backoff delay: 500ms then 1s (±20%).
	if g := runs[1].Sub(runs[0]); g < 400*time.Millisecond {
		t.Errorf("first restart %s after the start: no backoff", g)
	}
	if g := runs[2].Sub(runs[1]); g < 800*time.Millisecond {
		t.Errorf("second restart %s after the first: the delay did not grow", g)
	}
	if n := len(fileLines(t, filepath.Join(k.Dir, "drained"))); n != 3 {
		t.Errorf("the stopping hook ran %d times, want 3 (at each health stop)", n)
	}
	// The order of one health restart: unhealthy, stopping, the hook, stopped, started.
	var got []string
	for _, e := range k.events("") {
		if e.Source == "app" || e.Source == "drain" {
			got = append(got, e.Source+"/"+e.Code)
		}
	}
	one := []string{"app/unhealthy", "app/stopping", "drain/started", "drain/exitSuccess", "drain/stopped", "app/exitFailed", "app/stopped"}
	want := slices.Concat([]string{"app/started"}, one, []string{"app/started"}, one, []string{"app/started"}, one)
	if !slices.Equal(got, want) {
		t.Fatalf("events\n%v\nwant\n%v", got, want)
	}
	var moves []string
	for _, e := range k.Logs() {
		if is("state", "app")(e) {
			moves = append(moves, e.str("from")+">"+e.str("to"))
		}
	}
	if c := strings.Join(moves, " "); !strings.Contains(c, "running>stopping stopping>backoff backoff>starting starting>running") ||
		!strings.HasSuffix(c, "running>stopping stopping>failed") {
		t.Errorf("state moves: %s", c)
	}
	if code, _ := k.SignalWait(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// on_failure = "shutdown" shuts pilotfish down gracefully with exit code 1; with a main job,
// the main job's exit status wins, as always.
func TestHealthShutdown(t *testing.T) {
	t.Parallel()
	cfg := func(port int) string {
		return fmt.Sprintf(`
job "app" {
  exec = "sleep 1000"
  health {
    tcp        = "127.0.0.1:%d"
    interval   = "200ms"
    timeout    = "100ms"
    failures   = 2
    on_failure = "shutdown"
  }
}
job "steady" {
  exec = "sleep 1000"
}
`, port)
	}
	t.Run("exit code 1", func(t *testing.T) {
		t.Parallel()
		p := start(t, opts{Config: jsonLogs + cfg(freePort(t))})
		if code := p.Wait(20 * time.Second); code != 1 {
			t.Fatalf("exit code %d, want 1", code)
		}
		if r := p.shutdownReason(); !strings.Contains(r, `job "app" is unhealthy and its health.on_failure is "shutdown"`) {
			t.Errorf("shutdown reason %q", r)
		}
		if n := p.CountLogs(func(e logEntry) bool { return is("state", "steady")(e) && e.str("to") == "stopped" }); n != 1 {
			t.Errorf("steady was not stopped by the shutdown (%d)", n)
		}
	})
	t.Run("with a main job", func(t *testing.T) {
		t.Parallel()
		p := start(t, opts{Config: jsonLogs + cfg(freePort(t)), Main: []string{"/bin/sh", "-c", `trap "exit 7" TERM; sleep 1000 & wait`}})
		if code := p.Wait(20 * time.Second); code != 7 {
			t.Fatalf("exit code %d, want the main job's 7", code)
		}
	})
}

// autostart = false: the job stays stopped (and pilotfish up) until `pilotfish start`;
// from then on its restart policy applies.
func TestAutostartFalse(t *testing.T) {
	t.Parallel()
	k := startPF(t, `
job "worker" {
  exec      = `+sh(`date +%s%N >> "$TESTDIR/runs"; exit 1`)+`
  autostart = false
  restarts  = 1
  backoff   = { initial = "100ms", max = "1s" }
}
job "setup" {
  exec = "true"
}
`)
	k.waitState(10*time.Second, "setup", "completed")
	j := k.statusOf("worker")
	if j.State != "stopped" || j.Pid != 0 || !strings.Contains(j.Status, "autostart = false") || exists(filepath.Join(k.Dir, "runs")) {
		t.Fatalf("worker after start-up: %+v (ran: %v)", j, exists(filepath.Join(k.Dir, "runs")))
	}
	if !k.Running() {
		t.Fatal("pilotfish exited although worker can still be started")
	}
	if r := k.cli("status"); r.code != 0 || !strings.Contains(r.stdout, "autostart = false") {
		t.Fatalf("pilotfish status: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := k.cli("start", "worker"); r.code != 0 {
		t.Fatalf("pilotfish start worker: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Exit 1 with one restart left: it runs twice, ends failed, and pilotfish, with nothing
	// left to run, exits 1.
	if code := k.Wait(15 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if n := len(fileLines(t, filepath.Join(k.Dir, "runs"))); n != 2 {
		t.Fatalf("worker ran %d times, want 2 (1 + 1 restart)", n)
	}
}

// Health that flaps while pilotfish shuts down changes nothing: no health restart, no
// request to shut down (the exit code stays 0, that of SIGTERM), and the shutdown ends
// within its budget.
func TestHealthFlappingDuringShutdown(t *testing.T) {
	t.Parallel()
	// Once $TESTDIR/flap exists, each check alternates: pass, fail, pass…
	flap := func(name string) string {
		return sh(`[ -e "$TESTDIR/flap" ] || exit 0; f="$TESTDIR/checks-` + name + `"; n=$(cat "$f" 2>/dev/null || echo 0); echo $((n+1)) > "$f"; [ $((n % 2)) = 0 ]`)
	}
	job := func(name, policy string) string {
		return fmt.Sprintf(`
job %q {
  exec     = %s
  restarts = "unlimited"
  backoff  = { initial = "100ms", max = "1s" }
  health {
    exec       = %s
    interval   = "100ms"
    failures   = 1
    on_failure = %q
  }
}
`, name, sh(`echo run >> "$TESTDIR/runs-`+name+`"; exec sleep 1000`), flap(name), policy)
	}
	// web is stopped first (it waits for both): for two seconds after SIGTERM, while the
	// other two still run, their checks flap.
	k := startPF(t, `stop_timeout = "5s"`+job("app", "restart")+job("guard", "shutdown")+`
job "web" {
  exec = `+sh(`trap 'touch "$TESTDIR/flap"; sleep 2; exit 0' TERM; while :; do sleep 0.1; done`)+`
  when {
    after = { app = "healthy", guard = "healthy" }
  }
}
`)
	k.waitState(20*time.Second, "web", "running")
	code, took := k.SignalWait(syscall.SIGTERM, 15*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d, want 0 (the shutdown was asked for by SIGTERM)", code)
	}
	if took > 6*time.Second {
		t.Errorf("shutdown took %s, more than stop_timeout + 1s", took)
	}
	if r := k.shutdownReason(); r != "received SIGTERM" {
		t.Errorf("shutdown reason %q", r)
	}
	for _, name := range []string{"app", "guard"} {
		if n := k.CountLogs(is("unhealthy", name)); n < 2 {
			t.Errorf("%s turned unhealthy %d times during the shutdown; the test needs it to flap", name, n)
		}
		if n := len(fileLines(t, filepath.Join(k.Dir, "runs-"+name))); n != 1 {
			t.Errorf("%s ran %d times, want once (no restart during the shutdown)", name, n)
		}
		for _, e := range k.Logs() {
			if is("state", name)(e) && e.str("to") == "backoff" {
				t.Errorf("%s went to backoff during the shutdown", name)
			}
		}
	}
	if n := k.CountLogs(is("unhealthy: shutting pilotfish down", "guard")); n != 0 {
		t.Errorf("guard asked for a shutdown during the shutdown (%d times)", n)
	}
}

// SIGTERM during a health restart ends it: pilotfish exits 0 within the top-level
// stop_timeout plus one second, whether the job is still being stopped (here it ignores
// its stop signal and has a longer stop_timeout of its own) or waits in backoff, and the
// job is not started again.
func TestHealthRestartMeetsSIGTERM(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, exec, extra, state string
	}{
		{"during the stop", sh(`echo run >> "$TESTDIR/runs"; trap '' TERM; while :; do sleep 0.1; done`), `stop_timeout = "30s"`, "stopping"},
		{"during the backoff", sh(`echo run >> "$TESTDIR/runs"; exec sleep 1000`), `backoff = { initial = "30s", max = "1m" }`, "backoff"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := startPF(t, fmt.Sprintf(`
stop_timeout = "2s"
job "app" {
  exec     = %s
  restarts = "unlimited"
  %s
  health {
    tcp        = "127.0.0.1:%d"
    interval   = "200ms"
    timeout    = "100ms"
    failures   = 1
    on_failure = "restart"
  }
}
job "steady" {
  exec = "sleep 1000"
}
`, c.exec, c.extra, freePort(t)))
			k.waitState(20*time.Second, "app", c.state)
			code, took := k.SignalWait(syscall.SIGTERM, 15*time.Second)
			if code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			if took > 3*time.Second {
				t.Errorf("shutdown took %s, more than stop_timeout + 1s", took)
			}
			if n := len(fileLines(t, filepath.Join(k.Dir, "runs"))); n != 1 {
				t.Errorf("app ran %d times, want once", n)
			}
			if n := k.CountLogs(func(e logEntry) bool { return is("state", "app")(e) && e.str("to") == "stopped" }); n != 1 {
				t.Errorf("app did not end stopped (%d)", n)
			}
		})
	}
}

// policyPage is the page with the "Restart and exit policies" section: its own file, or
// the day-to-day operations page it is assembled into.
func policyPage(t testing.TB) string {
	t.Helper()
	return operationsPage(t, "Restart and exit policies")
}

// operationsPage returns a file holding the section "## heading" of docs/operations.md,
// up to the next level-2 heading other than those in also, so that a test reads the
// blocks of its own section only.
func operationsPage(t testing.TB, heading string, also ...string) string {
	t.Helper()
	const page = "../docs/operations.md"
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimSpace(l), "## "); ok {
			in = h == heading || in && slices.Contains(also, h)
		}
		if in {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no section \"## %s\"", page, heading)
	}
	p := filepath.Join(t.TempDir(), "operations.md")
	writeFile(t, p, strings.Join(out, ""), 0o644)
	return p
}

// The documented example does what the page shows: the worker's exit 3 completes it, a
// failed check restarts the API after backoff (one restart, events in order), the task
// with autostart = false waits for `pilotfish start`, and the database's failed check
// ends pilotfish with exit code 1.
func TestPolicyDocExample(t *testing.T) {
	t.Parallel()
	page := policyPage(t)
	for _, b := range docBlocks(t, page, "hcl") {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "example.hcl"), b.body, 0o644)
		if r := runCmd(t, dir, "validate", "-config", "example.hcl"); r.code != 0 || strings.Contains(r.stdout+r.stderr, "warning:") {
			t.Errorf("%s:%d: the example does not validate cleanly (exit %d):\n%s%s", page, b.line, r.code, r.stdout, r.stderr)
		}
	}
	dir := t.TempDir()
	k := startPF(t, strings.ReplaceAll(docExample(t, page, "policy"), "/tmp/", dir+"/"), opts{Dir: dir})
	if j := k.waitState(10*time.Second, "worker", "completed"); j.Restarts != 0 || j.ExitCode == nil || *j.ExitCode != 3 {
		t.Errorf("worker: %+v, want completed with exit code 3 and no restart", j)
	}
	if j := k.statusOf("reindex"); j.State != "stopped" || j.Status != "autostart = false: pilotfish start reindex runs it" {
		t.Errorf("reindex: %+v", j)
	}
	k.waitJob(10*time.Second, "api", func(j client.Job) bool { return j.Health == "healthy" }, "healthy")
	k.waitJob(10*time.Second, "db", func(j client.Job) bool { return j.Health == "healthy" }, "healthy")

	if err := os.Remove(filepath.Join(dir, "api.ok")); err != nil {
		t.Fatal(err)
	}
	k.waitCode(20*time.Second, "api", "healthy", 2)
	if j := k.job("api"); j.Restarts != 1 || j.State != "running" {
		t.Errorf("api: %+v, want running after 1 restart", j)
	}
	want := []string{"started", "healthy", "unhealthy", "stopping", "exitFailed", "stopped", "started", "healthy"}
	if got := eventCodes(k.events("api"), ""); !slices.Equal(got, want) {
		t.Errorf("api's events %v, want %v", got, want)
	}
	evs := k.events("api")
	if gap := evs[6].Time.Sub(evs[5].Time); gap < 800*time.Millisecond {
		t.Errorf("api started again %s after it stopped: no backoff (initial 1s)", gap)
	}

	if r := k.cli("start", "reindex"); r.code != 0 || !strings.HasPrefix(r.stdout, "reindex: running (pid ") {
		t.Fatalf("pilotfish start reindex: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if j := k.waitState(10*time.Second, "reindex", "completed"); j.Status != "" {
		t.Errorf("reindex: status %q after a start", j.Status)
	}
	k.WaitStdout(5*time.Second, `^\[reindex\] reindexed$`)

	if err := os.Remove(filepath.Join(dir, "db.ok")); err != nil {
		t.Fatal(err)
	}
	if code := k.Wait(20 * time.Second); code != 1 {
		t.Fatalf("exit code %d after db turned unhealthy, want 1", code)
	}
	if r := k.shutdownReason(); r != `job "db" is unhealthy and its health.on_failure is "shutdown"` {
		t.Errorf("shutdown reason %q", r)
	}
}
