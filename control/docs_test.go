package control

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pilotfish/pilotfish/control/api"
)

// The error kinds table of docs/api.md#errors is the one errorClasses makes: every kind
// package api declares, with its status, and no other.
func TestDocsErrorKinds(t *testing.T) {
	want := map[string]int{api.KindInternal: http.StatusInternalServerError}
	for _, c := range errorClasses {
		want[c.kind] = c.status
	}
	for _, k := range apiKinds(t) {
		if _, ok := want[k]; !ok {
			t.Errorf("kind %q of package api has no error class in control.errorClasses", k)
		}
	}

	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## Errors\n")
	if start < 0 {
		t.Fatal("docs/api.md has no \"## Errors\" section")
	}
	section := doc[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| (\\d{3}) \\|")
	got := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		code, _ := strconv.Atoi(m[2])
		if _, dup := got[m[1]]; dup {
			t.Errorf("docs/api.md#errors lists %q twice", m[1])
		}
		got[m[1]] = code
	}
	for k, code := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("docs/api.md#errors does not list kind %q (%d)", k, code)
		} else if g != code {
			t.Errorf("docs/api.md#errors gives kind %q status %d; the server answers %d", k, g, code)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("docs/api.md#errors lists kind %q, which the server never answers", k)
		}
	}
}

// apiKinds reads the Kind… constants of package api.
func apiKinds(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "api/api.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(n.Name, "Kind") {
					v, _ := strconv.Unquote(lit.Value)
					out = append(out, v)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no Kind constants found in api/api.go")
	}
	return out
}
