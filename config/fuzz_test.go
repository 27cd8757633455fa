package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary files to the loader: it must never panic, and a config it accepts
// must hold jobs that have names.
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
	f.Fuzz(func(t *testing.T, src string, asJSON bool) {
		name := "fuzz.hcl"
		if asJSON {
			name = "fuzz.json"
		}
		cfg, diags := Parse(name, []byte(src), Options{Kinds: kinds, Env: map[string]string{"X": "1"}})
		if cfg == nil && !diags.HasErrors() {
			t.Fatal("no config and no error")
		}
		if cfg != nil {
			for _, j := range cfg.Jobs {
				if j.Name == "" {
					t.Fatal("job without a name")
				}
			}
			_ = cfg.StartOrder()
			_ = cfg.ShutdownOrder()
			_ = RenderPlan(cfg, kinds, FormatDiagnostics(diags))
		}
		_ = FormatDiagnostics(diags)
	})
}
