package config

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/events"
)

// validate runs the checks that need the whole file: trigger sources and codes, cycles, and
// blocks that depend on other blocks.
func (l *loader) validate(cfg *Config) {
	d := l.d
	emits := map[string][]events.Code{events.Global: events.GlobalCodes}
	for _, w := range cfg.Watches {
		switch {
		case cfg.Consul == nil && w.IsKV():
			d.Errorf(w.Range, "watch %q follows a key of Consul's KV store, but there is no consul {} block; add one", w.Name)
			continue
		case cfg.Consul == nil:
			// Without Consul the watch never answers: it is kept out of the sources, so a
			// trigger on it is an impossible trigger.
			d.Warnf(w.Range, "watch %q does nothing without Consul: add a consul {} block (watches follow services registered there)", w.Name)
			continue
		}
		emits[w.Source()] = w.Codes()
	}
	l.validateTemplates(cfg)
	for _, t := range cfg.Templates {
		emits[t.Source()] = events.ChangedCodes
	}
	for _, j := range cfg.Jobs {
		emits[j.Name] = Emits(l.opts.Kinds, j)
	}
	if t := cfg.Telemetry; t != nil && t.Register {
		switch {
		case cfg.Consul == nil:
			d.Warnf(cfg.Jobs0Range(), "telemetry { register = true } does nothing without a consul {} block")
		case t.Listen == "":
			d.Errorf(cfg.Jobs0Range(), "telemetry { register = true } needs listen: the address of /metrics to register")
		}
	}
	services, ids := map[string]*Job{}, map[string]*Job{}
	if t := cfg.Telemetry; t != nil && t.Register {
		services["pilotfish"] = nil
	}
	for _, j := range cfg.Jobs {
		if j.Service == nil {
			continue
		}
		if prev, dup := services[j.Service.Name]; dup {
			other := "telemetry { register = true }"
			if prev != nil {
				other = fmt.Sprintf("job %q", prev.Name)
			}
			d.Errorf(j.Service.Range, "service %q of job %q is also registered by %s; each service needs its own name", j.Service.Name, j.Name, other)
		}
		services[j.Service.Name] = j
		if id := j.Service.ID; id != "" {
			if prev, dup := ids[id]; dup {
				d.Errorf(j.Service.Range, "service id %q of job %q is also the id of job %q; each service needs its own id", id, j.Name, prev.Name)
			}
			ids[id] = j
		}
	}

	for _, j := range cfg.Jobs {
		if j.Service != nil && cfg.Consul == nil {
			d.Warnf(j.Service.Range, "job %q has a service block but there is no consul {} block: discovery is off and the service is not registered", j.Name)
		}
		if j.StopTimeout > cfg.StopTimeout {
			d.Warnf(j.Range, "job %q has stop_timeout %s, longer than the whole shutdown budget (top-level stop_timeout %s); it will be killed when that runs out", j.Name, j.StopTimeout, cfg.StopTimeout)
		}
		for _, t := range j.When.Triggers() {
			if !t.Code.Valid() {
				continue // reported while decoding
			}
			codes, ok := emits[t.Source]
			switch {
			case !ok && strings.HasPrefix(t.Source, events.WatchPrefix) && cfg.Consul == nil && hasWatch(cfg, t.Source):
				d.Errorf(t.Range, "job %q waits for %q, which can never happen without Consul: add a consul {} block", j.Name, t.Source)
			case !ok && strings.HasPrefix(t.Source, events.WatchPrefix):
				d.Errorf(t.Range, "job %q waits for %q, but there is no watch %q; declare it with watch %q {}", j.Name, t.Source, strings.TrimPrefix(t.Source, events.WatchPrefix), strings.TrimPrefix(t.Source, events.WatchPrefix))
			case !ok && strings.HasPrefix(t.Source, events.TemplatePrefix):
				d.Errorf(t.Range, "job %q waits for %q, but there is no template %q%s", j.Name, t.Source, strings.TrimPrefix(t.Source, events.TemplatePrefix), l.suggest(t.Source, emits))
			case !ok:
				d.Errorf(t.Range, "job %q waits for %q, which is not a job, a watch (\"watch.NAME\"), a template (\"template.NAME\") or \"global\"%s", j.Name, t.Source, l.suggest(t.Source, emits))
			case t.Source == j.Name:
				d.Errorf(t.Range, "job %q cannot be triggered by its own events", j.Name)
			case !hasCode(codes, t.Code):
				d.Errorf(t.Range, "job %q waits for %s.%s, which can never happen: %q emits only %s%s", j.Name, t.Source, t.Code, t.Source, joinCodes(codes), whyNot(t))
			}
		}
	}
	l.checkCycles(cfg)
}

// validateTemplates checks what templates need of the rest: Consul for the catalog, and a
// destination of their own.
func (l *loader) validateTemplates(cfg *Config) {
	d := l.d
	dests := map[string]*Template{}
	sources := map[string]*Template{}
	for _, t := range cfg.Templates {
		if t.File != "" {
			sources[t.File] = t
		}
	}
	for _, t := range cfg.Templates {
		if t.catalog != "" && cfg.Consul == nil {
			d.Errorf(t.Range, "template %q reads the catalog (%s), but there is no consul {} block; add one, or read only the environment (env)", t.Name, t.catalog)
		}
		if t.Destination == "" {
			continue
		}
		if prev, dup := dests[t.Destination]; dup {
			d.Errorf(t.Range, "template %q writes %s, which template %q writes too; give each its own destination", t.Name, t.Destination, prev.Name)
		}
		dests[t.Destination] = t
		if src, ok := sources[t.Destination]; ok {
			d.Errorf(t.Range, "template %q would write over the source of template %q (%s)", t.Name, src.Name, t.Destination)
		}
		if st, err := os.Stat(t.Destination); err == nil && st.IsDir() {
			d.Errorf(t.Range, "template %q: destination %s is a directory; name the file to write", t.Name, t.Destination)
		}
	}
}

func hasWatch(cfg *Config, source string) bool {
	for _, w := range cfg.Watches {
		if w.Source() == source {
			return true
		}
	}
	return false
}

func whyNot(t Trigger) string {
	switch t.Code {
	case events.Healthy, events.Unhealthy:
		return " (add a health block to it to get healthy/unhealthy)"
	case events.TimerExpired:
		return " (it needs a when.timeout)"
	}
	return ""
}

// Jobs0Range is a position to report top-level problems at: the first job, or the file start.
func (c *Config) Jobs0Range() (r hcl.Range) {
	if len(c.Jobs) > 0 {
		return c.Jobs[0].Range
	}
	if len(c.Files) > 0 {
		r.Filename = c.Files[0]
	}
	r.Start.Line, r.Start.Column = 1, 1
	r.End = r.Start
	return r
}

func hasCode(codes []events.Code, c events.Code) bool {
	for _, x := range codes {
		if x == c {
			return true
		}
	}
	return false
}

func joinCodes(codes []events.Code) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// maxSuggestions bounds the "did you mean" searches of one file: each compares a name with
// every known one, and a hostile file may hold thousands of unknown names.
const maxSuggestions = 16

// suggest returns a "did you mean" for a name within two edits of a known one.
func (l *loader) suggest(name string, known map[string][]events.Code) string {
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	if best := l.closest(name, names); best != "" {
		return "; did you mean \"" + best + "\"?"
	}
	return ""
}

// closest returns the known name within two edits of name (the closest, the first of equals),
// or "".
func (l *loader) closest(name string, known []string) string {
	if l.suggestions >= maxSuggestions || len(name) > 128 {
		return ""
	}
	l.suggestions++
	best, bestD := "", 3
	for _, k := range known {
		if k == "" || abs(len(k)-len(name)) > bestD || len(k) > 128 {
			continue
		}
		// Ties go to the lexically first name, so a file always gets the same message.
		if d := editDistance(name, k, bestD+1); d < bestD || d == bestD && best != "" && k < best {
			best, bestD = k, d
		}
	}
	return best
}

// unknownName finds the name in HCL's "Unsupported argument", "Unsupported block type" and
// "Extraneous JSON object property" diagnostics, and any suggestion HCL made.
var unknownName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:An argument named|Blocks of type|No argument or block type is named) ("(?:[^"\\]|\\.)*")`)
})

// suggestKeys gives HCL's diagnostics of unknown keys a "did you mean" drawn from every key
// the body takes, not only those of the schema HCL was shown last (a job's keys are those
// every job takes plus its kind's).
func (l *loader) suggestKeys(diags hcl.Diagnostics, schemas ...*hcl.BodySchema) {
	var attrs, blocks []string
	for _, s := range schemas {
		for _, a := range s.Attributes {
			attrs = append(attrs, a.Name)
		}
		for _, b := range s.Blocks {
			blocks = append(blocks, b.Type)
		}
	}
	for _, d := range diags {
		var known []string
		switch d.Summary {
		case "Unsupported argument":
			known = attrs
		case "Unsupported block type":
			known = blocks
		case "Extraneous JSON object property":
			known = append(append([]string(nil), attrs...), blocks...)
		default:
			continue
		}
		m := unknownName().FindStringSubmatch(d.Detail)
		if m == nil {
			continue
		}
		name, err := strconv.Unquote(m[1])
		if err != nil {
			continue
		}
		best := l.closest(name, known)
		if best == "" {
			continue
		}
		detail, _, _ := strings.Cut(d.Detail, " Did you mean ")
		d.Detail = detail + fmt.Sprintf(" Did you mean %q?", best)
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// editDistance is the Levenshtein distance of a and b, or limit when it is limit or more.
func editDistance(a, b string, limit int) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		least := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			least = min(least, cur[j])
		}
		if least >= limit {
			return limit // every later row is at least as far
		}
		prev = cur
	}
	return min(prev[len(b)], limit)
}

// maxCycles bounds the trigger cycles reported, and cycleNames the names shown in one.
const (
	maxCycles  = 10
	cycleNames = 8
)

// checkCycles reports every trigger cycle between jobs once.
func (l *loader) checkCycles(cfg *Config) {
	byName := map[string]*Job{}
	for _, j := range cfg.Jobs {
		byName[j.Name] = j
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, t := range byName[n].When.Triggers() {
			if _, isJob := byName[t.Source]; !isJob || t.Source == n {
				continue
			}
			switch color[t.Source] {
			case white:
				visit(t.Source)
			case grey:
				if l.cycles++; l.cycles > maxCycles {
					continue
				}
				i := len(stack) - 1
				for stack[i] != t.Source {
					i--
				}
				cycle := append(append([]string(nil), stack[i:]...), t.Source)
				if len(cycle) > cycleNames {
					cycle = append(append(cycle[:cycleNames-1:cycleNames-1], fmt.Sprintf("… (%d jobs)", len(cycle)-cycleNames)), t.Source)
				}
				l.d.Errorf(t.Range, "trigger cycle: %s (each waits for the next; none of them can ever start)", strings.Join(cycle, " → "))
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if color[n] == white {
			visit(n)
		}
	}
}
