package template

import (
	"os"
	"strings"
	"testing"
)

// TestEveryFunctionIsDocumented fails when a template function is missing from
// docs/templates.md, where each must appear as `name`.
func TestEveryFunctionIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/templates.md")
	if err != nil {
		t.Fatal(err)
	}
	names := funcNames()
	if len(names) < 50 {
		t.Fatalf("only %d functions found; is funcNames right?", len(names))
	}
	for _, name := range names {
		if !strings.Contains(string(b), "`"+name+"`") {
			t.Errorf("function %s is not documented in docs/templates.md as `%s`", name, name)
		}
	}
}
