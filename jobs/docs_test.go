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

// jobsDoc describes the states and their transitions.
const jobsDoc = "../docs/jobs.md"

// TestTransitionsAreDocumented fails when the transitions table of docs/jobs.md and the
// table of the code (transitions) do not list the same moves. A row of the docs stands for
// every move from one of its "from" states to one of its "to" states.
func TestTransitionsAreDocumented(t *testing.T) {
	b, err := os.ReadFile(jobsDoc)
	if err != nil {
		t.Fatalf("cannot read the jobs reference: %v", err)
	}
	doc := string(b)
	start := strings.Index(doc, "### Transitions")
	if start < 0 {
		t.Fatalf("%s has no section \"### Transitions\"", jobsDoc)
	}
	// The table is the first one of the section: from its header to the blank line after.
	section := doc[start:]
	if i := strings.Index(section, "\n| from |"); i >= 0 {
		section = section[i+1:]
	}
	if end := strings.Index(section, "\n\n"); end >= 0 {
		section = section[:end]
	}
	quoted := regexp.MustCompile("`([a-z]+)`")
	states := func(cell string) []State {
		var out []State
		for _, m := range quoted.FindAllStringSubmatch(cell, -1) {
			out = append(out, State(m[1]))
		}
		return out
	}
	documented := map[edge]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue // not a row of the table, or its header
		}
		for _, from := range states(cells[1]) {
			for _, to := range states(cells[2]) {
				documented[edge{from, to}] = true
				if !legal(from, to) {
					t.Errorf("%s documents a move from %s to %s that the code does not make", jobsDoc, from, to)
				}
			}
		}
	}
	for from, tos := range transitions {
		for to := range tos {
			if !documented[edge{from, to}] {
				t.Errorf("the move from %s to %s is not in the transitions table of %s", from, to, jobsDoc)
			}
		}
	}
}

// TestStatesAreDocumented fails when a state is missing from the states table of
// docs/jobs.md.
func TestStatesAreDocumented(t *testing.T) {
	b, err := os.ReadFile(jobsDoc)
	if err != nil {
		t.Fatalf("cannot read the jobs reference: %v", err)
	}
	for _, s := range allStates {
		if !regexp.MustCompile("(?m)^\\| `" + string(s) + "` \\|").Match(b) {
			t.Errorf("state %s has no row in the states table of %s", s, jobsDoc)
		}
	}
}
