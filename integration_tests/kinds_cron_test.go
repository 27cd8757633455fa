package integration

// The cron kind in real time (docs/kinds.md, docs/metrics.md): schedules, overlap, run_on_start, time
// zones, metrics, events and states; and its validation.

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// One pilotfish with several cron jobs, watched for ~3 s.
func TestCronRealTime(t *testing.T) {
	t.Parallel()
	// A schedule that is due every second in Kathmandu's current hour (UTC+5:45), and never in
	// the same hour of UTC: the time zone decides whether it runs. The next hour is included
	// in case the test crosses an hour boundary.
	ktm, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	h := time.Now().In(ktm).Hour()
	hours := fmt.Sprintf("%d,%d", h, (h+1)%24)

	k := startPF(t, `
job "tick" {
  kind     = "cron"
  schedule = "@every 1s"
  exec     = `+sh(`echo "tick $PILOTFISH_JOB"`)+`
}
job "slow" {
  kind     = "cron"
  schedule = "@every 1s"
  exec     = ["sleep", "2.5"]
}
job "parallel" {
  kind     = "cron"
  schedule = "@every 1s"
  overlap  = "allow"
  exec     = ["sleep", "2.5"]
}
job "first" {
  kind         = "cron"
  schedule     = "@hourly"
  run_on_start = true
  exec         = ["true"]
}
job "hourly" {
  kind     = "cron"
  schedule = "@hourly"
  exec     = ["true"]
}
job "seconds" {
  kind     = "cron"
  schedule = "*/2 * * * * *"
  exec     = ["true"]
}
job "failing" {
  kind     = "cron"
  schedule = "@every 1s"
  exec     = `+sh("echo failing >&2; exit 3")+`
}
job "ktm" {
  kind     = "cron"
  schedule = "* * `+hours+` * * *"
  timezone = "Asia/Kathmandu"
  exec     = ["true"]
}
job "ktm_prefix" {
  kind     = "cron"
  schedule = "CRON_TZ=Asia/Kathmandu * * `+hours+` * * *"
  exec     = ["true"]
}
job "utc" {
  kind     = "cron"
  schedule = "* * `+hours+` * * *"
  timezone = "UTC"
  exec     = ["true"]
}
`)
	t0 := time.Now()

	// Before its first due time a cron job is scheduled, not running.
	if j := k.waitJob(5*time.Second, "hourly", func(j client.Job) bool { return j.State != "waiting" }, "hourly armed"); j.State != "scheduled" || j.Kind != "cron" {
		t.Errorf("hourly: kind %q state %q, want cron, scheduled", j.Kind, j.State)
	}

	// run_on_start runs at once, long before the hour.
	ev := k.waitCode(2*time.Second, "first", "started", 1)
	if d := ev.Time.Sub(k.start); d > 1500*time.Millisecond {
		t.Errorf("first (run_on_start) started %s after pilotfish", d)
	}
	k.waitCode(2*time.Second, "first", "exitSuccess", 1)

	// @every 1s: at least two runs, each started then exitSuccess, scheduled between them.
	k.waitCode(3*time.Second, "tick", "exitSuccess", 1)
	sawScheduled := poll(900*time.Millisecond, func() bool { return k.job("tick").State == "scheduled" })
	evs := k.waitEvents(4*time.Second, "tick", func(evs []client.Event) bool {
		return len(withCode(evs, "exitSuccess")) >= 2
	}, "two runs of tick")
	if !sawScheduled {
		t.Errorf("tick was not scheduled between two runs")
	}
	var seq []string
	for _, e := range evs {
		if e.Code == "started" || e.Code == "exitSuccess" || e.Code == "exitFailed" {
			seq = append(seq, e.Code)
		}
	}
	for i := 0; i+1 < len(seq); i += 2 {
		if seq[i] != "started" || seq[i+1] != "exitSuccess" {
			t.Errorf("tick's events are %v, want started, exitSuccess, started, exitSuccess, …", seq)
			break
		}
	}
	starts := withCode(evs, "started")
	if gap := starts[1].Time.Sub(starts[0].Time); gap < 800*time.Millisecond || gap > 1300*time.Millisecond {
		t.Errorf("tick's runs are %s apart, want about 1s", gap)
	}
	// The harness reads pilotfish's stdout on a goroutine of its own, which a busy machine
	// may run after the events came through the API: wait for the lines.
	tickLine := regexp.MustCompile(`^\[tick\] tick tick$`)
	if !poll(2*time.Second, func() bool { return countLines(k.Stdout.String(), tickLine) >= 2 }) {
		t.Errorf("tick's output appeared %d times on stdout, want ≥ 2", countLines(k.Stdout.String(), tickLine))
	}
	k.waitMetric(2*time.Second, "pilotfish_cron_runs_total", map[string]string{"job": "tick", "result": "success"}, func(v float64) bool { return v >= 2 })
	if v := k.metric("pilotfish_cron_runs_total", map[string]string{"job": "tick", "result": "failure"}); v != 0 {
		t.Errorf("pilotfish_cron_runs_total{job=tick,result=failure} = %v, want 0", v)
	}

	// A run that lasts 2.5 s with a due time every second: the due times in between are
	// skipped, counted and logged; never two runs at once.
	k.waitMetric(4*time.Second, "pilotfish_cron_skipped_total", map[string]string{"job": "slow"}, func(v float64) bool { return v >= 1 })
	w := k.WaitLog(2*time.Second, is("scheduled run skipped: the previous run is still going", "slow"), "the skip of slow")
	if w.str("level") != "WARN" {
		t.Errorf("the skip is logged at %s, want WARN: %v", w.str("level"), w)
	}
	if j := k.job("slow"); j.State != "running" {
		t.Errorf("slow is %q while its first run lasts, want running", j.State)
	}

	// overlap = "allow": a second run starts while the first still runs.
	k.waitCode(4*time.Second, "parallel", "started", 2)
	if ex := append(withCode(k.events("parallel"), "exitSuccess"), withCode(k.events("parallel"), "exitFailed")...); len(ex) != 0 {
		t.Errorf("parallel: a run ended before the second started (%v): the runs did not overlap", eventNames(ex))
	}
	if v := k.metric("pilotfish_cron_skipped_total", map[string]string{"job": "parallel"}); v != 0 {
		t.Errorf("pilotfish_cron_skipped_total{job=parallel} = %v, want 0 with overlap = \"allow\"", v)
	}

	// A failing run: exitFailed with its exit code, counted as a failure, and the job stays
	// scheduled (it is not "failed": the next due time runs it again).
	fe := k.waitCode(3*time.Second, "failing", "exitFailed", 1)
	if fe.Attrs["exit_code"] != "3" {
		t.Errorf("failing's exitFailed has attrs %v, want exit_code 3", fe.Attrs)
	}
	k.waitMetric(2*time.Second, "pilotfish_cron_runs_total", map[string]string{"job": "failing", "result": "failure"}, func(v float64) bool { return v >= 1 })
	k.waitCode(3*time.Second, "failing", "exitFailed", 2)
	k.WaitStderr(time.Second, `^\[failing\] failing$`)

	// Seconds field: */2 runs on even seconds only.
	se := k.waitCode(3*time.Second, "seconds", "started", 1)
	if lt := se.Time.Local(); lt.Second()%2 != 0 || lt.Nanosecond() > int(300*time.Millisecond) {
		t.Errorf("seconds (*/2 * * * * *) started at %s, want an even second", se.Time.Format(time.RFC3339Nano))
	}

	// Time zones: due in Kathmandu's hour, not in UTC's.
	k.waitCode(3*time.Second, "ktm", "exitSuccess", 1)
	k.waitCode(3*time.Second, "ktm_prefix", "exitSuccess", 1)
	if n := len(k.events("utc")); n != 0 {
		t.Errorf("utc ran (%v), but its hour is Kathmandu's", eventNames(k.events("utc")))
	}
	if j := k.job("utc"); j.State != "scheduled" {
		t.Errorf("utc is %q, want scheduled", j.State)
	}
	if n := len(k.events("hourly")); n != 0 {
		t.Errorf("hourly ran at start-up (%v): the first run is at the first due time", eventNames(k.events("hourly")))
	}
	if j := k.job("first"); j.State != "scheduled" {
		t.Errorf("first is %q after its run_on_start run, want scheduled", j.State)
	}
	if v := k.metric("pilotfish_job_state", map[string]string{"job": "hourly", "state": "scheduled"}); v != 1 {
		t.Errorf("pilotfish_job_state{job=hourly,state=scheduled} = %v, want 1", v)
	}
	// pilotfish stop disarms the schedule; start arms it again.
	if j, err := k.c.Stop(k.ctx(), "tick"); err != nil || j.State != "stopped" {
		t.Fatalf("stop tick: %v %+v", err, j)
	}
	ticks := len(withCode(k.replay("tick"), "started"))
	fails := len(withCode(k.events("failing"), "exitFailed"))
	k.waitCode(3*time.Second, "failing", "exitFailed", fails+1) // a due time passed
	if n := len(withCode(k.replay("tick"), "started")); n != ticks {
		t.Errorf("the stopped tick ran (%d runs, %d before the stop)", n, ticks)
	}
	if j, err := k.c.Start(k.ctx(), "tick"); err != nil || j.State != "scheduled" {
		t.Fatalf("start tick: %v %+v, want scheduled", err, j)
	}
	k.waitCode(3*time.Second, "tick", "started", ticks+1)
	t.Logf("watched the cron jobs for %s", time.Since(t0).Round(time.Millisecond))

	// Cron jobs keep pilotfish running; SIGTERM ends it at once with exit 0 even with runs
	// going (slow, parallel).
	k.Signal(syscall.SIGTERM)
	if code := k.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// Invalid schedules and time zones are configuration errors with their position.
func TestCronValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.hcl"), `
job "a" {
  kind     = "cron"
  schedule = "*/5 * * * *"
  exec     = ["true"]
}
job "b" {
  kind     = "cron"
  schedule = "30 0 3 * * MON-FRI"
  timezone = "America/New_York"
  overlap  = "allow"
  exec     = ["true"]
}
job "c" {
  kind         = "cron"
  schedule     = "CRON_TZ=Asia/Tokyo 0 9 * * *"
  run_on_start = true
  exec         = ["true"]
}
job "d" {
  kind     = "cron"
  schedule = "@every 10s"
  exec     = ["true"]
}
job "e" {
  kind     = "cron"
  schedule = "@hourly"
  overlap  = "skip"
  exec     = ["true"]
}
job "f" {
  kind     = "cron"
  schedule = "@daily"
  timezone = "UTC"
  exec     = ["true"]
}
job "g" {
  kind     = "cron"
  schedule = "@weekly"
  exec     = ["true"]
}
job "h" {
  kind     = "cron"
  schedule = "@monthly"
  exec     = ["true"]
}
job "i" {
  kind     = "cron"
  schedule = "@yearly"
  exec     = ["true"]
}
`, 0o644)
	if r := runCmd(t, dir, "validate", "-config", "good.hcl"); r.code != 0 {
		t.Errorf("validate good.hcl: exit %d, want 0\n%s", r.code, r.stderr)
	}

	writeFile(t, filepath.Join(dir, "bad.hcl"), `job "minute" {
  kind     = "cron"
  schedule = "61 * * * *"
  exec     = ["true"]
}
job "zone" {
  kind     = "cron"
  schedule = "@daily"
  timezone = "Mars/Olympus_Mons"
  exec     = ["true"]
}
job "prefix" {
  kind     = "cron"
  schedule = "CRON_TZ=Nowhere/Land 0 3 * * *"
  exec     = ["true"]
}
job "fields" {
  kind     = "cron"
  schedule = "* * *"
  exec     = ["true"]
}
job "every" {
  kind     = "cron"
  schedule = "@every soon"
  exec     = ["true"]
}
job "restart" {
  kind     = "cron"
  schedule = "@hourly"
  overlap  = "restart"
  exec     = ["true"]
}
job "none" {
  kind = "cron"
  exec = ["true"]
}
job "noexec" {
  kind     = "cron"
  schedule = "@hourly"
}
job "emptyzone" {
  kind     = "cron"
  schedule = "@hourly"
  timezone = ""
  exec     = ["true"]
}
`, 0o644)
	r := runCmd(t, dir, "validate", "-config", "bad.hcl")
	if r.code != 1 {
		t.Errorf("validate bad.hcl: exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		`^bad\.hcl:3:\d+: .*"61 \* \* \* \*" is not a schedule`,
		`^bad\.hcl:9:\d+: .*"Mars/Olympus_Mons" is not a time zone`,
		`^bad\.hcl:14:\d+: .*Nowhere/Land`,
		`^bad\.hcl:19:\d+: .*"\* \* \*" is not a schedule`,
		`^bad\.hcl:24:\d+: .*"@every soon" is not a schedule`,
		`^bad\.hcl:\d+:\d+: .*overlap "restart" is not possible for a cron job`,
		`^bad\.hcl:\d+:\d+: .*"schedule" is required`,
		`^bad\.hcl:\d+:\d+: .*exec`,
		`^bad\.hcl:44:\d+: .*"" is not a time zone`,
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(r.stderr) {
			t.Errorf("validate bad.hcl: no diagnostic matching %q in:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "bad.hcl: 9 errors") {
		t.Errorf("validate bad.hcl should report all 9 errors at once:\n%s", r.stderr)
	}

	// The same file refused at start-up: exit 2, nothing runs.
	p := start(t, opts{Config: readFile(t, filepath.Join(dir, "bad.hcl")), Plain: true})
	if code := p.Wait(10 * time.Second); code != 2 {
		t.Errorf("pilotfish with bad.hcl: exit %d, want 2", code)
	}
}

// `restarts` on a cron job must not run a successful scheduled run again outside its
// schedule. (Refusing `restarts` for cron at validation would be fine too.)
func TestCronRestartsDoNotRerunSuccessfulRuns(t *testing.T) {
	t.Parallel()
	cfg := `
job "nightly" {
  kind         = "cron"
  schedule     = "@daily"
  run_on_start = true
  restarts     = 2
  backoff      = { initial = "100ms", max = "1s" }
  exec         = ["true"]
}
`
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "r.hcl"), cfg, 0o644)
	if r := runCmd(t, dir, "validate", "-config", "r.hcl"); r.code != 0 || strings.Contains(r.stderr, "restarts") {
		t.Logf("validate refuses or warns about restarts on a cron job: %s", r.stderr)
		return
	}
	k := startPF(t, cfg)
	k.waitCode(5*time.Second, "nightly", "exitSuccess", 1)
	var j client.Job
	poll(5*time.Second, func() bool {
		j = k.job("nightly")
		return j.State != "running" && j.State != "starting"
	})
	if j.State != "scheduled" {
		t.Errorf("after its one successful run, nightly is %q, want scheduled until tomorrow", j.State)
	}
	if l := k.logsOf("restarting after backoff", "nightly"); len(l) > 0 {
		t.Errorf("a successful scheduled run is restarted: %v", l[0])
	}
	if j.Restarts != 0 {
		t.Errorf("nightly shows %d restarts", j.Restarts)
	}
}
