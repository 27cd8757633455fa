package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// treeDepth is how deeply HCL's syntax tree of a file nests: what its recursive parser
// and evaluator go through.
type treeDepth struct{ cur, max int }

func (w *treeDepth) Enter(hclsyntax.Node) hcl.Diagnostics {
	w.cur++
	w.max = max(w.max, w.cur)
	return nil
}

func (w *treeDepth) Exit(hclsyntax.Node) hcl.Diagnostics {
	w.cur--
	return nil
}

func nativeTreeDepth(src []byte) int {
	f, _ := hclparse.NewParser().ParseHCL(src, "fuzz.hcl")
	w := &treeDepth{}
	if b, ok := f.Body.(*hclsyntax.Body); ok {
		hclsyntax.Walk(b, w)
	}
	return w.max
}

// jsonTreeDepth is how deeply a JSON file nests, plus the templates in its strings.
func jsonTreeDepth(src []byte) int {
	dec := json.NewDecoder(bytes.NewReader(src))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				depth++
			} else {
				depth--
			}
			deepest = max(deepest, depth)
		case string:
			if containsTemplate(t) {
				expr, _ := hclsyntax.ParseTemplate([]byte(t), "fuzz.json", hcl.InitialPos)
				w := &treeDepth{}
				hclsyntax.Walk(expr, w)
				deepest = max(deepest, depth+w.max)
			}
		}
	}
}

// The syntax tree may be a few times deeper than the levels the scanner counts (a block
// is a Block and a Body; ${x} a TemplateExpr and what it wraps), never more.
func treeBound(levels int) int { return 4*levels + 8 }

// FuzzScan checks the scanners that guard HCL's recursive parser: they never panic, a file
// that opens more than MaxDepth levels is always refused, and a file they accept never
// makes a syntax tree deeper than treeBound of what they counted.
func FuzzScan(f *testing.F) {
	for _, glob := range []string{"testdata/*.hcl", "testdata/limits/*.hcl"} {
		seeds, _ := filepath.Glob(glob)
		for _, s := range seeds {
			b, err := os.ReadFile(s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(b), false)
		}
	}
	for _, glob := range []string{"testdata/*.json", "testdata/limits/*.json"} {
		seeds, _ := filepath.Glob(glob)
		for _, s := range seeds {
			b, _ := os.ReadFile(s)
			f.Add(string(b), true)
		}
	}
	f.Fuzz(func(t *testing.T, src string, asJSON bool) {
		scan := scanNative
		tree := nativeTreeDepth
		deep := "x = " + strings.Repeat("[", MaxDepth+1)
		if asJSON {
			scan, tree = scanJSON, jsonTreeDepth
			deep = `{"x": ` + strings.Repeat("[", MaxDepth)
		}
		if _, err := scan([]byte(deep + src)); err == nil || err.limit != overDepth {
			t.Fatalf("%d levels open before the input, and not refused: %v", MaxDepth+1, err)
		}
		// Invalid UTF-8 is refused before the scanner runs (checkSource): HCL reads a
		// malformed sequence as one character, swallowing the byte after its lead byte.
		if !utf8.ValidString(src) {
			return
		}
		// A syntax error the scanner sees keeps levels counted: a valid file has none.
		if !asJSON {
			if s := scanFile([]byte(src)); s.err == nil && s.broken >= 0 {
				if _, diags := hclparse.NewParser().ParseHCL([]byte(src), "fuzz.hcl"); !diags.HasErrors() {
					t.Fatalf("a syntax error at offset %d of a valid file", s.broken)
				}
			}
		}
		// Repeating the input shows a level the scanner gives back too early: it adds up.
		for _, in := range []string{src, strings.Repeat(src, 8)} {
			levels, err := scan([]byte(in))
			if err != nil {
				return
			}
			if d := tree([]byte(in)); d > treeBound(levels) {
				t.Fatalf("the scanner counted %d levels, the syntax tree has %d", levels, d)
			}
		}
	})
}
