package containerpilot

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/tmplguard"
)

// ContainerPilot ran the whole file through Go's text/template over the environment before
// it parsed it as JSON5; so does render. The output keeps, through markers written into the
// template's text nodes and before each action, where every byte came from: a JSON5 error
// or a key of the rendered text is reported at its line in the original file.
//
// The file comes from anywhere: the template's work is bounded (limits below), its functions
// refuse to build huge strings, and the loops and template calls are metered.

// Limits of a template run (docs/migrating-from-containerpilot.md#limits).
const (
	maxNesting   = 64                 // {{ if }} / {{ range }} / {{ with }} / {{ define }} levels
	maxOutput    = config.MaxFileSize // bytes of rendered text
	maxString    = config.MaxString   // the longest string a function may return
	maxFuncBytes = 64 << 20           // bytes all function calls may return, added up
	maxLoop      = 10000              // elements of one loop or split
	maxSteps     = 2_000_000          // nodes run inside loops and template calls
)

// Marker bytes: NUL, a kind, a decimal offset into the source, SOH. No environment value and
// no JSON5 file holds a NUL byte.
const (
	markText   = 'T' // text copied from the source from this offset on
	markAction = 'A' // the output of the action at this offset
)

// mark says where the output from out on came from (until the next mark).
type mark struct {
	out, src int
	text     bool // copied text: out+i comes from src+i; else an action's output: all from src
}

// rendered is a file after its template ran.
type rendered struct {
	path  string
	src   []byte
	text  []byte
	marks []mark
	lines []int // offsets of the line starts of src
	// used lists the environment variables that the rendering read, and how (sorted).
	used []usedVar
	// envs maps a sentinel to the simple action it stands for (convert only).
	envs map[string]envRef
}

// usedVar is an environment variable read while rendering.
type usedVar struct {
	name  string
	set   bool
	value string
}

// envRef is an action that only reads a variable: {{ .X }}, {{ .X | default "y" }},
// {{ env "X" }}, {{ default "y" .X }}.
type envRef struct {
	name  string
	def   string
	hasDf bool
	pos   int // of the action in the source
}

func newLines(src []byte) []int {
	lines := []int{0}
	for i, c := range src {
		if c == '\n' {
			lines = append(lines, i+1)
		}
	}
	return lines
}

// srcPos is the position of a byte offset of the source.
func (r *rendered) srcPos(off int) hcl.Pos {
	off = max(0, min(off, len(r.src)))
	i := sort.Search(len(r.lines), func(i int) bool { return r.lines[i] > off }) - 1
	return hcl.Pos{Line: i + 1, Column: utf8.RuneCount(r.src[r.lines[i]:off]) + 1, Byte: off}
}

// srcOffset is the offset in the source of a byte of the rendered text.
func (r *rendered) srcOffset(out int) int {
	i := sort.Search(len(r.marks), func(i int) bool { return r.marks[i].out > out }) - 1
	if i < 0 {
		return 0
	}
	m := r.marks[i]
	if m.text {
		return m.src + out - m.out
	}
	return m.src
}

// pos is the position in the original file of a byte of the rendered text.
func (r *rendered) pos(out int) hcl.Pos { return r.srcPos(r.srcOffset(out)) }

// rng is a range of zero width at out, in the original file.
func (r *rendered) rng(out int) hcl.Range {
	p := r.pos(out)
	return hcl.Range{Filename: r.path, Start: p, End: p}
}

// srcRange is a range of zero width at a source offset.
func (r *rendered) srcRange(off int) hcl.Range {
	p := r.srcPos(off)
	return hcl.Range{Filename: r.path, Start: p, End: p}
}

// render runs the file's template over env. With sentinels (convert), the actions that only
// read a variable are kept as sentinels the converter turns into ${env.X}, except those
// listed in literal (by source offset), which it found in places an expression cannot go.
func render(path string, src []byte, env map[string]string, sentinels bool, literal map[int]bool) (*rendered, hcl.Diagnostics) {
	return renderSince(time.Now(), path, src, env, sentinels, literal)
}

// renderSince is render within the time budget of a load that began at start.
func renderSince(start time.Time, path string, src []byte, env map[string]string, sentinels bool, literal map[int]bool) (*rendered, hcl.Diagnostics) {
	r := &rendered{path: path, src: src, lines: newLines(src), envs: map[string]envRef{}}
	if i := bytes.IndexByte(src, 0); i >= 0 {
		return nil, r.errorAt(i, "Invalid file", "the file holds a NUL byte; a ContainerPilot configuration is text")
	}
	if off, ok := tmplguard.TooNested(src, maxNesting); !ok {
		return nil, r.errorAt(off, "Template nested too deeply", fmt.Sprintf("more than %d levels of {{ if }}, {{ range }}, {{ with }} or {{ define }}", maxNesting))
	}
	run := &runState{Meter: tmplguard.NewMeter(limits, start), env: env, used: map[string]bool{}}
	tmpl, err := template.New("f").Funcs(run.funcs()).Option("missingkey=zero").Parse(string(src))
	if err != nil {
		return nil, r.templateError(err)
	}
	nonce := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for _, t := range tmpl.Templates() {
		if t.Tree == nil || t.Tree.Root == nil {
			continue
		}
		r.instrument(t.Tree.Root, run, t.Name() != "f", sentinels, literal, nonce)
	}
	out := tmplguard.Buffer{Max: 4 * maxOutput} // room for the markers
	if err := tmpl.Execute(&out, env); err != nil {
		if errors.Is(err, tmplguard.ErrTooLarge) {
			return nil, r.errorAt(0, "Template output too large", fmt.Sprintf("the rendered file would be larger than %d MiB", maxOutput>>20))
		}
		return nil, r.templateError(err)
	}
	if err := r.strip(out.Bytes()); err != nil {
		return nil, r.errorAt(0, "Invalid template output", err.Error())
	}
	if len(r.text) > maxOutput {
		return nil, r.errorAt(0, "Template output too large", fmt.Sprintf("the rendered file is larger than %d MiB", maxOutput>>20))
	}
	for name := range run.used {
		v, set := env[name]
		r.used = append(r.used, usedVar{name: name, set: set, value: v})
	}
	sort.Slice(r.used, func(i, j int) bool { return r.used[i].name < r.used[j].name })
	return r, nil
}

func (r *rendered) errorAt(off int, summary, detail string) hcl.Diagnostics {
	rng := r.srcRange(off)
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rng}}
}

// templateError turns an error of text/template, which names a line (and a column for run
// time errors), into a diagnostic there.
func (r *rendered) templateError(err error) hcl.Diagnostics {
	line, col, msg := tmplguard.Position(err)
	line, col = max(line, 1), max(col, 1)
	msg = strings.ReplaceAll(msg, `executing "f" at `, "")
	line = max(1, min(line, len(r.lines)))
	start := r.lines[line-1]
	end := len(r.src)
	if line < len(r.lines) {
		end = r.lines[line]
	}
	off := start
	// A column counts runes from the line start; text/template counts bytes.
	off = min(start+max(col-1, 0), end)
	p := r.srcPos(off)
	rng := hcl.Range{Filename: r.path, Start: p, End: p}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Template error",
		Detail: "ContainerPilot renders the file as a Go text/template before reading it: " + msg, Subject: &rng}}
}

// instrument writes the markers into the tree, meters the loops and template bodies, and
// replaces the simple actions by sentinels when asked to.
func (r *rendered) instrument(list *parse.ListNode, run *runState, isDefine, sentinels bool, literal map[int]bool, nonce string) {
	if list == nil {
		return
	}
	var nodes []parse.Node
	if isDefine {
		nodes = append(nodes, tmplguard.TickNode(tmplguard.Size(list)))
	}
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			n.Text = r.markText(n)
			nodes = append(nodes, n)
			continue
		case *parse.ActionNode:
			if ref, ok := simpleAction(n); ok && sentinels && !literal[int(n.Pos)] {
				ref.pos = int(n.Pos)
				s := fmt.Sprintf("~PF%s.%d~", nonce, len(r.envs))
				r.envs[strings.Trim(s, "~")] = ref
				nodes = append(nodes, textNode(int(n.Pos), markerBytes(markAction, int(n.Pos))+s))
				continue
			}
			collectVars(n.Pipe, run.used)
			nodes = append(nodes, textNode(int(n.Pos), markerBytes(markAction, int(n.Pos))))
		case *parse.TemplateNode:
			collectVars(n.Pipe, run.used)
			nodes = append(nodes, textNode(int(n.Pos), markerBytes(markAction, int(n.Pos))))
		case *parse.IfNode:
			collectVars(n.Pipe, run.used)
			r.instrument(n.List, run, false, sentinels, literal, nonce)
			r.instrument(n.ElseList, run, false, sentinels, literal, nonce)
		case *parse.WithNode:
			collectVars(n.Pipe, run.used)
			r.instrument(n.List, run, false, sentinels, literal, nonce)
			r.instrument(n.ElseList, run, false, sentinels, literal, nonce)
		case *parse.RangeNode:
			collectVars(n.Pipe, run.used)
			r.instrument(n.List, run, false, sentinels, literal, nonce)
			r.instrument(n.ElseList, run, false, sentinels, literal, nonce)
			if n.List != nil {
				n.List.Nodes = append([]parse.Node{tmplguard.TickNode(tmplguard.Size(n.List))}, n.List.Nodes...)
			}
		}
		nodes = append(nodes, n)
	}
	list.Nodes = nodes
}

func textNode(pos int, text string) *parse.TextNode {
	return &parse.TextNode{NodeType: parse.NodeText, Pos: parse.Pos(pos), Text: []byte(text)}
}

func markerBytes(kind byte, src int) string {
	return "\x00" + string(kind) + strconv.Itoa(src) + "\x01"
}

// markText writes a text mark at the start of the node's text and after each newline in it.
// The node's text is the source from its position on (after any {{- trim).
func (r *rendered) markText(n *parse.TextNode) []byte {
	pos := int(n.Pos)
	if pos+len(n.Text) > len(r.src) || !bytes.Equal(r.src[pos:pos+len(n.Text)], n.Text) {
		// Not where it should be: the action mark before it is the best there is.
		return n.Text
	}
	var b bytes.Buffer
	b.Grow(len(n.Text) + 16)
	start := 0
	for start < len(n.Text) {
		b.WriteString(markerBytes(markText, pos+start))
		end := bytes.IndexByte(n.Text[start:], '\n')
		if end < 0 {
			b.Write(n.Text[start:])
			break
		}
		b.Write(n.Text[start : start+end+1])
		start += end + 1
	}
	return b.Bytes()
}

// strip removes the markers from the output, keeping where each part came from.
func (r *rendered) strip(out []byte) error {
	text := make([]byte, 0, len(out))
	for len(out) > 0 {
		i := bytes.IndexByte(out, 0)
		if i < 0 {
			text = append(text, out...)
			break
		}
		text = append(text, out[:i]...)
		end := bytes.IndexByte(out[i:], 1)
		if end < 3 || (out[i+1] != markText && out[i+1] != markAction) {
			return errors.New("the template's output holds a NUL byte")
		}
		src, err := strconv.Atoi(string(out[i+2 : i+end]))
		if err != nil {
			return errors.New("the template's output holds a NUL byte")
		}
		r.marks = append(r.marks, mark{out: len(text), src: src, text: out[i+1] == markText})
		out = out[i+end+1:]
	}
	r.text = text
	return nil
}

// collectVars adds the variables a pipeline reads (.X and env "X") to into.
func collectVars(n parse.Node, into map[string]bool) {
	switch n := n.(type) {
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			collectVars(c, into)
		}
	case *parse.CommandNode:
		for i, a := range n.Args {
			if id, ok := a.(*parse.IdentifierNode); ok && id.Ident == "env" && i+1 < len(n.Args) {
				if s, ok := n.Args[i+1].(*parse.StringNode); ok {
					into[s.Text] = true
				}
			}
			collectVars(a, into)
		}
	case *parse.FieldNode:
		if len(n.Ident) > 0 {
			into[n.Ident[0]] = true
		}
	case *parse.ChainNode:
		collectVars(n.Node, into)
	}
}

// simpleAction recognises an action that only reads a variable.
func simpleAction(n *parse.ActionNode) (envRef, bool) {
	p := n.Pipe
	if p == nil || len(p.Decl) > 0 || p.IsAssign {
		return envRef{}, false
	}
	field := func(a parse.Node) (string, bool) {
		f, ok := a.(*parse.FieldNode)
		if !ok || len(f.Ident) != 1 {
			return "", false
		}
		return f.Ident[0], true
	}
	str := func(a parse.Node) (string, bool) {
		s, ok := a.(*parse.StringNode)
		if !ok {
			return "", false
		}
		return s.Text, true
	}
	ident := func(a parse.Node, name string) bool {
		id, ok := a.(*parse.IdentifierNode)
		return ok && id.Ident == name
	}
	c := p.Cmds
	switch {
	case len(c) == 1 && len(c[0].Args) == 1:
		if name, ok := field(c[0].Args[0]); ok {
			return envRef{name: name}, true
		}
	case len(c) == 1 && len(c[0].Args) == 2 && ident(c[0].Args[0], "env"):
		if name, ok := str(c[0].Args[1]); ok {
			return envRef{name: name}, true
		}
	case len(c) == 1 && len(c[0].Args) == 3 && ident(c[0].Args[0], "default"):
		name, ok1 := field(c[0].Args[2])
		def, ok2 := str(c[0].Args[1])
		if ok1 && ok2 {
			return envRef{name: name, def: def, hasDf: true}, true
		}
	case len(c) == 2 && len(c[0].Args) == 1 && len(c[1].Args) == 2 && ident(c[1].Args[0], "default"):
		name, ok1 := field(c[0].Args[0])
		def, ok2 := str(c[1].Args[1])
		if ok1 && ok2 {
			return envRef{name: name, def: def, hasDf: true}, true
		}
	}
	return envRef{}, false
}
