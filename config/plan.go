package config

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pilotfish/pilotfish/events"
)

// Dependencies maps each job to the jobs whose events it waits for, hooks excluded: these are
// the edges that order start-up, and, reversed, shutdown.
func (c *Config) Dependencies() map[string][]string {
	return c.edges(func(t Trigger) bool { return !t.IsHook() })
}

// Hooks maps each job to the jobs triggered by its stopping or stopped events.
func (c *Config) Hooks() map[string][]string {
	hooks := map[string][]string{}
	for hook, sources := range c.edges(Trigger.IsHook) {
		for _, s := range sources {
			hooks[s] = append(hooks[s], hook)
		}
	}
	for _, h := range hooks {
		sort.Strings(h)
	}
	return hooks
}

func (c *Config) edges(keep func(Trigger) bool) map[string][]string {
	out := map[string][]string{}
	for _, j := range c.Jobs {
		seen := map[string]bool{}
		for _, t := range j.When.Triggers() {
			if keep(t) && c.Job(t.Source) != nil && !seen[t.Source] {
				seen[t.Source] = true
				out[j.Name] = append(out[j.Name], t.Source)
			}
		}
		sort.Strings(out[j.Name])
	}
	return out
}

// StartOrder groups the jobs in layers: a job's layer is one more than the highest layer of
// the jobs it depends on. Hooks wait for their event and sit in the first layer.
func (c *Config) StartOrder() [][]string {
	return c.layers(c.Dependencies())
}

// ShutdownOrder groups the jobs in the layers they are stopped in, first layer first: a job
// stops after the jobs that depend on it, and a hook after the job it hooks (so that it can
// still run when that job stops).
func (c *Config) ShutdownOrder() [][]string {
	before := map[string][]string{}
	for j, deps := range c.Dependencies() {
		for _, d := range deps {
			before[d] = append(before[d], j)
		}
	}
	for src, hooks := range c.Hooks() {
		for _, h := range hooks {
			before[h] = append(before[h], src)
		}
	}
	return c.layers(before)
}

// layers places each job one layer after the highest of its prerequisites. Prerequisite
// loops (possible only across hook edges) are cut by a depth bound.
func (c *Config) layers(prereq map[string][]string) [][]string {
	layer := map[string]int{}
	var depth func(n string, guard int) int
	depth = func(n string, guard int) int {
		if l, ok := layer[n]; ok {
			return l
		}
		l := 0
		if guard < len(c.Jobs) {
			for _, p := range prereq[n] {
				l = max(l, depth(p, guard+1)+1)
			}
		}
		layer[n] = l
		return l
	}
	var out [][]string
	for _, j := range c.Jobs {
		l := depth(j.Name, 0)
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], j.Name)
	}
	return out
}

// DescribeWhen renders a job's trigger for people.
func DescribeWhen(j *Job) string {
	w := j.When
	var s string
	switch {
	case w == nil:
		return "at startup"
	case w.Once != "":
		s = fmt.Sprintf("once %s.%s", w.Source, w.Once)
	case w.Each != "":
		s = fmt.Sprintf("each %s.%s", w.Source, w.Each)
	case w.Interval > 0:
		s = fmt.Sprintf("every %s from startup", w.Interval)
	case len(w.After) > 0:
		s = "after all of " + triggerList(w.After)
	default:
		s = "on any of " + triggerList(w.Any)
	}
	if w.Debounce > 0 {
		s += fmt.Sprintf(", debounced %s", w.Debounce)
	}
	if w.Timeout > 0 {
		s += fmt.Sprintf(", timeout %s", w.Timeout)
	}
	return s
}

func triggerList(ts []Trigger) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s.%s", t.Source, t.Code)
	}
	return strings.Join(parts, ", ")
}

// Scheduler is implemented by the Spec of a kind that runs its job on a schedule (cron), so
// that `pilotfish plan` shows when. timezone is "" for the local time.
type Scheduler interface {
	PlanSchedule() (schedule, timezone string, runOnStart bool)
}

// Plan is what pilotfish would do with a configuration: what `pilotfish plan` prints, as
// text or as JSON (docs/cli.md#plan-json).
type Plan struct {
	StopTimeout   string         `json:"stop_timeout"`
	ExitOnFailure bool           `json:"exit_on_failure"`
	Jobs          []PlanJob      `json:"jobs"`
	Watches       []PlanWatch    `json:"watches"`
	Templates     []PlanTemplate `json:"templates"`
	// StartOrder groups the jobs started at start-up or by other jobs' events, layer by
	// layer; hooks are not in it (see PlanJob.HookOf).
	StartOrder    [][]string `json:"start_order"`
	ShutdownOrder [][]string `json:"shutdown_order"`
}

// PlanJob is one job of a Plan.
type PlanJob struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// When says in words when the job runs: "at startup", "once db.healthy", "on schedule
	// \"0 3 * * *\" (time zone UTC)"…
	When     string        `json:"when"`
	Triggers []PlanTrigger `json:"triggers"`
	Interval string        `json:"interval,omitempty"`
	// Schedule and Timezone are a cron job's ("Local": the container's local time).
	Schedule         string       `json:"schedule,omitempty"`
	Timezone         string       `json:"timezone,omitempty"`
	Exec             []string     `json:"exec,omitempty"`
	RegistrationOnly bool         `json:"registration_only,omitempty"`
	Service          *PlanService `json:"service,omitempty"`
	Restarts         string       `json:"restarts"` // "never", "unlimited" or a number
	Timeout          string       `json:"timeout,omitempty"`
	StopSignal       string       `json:"stop_signal"`
	StopTimeout      string       `json:"stop_timeout"`
	Health           *PlanHealth  `json:"health,omitempty"`
	// Policies are the restart and exit policies that differ from the defaults, in words
	// ("restarts only after a failure; success codes [0 3]"); absent when none do.
	Policies string   `json:"policies,omitempty"`
	Emits    []string `json:"emits"`
	// Hooks are the jobs this job's stopping or stopped events run.
	Hooks []PlanHook `json:"hooks"`
	// HookOf names the jobs this job is a hook of, when it runs only as a hook.
	HookOf []string `json:"hook_of,omitempty"`
}

// PlanTrigger is one event a job waits for.
type PlanTrigger struct {
	Source string `json:"source"`
	Code   string `json:"code"`
}

// PlanHook is a job run by another's stopping or stopped event.
type PlanHook struct {
	Job string `json:"job"`
	On  string `json:"on"`
}

// PlanService is a job's Consul registration.
type PlanService struct {
	Name string `json:"name"`
	Port int    `json:"port"`
}

// PlanHealth is a job's health probe.
type PlanHealth struct {
	Probe    string `json:"probe"`
	Interval string `json:"interval"`
}

// PlanWatch is one watch of a Plan.
type PlanWatch struct {
	Name    string   `json:"name"`
	Source  string   `json:"source"`
	Service string   `json:"service,omitempty"`
	Key     string   `json:"key,omitempty"`
	Prefix  string   `json:"prefix,omitempty"`
	Emits   []string `json:"emits"`
}

// PlanTemplate is one template of a Plan.
type PlanTemplate struct {
	Name        string   `json:"name"`
	Source      string   `json:"source"`
	Destination string   `json:"destination"`
	Reads       string   `json:"reads"` // "environment" or "catalog"
	Emits       []string `json:"emits"`
}

// NewPlan works out the Plan of a valid configuration.
func NewPlan(c *Config, kinds map[string]Kind) *Plan {
	p := &Plan{StopTimeout: c.StopTimeout.String(), ExitOnFailure: c.ExitOnFailure,
		Jobs: []PlanJob{}, Watches: []PlanWatch{}, Templates: []PlanTemplate{}, ShutdownOrder: c.ShutdownOrder()}
	hooks := map[string][]PlanHook{}
	hookOnly := map[string]bool{}
	for _, j := range c.Jobs {
		ts := j.When.Triggers()
		hookOnly[j.Name] = len(ts) > 0
		seen := map[PlanHook]bool{}
		for _, t := range ts {
			if !t.IsHook() || c.Job(t.Source) == nil {
				hookOnly[j.Name] = false
				continue
			}
			if h := (PlanHook{Job: j.Name, On: string(t.Code)}); !seen[h] {
				seen[h] = true
				hooks[t.Source] = append(hooks[t.Source], h)
			}
		}
	}
	for _, j := range c.Jobs {
		pj := PlanJob{Name: j.Name, Kind: j.Kind, When: planWhen(j), Triggers: []PlanTrigger{}, Exec: j.Exec,
			RegistrationOnly: j.RegistrationOnly(), Restarts: restartsText(j.Restarts), StopSignal: signalName(j),
			StopTimeout: j.StopTimeout.String(), Policies: describePolicies(j), Emits: codeStrings(Emits(kinds, j)), Hooks: hooks[j.Name]}
		for _, t := range j.When.Triggers() {
			pj.Triggers = append(pj.Triggers, PlanTrigger{Source: t.Source, Code: string(t.Code)})
			if hookOnly[j.Name] && !slices.Contains(pj.HookOf, t.Source) {
				pj.HookOf = append(pj.HookOf, t.Source)
			}
		}
		if pj.Hooks == nil {
			pj.Hooks = []PlanHook{}
		}
		if j.When != nil && j.When.Interval > 0 {
			pj.Interval = j.When.Interval.String()
		}
		if s, ok := j.Spec.(Scheduler); ok {
			pj.Schedule, pj.Timezone, _ = s.PlanSchedule()
			if pj.Timezone == "" {
				pj.Timezone = "Local"
			}
		}
		if j.Service != nil {
			pj.Service = &PlanService{Name: j.Service.Name, Port: j.Service.Port}
		}
		if j.Timeout > 0 {
			pj.Timeout = j.Timeout.String()
		}
		if j.Health != nil {
			pj.Health = &PlanHealth{Probe: j.Health.Probe(), Interval: j.Health.Interval.String()}
		}
		p.Jobs = append(p.Jobs, pj)
	}
	for _, layer := range c.StartOrder() {
		var keep []string
		for _, name := range layer {
			if !hookOnly[name] {
				keep = append(keep, name)
			}
		}
		if len(keep) > 0 {
			p.StartOrder = append(p.StartOrder, keep)
		}
	}
	if p.StartOrder == nil {
		p.StartOrder = [][]string{}
	}
	for _, w := range c.Watches {
		p.Watches = append(p.Watches, PlanWatch{Name: w.Name, Source: w.Source(), Service: w.Service, Key: w.Key,
			Prefix: w.Prefix, Emits: codeStrings(w.Codes())})
	}
	for _, t := range c.Templates {
		reads := "environment"
		if t.catalog != "" {
			reads = "catalog"
		}
		p.Templates = append(p.Templates, PlanTemplate{Name: t.Name, Source: t.Source(), Destination: t.Destination,
			Reads: reads, Emits: codeStrings(events.ChangedCodes)})
	}
	return p
}

// planWhen says when a job runs: its trigger, then its schedule if it has one.
func planWhen(j *Job) string {
	if !j.Autostart && j.When == nil {
		return "when started by hand" // not at startup: `pilotfish start`
	}
	s, ok := j.Spec.(Scheduler)
	if !ok {
		return DescribeWhen(j)
	}
	sched, tz, onStart := s.PlanSchedule()
	if tz == "" {
		tz = "local time"
	} else {
		tz = "time zone " + tz
	}
	text := fmt.Sprintf("on schedule %q (%s)", sched, tz)
	switch {
	case j.When == nil && onStart:
		return text + ", and once at startup"
	case j.When == nil:
		return text
	case onStart:
		text += ", the first run at once"
	}
	return DescribeWhen(j) + ", then " + text
}

func restartsText(n int) string {
	switch n {
	case 0:
		return "never"
	case Unlimited:
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func codeStrings(codes []events.Code) []string {
	out := make([]string, len(codes))
	for i, c := range codes {
		out[i] = string(c)
	}
	return out
}

// RenderPlan describes the configuration for `pilotfish plan`: jobs and their triggers and
// hooks, the start order, the shutdown order, and the warnings found while loading.
func RenderPlan(c *Config, kinds map[string]Kind, warnings []string) string {
	p := NewPlan(c, kinds)
	var b strings.Builder
	files := ""
	if len(c.Files) > 1 {
		files = " (" + Plural(len(c.Files), "file") + ")"
	}
	fmt.Fprintf(&b, "config %s%s: %s, %s, %s, stop_timeout %s, exit_on_failure %v\n\n", c.Path, files,
		Plural(len(c.Jobs), "job"), Plural(len(c.Watches), "watch"), Plural(len(c.Templates), "template"), p.StopTimeout, p.ExitOnFailure)
	fmt.Fprintf(&b, "jobs:\n")
	more := func(format string, args ...any) {
		fmt.Fprintf(&b, "  %-20s %-8s %s\n", "", "", fmt.Sprintf(format, args...))
	}
	for _, j := range p.Jobs {
		fmt.Fprintf(&b, "  %-20s %-8s %s\n", j.Name, j.Kind, j.When)
		if len(j.Exec) > 0 {
			more("exec %q", j.Exec)
		}
		if j.RegistrationOnly {
			more("runs no command: registration and health only")
		}
		if j.Service != nil {
			more("service %q port %d", j.Service.Name, j.Service.Port)
		}
		timeout := ""
		if j.Timeout != "" {
			timeout = fmt.Sprintf(", each run stopped after %s", j.Timeout)
		}
		more("restarts %s%s, stop %s after %s then SIGKILL", j.Restarts, timeout, j.StopSignal, j.StopTimeout)
		if j.Health != nil {
			more("health %s every %s", j.Health.Probe, j.Health.Interval)
		}
		if j.Policies != "" {
			more("%s", j.Policies)
		}
		more("emits %s", strings.Join(j.Emits, ", "))
		if len(j.HookOf) > 0 {
			more("hook of %s: not in the start order", strings.Join(j.HookOf, ", "))
		}
		for _, h := range j.Hooks {
			more("on %s runs %s (hook)", h.On, h.Job)
		}
	}
	for _, w := range p.Watches {
		what := fmt.Sprintf("service %q", w.Service)
		switch {
		case w.Key != "":
			what = fmt.Sprintf("key %q", w.Key)
		case w.Prefix != "":
			what = fmt.Sprintf("prefix %q", w.Prefix)
		}
		fmt.Fprintf(&b, "  %-20s %-8s %s emits %s\n", w.Source, "watch", what, strings.Join(w.Emits, ", "))
	}
	for _, t := range p.Templates {
		fmt.Fprintf(&b, "  %-20s %-8s writes %s from the %s, emits %s\n", t.Source, "template", t.Destination, t.Reads, strings.Join(t.Emits, ", "))
	}
	fmt.Fprintf(&b, "\nstart order:\n")
	for i, layer := range p.StartOrder {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, strings.Join(layer, ", "))
	}
	fmt.Fprintf(&b, "\nshutdown order:\n")
	for i, layer := range p.ShutdownOrder {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, strings.Join(layer, ", "))
	}
	fmt.Fprintf(&b, "\nwarnings:\n")
	if len(warnings) == 0 {
		fmt.Fprintf(&b, "  none\n")
	}
	for _, w := range warnings {
		fmt.Fprintf(&b, "  %s\n", w)
	}
	return b.String()
}

// describePolicies renders the restart and exit policies that differ from the defaults
// (docs/jobs.md#restarts-and-backoff), or "".
func describePolicies(j *Job) string {
	var parts []string
	if !j.Autostart {
		parts = append(parts, "autostart = false: stopped until `pilotfish start "+j.Name+"`")
	}
	if j.RestartOn == RestartOnFailure {
		parts = append(parts, "restarts only after a failure")
	}
	if len(j.SuccessCodes) > 0 && !slices.Equal(j.SuccessCodes, []int{0}) {
		parts = append(parts, fmt.Sprintf("success codes %v", j.SuccessCodes))
	}
	if h := j.Health; h != nil {
		switch h.OnFailure {
		case OnFailureRestart:
			parts = append(parts, "when unhealthy: restart after backoff")
		case OnFailureShutdown:
			parts = append(parts, "when unhealthy: shut down, exit code 1")
		}
	}
	return strings.Join(parts, "; ")
}

func signalName(j *Job) string {
	return SignalName(j.StopSignal)
}
