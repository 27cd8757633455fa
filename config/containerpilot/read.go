package containerpilot

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
)

// Read reads a ContainerPilot v3 file (a config.Reader): it renders the template with
// opts.Env, translates the JSON5 into HCL and loads that with config.Parse, so the Config
// is the one the HCL file `pilotfish convert` writes would give. Every diagnostic points
// into the original file.
func Read(path string, src []byte, opts config.Options) (*config.Config, hcl.Diagnostics) {
	c, diags := translate(path, src, opts.Env, false)
	if c == nil {
		return nil, diags
	}
	return c.load(opts, diags)
}

// Conversion is a ContainerPilot file written as HCL.
type Conversion struct {
	// HCL is the file, formatted and commented.
	HCL []byte
	// Config is what loading HCL gives; nil when it is not valid.
	Config *config.Config
	// Rendered lists the environment variables whose values the file holds, rendered by the
	// template (in {{ if }} blocks, names and the like): as "NAME=value" or "NAME unset".
	Rendered []string

	lines map[int]hcl.Pos
	path  string
}

// Convert writes a ContainerPilot v3 file as HCL. Values that only read a variable ({{ .X }},
// {{ .X | default "y" }}) become ${env.X} and env("X", "y"); the rest of the template is
// rendered with opts.Env, and the header of the file says with which variables. The HCL is
// loaded (with opts) to check it; its diagnostics point into the original file.
func Convert(path string, src []byte, opts config.Options) (*Conversion, hcl.Diagnostics) {
	c, diags := translate(path, src, opts.Env, true)
	if c == nil {
		return nil, diags
	}
	cfg, diags := c.load(opts, diags)
	c.conv.Config = cfg
	return c.conv, diags
}

// translated is a file translated into HCL.
type translated struct {
	conv *Conversion
}

func translate(path string, src []byte, env map[string]string, convert bool) (*translated, hcl.Diagnostics) {
	var (
		r     *rendered
		t     *translator
		body  *hBody
		diags hcl.Diagnostics
	)
	literal := map[int]bool{}
	start := time.Now() // every pass shares the budget of one load
	// Each pass renders as text the actions found where an expression cannot go; a pass that
	// finds none is the last. Any failure with sentinels falls back to rendering it all.
	for pass := 0; ; pass++ {
		sentinels := convert && pass < 8
		r, diags = renderSince(start, path, src, env, sentinels, literal)
		var root *node
		if !diags.HasErrors() {
			root, diags = parseJSON5(r)
		}
		if diags.HasErrors() {
			if sentinels {
				convert = false
				continue
			}
			return nil, diags
		}
		t = newTranslator(r, env, sentinels)
		body = t.file(root)
		more := false
		for off := range t.literal {
			if !literal[off] {
				literal[off], more = true, true
			}
		}
		if !sentinels || !more {
			break
		}
	}
	if t.diags.HasErrors() {
		return nil, config.SortDiagnostics(t.diags)
	}
	header := header(path, r)
	out, lines, err := write(header, body)
	if err != nil {
		rng := r.rng(0)
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot convert", Detail: err.Error(), Subject: &rng}}
	}
	conv := &Conversion{HCL: out, lines: lines, path: path}
	for _, u := range r.used {
		if u.set {
			conv.Rendered = append(conv.Rendered, fmt.Sprintf("%s=%q", u.name, u.value))
		} else {
			conv.Rendered = append(conv.Rendered, u.name+" unset")
		}
	}
	return &translated{conv: conv}, t.diags
}

func header(path string, r *rendered) []string {
	h := []string{
		fmt.Sprintf("Converted from the ContainerPilot configuration %s by `pilotfish convert`.", path),
		"See docs/migrating-from-containerpilot.md for what each key became and what behaves differently.",
	}
	if len(r.envs) > 0 {
		h = append(h, "Values that only read a variable ({{ .X }}) read it at each load: ${env.X}.")
	}
	if len(r.used) > 0 {
		h = append(h, "Rendered once, with this environment, where ContainerPilot's template shaped the file",
			"({{ if }} blocks, names, durations):")
		for _, u := range r.used {
			if u.set {
				h = append(h, fmt.Sprintf("  %s=%q", u.name, u.value))
			} else {
				h = append(h, fmt.Sprintf("  %s (unset)", u.name))
			}
		}
		h = append(h, "Run `pilotfish convert` again with the container's environment if it differs.")
	}
	return h
}

// load loads the HCL with config.Parse and moves its diagnostics and positions to the
// original file.
func (c *translated) load(opts config.Options, diags hcl.Diagnostics) (*config.Config, hcl.Diagnostics) {
	conv := c.conv
	opts.Readers = nil
	cfg, hd := config.Parse(conv.path, conv.HCL, opts)
	for _, d := range hd {
		if d.Subject != nil {
			r := conv.remap(*d.Subject)
			d.Subject = &r
		}
		if d.Context != nil {
			r := conv.remap(*d.Context)
			d.Context = &r
		}
		d.Expression, d.EvalContext = nil, nil
	}
	if cfg != nil {
		remapConfig(cfg, conv.remap)
	}
	return cfg, config.SortDiagnostics(append(diags, hd...))
}

// remap moves a range of the HCL to the item of the original file written there.
func (c *Conversion) remap(r hcl.Range) hcl.Range {
	p, ok := c.lines[r.Start.Line]
	if !ok {
		p = hcl.InitialPos
	}
	return hcl.Range{Filename: c.path, Start: p, End: p}
}

// remapConfig moves every range of the Config to the original file.
func remapConfig(cfg *config.Config, remap func(hcl.Range) hcl.Range) {
	if cfg.Telemetry != nil {
		for _, m := range cfg.Telemetry.Metrics {
			m.Range = remap(m.Range)
		}
	}
	for _, w := range cfg.Watches {
		w.Range = remap(w.Range)
	}
	for _, j := range cfg.Jobs {
		if j.Main {
			continue
		}
		j.Range = remap(j.Range)
		if j.Service != nil {
			j.Service.Range = remap(j.Service.Range)
		}
		if w := j.When; w != nil {
			w.Range, w.SourceRange = remap(w.Range), remap(w.SourceRange)
			for i := range w.After {
				w.After[i].Range = remap(w.After[i].Range)
			}
			for i := range w.Any {
				w.Any[i].Range = remap(w.Any[i].Range)
			}
		}
	}
}

// Socket reads only the control socket of a ContainerPilot file, for the command-line flags
// (-putenv, -reload…): the rest of the file need not be valid.
func Socket(path string, src []byte, env map[string]string) (string, hcl.Diagnostics) {
	r, diags := render(path, src, env, false, nil)
	if diags.HasErrors() {
		return "", diags
	}
	root, diags := parseJSON5(r)
	if diags.HasErrors() {
		return "", diags
	}
	if m := root.get("control"); m != nil && m.val.kind == object {
		if s := m.val.get("socket"); s != nil {
			if v, ok := s.val.val.(string); ok && strings.TrimSpace(v) != "" {
				return v, nil
			}
		}
	}
	return DefaultSocket, nil
}

// Render is the file after its template ran, as ContainerPilot's -template flag printed it.
func Render(path string, src []byte, env map[string]string) ([]byte, hcl.Diagnostics) {
	r, diags := render(path, src, env, false, nil)
	if diags.HasErrors() {
		return nil, diags
	}
	return r.text, nil
}
