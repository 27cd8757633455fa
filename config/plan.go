package config

import (
	"fmt"
	"slices"
	"sort"
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

// RenderPlan describes the configuration for `pilotfish plan`: jobs and their triggers, the
// start order, the shutdown order, and the warnings found while loading.
func RenderPlan(c *Config, kinds map[string]Kind, warnings []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: %d jobs, %d watches, %d templates, stop_timeout %s, exit_on_failure %v\n\n", c.Path, len(c.Jobs), len(c.Watches), len(c.Templates), c.StopTimeout, c.ExitOnFailure)
	fmt.Fprintf(&b, "jobs:\n")
	for _, j := range c.Jobs {
		fmt.Fprintf(&b, "  %-20s %-8s %s\n", j.Name, j.Kind, DescribeWhen(j))
		if len(j.Exec) > 0 {
			fmt.Fprintf(&b, "  %-20s %-8s exec %q\n", "", "", j.Exec)
		}
		if j.RegistrationOnly() {
			fmt.Fprintf(&b, "  %-20s %-8s runs no command: registration and health only\n", "", "")
		}
		if j.Service != nil {
			fmt.Fprintf(&b, "  %-20s %-8s service %q port %d\n", "", "", j.Service.Name, j.Service.Port)
		}
		restarts := fmt.Sprint(j.Restarts)
		switch j.Restarts {
		case 0:
			restarts = "never"
		case Unlimited:
			restarts = "unlimited"
		}
		timeout := ""
		if j.Timeout > 0 {
			timeout = fmt.Sprintf(", each run stopped after %s", j.Timeout)
		}
		fmt.Fprintf(&b, "  %-20s %-8s restarts %s%s, stop %s after %s then SIGKILL\n", "", "", restarts, timeout, signalName(j), j.StopTimeout)
		if j.Health != nil {
			fmt.Fprintf(&b, "  %-20s %-8s health %s every %s\n", "", "", j.Health.Probe(), j.Health.Interval)
		}
		if p := describePolicies(j); p != "" {
			fmt.Fprintf(&b, "  %-20s %-8s %s\n", "", "", p)
		}
		fmt.Fprintf(&b, "  %-20s %-8s emits %s\n", "", "", joinCodes(Emits(kinds, j)))
	}
	for _, w := range c.Watches {
		what := fmt.Sprintf("service %q", w.Service)
		switch {
		case w.Key != "":
			what = fmt.Sprintf("key %q", w.Key)
		case w.Prefix != "":
			what = fmt.Sprintf("prefix %q", w.Prefix)
		}
		fmt.Fprintf(&b, "  %-20s %-8s %s emits %s\n", w.Source(), "watch", what, joinCodes(w.Codes()))
	}
	for _, t := range c.Templates {
		reads := "the environment"
		if t.catalog != "" {
			reads = "the catalog"
		}
		fmt.Fprintf(&b, "  %-20s %-8s writes %s from %s, emits %s\n", t.Source(), "template", t.Destination, reads, joinCodes(events.ChangedCodes))
	}
	fmt.Fprintf(&b, "\nstart order:\n")
	order := c.StartOrder()
	for i, layer := range order {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, strings.Join(layer, ", "))
	}
	hooks := c.Hooks()
	if len(hooks) > 0 {
		fmt.Fprintf(&b, "\nhooks:\n")
		for _, j := range c.Jobs {
			if h := hooks[j.Name]; len(h) > 0 {
				fmt.Fprintf(&b, "  %s stopping/stopped runs %s\n", j.Name, strings.Join(h, ", "))
			}
		}
	}
	fmt.Fprintf(&b, "\nshutdown order:\n")
	for i, layer := range c.ShutdownOrder() {
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
