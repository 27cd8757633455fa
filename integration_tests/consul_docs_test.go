package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every HCL example of docs/consul.md is a valid configuration (pilotfish validate).
func TestConsulDocExamplesValidate(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "consul.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```hcl\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 5 {
		t.Fatalf("found only %d hcl examples in docs/consul.md", len(blocks))
	}
	dir := t.TempDir()
	for i, b := range blocks {
		path := filepath.Join(dir, "example.hcl")
		writeFile(t, path, b[1], 0o644)
		res := runCmd(t, dir, "validate", "-config", path)
		if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "valid") {
			t.Errorf("example %d of docs/consul.md does not validate (exit %d):\n%s\n%s", i+1, res.code, b[1], res.stdout+res.stderr)
		}
	}
}
