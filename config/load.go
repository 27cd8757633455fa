package config

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Options are the inputs of Load besides the file.
type Options struct {
	// Env is the environment seen by ${env.NAME} and env(): the process environment plus
	// values set through putenv.
	Env map[string]string
	// Kinds is the table of job kinds; "exec" must be in it.
	Kinds map[string]Kind
	// Main is the command given after `--`; it becomes the job "main".
	Main []string
	// Context, when done, ends the load early with a diagnostic (pilotfish is stopping).
	Context context.Context
	// Readers read files of other formats, by extension in lower case (".json5": a
	// ContainerPilot configuration, package config/containerpilot).
	Readers map[string]Reader
	// CheckTemplate parses the text of each template block (package template); without it
	// templates are not checked.
	CheckTemplate TemplateChecker

	evalTimeout time.Duration // EvalTimeout unless set (tests)
}

// Load reads, decodes and validates the configuration named by paths: files, and
// directories of *.hcl and *.json files, that form one configuration
// (docs/configuration.md#configuration-in-layers). The returned diagnostics may hold warnings
// even when the config is valid; on any error the Config is nil. Files over the limits of
// docs/configuration.md#limits are refused with a diagnostic, within EvalTimeout.
func Load(paths []string, opts Options) (*Config, hcl.Diagnostics) {
	start := time.Now()
	if len(paths) == 0 {
		paths = DefaultPaths()
	}
	files, diags := ListFiles(paths)
	if diags.HasErrors() {
		return nil, diags
	}
	if len(files) == 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No configuration file",
			Detail:  fmt.Sprintf("%s holds no *.hcl or *.json file", strings.Join(paths, ", ")),
			Subject: fileStart(paths[0])}}
	}
	srcs, diags := readSources(files)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg, diags := parseSources(srcs, opts, start)
	if cfg != nil {
		cfg.Sources, cfg.Path = append([]string(nil), paths...), strings.Join(paths, ", ")
	}
	return cfg, diags
}

// Parse is Load for one file already in memory; path decides the syntax (".json" is HCL
// JSON) and names the file in diagnostics.
func Parse(path string, src []byte, opts Options) (*Config, hcl.Diagnostics) {
	return parseSources([]source{{path, src}}, opts, time.Now())
}

// Reader turns a file of another format into the Config its HCL equivalent gives. It is
// given the Options of the load, Readers left out.
type Reader func(path string, src []byte, opts Options) (*Config, hcl.Diagnostics)

// parseSources parses every file, then decodes them as one configuration and validates it.
// The evaluation limits (time, bytes) are those of the whole load.
func parseSources(srcs []source, opts Options, start time.Time) (*Config, hcl.Diagnostics) {
	files := make([]string, len(srcs))
	for i, s := range srcs {
		files[i] = s.path
	}
	if len(srcs) == 1 {
		if r := opts.Readers[strings.ToLower(filepath.Ext(srcs[0].path))]; r != nil && srcs[0].src != nil {
			opts.Readers = nil
			return r(srcs[0].path, srcs[0].src, opts)
		}
	}
	var diags hcl.Diagnostics
	for _, s := range srcs {
		if ext := strings.ToLower(filepath.Ext(s.path)); opts.Readers[ext] != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Configuration cannot be combined",
				Detail:  fmt.Sprintf("a %s file is a whole configuration of its own; name it alone, or convert it to HCL (pilotfish convert)", ext),
				Subject: fileStart(s.path)})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	g := newGuard(opts.Context, start, opts.evalTimeout)
	p := hclparse.NewParser()
	var bodies []hcl.Body
	for _, s := range srcs {
		isJSON := strings.HasSuffix(strings.ToLower(s.path), ".json")
		// HCL's parser and evaluator recurse: a file nested too deeply must never reach them.
		if d := checkSource(s.path, s.src, isJSON); d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		var (
			f *hcl.File
			d hcl.Diagnostics
		)
		if isJSON {
			f, d = p.ParseJSON(s.src, s.path)
		} else {
			f, d = p.ParseHCL(s.src, s.path)
		}
		diags = append(diags, d...)
		if !d.HasErrors() {
			bodies = append(bodies, f.Body)
		}
	}
	if diags.HasErrors() {
		return nil, sortDiags(diags, files...)
	}
	if err := g.poll(); err != nil {
		return nil, g.diag(*fileStart(files[0]), err)
	}
	env, unset := opts.Env, hcl.Diagnostics(nil)
	for _, body := range bodies {
		var d hcl.Diagnostics
		env, d = withUnsetEnv(body, env)
		unset = append(unset, d...)
	}
	for _, body := range bodies {
		if syn, ok := body.(*hclsyntax.Body); ok {
			g.wrapBody(syn) // after withUnsetEnv, which looks for the bare nodes
		}
	}
	l := &loader{opts: opts, d: &Decoder{ctx: evalContext(env, g), g: g, Diags: unset}}
	cfg := l.decode(bodies)
	cfg.Files, cfg.Sources, cfg.Path = files, files, strings.Join(files, ", ")
	l.validate(cfg)
	all := sortDiags(dropRepeated(append(diags, l.d.Diags...)), files...)
	if g.err != nil && !all.HasErrors() {
		g.reported = false
		all = append(all, g.diag(*fileStart(files[0]), g.err)...)
	}
	if all.HasErrors() {
		return nil, all
	}
	return cfg, all
}

// dropRepeated removes the errors of expressions that failed only because an earlier one
// went over a limit.
func dropRepeated(diags hcl.Diagnostics) hcl.Diagnostics {
	out := diags[:0]
	for _, d := range diags {
		if _, rep := d.Extra.(repeated); !rep {
			out = append(out, d)
		}
	}
	return out
}

// withUnsetEnv gives every ${env.NAME} the file refers to a value: "" (with a warning) for
// the ones the environment does not set, as a shell would, instead of failing the whole
// file. env("NAME", "default") is the way to a default.
func withUnsetEnv(body hcl.Body, env map[string]string) (map[string]string, hcl.Diagnostics) {
	syn, ok := body.(*hclsyntax.Body)
	if !ok {
		return env, nil // HCL JSON: an unset variable stays an error
	}
	var diags hcl.Diagnostics
	out := env
	_ = hclsyntax.VisitAll(syn, func(n hclsyntax.Node) hcl.Diagnostics {
		expr, ok := n.(*hclsyntax.ScopeTraversalExpr)
		if !ok || expr.Traversal.RootName() != "env" || len(expr.Traversal) < 2 {
			return nil
		}
		attr, ok := expr.Traversal[1].(hcl.TraverseAttr)
		if !ok {
			return nil
		}
		if _, set := out[attr.Name]; set {
			return nil
		}
		if len(out) == len(env) {
			out = maps.Clone(env)
			if out == nil {
				out = map[string]string{}
			}
		}
		out[attr.Name] = ""
		rng := expr.SrcRange
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Subject: &rng,
			Summary: fmt.Sprintf("environment variable %s is not set; ${env.%s} is \"\" (env(%q, \"default\") gives a default)", attr.Name, attr.Name, attr.Name)})
		return nil
	})
	return out, diags
}

// SortDiagnostics orders diagnostics by their position in the file.
func SortDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics { return sortDiags(diags) }

// sortDiags orders diagnostics by file, in the order of files (others after them), then by
// position in the file.
func sortDiags(diags hcl.Diagnostics, files ...string) hcl.Diagnostics {
	order := make(map[string]int, len(files))
	for i, f := range files {
		order[f] = i + 1
	}
	rank := func(r *hcl.Range) int {
		if n := order[r.Filename]; n > 0 {
			return n
		}
		return len(files) + 1
	}
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		if a == nil || b == nil {
			return b != nil
		}
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.Start.Line != b.Start.Line {
			return a.Start.Line < b.Start.Line
		}
		return a.Start.Column < b.Start.Column
	})
	return diags
}

type loader struct {
	opts Options
	d    *Decoder
	// reported so far: bounded, whatever the file (see validate.go)
	suggestions, cycles int
}

var rootSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "stop_timeout"}, {Name: "exit_on_failure"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "consul"}, {Type: "control"}, {Type: "telemetry"}, {Type: "logging"},
		{Type: "job", LabelNames: []string{"name"}},
		{Type: "watch", LabelNames: []string{"name"}},
		{Type: "template", LabelNames: []string{"name"}},
	},
}

func (l *loader) decode(bodies []hcl.Body) *Config {
	d := l.d
	cfg := &Config{
		StopTimeout: DefaultStopTimeout,
		Control:     Control{Socket: DefaultSocket, Mode: 0o600},
		Logging:     Logging{Level: "info", Format: "text"},
	}
	// The files of a configuration in layers form one: their blocks add up, each setting
	// comes from one file (docs/configuration.md#configuration-in-layers).
	attrs, blocks := mergeContent(d, bodies, rootSchema, "")
	d.Duration(attrs, "stop_timeout", &cfg.StopTimeout)
	d.Bool(attrs, "exit_on_failure", &cfg.ExitOnFailure)

	seen := map[string]*hcl.Block{}
	jobNames := map[string]*hcl.Block{}
	watchNames := map[string]*hcl.Block{}
	templateNames := map[string]*hcl.Block{}
	var telemetry []*hcl.Block
	for _, b := range blocks {
		switch b.Type {
		case "job":
			if prev, dup := jobNames[b.Labels[0]]; dup {
				d.Errorf(b.LabelRanges[0], "job %q is defined twice (first at %s)", b.Labels[0], at(prev.LabelRanges[0]))
				continue
			}
			jobNames[b.Labels[0]] = b
			if j := l.decodeJob(b); j != nil {
				cfg.Jobs = append(cfg.Jobs, j)
			}
			continue
		case "watch":
			if prev, dup := watchNames[b.Labels[0]]; dup {
				d.Errorf(b.LabelRanges[0], "watch %q is defined twice (first at %s)", b.Labels[0], at(prev.LabelRanges[0]))
				continue
			}
			watchNames[b.Labels[0]] = b
			cfg.Watches = append(cfg.Watches, l.decodeWatch(b))
			continue
		case "template":
			if prev, dup := templateNames[b.Labels[0]]; dup {
				d.Errorf(b.LabelRanges[0], "template %q is defined twice (first at %s)", b.Labels[0], at(prev.LabelRanges[0]))
				continue
			}
			templateNames[b.Labels[0]] = b
			cfg.Templates = append(cfg.Templates, l.decodeTemplate(b))
			continue
		case "telemetry":
			telemetry = append(telemetry, b)
			continue
		}
		if prev, dup := seen[b.Type]; dup {
			d.Errorf(b.DefRange, "only one %q block is allowed (the first is at %s)", b.Type, at(prev.DefRange))
			continue
		}
		seen[b.Type] = b
		switch b.Type {
		case "consul":
			cfg.Consul = l.decodeConsul(b)
		case "control":
			l.decodeControl(b, &cfg.Control)
		case "logging":
			l.decodeLogging(b, &cfg.Logging)
		}
	}
	if len(telemetry) > 0 {
		cfg.Telemetry = l.decodeTelemetry(telemetry)
	}
	if len(l.opts.Main) > 0 {
		if prev, dup := jobNames[MainJob]; dup {
			d.Errorf(prev.LabelRanges[0], "job %q is reserved for the command given after --; rename this job", MainJob)
		} else {
			cfg.Jobs = append(cfg.Jobs, l.mainJob())
		}
	}
	return cfg
}

func (l *loader) mainJob() *Job {
	return &Job{
		Name:        MainJob,
		Kind:        "exec",
		Exec:        append([]string(nil), l.opts.Main...),
		Restarts:    0,
		Backoff:     Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax},
		StopSignal:  syscall.SIGTERM,
		StopTimeout: DefaultJobStopTimeout,
		Logging:     JobLogging{Prefix: true, Color: "auto", Buffer: DefaultLogBuffer},
		RestartOn:   RestartOnAny,
		Autostart:   true,
		Main:        true,
		Range:       hcl.Range{Filename: "command line", Start: hcl.InitialPos, End: hcl.InitialPos},
	}
}

func (l *loader) decodeControl(b *hcl.Block, c *Control) {
	d := l.d
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "socket"}, {Name: "mode"}, {Name: "group"}}})
	d.Diags = append(d.Diags, diags...)
	d.String(content.Attributes, "socket", &c.Socket)
	d.FileMode(content.Attributes, "mode", &c.Mode)
	d.String(content.Attributes, "group", &c.Group)
	if a, ok := content.Attributes["socket"]; ok && c.Socket == "" {
		d.Errorf(a.Expr.Range(), "\"socket\" must be a path")
	}
	if a, ok := content.Attributes["mode"]; ok && c.Mode&0o007 != 0 {
		d.Errorf(a.Expr.Range(), "the control socket must not be reachable by others (mode %04o gives rights to all users); use \"0600\" or \"0660\" with a group", c.Mode)
	}
}

func (l *loader) decodeLogging(b *hcl.Block, lg *Logging) {
	d := l.d
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "level"}, {Name: "format"}}})
	d.Diags = append(d.Diags, diags...)
	if d.String(content.Attributes, "level", &lg.Level) {
		lg.Level = strings.ToLower(lg.Level)
		d.OneOf(content.Attributes, "level", lg.Level, "debug", "info", "warn", "error")
	}
	if d.String(content.Attributes, "format", &lg.Format) {
		d.OneOf(content.Attributes, "format", lg.Format, "text", "json")
	}
}

func (l *loader) decodeConsul(b *hcl.Block) *Consul {
	d := l.d
	c := &Consul{}
	content, diags := b.Body.Content(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "address"}, {Name: "scheme"}, {Name: "token"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "tls"}},
	})
	d.Diags = append(d.Diags, diags...)
	d.String(content.Attributes, "address", &c.Address)
	if d.String(content.Attributes, "scheme", &c.Scheme) {
		d.OneOf(content.Attributes, "scheme", c.Scheme, "http", "https")
	}
	d.String(content.Attributes, "token", &c.Token)
	for i, tb := range content.Blocks {
		if i > 0 {
			d.Errorf(tb.DefRange, "only one \"tls\" block is allowed")
			continue
		}
		t := &ConsulTLS{}
		tc, diags := tb.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
			{Name: "ca_file"}, {Name: "cert_file"}, {Name: "key_file"}, {Name: "server_name"}, {Name: "insecure_skip_verify"}}})
		d.Diags = append(d.Diags, diags...)
		d.String(tc.Attributes, "ca_file", &t.CAFile)
		d.String(tc.Attributes, "cert_file", &t.CertFile)
		d.String(tc.Attributes, "key_file", &t.KeyFile)
		d.String(tc.Attributes, "server_name", &t.ServerName)
		d.Bool(tc.Attributes, "insecure_skip_verify", &t.InsecureSkipVerify)
		if (t.CertFile == "") != (t.KeyFile == "") {
			d.Errorf(tb.DefRange, "\"cert_file\" and \"key_file\" go together; set both or neither")
		}
		c.TLS = t
	}
	return c
}

var metricName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`) })
var labelName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`) })

// decodeTelemetry reads the telemetry blocks of every file: their metrics add up, and each
// setting (listen, register) comes from one block.
func (l *loader) decodeTelemetry(blocks []*hcl.Block) *Telemetry {
	d := l.d
	t := &Telemetry{}
	bodies := make([]hcl.Body, len(blocks))
	for i, b := range blocks {
		bodies[i] = b.Body
	}
	attrs, metrics := mergeContent(d, bodies, &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "listen"}, {Name: "register"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "metric", LabelNames: []string{"name"}}},
	}, "telemetry ")
	d.String(attrs, "listen", &t.Listen)
	d.Bool(attrs, "register", &t.Register)
	names := map[string]*hcl.Block{}
	for _, mb := range metrics {
		m := &Metric{Name: mb.Labels[0], Range: mb.DefRange}
		if !metricName().MatchString(m.Name) || strings.HasPrefix(m.Name, "__") {
			d.Errorf(mb.LabelRanges[0], "%q is not a valid Prometheus metric name", m.Name)
		} else if p := reservedPrefix(m.Name); p != "" {
			d.Errorf(mb.LabelRanges[0], "metric names starting with %q are reserved for built-in metrics", p)
		}
		if prev, dup := names[m.Name]; dup {
			d.Errorf(mb.LabelRanges[0], "metric %q is declared twice (first at %s)", m.Name, at(prev.LabelRanges[0]))
		} else {
			names[m.Name] = mb
		}
		mc, diags := mb.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
			{Name: "type", Required: true}, {Name: "help"}, {Name: "labels"}, {Name: "buckets"}, {Name: "objectives"}}})
		d.Diags = append(d.Diags, diags...)
		if d.String(mc.Attributes, "type", &m.Type) {
			d.OneOf(mc.Attributes, "type", m.Type, "counter", "gauge", "histogram", "summary")
		}
		d.String(mc.Attributes, "help", &m.Help)
		if m.Help == "" {
			m.Help = m.Name
		}
		if d.Strings(mc.Attributes, "labels", &m.Labels) {
			for _, ln := range m.Labels {
				if !labelName().MatchString(ln) || strings.HasPrefix(ln, "__") {
					d.Errorf(mc.Attributes["labels"].Expr.Range(), "%q is not a valid Prometheus label name", ln)
				}
			}
		}
		if a, ok := mc.Attributes["buckets"]; ok {
			if m.Type != "histogram" {
				d.Errorf(a.NameRange, "\"buckets\" applies only to histograms")
			}
			l.floats(a, &m.Buckets)
			if !sort.Float64sAreSorted(m.Buckets) {
				d.Errorf(a.Expr.Range(), "\"buckets\" must be in increasing order")
			}
		}
		if a, ok := mc.Attributes["objectives"]; ok {
			if m.Type != "summary" {
				d.Errorf(a.NameRange, "\"objectives\" applies only to summaries")
			}
			m.Objectives = l.objectives(a)
		}
		t.Metrics = append(t.Metrics, m)
	}
	return t
}

// mergeContent reads one schema from several bodies, one per file: their blocks add up, and
// each attribute may be set in one of them only (what names the block in the error).
func mergeContent(d *Decoder, bodies []hcl.Body, schema *hcl.BodySchema, what string) (hcl.Attributes, hcl.Blocks) {
	attrs := hcl.Attributes{}
	var blocks hcl.Blocks
	for _, body := range bodies {
		content, diags := body.Content(schema)
		d.Diags = append(d.Diags, diags...)
		for _, a := range sortedAttrs(content.Attributes) {
			if prev, dup := attrs[a.Name]; dup {
				d.Errorf(a.NameRange, "%s%q is set twice (first at %s); set it in one file only", what, a.Name, at(prev.NameRange))
				continue
			}
			attrs[a.Name] = a
		}
		blocks = append(blocks, content.Blocks...)
	}
	return attrs, blocks
}

// sortedAttrs lists attributes in their order in the file.
func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NameRange.Start.Byte < out[j].NameRange.Start.Byte })
	return out
}

// reservedPrefix returns the built-in namespace a metric name would collide with, if any.
func reservedPrefix(name string) string {
	for _, p := range []string{"pilotfish_", "go_", "process_", "promhttp_"} {
		if strings.HasPrefix(name, p) {
			return p
		}
	}
	return ""
}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`) })

func (l *loader) checkName(b *hcl.Block, what string) {
	name := b.Labels[0]
	switch {
	case !nameRE().MatchString(name):
		l.d.Errorf(b.LabelRanges[0], "%s name %q must start with a letter or digit and hold only letters, digits, '.', '_' and '-'", what, name)
	case what == "job" && (name == "global" || strings.HasPrefix(name, "watch.") || strings.HasPrefix(name, "template.")):
		l.d.Errorf(b.LabelRanges[0], "job name %q is reserved for event sources; rename the job", name)
	}
}
