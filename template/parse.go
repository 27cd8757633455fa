package template

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/tmplguard"
)

// Limits of a template (docs/templates.md#limits).
const (
	maxOutput  = 8 << 20 // bytes of rendered text
	maxNesting = 64      // {{ if }} / {{ range }} / {{ with }} / {{ define }} levels
)

// limits bound one run; the catalog may hold a hundred thousand instances of a service.
var limits = tmplguard.Limits{
	Steps:     2_000_000,
	FuncBytes: 256 << 20,
	String:    maxOutput,
	Loop:      100_000,
	Time:      5 * time.Second,
	Depth:     64,
}

// parsed is a template's text, parsed and metered once and run many times (each run on a
// clone with the functions of that run).
type parsed struct {
	t       *texttemplate.Template
	catalog string // what it reads from Consul, "" for nothing
}

// stubs stand for every function while parsing.
var stubs = sync.OnceValue(func() texttemplate.FuncMap {
	f := tmplguard.Stubs()
	stub := func(...any) string { return "" }
	for _, name := range funcNames() {
		f[name] = stub
	}
	return f
})

// Check parses a template's text for validation (config.TemplateChecker): a syntax error
// with its position, and what the text reads from Consul.
func Check(text string) (string, *config.TemplateError) {
	p, err := parseText(text)
	if err != nil {
		return "", err
	}
	return p.catalog, nil
}

var _ config.TemplateChecker = Check

func parseText(text string) (*parsed, *config.TemplateError) {
	// Go's parser recurses: a text nested too deeply must never reach it.
	if off, ok := tmplguard.TooNested([]byte(text), maxNesting); !ok {
		line := 1 + strings.Count(text[:off], "\n")
		col := off - strings.LastIndexByte(text[:off], '\n')
		return nil, &config.TemplateError{Line: line, Column: col,
			Message: fmt.Sprintf("more than %d levels of {{ if }}, {{ range }}, {{ with }} or {{ define }}", maxNesting)}
	}
	// A missing map key prints as nothing, not "<no value>", in a configuration file.
	t, err := texttemplate.New("t").Funcs(stubs()).Option("missingkey=zero").Parse(text)
	if err != nil {
		line, col, msg := tmplguard.Position(err)
		return nil, &config.TemplateError{Line: line, Column: col, Message: msg}
	}
	p := &parsed{t: t, catalog: catalogUse(t)}
	tmplguard.Instrument(t)
	return p, nil
}

// catalogUse names the first catalog function the text calls, with its line.
func catalogUse(t *texttemplate.Template) string {
	type use struct {
		name       string
		line, col  int
		definition string
	}
	var found []use
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		walk(tt.Tree.Root, func(n parse.Node) {
			id, ok := n.(*parse.IdentifierNode)
			if !ok || !slices.Contains(catalogFuncs, id.Ident) {
				return
			}
			loc, _ := tt.Tree.ErrorContext(n)
			parts := strings.Split(loc, ":")
			u := use{name: id.Ident}
			if len(parts) >= 3 {
				u.line, _ = strconv.Atoi(parts[len(parts)-2])
				u.col, _ = strconv.Atoi(parts[len(parts)-1])
			}
			found = append(found, u)
		})
	}
	if len(found) == 0 {
		return ""
	}
	first := slices.MinFunc(found, func(a, b use) int {
		if a.line != b.line {
			return a.line - b.line
		}
		return a.col - b.col
	})
	return fmt.Sprintf("%s at line %d", first.name, first.line)
}

// walk calls fn on every node under n.
func walk(n parse.Node, fn func(parse.Node)) {
	if n == nil {
		return
	}
	fn(n)
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walk(c, fn)
		}
	case *parse.ActionNode:
		walkPipe(n.Pipe, fn)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.TemplateNode:
		walkPipe(n.Pipe, fn)
	case *parse.PipeNode:
		walkPipe(n, fn)
	case *parse.CommandNode:
		for _, a := range n.Args {
			walk(a, fn)
		}
	case *parse.ChainNode:
		walk(n.Node, fn)
	}
}

func walkBranch(b *parse.BranchNode, fn func(parse.Node)) {
	walkPipe(b.Pipe, fn)
	if b.List != nil {
		walk(b.List, fn)
	}
	if b.ElseList != nil {
		walk(b.ElseList, fn)
	}
}

func walkPipe(p *parse.PipeNode, fn func(parse.Node)) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		walk(c, fn)
	}
}

// execute runs the template once with r's functions, into at most maxOutput bytes.
func (p *parsed) execute(r *run) ([]byte, error) {
	t, err := p.t.Clone()
	if err != nil {
		return nil, err
	}
	r.tmpl = t
	t.Funcs(r.funcs())
	out := tmplguard.Buffer{Max: maxOutput}
	if err := t.Execute(&out, nil); err != nil {
		return nil, runError(err)
	}
	return bytes.Clone(out.Bytes()), nil
}

// runError says what went wrong in a run the way a template's author reads it: at a line
// and column of the text, or the limit it went over.
func runError(err error) error {
	var limit *tmplguard.LimitError
	switch {
	case errors.As(err, &limit):
		return limit
	case errors.Is(err, tmplguard.ErrTooLarge):
		return fmt.Errorf("the rendered text would be larger than %d MiB", maxOutput>>20)
	}
	line, col, msg := tmplguard.Position(err)
	if line == 0 {
		return err
	}
	msg = strings.TrimPrefix(msg, `executing "t" at `)
	if col > 0 {
		return fmt.Errorf("line %d, column %d: %s", line, col, msg)
	}
	return fmt.Errorf("line %d: %s", line, msg)
}
