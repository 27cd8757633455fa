package jobs

import (
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/robfig/cron/v3"
)

// cronKind runs its command on a schedule.
type cronKind struct{}

// CronSpec is the cron kind's part of a job's configuration.
type CronSpec struct {
	Schedule   string `json:"schedule"`
	Timezone   string `json:"timezone,omitempty"`
	RunOnStart bool   `json:"run_on_start,omitempty"`
}

// Equal reports whether other is the same cron spec.
func (s *CronSpec) Equal(other config.Spec) bool { return config.SpecEqual(s, other) }

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (cronKind) Schema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "schedule", Required: true}, {Name: "timezone"}, {Name: "run_on_start"}}}
}
func (cronKind) ExecRule() config.ExecRule       { return config.ExecRequired }
func (cronKind) Armed() bool                     { return true }
func (cronKind) Emits(*config.Job) []events.Code { return processCodes }

func (cronKind) Decode(d *config.Decoder, j *config.Job, c *hcl.BodyContent) {
	spec := &CronSpec{}
	d.String(c.Attributes, "schedule", &spec.Schedule)
	d.String(c.Attributes, "timezone", &spec.Timezone)
	d.Bool(c.Attributes, "run_on_start", &spec.RunOnStart)
	j.Spec = spec
	decodeOverlap(d, j, config.OverlapSkip, config.OverlapAllow)
	checkArmedOnFailure(d, j, "its schedule starts the next run")
	if a := c.Attributes["timezone"]; a != nil {
		if _, err := time.LoadLocation(spec.Timezone); err != nil || spec.Timezone == "" {
			d.Errorf(a.Expr.Range(), "%q is not a time zone; use an IANA name such as \"Europe/Paris\" or \"UTC\"", spec.Timezone)
			return
		}
	}
	if a := c.Attributes["schedule"]; a != nil && spec.Schedule != "" {
		if _, err := parseSchedule(spec); err != nil {
			d.Errorf(a.Expr.Range(), "%q is not a schedule: %s; use 5 fields (min hour day month weekday), 6 with seconds first, or @hourly, @daily, @every 10s", spec.Schedule, err)
		}
	}
}

func parseSchedule(spec *CronSpec) (cron.Schedule, error) {
	s := strings.TrimSpace(spec.Schedule)
	if spec.Timezone != "" && !strings.HasPrefix(s, "CRON_TZ=") && !strings.HasPrefix(s, "TZ=") {
		s = "CRON_TZ=" + spec.Timezone + " " + s
	}
	return cronParser.Parse(s)
}

func (cronKind) NewDriver(job *config.Job, rt *Runtime) (Driver, error) {
	out, err := newJobOutput(job, rt)
	if err != nil {
		return nil, err
	}
	spec := job.Spec.(*CronSpec)
	sched, err := parseSchedule(spec)
	if err != nil {
		return nil, err
	}
	clock := rt.Clock
	if clock == nil {
		clock = realClock{}
	}
	d := &cronDriver{processDriver: processDriver{job: job, rt: rt, out: out}, spec: spec, sched: sched, clock: clock}
	d.start = d.processDriver.Start
	return d, nil
}

// cronDriver arms a schedule; every due time is an activation, unless the previous run is
// still going and overlap is "skip".
type cronDriver struct {
	processDriver
	spec  *CronSpec
	sched cron.Schedule
	clock Clock
	start func(RunRequest) (Run, error) // the process; tests replace it

	mu      sync.Mutex
	next    time.Time // the next due time while armed
	stop    chan struct{}
	done    chan struct{}
	active  int
	runs    map[string]float64 // by result
	skipped float64
}

func (d *cronDriver) Concurrent() bool { return d.job.Overlap == config.OverlapAllow }

func (d *cronDriver) Arm() (<-chan Activation, State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	acts := make(chan Activation)
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go d.loop(acts, d.stop, d.done)
	return acts, Scheduled, nil
}

func (d *cronDriver) Disarm() {
	d.mu.Lock()
	stop, done := d.stop, d.done
	d.stop, d.done = nil, nil
	d.mu.Unlock()
	defer d.setNext(time.Time{})
	if stop != nil {
		close(stop)
		<-done
	}
}

func (d *cronDriver) Close() {
	d.Disarm()
	d.processDriver.Close()
}

// loop waits for each due time. It re-reads the wall clock when a timer fires: a clock
// stepped back re-arms for the rest of the wait, and after a jump forward (suspend, NTP
// step) the missed due times collapse into one run, never a burst.
func (d *cronDriver) loop(acts chan<- Activation, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	if d.spec.RunOnStart && !d.deliver(acts, stop) {
		return
	}
	next := d.setNext(d.sched.Next(d.clock.Now()))
	for {
		wait := next.Sub(d.clock.Now())
		if wait > 0 {
			c, cancel := d.clock.After(wait)
			select {
			case <-c:
			case <-stop:
				cancel()
				return
			}
			if d.clock.Now().Before(next) {
				continue // the wall clock went back: wait for the rest
			}
		}
		if !d.deliver(acts, stop) {
			return
		}
		next = d.setNext(d.sched.Next(d.clock.Now()))
	}
}

// setNext records the next due time for NextRun.
func (d *cronDriver) setNext(t time.Time) time.Time {
	d.mu.Lock()
	d.next = t
	d.mu.Unlock()
	return t
}

// NextRun is the next due time, zero while disarmed (shown by /v1/status).
func (d *cronDriver) NextRun() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.next
}

// deliver hands one activation to the job, or counts a skip.
func (d *cronDriver) deliver(acts chan<- Activation, stop <-chan struct{}) bool {
	d.mu.Lock()
	busy := d.active > 0 && d.job.Overlap != config.OverlapAllow
	if busy {
		d.skipped++
	}
	d.mu.Unlock()
	if busy {
		d.rt.Log.Warn("scheduled run skipped: the previous run is still going", "job", d.job.Name, "overlap", d.job.Overlap)
		return true
	}
	select {
	case acts <- Activation{}:
		return true
	case <-stop:
		return false
	}
}

func (d *cronDriver) Start(req RunRequest) (Run, error) {
	d.mu.Lock()
	d.active++ // before the start: the run may end before Start returns
	d.mu.Unlock()
	end := func(res Result) {
		d.mu.Lock()
		d.active--
		d.mu.Unlock()
		d.count(res)
	}
	r, err := d.start(req.beforeExit(end))
	if err != nil {
		end(Result{Err: err, Code: 127})
		return nil, err
	}
	return r, nil
}

func (d *cronDriver) count(res Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runs == nil {
		d.runs = map[string]float64{}
	}
	if res.Success(d.job.SuccessCodes) {
		d.runs["success"]++
	} else {
		d.runs["failure"]++
	}
}

// Counters reports pilotfish_cron_runs_total{result} and pilotfish_cron_skipped_total.
func (d *cronDriver) Counters() []Counter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return []Counter{
		{Metric: "pilotfish_cron_runs_total", Label: "result", Value: "success", N: d.runs["success"]},
		{Metric: "pilotfish_cron_runs_total", Label: "result", Value: "failure", N: d.runs["failure"]},
		{Metric: "pilotfish_cron_skipped_total", N: d.skipped},
	}
}

// PlanSchedule shows the schedule in `pilotfish plan` (config.Scheduler): the zone is the
// one the schedule runs in, a CRON_TZ= or TZ= prefix winning over `timezone` as in
// parseSchedule.
func (s *CronSpec) PlanSchedule() (schedule, timezone string, runOnStart bool) {
	schedule, timezone = strings.TrimSpace(s.Schedule), s.Timezone
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(schedule, p); ok {
			timezone, schedule, _ = strings.Cut(rest, " ")
			schedule = strings.TrimSpace(schedule)
		}
	}
	return schedule, timezone, s.RunOnStart
}
