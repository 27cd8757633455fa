package containerpilot

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"golang.org/x/text/unicode/norm"
)

// The converter builds the HCL file as a small tree of items, each with the position in the
// original file it came from; write lays it out. Reading the written file back tells on
// which line each item landed, so that a diagnostic of the HCL loader points at the line of
// the ContainerPilot file the item came from.

type hBody struct {
	items   []*hItem
	pending []string // comments for the next item
}

type hItem struct {
	comments []string // lines of comment before the item
	blank    bool     // an empty line before it
	attr     *hAttr
	block    *hBlock
	pos      hcl.Pos // where it came from in the original file
}

type hAttr struct {
	name, expr string // expr is HCL source text
	note       string // a comment at the end of the line
}

type hBlock struct {
	typ    string
	labels []string
	body   hBody
}

// attr adds name = expr; a note goes at the end of its line.
func (b *hBody) attr(name, expr string, pos hcl.Pos, note ...string) *hItem {
	it := &hItem{attr: &hAttr{name: name, expr: expr, note: strings.Join(note, "; ")}, pos: pos, comments: b.pending}
	b.pending = nil
	b.items = append(b.items, it)
	return it
}

func (b *hBody) block(typ string, labels []string, pos hcl.Pos, comments ...string) *hBlock {
	blk := &hBlock{typ: typ, labels: labels}
	b.items = append(b.items, &hItem{block: blk, pos: pos, comments: append(b.pending, comments...)})
	b.pending = nil
	return blk
}

// comment adds comment lines before the next item of the body.
func (b *hBody) comment(lines ...string) { b.pending = append(b.pending, lines...) }

// write renders the tree as formatted HCL, with the header comment lines first, and maps
// each line of the result to the position of the item written there. The layout is that
// of `terraform fmt` (hclwrite.Format): two spaces per level, the "=" of consecutive
// attributes aligned, and the comments at the ends of consecutive lines aligned.
func write(header []string, body *hBody) ([]byte, map[int]hcl.Pos, error) {
	var w hclWriter
	for _, h := range header {
		w.comment(0, h)
	}
	if len(header) > 0 {
		w.blank()
	}
	w.body(body, 0, true)
	out := w.bytes()
	syn, diags := hclsyntax.ParseConfig(out, "converted.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return out, nil, fmt.Errorf("the converted file does not parse: %s", diags.Error())
	}
	lines := map[int]hcl.Pos{}
	mapBody(syn.Body.(*hclsyntax.Body), body, lines)
	return out, lines, nil
}

// hLine is one line of the output: an attribute (name, "= expr", a note) or text as it is.
type hLine struct {
	indent     int
	name, expr string // an attribute when expr != ""
	note       string // "# …" at the end of an attribute's line
	text       string // anything else, indent included
}

type hclWriter struct{ lines []hLine }

func (w *hclWriter) blank() { w.lines = append(w.lines, hLine{}) }

func (w *hclWriter) comment(indent int, text string) {
	line := "#"
	if text != "" {
		line += " " + text
	}
	w.lines = append(w.lines, hLine{text: strings.Repeat("  ", indent) + line})
}

func (w *hclWriter) body(body *hBody, indent int, top bool) {
	pad := strings.Repeat("  ", indent)
	for i, it := range body.items {
		if it.blank || top && i > 0 && it.block != nil {
			w.blank()
		}
		for _, c := range it.comments {
			for _, line := range strings.Split(c, "\n") {
				w.comment(indent, line)
			}
		}
		switch {
		case it.attr != nil:
			l := hLine{indent: indent, name: it.attr.name, expr: it.attr.expr}
			if it.attr.note != "" {
				l.note = "# " + it.attr.note
			}
			w.lines = append(w.lines, l)
		case it.block != nil:
			head := pad + it.block.typ
			for _, label := range it.block.labels {
				head += " " + quote(label)
			}
			w.lines = append(w.lines, hLine{text: head + " {"})
			w.body(&it.block.body, indent+1, false)
			w.lines = append(w.lines, hLine{text: pad + "}"})
		}
	}
	for _, c := range body.pending {
		w.comment(indent, c)
	}
}

// bytes lays the lines out. A run of attribute lines aligns its "="; a run of lines that
// end in a comment aligns the comments, as hclwrite.Format does.
func (w *hclWriter) bytes() []byte {
	cols := make([]int, len(w.lines)) // where "=" goes on an attribute line
	for i := 0; i < len(w.lines); {
		j, width := i, 0
		for ; j < len(w.lines) && w.lines[j].expr != ""; j++ {
			width = max(width, 2*w.lines[j].indent+len(w.lines[j].name))
		}
		for k := i; k < j; k++ {
			cols[k] = width + 1
		}
		i = max(j, i+1)
	}
	var b strings.Builder
	for i := 0; i < len(w.lines); {
		j, width := i, 0
		for ; j < len(w.lines) && w.lines[j].note != ""; j++ {
			width = max(width, cols[j]+2+len(w.lines[j].expr))
		}
		for k := i; k < max(j, i+1); k++ {
			l := w.lines[k]
			if l.expr == "" {
				b.WriteString(l.text)
				b.WriteByte('\n')
				continue
			}
			start := b.Len()
			b.WriteString(strings.Repeat("  ", l.indent))
			b.WriteString(l.name)
			b.WriteString(strings.Repeat(" ", cols[k]-b.Len()+start))
			b.WriteString("= ")
			b.WriteString(l.expr)
			if l.note != "" {
				b.WriteString(strings.Repeat(" ", width+1-b.Len()+start))
				b.WriteString(l.note)
			}
			b.WriteByte('\n')
		}
		i = max(j, i+1)
	}
	return []byte(b.String())
}

func mapBody(syn *hclsyntax.Body, body *hBody, lines map[int]hcl.Pos) {
	next := 0
	for _, it := range body.items {
		switch {
		case it.attr != nil:
			if a := syn.Attributes[it.attr.name]; a != nil {
				for l := a.SrcRange.Start.Line; l <= a.SrcRange.End.Line; l++ {
					lines[l] = it.pos
				}
			}
		case it.block != nil:
			if next >= len(syn.Blocks) {
				return
			}
			blk := syn.Blocks[next]
			next++
			for l := blk.TypeRange.Start.Line; l <= blk.CloseBraceRange.End.Line; l++ {
				lines[l] = it.pos
			}
			mapBody(blk.Body, &it.block.body, lines)
		}
	}
}

// Expressions, as HCL source text.

func quote(s string) string {
	s = norm.NFC.String(s) // as a cty string holds it
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i, r := range s {
		switch r {
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '"', '\\':
			b = append(b, '\\', byte(r))
		case '$', '%':
			// "${" and "%{" would open a template sequence: doubled, they are the text.
			b = append(b, byte(r))
			if strings.HasPrefix(s[i+1:], "{") {
				b = append(b, byte(r))
			}
		default:
			switch {
			case unicode.IsPrint(r):
				b = utf8.AppendRune(b, r)
			case r < 1<<16:
				b = fmt.Appendf(b, "\\u%04x", r)
			default:
				b = fmt.Appendf(b, "\\U%08x", r)
			}
		}
	}
	return string(append(b, '"'))
}

func list(exprs []string) string { return "[" + strings.Join(exprs, ", ") + "]" }

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = quote(s)
	}
	return out
}

// duration writes a duration the way people do: "10s", "5m", "1h30m", "500ms".
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return strconv.Quote(s)
}
