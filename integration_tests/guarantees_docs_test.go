package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/guarantees.md names the tests that hold each guarantee: every one must exist.
func TestGuaranteesNameRealTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "guarantees.md"))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range regexp.MustCompile(`(?m)^func (Test\w+)\(`).FindAllSubmatch(b, -1) {
			defined[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`(Test\\w+)`").FindAllSubmatch(doc, -1)
	if len(names) < 13 {
		t.Fatalf("docs/guarantees.md names only %d tests", len(names))
	}
	for _, m := range names {
		if !defined[string(m[1])] {
			t.Errorf("docs/guarantees.md names %s, which no test defines", m[1])
		}
	}
}
