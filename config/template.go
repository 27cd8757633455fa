package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/events"
)

// MaxTemplateSize is the largest template text, inline or read from `source`.
const MaxTemplateSize = 1 << 20

// Template is a `template "NAME"` block (docs/templates.md); its events come from source
// "template.NAME".
type Template struct {
	Name string `json:"name"`
	// File is `source`, made absolute (a relative path is relative to pilotfish's working
	// directory, like every path of the configuration); "" for inline contents.
	File string `json:"source,omitempty"`
	// Text is the template: `contents`, or the file read when the configuration was loaded.
	Text string `json:"contents"`
	// Destination is absolute, like File.
	Destination string        `json:"destination"`
	Perms       os.FileMode   `json:"perms,omitempty"` // 0: the destination's own, or 0644 for a new file
	Wait        time.Duration `json:"wait,omitempty"`  // quiet period after a change

	Range hcl.Range `json:"-"`
	// TextStart is where the first line of Text is: the file, or the line of `contents`.
	TextStart hcl.Pos `json:"-"`
	// catalog is what the text reads from Consul, as the checker said ("" for nothing).
	catalog string
}

// Source is the event source name of the template.
func (t *Template) Source() string { return events.TemplatePrefix + t.Name }

// Equal reports whether two templates render the same text to the same place the same way.
func (t *Template) Equal(o *Template) bool {
	if t == nil || o == nil {
		return t == o
	}
	return t.Name == o.Name && t.File == o.File && t.Text == o.Text && t.Destination == o.Destination &&
		t.Perms == o.Perms && t.Wait == o.Wait
}

// TemplateError is a syntax error of a template's text, at a line (from 1) and a column
// (from 1; 0 when unknown) of the text.
type TemplateError struct {
	Line, Column int
	Message      string
}

func (e *TemplateError) Error() string { return e.Message }

// TemplateChecker parses a template's text for validation. It returns a syntax error, and
// what the text reads from Consul (a function name and its line, such as `service (line
// 3)`), "" when it reads only the environment. Package template implements it; core hands
// it to every load through Options.
type TemplateChecker func(text string) (catalog string, err *TemplateError)

// Equal reports whether two watches follow the same thing.
func (w *Watch) Equal(o *Watch) bool {
	if w == nil || o == nil {
		return w == o
	}
	return w.Name == o.Name && w.Service == o.Service && w.Key == o.Key && w.Prefix == o.Prefix && w.Tag == o.Tag && w.DC == o.DC
}

// IsKV reports whether the watch follows a KV key or prefix rather than a service.
func (w *Watch) IsKV() bool { return w.Key != "" || w.Prefix != "" }

// Codes lists the codes the watch publishes: a KV watch publishes changed only.
func (w *Watch) Codes() []events.Code {
	if w.IsKV() {
		return events.ChangedCodes
	}
	return events.WatchCodes
}

func (l *loader) decodeWatch(b *hcl.Block) *Watch {
	d := l.d
	w := &Watch{Name: b.Labels[0], Range: b.DefRange}
	l.checkName(b, "watch")
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "service"}, {Name: "tag"}, {Name: "dc"}, {Name: "key"}, {Name: "prefix"}}})
	d.Diags = append(d.Diags, diags...)
	d.String(content.Attributes, "service", &w.Service)
	d.String(content.Attributes, "tag", &w.Tag)
	d.String(content.Attributes, "dc", &w.DC)
	d.String(content.Attributes, "key", &w.Key)
	d.String(content.Attributes, "prefix", &w.Prefix)
	var set []*hcl.Attribute
	for _, k := range []string{"service", "key", "prefix"} {
		if a, ok := content.Attributes[k]; ok {
			set = append(set, a)
		}
	}
	if len(set) > 1 {
		d.Errorf(set[1].NameRange, "watch %q sets both %q and %q: a watch follows a service, a key or a prefix; write one watch for each", w.Name, set[0].Name, set[1].Name)
	}
	for _, k := range []string{"key", "prefix"} {
		if a, ok := content.Attributes[k]; ok && (k == "key" && w.Key == "" || k == "prefix" && w.Prefix == "") {
			d.Errorf(a.Expr.Range(), "watch %q: %q must not be empty", w.Name, k)
		}
	}
	if a, ok := content.Attributes["tag"]; ok && w.IsKV() {
		d.Errorf(a.NameRange, "watch %q: \"tag\" applies to a watch of a service, not of a key or prefix", w.Name)
	}
	if len(set) == 0 {
		w.Service = w.Name // the default: the service named like the watch
	}
	return w
}

func (l *loader) decodeTemplate(b *hcl.Block) *Template {
	d := l.d
	t := &Template{Name: b.Labels[0], Range: b.DefRange}
	l.checkName(b, "template")
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "source"}, {Name: "contents"}, {Name: "destination", Required: true}, {Name: "perms"}, {Name: "wait"}}})
	d.Diags = append(d.Diags, diags...)
	if d.String(content.Attributes, "destination", &t.Destination) {
		if t.Destination == "" {
			d.Errorf(content.Attributes["destination"].Expr.Range(), "template %q: \"destination\" must be a file path", t.Name)
		} else {
			t.Destination = absPath(t.Destination)
		}
	}
	if d.FileMode(content.Attributes, "perms", &t.Perms) && t.Perms == 0 {
		d.Errorf(content.Attributes["perms"].Expr.Range(), "template %q: perms \"0000\" would make the file unreadable by anyone; use \"0644\" or \"0600\"", t.Name)
	}
	d.Duration(content.Attributes, "wait", &t.Wait)
	src, hasSrc := content.Attributes["source"]
	inline, hasInline := content.Attributes["contents"]
	given := "" // the source as the configuration names it, for diagnostics
	switch {
	case hasSrc && hasInline:
		d.Errorf(inline.NameRange, "template %q sets both \"source\" and \"contents\"; keep one", t.Name)
	case !hasSrc && !hasInline:
		d.Errorf(b.DefRange, "template %q needs its text: \"source\" (a file) or \"contents\"", t.Name)
	case hasSrc:
		var path string
		if d.String(content.Attributes, "source", &path) {
			t.File, given = absPath(path), path
			text, err := readTemplate(t.File)
			if err != nil {
				d.Errorf(src.Expr.Range(), "template %q: cannot read its source: %v", t.Name, err)
				return t
			}
			t.Text = text
			t.TextStart = hcl.InitialPos
		}
	default:
		if d.String(content.Attributes, "contents", &t.Text) {
			if len(t.Text) > MaxTemplateSize {
				d.Errorf(inline.Expr.Range(), "template %q: contents of %d bytes; at most %d", t.Name, len(t.Text), MaxTemplateSize)
				return t
			}
			r := inline.Expr.Range()
			t.TextStart = hcl.Pos{Line: r.Start.Line, Column: r.Start.Column + 1}
			if r.End.Line > r.Start.Line { // a heredoc: the text starts on the next line
				t.TextStart = hcl.Pos{Line: r.Start.Line + 1, Column: 1}
			}
		}
	}
	l.checkTemplate(t, hasSrc != hasInline, given)
	return t
}

// checkTemplate runs the checker on the text and reports a syntax error at its position:
// in the source file (file, as the configuration names it), or in the configuration file for
// inline contents (file "").
func (l *loader) checkTemplate(t *Template, hasText bool, file string) {
	if l.opts.CheckTemplate == nil || !hasText || t.Text == "" && t.TextStart.Line == 0 {
		return
	}
	catalog, err := l.opts.CheckTemplate(t.Text)
	t.catalog = catalog
	if err == nil {
		return
	}
	line, col := max(err.Line, 1), max(err.Column, 1)
	rng := hcl.Range{Filename: file, Start: hcl.Pos{Line: line, Column: col}}
	if file == "" {
		rng.Filename = t.Range.Filename
		rng.Start.Line = t.TextStart.Line + line - 1
		if line == 1 {
			rng.Start.Column = t.TextStart.Column + col - 1
		}
	}
	rng.End = rng.Start
	l.d.Diags = append(l.d.Diags, &hcl.Diagnostic{Severity: hcl.DiagError, Subject: &rng,
		Summary: fmt.Sprintf("template %q: %s", t.Name, err.Message)})
}

// ReadsCatalog is what the template reads from Consul ("" for nothing but the environment),
// as the checker of the load said.
func (t *Template) ReadsCatalog() string { return t.catalog }

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// readTemplate reads a template file of at most MaxTemplateSize bytes.
func readTemplate(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return "", errors.New("it is a directory")
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxTemplateSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > MaxTemplateSize {
		return "", fmt.Errorf("it is larger than %d bytes", MaxTemplateSize)
	}
	return string(b), nil
}
