package containerpilot

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// The converter builds the HCL file as a small tree of items, each with the position in the
// original file it came from; hclwrite writes it. Reading the written file back tells on
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
// each line of the result to the position of the item written there.
func write(header []string, body *hBody) ([]byte, map[int]hcl.Pos, error) {
	f := hclwrite.NewEmptyFile()
	root := f.Body()
	for _, h := range header {
		root.AppendUnstructuredTokens(commentTokens(h))
	}
	if len(header) > 0 {
		root.AppendNewline()
	}
	writeBody(root, body, true)
	out := hclwrite.Format(f.Bytes())
	syn, diags := hclsyntax.ParseConfig(out, "converted.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return out, nil, fmt.Errorf("the converted file does not parse: %s", diags.Error())
	}
	lines := map[int]hcl.Pos{}
	mapBody(syn.Body.(*hclsyntax.Body), body, lines)
	return out, lines, nil
}

func commentTokens(text string) hclwrite.Tokens {
	line := "#"
	if text != "" {
		line += " " + text
	}
	return hclwrite.Tokens{{Type: hclsyntax.TokenComment, Bytes: []byte(line + "\n")}}
}

func writeBody(b *hclwrite.Body, body *hBody, top bool) {
	for i, it := range body.items {
		if it.blank || top && i > 0 && it.block != nil {
			b.AppendNewline()
		}
		for _, c := range it.comments {
			for _, line := range strings.Split(c, "\n") {
				b.AppendUnstructuredTokens(commentTokens(line))
			}
		}
		switch {
		case it.attr != nil:
			toks := hclwrite.Tokens{{Type: hclsyntax.TokenIdent, Bytes: []byte(it.attr.expr)}}
			if it.attr.note != "" {
				toks = append(toks, &hclwrite.Token{Type: hclsyntax.TokenComment, Bytes: []byte("# " + it.attr.note), SpacesBefore: 1})
			}
			b.SetAttributeRaw(it.attr.name, toks)
		case it.block != nil:
			nb := b.AppendNewBlock(it.block.typ, it.block.labels)
			writeBody(nb.Body(), &it.block.body, false)
		}
	}
	for _, c := range body.pending {
		b.AppendUnstructuredTokens(commentTokens(c))
	}
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
	return strings.TrimSpace(string(hclwrite.TokensForValue(cty.StringVal(s)).Bytes()))
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
