package config

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/events"
	"github.com/zclconf/go-cty/cty"
)

// commonJobSchema lists the keys every kind accepts.
var commonJobSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "kind"}, {Name: "exec"}, {Name: "dir"}, {Name: "user"}, {Name: "group"}, {Name: "env"},
		{Name: "restarts"}, {Name: "backoff"}, {Name: "stop_signal"}, {Name: "stop_timeout"}, {Name: "overlap"},
		{Name: "restart_on"}, {Name: "success_codes"}, {Name: "autostart"},
		{Name: "oom_score_adj"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "when"}, {Type: "health"}, {Type: "service"}, {Type: "logging"}, {Type: "limits"}},
}

// runTimeoutSchema is `timeout` of a kind that has none of its own.
var runTimeoutSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "timeout"}}}

func (l *loader) decodeJob(b *hcl.Block) *Job {
	d := l.d
	l.checkName(b, "job")
	j := &Job{
		Name:        b.Labels[0],
		Kind:        "exec",
		Backoff:     Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax},
		StopSignal:  syscall.SIGTERM,
		StopTimeout: DefaultJobStopTimeout,
		Logging:     JobLogging{Prefix: true, Color: "auto", Buffer: DefaultLogBuffer},
		Range:       b.DefRange,
	}
	j.RestartOn, j.SuccessCodes, j.Autostart = RestartOnAny, []int{0}, true
	content, remain, diags := b.Body.PartialContent(commonJobSchema)
	d.Diags = append(d.Diags, diags...)
	attrs := content.Attributes

	d.String(attrs, "kind", &j.Kind)
	kind, known := l.opts.Kinds[j.Kind]
	if !known {
		var names []string
		for n := range l.opts.Kinds {
			names = append(names, n)
		}
		rng := b.DefRange
		if a := attrs["kind"]; a != nil {
			rng = a.Expr.Range()
		}
		d.errorf(rng, "Unknown job kind", "%q is not a job kind; use one of %s.", j.Kind, quoteList(sortedStrings(names)))
	}

	if d.Command(attrs, "exec", &j.Exec) && known && kind.ExecRule() == ExecForbidden {
		d.Errorf(attrs["exec"].NameRange, "a %s job runs no command; remove \"exec\"", j.Kind)
	}
	d.String(attrs, "dir", &j.Dir)
	d.String(attrs, "user", &j.User)
	d.String(attrs, "group", &j.Group)
	if d.StringMap(attrs, "env", &j.Env) {
		for k := range j.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				d.Errorf(attrs["env"].Expr.Range(), "environment variable name %q must be non-empty and hold no '='", k)
			}
		}
	}
	l.restarts(attrs, j)
	l.decodePolicies(attrs, j)
	if obj, ok := d.Object(attrs, "backoff", "initial", "max"); ok {
		d.Duration(obj, "initial", &j.Backoff.Initial)
		d.Duration(obj, "max", &j.Backoff.Max)
		if j.Backoff.Initial <= 0 || j.Backoff.Max < j.Backoff.Initial {
			d.Errorf(attrs["backoff"].Expr.Range(), "backoff needs 0 < initial <= max")
		}
	}
	d.Signal(attrs, "stop_signal", &j.StopSignal)
	d.Duration(attrs, "stop_timeout", &j.StopTimeout)
	d.String(attrs, "overlap", &j.Overlap)
	if adj := 0; d.Int(attrs, "oom_score_adj", -1000, 1000, &adj) {
		j.OOMScoreAdj = &adj
	}
	// `timeout` bounds a run; a kind with a `timeout` of its own (webhook: per attempt) keeps it.
	var timeout *hcl.Attribute
	if known && !hasAttr(kind.Schema(), "timeout") {
		tc, rest, diags := remain.PartialContent(runTimeoutSchema)
		d.Diags = append(d.Diags, diags...)
		remain, timeout = rest, tc.Attributes["timeout"]
		if d.Duration(tc.Attributes, "timeout", &j.Timeout) && j.Timeout <= 0 {
			d.Errorf(timeout.Expr.Range(), "\"timeout\" must be longer than zero")
		}
	}

	seen := map[string]bool{}
	for _, blk := range content.Blocks {
		if seen[blk.Type] {
			d.Errorf(blk.DefRange, "only one %q block is allowed in a job", blk.Type)
			continue
		}
		seen[blk.Type] = true
		switch blk.Type {
		case "when":
			j.When = l.decodeWhen(blk, j)
		case "health":
			j.Health = l.decodeHealth(blk)
		case "service":
			j.Service = l.decodeService(blk, j)
		case "logging":
			l.decodeJobLogging(blk, &j.Logging)
		case "limits":
			j.Limits = l.decodeLimits(blk)
		}
	}
	if j.Service != nil && j.Service.TTL == 0 {
		j.Service.TTL = 3 * DefaultHealthInterval
		if j.Health != nil {
			j.Service.TTL = 3 * j.Health.Interval
		}
	}
	if !known {
		return j
	}
	l.checkExec(b, j, kind, attrs, timeout)
	l.checkPolicies(j, kind, attrs)
	l.checkResources(j, kind, attrs, content.Blocks)
	kc, diags := remain.Content(kind.Schema())
	l.suggestKeys(diags, commonJobSchema, kind.Schema(), runTimeoutSchema)
	d.Diags = append(d.Diags, diags...)
	kind.Decode(d, j, kc)
	return j
}

// checkExec checks `exec` and `timeout` against the kind. An exec job may leave `exec` out
// when it has a service or a health check: it is registration only (a process that
// something else runs, as ContainerPilot allowed).
func (l *loader) checkExec(b *hcl.Block, j *Job, kind Kind, attrs hcl.Attributes, timeout *hcl.Attribute) {
	d := l.d
	_, has := attrs["exec"]
	switch {
	case has || kind.ExecRule() != ExecRequired:
	case j.Kind == "exec" && (j.Service != nil || j.Health != nil):
		if j.Health != nil && (j.Health.Port != 0 || j.Health.Log != "") {
			d.Errorf(b.DefRange, "job %q runs no command, so its health check cannot watch a port or a log of it; use exec, http or tcp", j.Name)
		}
		if a := attrs["restarts"]; a != nil {
			d.Warnf(a.NameRange, "job %q runs no command (no exec): \"restarts\" does nothing", j.Name)
		}
	case j.Kind == "exec":
		d.errorf(b.DefRange, "Missing exec", "job %q needs \"exec\", the command to run (a job that only registers a service run by something else needs a service block).", j.Name)
	default:
		d.errorf(b.DefRange, "Missing exec", "job %q needs \"exec\", the command to run.", j.Name)
	}
	if timeout == nil {
		return
	}
	switch {
	case kind.ExecRule() == ExecForbidden:
		d.Errorf(timeout.NameRange, "a %s job runs no command; \"timeout\" bounds a run of one", j.Kind)
	case !has && kind.ExecRule() != ExecForbidden:
		d.Errorf(timeout.NameRange, "job %q runs no command; \"timeout\" bounds a run of one", j.Name)
	}
}

func hasAttr(s *hcl.BodySchema, name string) bool {
	for _, a := range s.Attributes {
		if a.Name == name {
			return true
		}
	}
	return false
}

func (l *loader) restarts(attrs hcl.Attributes, j *Job) {
	a, ok := attrs["restarts"]
	if !ok {
		return
	}
	v, diags := l.d.eval(a.Expr)
	l.d.Diags = append(l.d.Diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return
	}
	if v.Type() == cty.String {
		switch s := v.AsString(); s {
		case "never":
			j.Restarts = 0
			return
		case "unlimited":
			j.Restarts = Unlimited
			return
		default:
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				j.Restarts = n
				return
			}
		}
	} else if v.Type() == cty.Number {
		if f, _ := v.AsBigFloat().Float64(); f >= 0 && f == float64(int(f)) {
			j.Restarts = int(f)
			return
		}
	}
	l.d.Errorf(a.Expr.Range(), "\"restarts\" must be \"never\", \"unlimited\" or a whole number >= 0")
}

// decodePolicies reads restart_on, success_codes and autostart (docs/jobs.md#restarts-and-backoff).
func (l *loader) decodePolicies(attrs hcl.Attributes, j *Job) {
	d := l.d
	if d.String(attrs, "restart_on", &j.RestartOn) {
		d.OneOf(attrs, "restart_on", j.RestartOn, RestartOnAny, RestartOnFailure)
	}
	d.Bool(attrs, "autostart", &j.Autostart)
	a, ok := attrs["success_codes"]
	if !ok {
		return
	}
	v, ok := d.value(a, cty.List(cty.Number))
	if !ok {
		return
	}
	codes := []int{}
	for _, e := range v.AsValueSlice() {
		f := -1.0
		if !e.IsNull() {
			f, _ = e.AsBigFloat().Float64()
		}
		if f != math.Trunc(f) || f < 0 || f > 255 {
			d.Errorf(a.Expr.Range(), "\"success_codes\" must list exit codes, whole numbers from 0 to 255 (a death by signal is never a success)")
			return
		}
		codes = append(codes, int(f))
	}
	if len(codes) == 0 {
		d.Errorf(a.Expr.Range(), "\"success_codes\" must list at least one exit code, such as [0]")
		return
	}
	j.SuccessCodes = codes
}

// checkPolicies checks restart_on, success_codes, autostart and health.on_failure against
// the kind and the rest of the job.
func (l *loader) checkPolicies(j *Job, kind Kind, attrs hcl.Attributes) {
	d := l.d
	if a := attrs["success_codes"]; a != nil {
		switch {
		case kind.ExecRule() == ExecForbidden:
			d.Errorf(a.NameRange, "a %s job runs no command, so it has no exit code; remove \"success_codes\"", j.Kind)
		case j.RegistrationOnly():
			d.Warnf(a.NameRange, "job %q runs no command (no exec): \"success_codes\" does nothing", j.Name)
		}
	}
	if a := attrs["restart_on"]; a != nil {
		switch {
		case j.RegistrationOnly():
			d.Warnf(a.NameRange, "job %q runs no command (no exec): \"restart_on\" does nothing", j.Name)
		case j.Restarts == 0:
			d.Warnf(a.NameRange, "job %q is never restarted (restarts = \"never\"): \"restart_on\" does nothing", j.Name)
		}
	}
	if a := attrs["autostart"]; a != nil && !j.Autostart && j.When != nil && j.When.Timeout > 0 {
		d.Warnf(a.NameRange, "job %q is not started at start-up (autostart = false): its when.timeout, counted from start-up, never applies", j.Name)
	}
	h := j.Health
	if h == nil || h.OnFailure != OnFailureRestart {
		return
	}
	if a, ok := kind.(Armed); ok && a.Armed() {
		return // the kind refuses it
	}
	switch {
	case j.RegistrationOnly():
		d.Errorf(j.Range, "job %q runs no command: health.on_failure = \"restart\" has no process to restart; use \"ignore\" or \"shutdown\"", j.Name)
	case j.Restarts == 0:
		d.Warnf(j.Range, "job %q: with restarts = \"never\", health.on_failure = \"restart\" stops the job for good (failed) at its first unhealthy verdict; set restarts", j.Name)
	}
}

var whenSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "source"}, {Name: "once"}, {Name: "each"}, {Name: "interval"}, {Name: "after"},
	{Name: "any"}, {Name: "debounce"}, {Name: "timeout"}, {Name: "overlap"},
}}

func (l *loader) decodeWhen(b *hcl.Block, j *Job) *When {
	d := l.d
	// Without a source, what is said of the trigger points at the block.
	w := &When{Range: b.DefRange, SourceRange: b.DefRange}
	content, diags := b.Body.Content(whenSchema)
	d.Diags = append(d.Diags, diags...)
	attrs := content.Attributes
	if d.String(attrs, "source", &w.Source) {
		w.SourceRange = attrs["source"].Expr.Range()
	}
	var once, each string
	d.String(attrs, "once", &once)
	d.String(attrs, "each", &each)
	w.Once, w.Each = events.Code(once), events.Code(each)
	d.Duration(attrs, "interval", &w.Interval)
	d.Duration(attrs, "debounce", &w.Debounce)
	d.Duration(attrs, "timeout", &w.Timeout)
	if a, ok := attrs["overlap"]; ok {
		if j.Overlap != "" {
			d.Errorf(a.NameRange, "\"overlap\" is set both in the job and in its when block; keep one")
		}
		d.String(attrs, "overlap", &j.Overlap)
	}
	if pairs, ok := d.Pairs(attrs, "after"); ok {
		w.After = l.triggers(pairs)
	}
	if pairs, ok := d.Pairs(attrs, "any"); ok {
		w.Any = l.triggers(pairs)
	}

	forms := 0
	for _, k := range []string{"source", "interval", "after", "any"} {
		if _, ok := attrs[k]; ok {
			forms++
		}
	}
	switch {
	case forms != 1:
		d.errorf(b.DefRange, "Invalid when", "a when block needs exactly one of: source (with once or each), interval, after, any.")
	case attrs["source"] != nil && (once == "") == (each == ""):
		d.errorf(b.DefRange, "Invalid when", "with \"source\", set exactly one of \"once\" or \"each\".")
	case attrs["source"] == nil && (attrs["once"] != nil || attrs["each"] != nil):
		d.errorf(b.DefRange, "Invalid when", "\"once\" and \"each\" need a \"source\".")
	case (attrs["after"] != nil || attrs["any"] != nil) && len(w.After)+len(w.Any) == 0 && !d.Diags.HasErrors():
		d.errorf(b.DefRange, "Invalid when", "\"after\" and \"any\" need at least one source = code pair.")
	}
	if a := attrs["debounce"]; a != nil && w.Any == nil && each == "" {
		d.Errorf(a.NameRange, "\"debounce\" applies to \"any\" and \"each\" triggers")
	}
	if a := attrs["timeout"]; a != nil && w.Interval > 0 {
		d.Errorf(a.NameRange, "\"timeout\" does not apply to an interval trigger, which fires at start-up")
	}
	if a := attrs["interval"]; a != nil && w.Interval <= 0 && !d.Diags.HasErrors() {
		d.Errorf(a.Expr.Range(), "\"interval\" must be longer than zero")
	}
	for _, pair := range []struct {
		name string
		code events.Code
	}{{"once", w.Once}, {"each", w.Each}} {
		if a := attrs[pair.name]; a != nil && pair.code != "" && !pair.code.Valid() {
			d.Errorf(a.Expr.Range(), "%q is not an event code; use one of %s", pair.code, codeList())
		}
	}
	return w
}

func (l *loader) triggers(pairs []Pair) []Trigger {
	var out []Trigger
	for _, p := range pairs {
		c := events.Code(p.Value)
		if !c.Valid() {
			l.d.Errorf(p.ValueRange, "%q is not an event code; use one of %s", p.Value, codeList())
			continue
		}
		out = append(out, Trigger{Source: p.Key, Code: c, Range: p.KeyRange})
	}
	return out
}

func codeList() string {
	var s []string
	for _, c := range events.AllCodes() {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

var healthSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "exec"}, {Name: "http"}, {Name: "tcp"}, {Name: "port"}, {Name: "log"},
	{Name: "interval"}, {Name: "timeout"}, {Name: "grace"}, {Name: "failures"}, {Name: "successes"},
	{Name: "on_failure"},
}}

func (l *loader) decodeHealth(b *hcl.Block) *Health {
	d := l.d
	h := &Health{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Failures: DefaultHealthFailures, Successes: 1}
	h.OnFailure = OnFailureIgnore
	content, diags := b.Body.Content(healthSchema)
	d.Diags = append(d.Diags, diags...)
	attrs := content.Attributes
	probes := 0
	for _, k := range []string{"exec", "http", "tcp", "port", "log"} {
		if attrs[k] != nil {
			probes++
		}
	}
	if probes != 1 {
		d.errorf(b.DefRange, "Invalid health", "a health block needs exactly one probe: exec, http, tcp, port or log.")
	}
	d.Command(attrs, "exec", &h.Exec)
	if d.String(attrs, "http", &h.HTTP) && !strings.HasPrefix(h.HTTP, "http://") && !strings.HasPrefix(h.HTTP, "https://") {
		d.Errorf(attrs["http"].Expr.Range(), "\"http\" must be a URL starting with http:// or https://")
	}
	if d.String(attrs, "tcp", &h.TCP) && !strings.Contains(h.TCP, ":") {
		d.Errorf(attrs["tcp"].Expr.Range(), "\"tcp\" must be HOST:PORT, such as \"127.0.0.1:8080\"")
	}
	d.Int(attrs, "port", 1, 65535, &h.Port)
	d.Regexp(attrs, "log", &h.Log)
	d.Duration(attrs, "interval", &h.Interval)
	d.Duration(attrs, "timeout", &h.Timeout)
	d.Duration(attrs, "grace", &h.Grace)
	d.Int(attrs, "failures", 1, 1000, &h.Failures)
	d.Int(attrs, "successes", 1, 1000, &h.Successes)
	if d.String(attrs, "on_failure", &h.OnFailure) {
		d.OneOf(attrs, "on_failure", h.OnFailure, OnFailureIgnore, OnFailureRestart, OnFailureShutdown)
	}
	if a := attrs["interval"]; a != nil && h.Interval <= 0 {
		d.Errorf(a.Expr.Range(), "\"interval\" must be longer than zero")
	}
	if a := attrs["timeout"]; a != nil && h.Timeout <= 0 {
		d.Errorf(a.Expr.Range(), "\"timeout\" must be longer than zero")
	}
	return h
}

var serviceSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "name"}, {Name: "id"}, {Name: "port"}, {Name: "tags"}, {Name: "meta"}, {Name: "interfaces"},
	{Name: "ttl"}, {Name: "deregister_critical_after"}, {Name: "enable_tag_override"},
}}

// DefaultDeregisterCriticalAfter is how long Consul keeps a service whose check has been
// critical, by default: a container killed hard (SIGKILL, OOM) leaves no ghost for ever.
const DefaultDeregisterCriticalAfter = 10 * time.Minute

// serviceIDRE is what a service ID may hold: it goes into the paths of Consul's API.
var serviceIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]*$`) })

func (l *loader) decodeService(b *hcl.Block, j *Job) *Service {
	d := l.d
	s := &Service{Name: j.Name, Interfaces: []string{"inet"}, DeregisterCriticalAfter: DefaultDeregisterCriticalAfter, Range: b.DefRange}
	content, diags := b.Body.Content(serviceSchema)
	d.Diags = append(d.Diags, diags...)
	attrs := content.Attributes
	d.String(attrs, "name", &s.Name)
	if d.String(attrs, "id", &s.ID) && (len(s.ID) > 256 || !serviceIDRE().MatchString(s.ID)) {
		d.Errorf(attrs["id"].Expr.Range(), "service id %q must start with a letter or digit and hold only letters, digits and '.', '_', ':', '@', '-' (at most 256)", s.ID)
	}
	d.Int(attrs, "port", 0, 65535, &s.Port)
	d.Strings(attrs, "tags", &s.Tags)
	d.StringMap(attrs, "meta", &s.Meta)
	if d.Strings(attrs, "interfaces", &s.Interfaces) {
		for _, spec := range s.Interfaces {
			if err := CheckInterfaceSpec(spec); err != nil {
				d.Errorf(attrs["interfaces"].Expr.Range(), "%s", err)
			}
		}
	}
	d.Duration(attrs, "ttl", &s.TTL)
	d.Duration(attrs, "deregister_critical_after", &s.DeregisterCriticalAfter)
	d.Bool(attrs, "enable_tag_override", &s.EnableTagOverride)
	return s // a missing ttl is filled once the health block is known (see decodeJob)
}

var jobLoggingSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "prefix"}, {Name: "color"}, {Name: "file"}, {Name: "rotate"}, {Name: "buffer"}, {Name: "timestamps"},
}}

// Colors are the names accepted by `logging { color }` besides "auto" and "never".
var Colors = []string{"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
	"bright-black", "bright-red", "bright-green", "bright-yellow", "bright-blue", "bright-magenta", "bright-cyan", "bright-white"}

func (l *loader) decodeJobLogging(b *hcl.Block, lg *JobLogging) {
	d := l.d
	content, diags := b.Body.Content(jobLoggingSchema)
	d.Diags = append(d.Diags, diags...)
	attrs := content.Attributes
	d.Bool(attrs, "prefix", &lg.Prefix)
	if d.String(attrs, "color", &lg.Color) {
		d.OneOf(attrs, "color", lg.Color, append([]string{"auto", "never"}, Colors...)...)
	}
	d.String(attrs, "file", &lg.File)
	if lg.Rotate = d.Rotate(attrs, "rotate"); lg.Rotate != nil {
		if lg.File == "" {
			d.Errorf(attrs["rotate"].NameRange, "\"rotate\" needs \"file\"")
		}
	}
	if d.Size(attrs, "buffer", &lg.Buffer) && (lg.Buffer < MinLogBuffer || lg.Buffer > MaxLogBuffer) {
		d.Errorf(attrs["buffer"].Expr.Range(), "\"buffer\" must be between %d bytes and 1GiB (the default is \"256KiB\")", MinLogBuffer)
	}
	d.Bool(attrs, "timestamps", &lg.Timestamps)
}
