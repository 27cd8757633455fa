package jobs

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/config"
)

// fakeClock has a wall clock that can jump on its own and a monotonic clock that timers
// follow, like the kernel's CLOCK_REALTIME and CLOCK_MONOTONIC.
type fakeClock struct {
	mu     sync.Mutex
	wall   time.Time
	mono   time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	due     time.Duration
	c       chan time.Time
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{due: c.mono + d, c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.stopped = true
		return true
	}
}

// pending is the number of timers waiting.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// advance moves both clocks and fires due timers.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = c.wall.Add(d)
	c.mono += d
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		if t.due <= c.mono {
			t.c <- c.wall
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

// jump moves only the wall clock (an NTP step, or time passing while suspended).
func (c *fakeClock) jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = c.wall.Add(d)
}

type cronHarness struct {
	t       *testing.T
	clock   *fakeClock
	d       *cronDriver
	acts    <-chan Activation
	mu      sync.Mutex
	started int
	runs    []*fakeRun
}

func newCron(t *testing.T, hcl string) *cronHarness {
	t.Helper()
	cfg, diags := config.Parse("t.hcl", []byte(hcl), config.Options{Kinds: ConfigKinds()})
	if cfg == nil {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	job := cfg.Jobs[0]
	h := &cronHarness{t: t, clock: &fakeClock{wall: time.Date(2026, 3, 1, 8, 59, 30, 0, time.UTC)}}
	sched, err := parseSchedule(job.Spec.(*CronSpec))
	if err != nil {
		t.Fatal(err)
	}
	h.d = &cronDriver{processDriver: processDriver{job: job, rt: &Runtime{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}},
		spec: job.Spec.(*CronSpec), sched: sched, clock: h.clock}
	fd := &fakeDriver{}
	h.d.start = func(req RunRequest) (Run, error) {
		r, _ := fd.Start(req)
		h.mu.Lock()
		h.started++
		h.runs = append(h.runs, r.(*fakeRun))
		h.mu.Unlock()
		return r, nil
	}
	acts, state, err := h.d.Arm()
	if err != nil || state != Scheduled {
		t.Fatal(state, err)
	}
	h.acts = acts
	t.Cleanup(h.d.Disarm)
	// The "job": every activation starts a run.
	go func() {
		for range acts {
			_, _ = h.d.Start(RunRequest{Exit: func(Result) {}})
		}
	}()
	return h
}

func (h *cronHarness) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

// step advances the clocks by d in one-second steps, letting the schedule catch up.
func (h *cronHarness) step(d time.Duration) {
	for elapsed := time.Duration(0); elapsed < d; elapsed += time.Second {
		h.waitArmed()
		h.clock.advance(time.Second)
	}
	h.waitArmed()
}

func (h *cronHarness) waitArmed() {
	deadline := time.Now().Add(5 * time.Second)
	for h.clock.pending() == 0 {
		if time.Now().After(deadline) {
			h.t.Fatal("the schedule did not re-arm")
		}
		time.Sleep(time.Millisecond)
	}
}

// endAll ends every run and waits until the driver has seen them end.
func (h *cronHarness) endAll() {
	h.mu.Lock()
	for _, r := range h.runs {
		r.end(Result{})
	}
	h.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.d.mu.Lock()
		active := h.d.active
		h.d.mu.Unlock()
		if active == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("runs did not end")
		}
		time.Sleep(time.Millisecond)
	}
}

func waitCount(t *testing.T, h *cronHarness, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.count() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs, want %d (counters %+v, wall %s, pending %d)", h.count(), want, h.d.Counters(), h.clock.Now(), h.clock.pending())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCronRunsOnSchedule(t *testing.T) {
	h := newCron(t, `
job "tick" {
  kind     = "cron"
  exec     = "true"
  schedule = "*/5 * * * * *"
}`)
	for i := 1; i <= 4; i++ {
		h.step(5 * time.Second)
		waitCount(t, h, i)
		h.endAll()
	}
}

// A wall clock jumping an hour ahead (suspend, NTP step) gives one run, not 720.
func TestCronClockJumpDoesNotBurst(t *testing.T) {
	h := newCron(t, `
job "tick" {
  kind     = "cron"
  exec     = "true"
  schedule = "@every 5s"
}`)
	h.waitArmed()
	h.clock.jump(time.Hour)
	h.step(5 * time.Second)
	waitCount(t, h, 1)
	h.endAll()
	h.step(5 * time.Second)
	waitCount(t, h, 2)
}

// A wall clock stepped back does not fire early.
func TestCronClockStepBack(t *testing.T) {
	h := newCron(t, `
job "nine" {
  kind     = "cron"
  exec     = "true"
  schedule = "0 9 * * *"
}`)
	h.waitArmed()
	h.clock.jump(-10 * time.Minute) // 08:49:30: the 09:00 run is now 10.5 min away
	h.step(time.Minute)             // the timer armed for 30 s fires at 08:50:00
	if h.count() != 0 {
		t.Fatal("ran before its time after the clock went back")
	}
	h.step(10 * time.Minute)
	waitCount(t, h, 1)
}

func TestCronSkipsOverlap(t *testing.T) {
	h := newCron(t, `
job "slow" {
  kind     = "cron"
  exec     = "sleep 100"
  schedule = "* * * * * *"
}`)
	h.step(4 * time.Second)
	waitCount(t, h, 1)
	c := h.d.Counters()
	if c[2].Metric != "pilotfish_cron_skipped_total" || c[2].N < 2 {
		t.Fatalf("counters %+v", c)
	}
	h.endAll()
	if c := h.d.Counters(); c[0].N != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestCronTimezone(t *testing.T) {
	for _, hcl := range []string{
		"job \"tz\" {\n  kind = \"cron\"\n  exec = \"true\"\n  schedule = \"0 18 * * *\"\n  timezone = \"Asia/Tokyo\"\n}",
		"job \"tz\" {\n  kind = \"cron\"\n  exec = \"true\"\n  schedule = \"CRON_TZ=Asia/Tokyo 0 18 * * *\"\n}",
	} {
		cfg, diags := config.Parse("t.hcl", []byte(hcl), config.Options{Kinds: ConfigKinds()})
		if cfg == nil {
			t.Fatal(config.FormatDiagnostics(diags))
		}
		s, _ := parseSchedule(cfg.Jobs[0].Spec.(*CronSpec))
		next := s.Next(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
		if got := next.UTC(); !got.Equal(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)) {
			t.Fatalf("18:00 in Tokyo is 09:00 UTC; got %s", got)
		}
	}
}

func TestCronConfigErrors(t *testing.T) {
	for src, want := range map[string]string{
		"job \"c\" {\n  kind = \"cron\"\n  exec = \"x\"\n  schedule = \"61 * * * *\"\n}":                            "not a schedule",
		"job \"c\" {\n  kind = \"cron\"\n  exec = \"x\"\n  schedule = \"@daily\"\n  timezone = \"Mars/Olympus\"\n}": "not a time zone",
		"job \"c\" {\n  kind = \"cron\"\n  exec = \"x\"\n}":                                                         "schedule",
		"job \"c\" {\n  kind = \"cron\"\n  exec = \"x\"\n  schedule = \"@daily\"\n  overlap = \"restart\"\n}":       "not possible for a cron job",
	} {
		_, diags := config.Parse("t.hcl", []byte(src), config.Options{Kinds: ConfigKinds()})
		if got := strings.Join(config.FormatDiagnostics(diags), "\n"); !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
}

// The next due time is what /v1/status shows (docs/api.md#the-job-object); none while
// disarmed.
func TestCronNextRun(t *testing.T) {
	h := newCron(t, `
job "nine" {
  kind     = "cron"
  exec     = "true"
  schedule = "0 9 * * *"
}`)
	h.waitArmed()
	if got, want := h.d.NextRun(), time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("next run %s, want %s", got, want)
	}
	h.step(31 * time.Second)
	waitCount(t, h, 1)
	deadline := time.Now().Add(5 * time.Second)
	for want := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC); !h.d.NextRun().Equal(want); {
		if time.Now().After(deadline) {
			t.Fatalf("after the 09:00 run, next run %s, want %s", h.d.NextRun(), want)
		}
		time.Sleep(time.Millisecond)
	}
	h.endAll()
	h.d.Disarm()
	if got := h.d.NextRun(); !got.IsZero() {
		t.Fatalf("next run %s while disarmed", got)
	}
}

// `pilotfish plan` shows the zone a schedule runs in, from `timezone` or a CRON_TZ= prefix.
func TestCronPlanSchedule(t *testing.T) {
	for _, c := range []struct {
		spec        CronSpec
		sched, zone string
	}{
		{CronSpec{Schedule: "0 3 * * *"}, "0 3 * * *", ""},
		{CronSpec{Schedule: "0 3 * * *", Timezone: "UTC"}, "0 3 * * *", "UTC"},
		{CronSpec{Schedule: " CRON_TZ=Asia/Tokyo  0 18 * * *"}, "0 18 * * *", "Asia/Tokyo"},
		{CronSpec{Schedule: "TZ=Europe/Paris @daily", Timezone: "UTC"}, "@daily", "Europe/Paris"},
	} {
		sched, zone, _ := c.spec.PlanSchedule()
		if sched != c.sched || zone != c.zone {
			t.Errorf("%+v: schedule %q zone %q, want %q %q", c.spec, sched, zone, c.sched, c.zone)
		}
	}
}
