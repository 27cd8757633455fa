package jobs

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// kindsDoc is the reference of the job kinds; every kind and every key of it must be there.
const kindsDoc = "../docs/kinds.md"

// TestEveryKindKeyIsDocumented fails when a kind of Kinds(), or a key of its Schema()
// (attribute or block), is missing from docs/kinds.md, where each must appear as `key`, and
// each kind must have its own "## kind" section.
func TestEveryKindKeyIsDocumented(t *testing.T) {
	b, err := os.ReadFile(kindsDoc)
	if err != nil {
		t.Fatalf("cannot read the kinds reference: %v", err)
	}
	doc := string(b)
	kinds := Kinds()
	if len(kinds) == 0 {
		t.Fatal("Kinds() is empty")
	}
	var names []string
	for name := range kinds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("kind %s is not named in %s as `%s`", name, kindsDoc, name)
		}
		if !regexp.MustCompile(`(?m)^## ` + regexp.QuoteMeta(name) + `\s*$`).MatchString(doc) {
			t.Errorf("kind %s has no section \"## %s\" in %s", name, name, kindsDoc)
		}
		s := kinds[name].Schema()
		if s == nil {
			t.Errorf("kind %s has a nil Schema()", name)
			continue
		}
		var keys []string
		for _, a := range s.Attributes {
			keys = append(keys, a.Name)
		}
		for _, bl := range s.Blocks {
			keys = append(keys, bl.Type)
		}
		for _, k := range keys {
			if !strings.Contains(doc, "`"+k+"`") && !strings.Contains(doc, "`"+k+" ") {
				t.Errorf("key %q of kind %s is not documented in %s as `%s`", k, name, kindsDoc, k)
			}
		}
	}
}
