package containerpilot

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// DefaultSocket is ContainerPilot's control socket, kept for its configurations: the
// scripts of an image talk to it (curl --unix-socket, containerpilot -putenv).
const DefaultSocket = "/var/run/containerpilot.socket"

// defaultStopTimeout is ContainerPilot's stopTimeout when the file gives none.
const defaultStopTimeout = 5 * time.Second

// translator turns the JSON5 tree of a v3 file into the HCL items of its pilotfish
// equivalent, with a warning (and a comment in the HCL) for each thing that has none.
type translator struct {
	r       *rendered
	env     map[string]string
	convert bool         // templated values become ${env.X}
	literal map[int]bool // actions found where an expression cannot go (convert)
	diags   hcl.Diagnostics
	consul  bool
	watches map[string]bool
}

func newTranslator(r *rendered, env map[string]string, convert bool) *translator {
	return &translator{r: r, env: env, convert: convert, literal: map[int]bool{}, watches: map[string]bool{}}
}

// Diagnostics.

func (t *translator) diag(sev hcl.DiagnosticSeverity, off int, summary, detail string) {
	rng := t.r.rng(off)
	t.diags = append(t.diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail, Subject: &rng})
}

func (t *translator) errorf(off int, format string, args ...any) {
	t.diag(hcl.DiagError, off, fmt.Sprintf(format, args...), "")
}

// warnf warns at off and writes the warning as a comment before the next item of b.
func (t *translator) warnf(b *hBody, off int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.diag(hcl.DiagWarning, off, msg, "")
	if b != nil {
		b.comment("warning: " + msg)
	}
}

func (t *translator) pos(n *node) hcl.Pos { return t.r.pos(n.pos) }

// members checks the keys of an object: unknown keys and repeated keys are warnings.
func (t *translator) members(b *hBody, n *node, where string, known ...string) bool {
	if n.kind != object {
		t.errorf(n.pos, "%s must be an object { … }", where)
		return false
	}
	seen := map[string]bool{}
	for _, m := range n.members {
		switch {
		case !slices.Contains(known, m.key):
			t.warnf(b, m.keyPos, "unknown key %q in %s (ContainerPilot refused it); ignored", m.key, where)
		case seen[m.key]:
			t.warnf(b, m.keyPos, "%q is given twice in %s; the last one counts", m.key, where)
		}
		seen[m.key] = true
	}
	return true
}

// Templated values. The converter renders every action of the file but the ones that only
// read a variable, which it keeps as sentinels: ~PF<nonce>.<n>~ inside a string, or a string
// that is just the sentinel when the action stood outside quotes.

var sentinelRE = regexp.MustCompile(`~(PF[0-9a-z]+\.[0-9]+)~`)

type part struct {
	text string
	ref  *envRef
	bare bool // the action stood outside quotes
}

func (t *translator) parts(s string) []part {
	if ref, ok := t.r.envs[s]; ok {
		return []part{{ref: &ref, bare: true}}
	}
	var out []part
	last := 0
	for _, m := range sentinelRE.FindAllStringSubmatchIndex(s, -1) {
		ref, ok := t.r.envs[s[m[2]:m[3]]]
		if !ok {
			continue
		}
		if m[0] > last {
			out = append(out, part{text: s[last:m[0]]})
		}
		out = append(out, part{ref: &ref})
		last = m[1]
	}
	if last < len(s) || len(out) == 0 {
		out = append(out, part{text: s[last:]})
	}
	return out
}

// value is what the action gives now: ContainerPilot's default applies to an empty value.
func (t *translator) value(ref *envRef) string {
	if v := t.env[ref.name]; v != "" || !ref.hasDf {
		return v
	}
	return ref.def
}

// text is the string with every templated part rendered; those parts are marked to be
// rendered by the template next time (a name, a duration: no expression goes there).
func (t *translator) text(s string) string {
	var b strings.Builder
	for _, p := range t.parts(s) {
		if p.ref == nil {
			b.WriteString(p.text)
			continue
		}
		t.literal[p.ref.pos] = true
		b.WriteString(t.value(p.ref))
	}
	return b.String()
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envExpr is the HCL for one templated part.
func envExpr(ref *envRef) string {
	switch {
	case ref.hasDf:
		return fmt.Sprintf("env(%s, %s)", quote(ref.name), quote(ref.def))
	case identRE.MatchString(ref.name):
		return "env." + ref.name
	}
	return fmt.Sprintf("env(%s)", quote(ref.name))
}

// safe reports whether a part may stay an expression: inside quotes its value must not end
// the string or escape anything; outside quotes it must be a number or a bool.
func (t *translator) safe(p part) bool {
	vals := []string{t.env[p.ref.name]}
	if p.ref.hasDf {
		vals = append(vals, p.ref.def)
	}
	for _, v := range vals {
		if p.bare {
			if _, err := strconv.ParseFloat(v, 64); err != nil && v != "true" && v != "false" {
				return false
			}
		} else if strings.ContainsAny(v, "\"'\\\n\r") || strings.Contains(v, "~PF") {
			return false
		}
	}
	return true
}

// strExpr is the HCL for a string value that may read the environment.
func (t *translator) strExpr(s string) string {
	ps := t.parts(s)
	if !t.convert {
		return quote(t.text(s))
	}
	for _, p := range ps {
		if p.ref != nil && !t.safe(p) {
			return quote(t.text(s))
		}
	}
	if len(ps) == 1 && ps[0].ref != nil {
		return envExpr(ps[0].ref)
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, p := range ps {
		if p.ref == nil {
			q := quote(p.text)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteString("${" + envExpr(p.ref) + "}")
	}
	b.WriteByte('"')
	return b.String()
}

// Typed readers. ContainerPilot decoded with weak typing: a number may be given as a string
// and a string as a number.

func (t *translator) scalarString(n *node, what string) (string, bool) {
	switch v := n.val.(type) {
	case string:
		if n.kind == scalar {
			return v, true
		}
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	t.errorf(n.pos, "%s must be a string", what)
	return "", false
}

// str reads a string that cannot read the environment (names, sources, codes).
func (t *translator) str(n *node, what string) (string, bool) {
	s, ok := t.scalarString(n, what)
	return t.text(s), ok
}

// expr reads a string that may read the environment, as HCL.
func (t *translator) expr(n *node, what string) (string, bool) {
	s, ok := t.scalarString(n, what)
	if !ok {
		return "", false
	}
	if _, isNum := n.val.(float64); isNum {
		return quote(s), true
	}
	return t.strExpr(s), true
}

// exprList reads a string or a list of strings.
func (t *translator) exprList(n *node, what string) ([]string, bool) {
	if n.kind != array {
		e, ok := t.expr(n, what)
		return []string{e}, ok
	}
	var out []string
	for _, e := range n.elems {
		x, ok := t.expr(e, what)
		if !ok {
			return nil, false
		}
		out = append(out, x)
	}
	return out, true
}

func (t *translator) integer(n *node, what string, lo, hi int) (int, bool) {
	var f float64
	switch v := n.val.(type) {
	case float64:
		f = v
	case string:
		s := strings.TrimSpace(t.text(v))
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.errorf(n.pos, "%s must be a whole number; got %q", what, s)
			return 0, false
		}
		f = x
	default:
		t.errorf(n.pos, "%s must be a whole number", what)
		return 0, false
	}
	if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		t.errorf(n.pos, "%s must be a whole number from %d to %d; got %v", what, lo, hi, f)
		return 0, false
	}
	return int(f), true
}

// port reads a port: a number, a string, or a template such as {{ .PORT }}, which stays
// env.PORT when converted.
func (t *translator) port(n *node, what string) (string, bool) {
	if s, ok := n.val.(string); ok && t.convert {
		ps := t.parts(s)
		if len(ps) == 1 && ps[0].ref != nil && t.safe(ps[0]) {
			return envExpr(ps[0].ref), true
		}
	}
	p, ok := t.integer(n, what, 0, 65535)
	return strconv.Itoa(p), ok
}

// duration reads a duration as ContainerPilot did: a number of seconds, a string of a whole
// number of seconds, or a Go duration such as "1m30s".
func (t *translator) duration(n *node, what string) (time.Duration, bool) {
	switch v := n.val.(type) {
	case float64:
		if v < 0 {
			t.errorf(n.pos, "%s must not be negative", what)
			return 0, false
		}
		return time.Duration(v * float64(time.Second)), true
	case string:
		s := strings.TrimSpace(t.text(v))
		if i, err := strconv.Atoi(s); err == nil && i >= 0 {
			return time.Duration(i) * time.Second, true
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			t.errorf(n.pos, "%s: %q is not a duration; write a number of seconds or a duration such as \"5s\" or \"1m\"", what, s)
			return 0, false
		}
		return d, true
	}
	t.errorf(n.pos, "%s must be a duration (a number of seconds or a string such as \"5s\")", what)
	return 0, false
}

func (t *translator) boolean(n *node, what string) (bool, bool) {
	switch v := n.val.(type) {
	case bool:
		return v, true
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(t.text(v))); err == nil {
			return b, true
		}
	case float64:
		return v != 0, true
	}
	t.errorf(n.pos, "%s must be true or false", what)
	return false, false
}

// The file.

// file translates the whole configuration.
func (t *translator) file(root *node) *hBody {
	body := &hBody{}
	t.members(body, root, "the configuration", "consul", "logging", "stopTimeout", "control", "jobs", "watches", "telemetry")

	stop := defaultStopTimeout
	if m := root.get("stopTimeout"); m != nil {
		if d, ok := t.duration(m.val, "stopTimeout"); ok {
			stop = d
		}
		body.attr("stop_timeout", duration(stop), t.pos(m.val))
	} else {
		body.attr("stop_timeout", duration(stop), t.r.pos(root.pos), "ContainerPilot's default stopTimeout")
	}

	if m := root.get("consul"); m != nil {
		t.consulBlock(body, m)
	} else if root.get("jobs") != nil || root.get("watches") != nil || root.get("telemetry") != nil {
		t.warnf(body, root.pos, "no consul: ContainerPilot refused to start without it; pilotfish runs the jobs and registers nothing")
	}

	socket := quote(DefaultSocket)
	socketPos := t.r.pos(root.pos)
	var socketNote []string
	if m := root.get("control"); m != nil {
		if t.members(body, m.val, "control", "socket") {
			if s := m.val.get("socket"); s != nil {
				if e, ok := t.expr(s.val, "control.socket"); ok {
					socket, socketPos = e, t.pos(s.val)
				}
			}
		}
	} else {
		socketNote = []string{"ContainerPilot's control socket, for the scripts that use it"}
	}
	ctl := body.block("control", nil, socketPos)
	ctl.body.attr("socket", socket, socketPos, socketNote...)

	if m := root.get("logging"); m != nil {
		t.logging(body, m)
	}
	if m := root.get("telemetry"); m != nil {
		t.telemetry(body, m)
	}
	if m := root.get("watches"); m != nil {
		t.watchList(body, m.val)
	}
	if m := root.get("jobs"); m != nil {
		t.jobList(body, m.val)
	}
	return body
}

func (t *translator) consulBlock(body *hBody, m *member) {
	n := m.val
	if n.kind == scalar {
		s, ok := n.val.(string)
		if !ok {
			t.errorf(n.pos, "consul must be an address such as \"localhost:8500\" or an object")
			return
		}
		t.consul = true
		// "https://host:8500" keeps its scheme: pilotfish's Consul client reads it there.
		c := body.block("consul", nil, t.pos(n))
		c.body.attr("address", t.strExpr(s), t.pos(n))
		return
	}
	if !t.members(body, n, "consul", "address", "scheme", "token", "tls") {
		return
	}
	t.consul = true
	c := body.block("consul", nil, t.pos(n))
	for _, k := range [][2]string{{"address", "address"}, {"scheme", "scheme"}, {"token", "token"}} {
		if f := n.get(k[0]); f != nil {
			if e, ok := t.expr(f.val, "consul."+k[0]); ok {
				c.body.attr(k[1], e, t.pos(f.val))
			}
		}
	}
	f := n.get("tls")
	if f == nil || !t.members(&c.body, f.val, "consul.tls", "cafile", "capath", "clientcert", "clientkey", "servername", "verify") {
		return
	}
	tb := c.body.block("tls", nil, t.pos(f.val))
	for _, k := range [][2]string{{"cafile", "ca_file"}, {"clientcert", "cert_file"}, {"clientkey", "key_file"}, {"servername", "server_name"}} {
		if g := f.val.get(k[0]); g != nil {
			if e, ok := t.expr(g.val, "consul.tls."+k[0]); ok {
				tb.body.attr(k[1], e, t.pos(g.val))
			}
		}
	}
	if g := f.val.get("capath"); g != nil {
		t.warnf(&tb.body, g.keyPos, "consul.tls.capath has no equivalent: give the CA certificate in cafile (ca_file)")
	}
	verify := false
	if g := f.val.get("verify"); g != nil {
		verify, _ = t.boolean(g.val, "consul.tls.verify")
	}
	if !verify {
		tb.body.attr("insecure_skip_verify", "true", t.pos(f.val), "ContainerPilot checked the server's certificate only with verify: true")
	}
}

func (t *translator) logging(body *hBody, m *member) {
	n := m.val
	if !t.members(body, n, "logging", "level", "format", "output") {
		return
	}
	lg := body.block("logging", nil, t.pos(n))
	if f := n.get("level"); f != nil {
		s, _ := t.scalarString(f.val, "logging.level")
		if t.convert && len(t.parts(s)) == 1 && t.parts(s)[0].ref != nil && levelOK(t.value(t.parts(s)[0].ref)) {
			lg.body.attr("level", t.strExpr(s), t.pos(f.val))
		} else {
			level := strings.ToLower(strings.TrimSpace(t.text(s)))
			switch level {
			case "debug", "info", "warn", "error":
			case "warning":
				level = "warn"
			case "trace":
				level = "debug"
			case "fatal", "panic":
				t.warnf(&lg.body, f.val.pos, "log level %q has no equivalent; pilotfish logs errors (level \"error\")", s)
				level = "error"
			default:
				t.errorf(f.val.pos, "logging.level must be one of DEBUG, INFO, WARN, ERROR, FATAL or PANIC; got %q", s)
			}
			lg.body.attr("level", quote(level), t.pos(f.val))
		}
	}
	if f := n.get("format"); f != nil {
		s, _ := t.str(f.val, "logging.format")
		switch strings.ToLower(s) {
		case "default", "text", "":
			lg.body.attr("format", quote("text"), t.pos(f.val))
		case "json":
			lg.body.attr("format", quote("json"), t.pos(f.val))
		default:
			t.errorf(f.val.pos, "logging.format must be default, text or json; got %q", s)
		}
	}
	if f := n.get("output"); f != nil {
		if s, _ := t.str(f.val, "logging.output"); !strings.EqualFold(s, "stderr") {
			t.warnf(&lg.body, f.keyPos, "logging.output %q has no equivalent: pilotfish writes its own log to stderr (the jobs' output goes to stdout and stderr as they wrote it)", s)
		}
	}
}

func levelOK(s string) bool {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

func (t *translator) telemetry(body *hBody, m *member) {
	n := m.val
	if !t.members(body, n, "telemetry", "port", "interfaces", "tags", "metrics") {
		return
	}
	tb := body.block("telemetry", nil, t.pos(n))
	port := "9090"
	portPos := t.pos(n)
	if f := n.get("port"); f != nil {
		if p, ok := t.port(f.val, "telemetry.port"); ok {
			port, portPos = p, t.pos(f.val)
		}
	}
	listen := quote("0.0.0.0:" + port)
	if _, err := strconv.Atoi(port); err != nil {
		listen = `"0.0.0.0:${` + port + `}"`
	}
	tb.body.attr("listen", listen, portPos)
	if f := n.get("interfaces"); f != nil {
		t.warnf(&tb.body, f.keyPos, "telemetry.interfaces has no equivalent: pilotfish serves /metrics on every interface and registers the container's first non-loopback address")
	}
	if f := n.get("tags"); f != nil {
		t.warnf(&tb.body, f.keyPos, "telemetry.tags has no equivalent: pilotfish registers its metrics service with the tag \"metrics\"")
	}
	if t.consul {
		tb.body.attr("register", "true", t.pos(n), "ContainerPilot registered its metrics endpoint as service \"containerpilot\"; pilotfish registers it as \"pilotfish\"")
	}
	f := n.get("metrics")
	if f == nil {
		return
	}
	if f.val.kind != array {
		t.errorf(f.val.pos, "telemetry.metrics must be a list")
		return
	}
	for _, e := range f.val.elems {
		if !t.members(&tb.body, e, "a metric", "namespace", "subsystem", "name", "help", "type") {
			continue
		}
		var parts []string
		for _, k := range []string{"namespace", "subsystem", "name"} {
			if g := e.get(k); g != nil {
				if s, ok := t.str(g.val, "metric "+k); ok && s != "" {
					parts = append(parts, s)
				}
			}
		}
		if e.get("name") == nil || len(parts) == 0 {
			t.errorf(e.pos, "a metric needs a name")
			continue
		}
		mb := tb.body.block("metric", []string{strings.Join(parts, "_")}, t.pos(e))
		if g := e.get("type"); g != nil {
			if s, ok := t.str(g.val, "metric type"); ok {
				mb.body.attr("type", quote(s), t.pos(g.val))
			}
		} else {
			t.errorf(e.pos, "metric %q needs a type: counter, gauge, histogram or summary", strings.Join(parts, "_"))
		}
		if g := e.get("help"); g != nil {
			if x, ok := t.expr(g.val, "metric help"); ok {
				mb.body.attr("help", x, t.pos(g.val))
			}
		}
	}
}

func (t *translator) watchList(body *hBody, n *node) {
	if n.kind != array {
		t.errorf(n.pos, "watches must be a list")
		return
	}
	list := t.named(body, n, "a watch", []string{"name", "interval", "tag", "dc"}, func(e *node) (string, bool) {
		f := e.get("name")
		if f == nil {
			t.errorf(e.pos, "a watch needs a name: the Consul service to watch")
			return "", false
		}
		return t.str(f.val, "watch name")
	}, "watch %q is given twice (first at line %d); the last one counts")
	for _, w := range list {
		t.watches[w.name] = true
		wb := body.block("watch", []string{w.name}, t.pos(w.e))
		if f := w.e.get("interval"); f != nil {
			t.warnf(&wb.body, f.keyPos, "a watch's interval has no equivalent: pilotfish follows the service with blocking queries and hears of a change at once")
		}
		for _, k := range []string{"tag", "dc"} {
			if f := w.e.get(k); f != nil {
				if x, ok := t.expr(f.val, "watch "+k); ok {
					wb.body.attr(k, x, t.pos(f.val))
				}
			}
		}
	}
}

// namedNode is a job or a watch and its name.
type namedNode struct {
	name string
	e    *node
}

// named reads a list of jobs or watches in order; of two with one name, the last counts, in
// the place of the first (a warning, dup with the name and the first's line).
func (t *translator) named(body *hBody, n *node, what string, keys []string, nameOf func(*node) (string, bool), dup string) []namedNode {
	var list []namedNode
	seen := map[string]int{}
	for _, e := range n.elems {
		if !t.members(body, e, what, keys...) {
			continue
		}
		name, ok := nameOf(e)
		if !ok {
			continue
		}
		if i, twice := seen[name]; twice {
			t.warnf(body, e.pos, dup, name, t.pos(list[i].e).Line)
			list[i].e = e
			continue
		}
		seen[name] = len(list)
		list = append(list, namedNode{name, e})
	}
	return list
}

var jobKeys = []string{"name", "exec", "port", "interfaces", "tags", "initial_status", "consul", "health",
	"when", "restarts", "stopTimeout", "timeout", "logging"}

func (t *translator) jobList(body *hBody, n *node) {
	if n.kind != array {
		t.errorf(n.pos, "jobs must be a list")
		return
	}
	list := t.named(body, n, "a job", jobKeys, func(e *node) (string, bool) { return t.jobName(body, e) },
		"job %q is given twice (first at line %d): ContainerPilot ran both and registered them under one service ID, where the last one won; pilotfish keeps the last one")
	for _, j := range list {
		t.job(body, j.name, j.e)
	}
}

// jobName is the job's name, or, as ContainerPilot did, the name of its program.
func (t *translator) jobName(body *hBody, e *node) (string, bool) {
	if f := e.get("name"); f != nil {
		return t.str(f.val, "job name")
	}
	f := e.get("exec")
	if f == nil {
		t.errorf(e.pos, "a job needs a name (or an exec, whose program names it)")
		return "", false
	}
	words := t.words(f.val)
	if len(words) == 0 {
		t.errorf(e.pos, "a job needs a name")
		return "", false
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, path.Base(words[0]))
	t.warnf(body, e.pos, "this job has no name; ContainerPilot named it after its program, pilotfish names it %q", name)
	return name, true
}

// words is a command as ContainerPilot split it (rendered).
func (t *translator) words(n *node) []string {
	if n.kind == array {
		var out []string
		for _, e := range n.elems {
			s, _ := t.scalarString(e, "exec")
			out = append(out, t.text(s))
		}
		return out
	}
	s, _ := t.scalarString(n, "exec")
	return cpSplit(t.text(s))
}

// cpSplit splits a command string as ContainerPilot did: at every space, nothing else.
func cpSplit(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// command is the HCL of an exec: a string that pilotfish splits into the same words as
// ContainerPilot did stays a string; otherwise the list of ContainerPilot's words.
func (t *translator) command(b *hBody, n *node, what string) (string, bool) {
	if n.kind == array {
		if len(n.elems) == 0 {
			t.errorf(n.pos, "%s must name a program to run", what)
			return "", false
		}
		xs, ok := t.exprList(n, what)
		return list(xs), ok
	}
	s, ok := t.scalarString(n, what)
	if !ok {
		return "", false
	}
	rendered := t.withValues(s)
	cp := cpSplit(rendered)
	if len(cp) == 0 {
		t.errorf(n.pos, "%s must name a program to run", what)
		return "", false
	}
	if sw, err := config.SplitWords(rendered); err == nil && slices.Equal(sw, cp) {
		return t.strExpr(s), true
	}
	// ContainerPilot split at each space and kept quotes and backslashes as they were.
	var words []string
	empty := false
	for _, w := range cpSplit(t.text(s)) {
		if w == "" {
			empty = true
			continue
		}
		words = append(words, w)
	}
	if strings.ContainsAny(rendered, "\"'\\") {
		t.warnf(b, n.pos, "%s: ContainerPilot split this command at every space and passed its quotes and backslashes on as they are; so does the list below (write the list yourself to group words)", what)
	}
	if empty {
		t.warnf(b, n.pos, "%s: ContainerPilot passed an empty argument for each double space here; pilotfish leaves them out", what)
	}
	return list(quoteAll(words)), true
}

// withValues renders the templated parts without marking them: for decisions only.
func (t *translator) withValues(s string) string {
	var b strings.Builder
	for _, p := range t.parts(s) {
		if p.ref == nil {
			b.WriteString(p.text)
		} else {
			b.WriteString(t.value(p.ref))
		}
	}
	return b.String()
}

func (t *translator) job(body *hBody, name string, e *node) {
	jb := body.block("job", []string{name}, t.pos(e))
	b := &jb.body
	execNode := e.get("exec")
	if execNode != nil {
		if x, ok := t.command(b, execNode.val, "exec"); ok {
			b.attr("exec", x, t.pos(execNode.val))
		}
	}
	runs := execNode != nil

	interval := time.Duration(0)
	var when *member
	if when = e.get("when"); when != nil && when.val.kind == object {
		if f := when.val.get("interval"); f != nil {
			interval, _ = t.duration(f.val, "when.interval")
		}
	}

	// restarts: with an interval, ContainerPilot counted runs, not restarts.
	if f := e.get("restarts"); f != nil {
		t.restarts(b, f, interval, runs)
	}
	if f := e.get("stopTimeout"); f != nil {
		if d, ok := t.duration(f.val, "stopTimeout"); ok {
			b.attr("stop_timeout", duration(d), t.pos(f.val))
		}
	}
	if f := e.get("timeout"); f != nil {
		if d, ok := t.duration(f.val, "timeout"); ok {
			switch {
			case !runs:
				t.warnf(b, f.keyPos, "timeout does nothing in a job without exec")
			case d <= 0:
			default:
				b.attr("timeout", duration(d), t.pos(f.val))
			}
		}
	} else if interval > 0 && runs && !t.runsOnce(e) {
		b.attr("timeout", duration(interval), t.pos(when.val), "ContainerPilot stopped a periodic run after its interval when no timeout was set")
	}
	if when != nil {
		t.when(b, name, when, e)
	}
	if f := e.get("health"); f != nil {
		t.health(b, f, runs)
	}
	t.service(b, name, e)
	if f := e.get("logging"); f != nil && t.members(b, f.val, "a job's logging", "raw") {
		if g := f.val.get("raw"); g != nil {
			if raw, ok := t.boolean(g.val, "logging.raw"); ok && raw {
				lb := b.block("logging", nil, t.pos(f.val))
				lb.body.attr("prefix", "false", t.pos(g.val), "raw: the job's output passes through untouched")
			}
		}
	}
}

// runsOnce reports an interval job that ContainerPilot ran only once (restarts: never).
func (t *translator) runsOnce(e *node) bool {
	f := e.get("restarts")
	if f == nil {
		return false
	}
	if s, ok := f.val.val.(string); ok {
		s = strings.TrimSpace(t.withValues(s))
		return s == "never" || s == "0"
	}
	v, ok := f.val.val.(float64)
	return ok && v == 0
}

func (t *translator) restarts(b *hBody, f *member, interval time.Duration, runs bool) {
	n := f.val
	limit := -2
	switch v := n.val.(type) {
	case string:
		switch s := strings.TrimSpace(t.text(v)); s {
		case "unlimited":
			limit = config.Unlimited
		case "never":
			limit = 0
		default:
			if i, err := strconv.Atoi(s); err == nil && i >= 0 {
				limit = i
			}
		}
	case float64:
		if v >= 0 {
			limit = int(v)
		}
	}
	if limit == -2 {
		t.errorf(n.pos, "restarts must be \"never\", \"unlimited\" or a whole number >= 0")
		return
	}
	switch {
	case !runs:
		t.warnf(b, f.keyPos, "restarts does nothing in a job without exec")
	case interval > 0 && limit > 0:
		t.warnf(b, f.keyPos, "with an interval, ContainerPilot ran the job %d times in all; pilotfish runs it at every interval", limit+1)
	case interval > 0:
		// unlimited: every interval, which is what an interval does; never: once (see when).
	case limit == config.Unlimited:
		b.attr("restarts", quote("unlimited"), t.pos(n))
	case limit > 0:
		b.attr("restarts", strconv.Itoa(limit), t.pos(n))
	}
}

// codes maps ContainerPilot's event names to pilotfish's.
var codes = map[string]events.Code{
	"exitSuccess": events.ExitSuccess, "exitFailed": events.ExitFailed,
	"stopping": events.Stopping, "stopped": events.Stopped,
	"healthy": events.Healthy, "unhealthy": events.Unhealthy, "changed": events.Changed,
	"startup": events.Startup, "shutdown": events.Shutdown,
	"enterMaintenance": events.EnterMaintenance, "exitMaintenance": events.ExitMaintenance,
	"timerExpired": events.TimerExpired,
}

func (t *translator) when(b *hBody, name string, m *member, job *node) {
	n := m.val
	if !t.members(b, n, "when", "source", "once", "each", "interval", "timeout") {
		return
	}
	src, once, each, interval, timeout := n.get("source"), n.get("once"), n.get("each"), n.get("interval"), n.get("timeout")
	if interval != nil {
		if once != nil || each != nil {
			t.errorf(n.pos, "when can have only one of interval, once or each")
			return
		}
		if timeout != nil {
			t.warnf(b, timeout.keyPos, "when.timeout does nothing with an interval (ContainerPilot ignored it)")
		}
		d, ok := t.duration(interval.val, "when.interval")
		if !ok {
			return
		}
		if t.runsOnce(job) {
			t.warnf(b, interval.keyPos, "with restarts \"never\", ContainerPilot ran this interval job once, at start-up; so does pilotfish")
			return
		}
		wb := b.block("when", nil, t.pos(n))
		wb.body.attr("interval", duration(d), t.pos(interval.val))
		return
	}
	if once != nil && each != nil {
		t.errorf(n.pos, "when can have only one of interval, once or each")
		return
	}
	ev := once
	kind := "once"
	if each != nil {
		ev, kind = each, "each"
	}
	if ev == nil {
		t.errorf(n.pos, "when needs an event: once or each (with a source), or an interval")
		return
	}
	code, ok := t.str(ev.val, "when."+kind)
	if !ok {
		return
	}
	source := "global"
	if src != nil {
		if source, ok = t.str(src.val, "when.source"); !ok {
			return
		}
	}
	wb := b.block("when", nil, t.pos(n))
	switch source {
	case "SIGHUP":
		t.warnf(&wb.body, src.val.pos, "pilotfish reloads its configuration on SIGHUP; this job runs after each reload (source \"global\", each \"reload\")")
		wb.body.attr("source", quote("global"), t.pos(src.val))
		wb.body.attr("each", quote("reload"), t.pos(ev.val))
		return
	case "SIGUSR2":
		t.errorf(src.val.pos, "a job triggered by SIGUSR2 has no equivalent: pilotfish forwards SIGUSR2 to the main job; trigger the job through the control socket instead (pilotfish start %s)", name)
		return
	}
	c, known := codes[code]
	if !known {
		t.errorf(ev.val.pos, "%q is not an event a job can wait for; use one of exitSuccess, exitFailed, healthy, unhealthy, stopping, stopped, changed, startup, shutdown, enterMaintenance, exitMaintenance", code)
		return
	}
	if src == nil {
		t.warnf(&wb.body, n.pos, "when has no source: the event %q is taken from source \"global\"", code)
	}
	srcPos := t.r.pos(n.pos)
	if src != nil {
		srcPos = t.pos(src.val)
	}
	wb.body.attr("source", quote(source), srcPos)
	wb.body.attr(kind, quote(string(c)), t.pos(ev.val))
	if timeout != nil {
		if d, ok := t.duration(timeout.val, "when.timeout"); ok && d > 0 {
			wb.body.attr("timeout", duration(d), t.pos(timeout.val))
		}
	}
}

func (t *translator) health(b *hBody, m *member, runs bool) {
	n := m.val
	if !t.members(b, n, "health", "exec", "interval", "ttl", "timeout", "logging") {
		return
	}
	f := n.get("exec")
	if f == nil {
		// ContainerPilot then sent a heartbeat at each interval: passing while it runs,
		// which is what a service without a health check is in pilotfish.
		return
	}
	hb := b.block("health", nil, t.pos(n))
	if x, ok := t.command(&hb.body, f.val, "health.exec"); ok {
		hb.body.attr("exec", x, t.pos(f.val))
	}
	interval := time.Duration(0)
	if g := n.get("interval"); g != nil {
		if d, ok := t.duration(g.val, "health.interval"); ok && d > 0 {
			interval = d
			hb.body.attr("interval", duration(d), t.pos(g.val))
		} else if ok {
			t.errorf(g.val.pos, "health.interval must be longer than zero")
		}
	} else {
		t.errorf(n.pos, "health needs an interval (seconds between checks)")
	}
	if g := n.get("timeout"); g != nil {
		if d, ok := t.duration(g.val, "health.timeout"); ok && d > 0 {
			hb.body.attr("timeout", duration(d), t.pos(g.val))
		}
	} else if interval > 0 {
		hb.body.attr("timeout", duration(interval), t.pos(n), "ContainerPilot's default: the interval")
	}
	hb.body.attr("failures", "1", t.pos(n), "ContainerPilot turned a job unhealthy at the first failed check")
	if g := n.get("logging"); g != nil {
		t.warnf(&hb.body, g.keyPos, "health.logging has no equivalent: a check's output is the check's note in Consul and is logged at debug level")
	}
}

// service writes the job's Consul registration: ContainerPilot registered a job that has a
// port; interfaces, tags, initial_status and consul apply only then.
func (t *translator) service(b *hBody, name string, e *node) {
	port := e.get("port")
	if port == nil {
		for _, k := range []string{"interfaces", "tags", "consul", "initial_status"} {
			if f := e.get(k); f != nil {
				t.warnf(b, f.keyPos, "%s does nothing without port: ContainerPilot registered only the jobs with a port", k)
			}
		}
		if e.get("exec") == nil && e.get("health") == nil {
			t.errorf(e.pos, "job %q has no exec and no port: it does nothing", name)
		}
		return
	}
	p, ok := t.port(port.val, "port")
	if !ok {
		return
	}
	sb := b.block("service", nil, t.pos(port.val))
	sb.body.attr("port", p, t.pos(port.val))
	if f := e.get("tags"); f != nil {
		if xs, ok := t.exprList(f.val, "tags"); ok {
			sb.body.attr("tags", list(xs), t.pos(f.val))
		}
	}
	if f := e.get("interfaces"); f != nil {
		if xs, ok := t.exprList(f.val, "interfaces"); ok {
			sb.body.attr("interfaces", list(xs), t.pos(f.val))
		}
	}
	if h := e.get("health"); h != nil && h.val.kind == object {
		if g := h.val.get("ttl"); g != nil {
			if d, ok := t.duration(g.val, "health.ttl"); ok && d > 0 {
				sb.body.attr("ttl", duration(d), t.pos(g.val))
			}
		}
	}
	if f := e.get("initial_status"); f != nil {
		s, _ := t.str(f.val, "initial_status")
		if s != "passing" && s != "warning" && s != "critical" {
			t.errorf(f.val.pos, "initial_status must be passing, warning or critical; got %q", s)
		} else {
			t.warnf(&sb.body, f.keyPos, "initial_status has no equivalent: pilotfish registers the service critical and reports its first check at once (within 100 ms of the start)")
		}
	}
	if f := e.get("consul"); f != nil && t.members(&sb.body, f.val, "a job's consul", "enableTagOverride", "deregisterCriticalServiceAfter") {
		if g := f.val.get("deregisterCriticalServiceAfter"); g != nil {
			if d, ok := t.duration(g.val, "consul.deregisterCriticalServiceAfter"); ok {
				sb.body.attr("deregister_critical_after", duration(d), t.pos(g.val))
			}
		}
		if g := f.val.get("enableTagOverride"); g != nil {
			if v, ok := t.boolean(g.val, "consul.enableTagOverride"); ok && v {
				sb.body.attr("enable_tag_override", "true", t.pos(g.val))
			}
		}
	}
}
