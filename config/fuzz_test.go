package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// fuzzDepths are the nesting depths of the deep seeds: just past the MaxDepth levels a file
// may nest, far past it, and as deep as the files that overflowed the stack of HCL's parser
// (which Go cannot recover from) before the depth was checked ahead of parsing.
var fuzzDepths = []int{MaxDepth + 1, 1000, 100_000}

// deepSeeds nests each form of HCL and HCL JSON expression and block depth times.
func deepSeeds(depth int) (hclSrc, jsonSrc []string) {
	nest := func(open, mid, close string) string {
		return strings.Repeat(open, depth) + mid + strings.Repeat(close, depth)
	}
	job := func(expr string) string { return "job \"a\" {\n  exec = " + expr + "\n}\n" }
	hclSrc = []string{
		job(nest("[", `"x"`, "]")),
		job(nest("(", `"x"`, ")")),
		job(nest("{a = ", `"x"`, "}")),
		job(nest("upper(", `"x"`, ")")),
		job(nest("-", "1", "")),
		job(nest("!", "true", "")),
		job(nest(`"${`, `"x"`, `}"`)),
		job(nest("true ? ", `"x"`, ` : "y"`)),
		job(nest("[for x in ", `["x"]`, " : x]")),
		job(`["x"]` + strings.Repeat("[0]", depth)),
		job("env" + strings.Repeat(".x", depth)),
		nest("job \"a\" {\n", `exec = "x"`, "\n}"),
		"job \"a\" {\n  exec = \"x\"\n" + nest("when {\n", "", "}\n") + "}\n",
	}
	jsonSrc = []string{
		`{"job": {"a": {"exec": ` + nest("[", `"x"`, "]") + `}}}`,
		`{"job": {"a": {"exec": "x", "when": ` + nest(`{"a": `, `"x"`, "}") + `}}}`,
		`{"job": {"a": {"exec": "` + nest(`${`, `"x"`, `}`) + `"}}}`,
		nest(`{"job": `, `{}`, "}"),
	}
	return hclSrc, jsonSrc
}

// FuzzParse feeds arbitrary files, HCL or HCL JSON, to the loader. It never panics; a file is
// refused or accepted, never both or neither; every problem has a position inside the file;
// two loads say the same; and an accepted config has uniquely named jobs that the start and
// shutdown orders each name once.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.hcl")
	limits, _ := filepath.Glob("testdata/limits/*.hcl")
	for _, s := range append(seeds, limits...) {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), false)
	}
	jsonSeeds, _ := filepath.Glob("testdata/*.json")
	jsonLimits, _ := filepath.Glob("testdata/limits/*.json")
	for _, s := range append(jsonSeeds, jsonLimits...) {
		b, _ := os.ReadFile(s)
		f.Add(string(b), true)
	}
	f.Add(`job "a" { exec = "sh -c 'x'" }`, false)
	for _, d := range fuzzDepths {
		hclSrc, jsonSrc := deepSeeds(d)
		for _, s := range hclSrc {
			f.Add(s, false)
		}
		for _, s := range jsonSrc {
			f.Add(s, true)
		}
	}
	opts := Options{Kinds: kinds, Env: map[string]string{"X": "1"}}
	f.Fuzz(func(t *testing.T, src string, asJSON bool) {
		name := "fuzz.hcl"
		if asJSON {
			name = "fuzz.json"
		}
		cfg, diags := Parse(name, []byte(src), opts)
		if (cfg == nil) != diags.HasErrors() {
			t.Fatalf("config %v with errors %v", cfg != nil, diags.HasErrors())
		}
		for _, d := range diags {
			if d.Severity != hcl.DiagError {
				continue
			}
			// HCL's JSON scanner may point one byte past the end of a file that ends in an
			// open string.
			if r := d.Subject; r == nil || r.Filename != name || r.Start.Line < 1 || r.Start.Byte < 0 || r.Start.Byte > r.End.Byte || r.End.Byte > len(src)+1 {
				t.Fatalf("diagnostic %q has no position inside the file: %+v", FormatDiagnostic(d), r)
			}
		}
		msgs := FormatDiagnostics(diags)
		// The evaluation budget is wall-clock time: on a loaded machine one of two loads may
		// run out of it where the other did not.
		outOfTime := func(m []string) bool {
			return slices.ContainsFunc(m, func(s string) bool { return strings.Contains(s, "takes too long") })
		}
		if _, again := Parse(name, []byte(src), opts); !reflect.DeepEqual(FormatDiagnostics(again), msgs) && !outOfTime(msgs) && !outOfTime(FormatDiagnostics(again)) {
			t.Fatalf("two loads differ:\n%q\n%q", msgs, FormatDiagnostics(again))
		}
		if cfg == nil {
			return
		}
		var names []string
		for _, j := range cfg.Jobs {
			if j.Name == "" || slices.Contains(names, j.Name) {
				t.Fatalf("job name %q empty or twice", j.Name)
			}
			names = append(names, j.Name)
		}
		slices.Sort(names)
		for _, order := range [][][]string{cfg.StartOrder(), cfg.ShutdownOrder()} {
			got := slices.Concat(order...)
			slices.Sort(got)
			if !slices.Equal(got, names) {
				t.Fatalf("order %q, jobs %q", order, names)
			}
		}
		_ = RenderPlan(cfg, kinds, msgs)
	})
}
