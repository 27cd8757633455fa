package config

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// A configuration in layers (docs/configuration.md#configuration-in-layers).

func writeLayers(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func loadLayers(t *testing.T, paths ...string) (*Config, []string) {
	t.Helper()
	cfg, diags := Load(paths, Options{Kinds: kinds, evalTimeout: time.Minute})
	return cfg, FormatDiagnostics(diags)
}

func TestLayersDirectoryMerges(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "pilotfish.d")
	writeLayers(t, dir, map[string]string{
		"pilotfish.d/10-base.hcl": `
stop_timeout = "7s"
control {
  socket = "/tmp/base.sock"
}
job "db" {
  exec = "sleep 1"
}
telemetry {
  listen = ":9090"
  metric "base_total" {
    type = "counter"
  }
}
`,
		"pilotfish.d/20-app.json": `{
  "job": {"app": {"exec": "sleep 1", "when": {"source": "db", "once": "started"}}},
  "telemetry": {"metric": {"app_total": {"type": "counter"}}}
}`,
		"pilotfish.d/3-late.hcl":      `job "late" { exec = "true" }`,
		"pilotfish.d/.hidden.hcl":     `this is not HCL`,
		"pilotfish.d/README.md":       `not read`,
		"pilotfish.d/sub/99-deep.hcl": `this is not HCL either`,
		"pilotfish.d/backup.hcl.orig": `nor this`,
		"pilotfish.d/00-empty.hcl":    ``,
		"extra.hcl":                   `job "extra" { exec = "true" }`,
	})
	// A symbolic link to a file is read (a Kubernetes ConfigMap's files are links).
	if err := os.Symlink(filepath.Join(dir, "extra.hcl"), filepath.Join(d, "40-link.hcl")); err != nil {
		t.Fatal(err)
	}
	cfg, diags := loadLayers(t, d)
	if cfg == nil {
		t.Fatalf("refused:\n%s", strings.Join(diags, "\n"))
	}
	wantFiles := []string{"00-empty.hcl", "10-base.hcl", "20-app.json", "3-late.hcl", "40-link.hcl"} // lexical, not numeric
	var files []string
	for _, f := range cfg.Files {
		files = append(files, filepath.Base(f))
	}
	if !slices.Equal(files, wantFiles) {
		t.Errorf("files %q, want %q", files, wantFiles)
	}
	var jobs []string
	for _, j := range cfg.Jobs {
		jobs = append(jobs, j.Name)
	}
	if want := []string{"db", "app", "late", "extra"}; !slices.Equal(jobs, want) {
		t.Errorf("jobs %q, want %q (in file order)", jobs, want)
	}
	if cfg.StopTimeout != 7*time.Second || cfg.Control.Socket != "/tmp/base.sock" {
		t.Errorf("settings of 10-base.hcl not taken: stop_timeout %s, socket %s", cfg.StopTimeout, cfg.Control.Socket)
	}
	if cfg.Telemetry == nil || cfg.Telemetry.Listen != ":9090" || len(cfg.Telemetry.Metrics) != 2 {
		t.Errorf("telemetry of both files not merged: %+v", cfg.Telemetry)
	}
	if !slices.Equal(cfg.Sources, []string{d}) || cfg.Path != d {
		t.Errorf("sources %q, path %q; want the directory as given", cfg.Sources, cfg.Path)
	}

	// Files and directories together, a file named twice read once.
	cfg, diags = loadLayers(t, filepath.Join(dir, "extra.hcl"), filepath.Join(d, "10-base.hcl"), filepath.Join(dir, "extra.hcl"))
	if cfg == nil || len(cfg.Jobs) != 2 || cfg.Jobs[0].Name != "extra" {
		t.Fatalf("two files: %+v\n%s", cfg, strings.Join(diags, "\n"))
	}
}

// A name defined twice, or a setting made twice, is an error naming both positions.
func TestLayersDuplicatesNameBothPositions(t *testing.T) {
	for name, c := range map[string]struct {
		a, b string
		want string // a regexp; A and B stand for the files
	}{
		"job":      {`job "web" { exec = "true" }`, "\n\njob \"web\" {\n  exec = \"false\"\n}", `^B:3:5: job "web" is defined twice \(first at A:1:5\)$`},
		"watch":    {`watch "db" { service = "db" }`, `watch "db" { service = "db2" }`, `^B:1:7: watch "db" is defined twice \(first at A:1:7\)$`},
		"template": {`template "t" { contents = "x" }`, `template "t" { contents = "y" }`, `^B:1:10: template "t" is defined twice \(first at A:1:10\)$`},
		"attribute": {"job \"a\" { exec = \"true\" }\nstop_timeout = \"3s\"", `stop_timeout = "4s"`,
			`^B:1:1: "stop_timeout" is set twice \(first at A:2:1\); set it in one file only$`},
		"control": {"control {\n  socket = \"/a\"\n}", "\ncontrol {\n  socket = \"/b\"\n}", `^B:2:1: only one "control" block is allowed \(the first is at A:1:1\)$`},
		"consul":  {`consul { address = "a:8500" }`, `consul { address = "b:8500" }`, `^B:1:1: only one "consul" block is allowed \(the first is at A:1:1\)$`},
		"logging": {`logging { level = "debug" }`, `logging { level = "info" }`, `^B:1:1: only one "logging" block is allowed \(the first is at A:1:1\)$`},
		"telemetry setting": {`telemetry { listen = ":1" }`, `telemetry { listen = ":2" }`,
			`^B:1:13: telemetry "listen" is set twice \(first at A:1:13\); set it in one file only$`},
		"metric": {"telemetry {\n  metric \"m\" {\n    type = \"counter\"\n  }\n}", "telemetry {\n  metric \"m\" {\n    type = \"gauge\"\n  }\n}",
			`^B:2:10: metric "m" is declared twice \(first at A:2:10\)$`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")
			writeLayers(t, dir, map[string]string{"a.hcl": c.a, "b.hcl": c.b})
			cfg, diags := loadLayers(t, a, b)
			if cfg != nil {
				t.Fatal("accepted")
			}
			re := regexp.MustCompile(strings.NewReplacer("A", regexp.QuoteMeta(a), "B", regexp.QuoteMeta(b)).Replace(c.want))
			if !slices.ContainsFunc(diags, re.MatchString) {
				t.Errorf("no diagnostic matching %s in:\n%s", re, strings.Join(diags, "\n"))
			}
		})
	}
}

func TestLayersErrors(t *testing.T) {
	dir := t.TempDir()
	writeLayers(t, dir, map[string]string{
		"empty/README.md": "",
		"ok.hcl":          `job "a" { exec = "true" }`,
		"cp.json5":        `{ jobs: [] }`,
		"bad/1.hcl":       "job \"a\" {\n  exec = [\n}",
		"bad/2.hcl":       "job \"b\" {\n  exec = \"true\"\n  colour = = 1\n}",
	})
	for name, c := range map[string]struct {
		paths []string
		want  []string
	}{
		"missing":                     {[]string{filepath.Join(dir, "ok.hcl"), filepath.Join(dir, "nope.hcl")}, []string{"nope.hcl:1:1: Cannot read configuration"}},
		"empty dir":                   {[]string{filepath.Join(dir, "empty")}, []string{"holds no *.hcl or *.json file"}},
		"json5 too":                   {[]string{filepath.Join(dir, "ok.hcl"), filepath.Join(dir, "cp.json5")}, []string{"cp.json5:1:1: Configuration cannot be combined"}},
		"syntax errors of every file": {[]string{filepath.Join(dir, "bad")}, []string{"bad/1.hcl:3:", "bad/2.hcl:3:"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, diags := Load(c.paths, Options{Kinds: kinds, Readers: map[string]Reader{".json5": func(string, []byte, Options) (*Config, hcl.Diagnostics) { return nil, nil }}})
			if cfg != nil {
				t.Fatal("accepted")
			}
			text := strings.Join(FormatDiagnostics(diags), "\n")
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("no %q in:\n%s", w, text)
				}
			}
		})
	}
}

// "Did you mean" for every unknown key and block a job takes, across the keys of every job,
// of its kind and of `timeout`.
func TestSuggestKeys(t *testing.T) {
	_, diags := parse(t, `
job "web" {
  exec    = "true"
  restart = "unlimited"
  timout  = "1s"
  helth {
    tcp = "127.0.0.1:1"
  }
  zzzzzz = 1
}
`, nil)
	text := strings.Join(diags, "\n")
	for _, want := range []string{`"restart" is not expected here. Did you mean "restarts"?`, `"timout" is not expected here. Did you mean "timeout"?`,
		`"helth" are not expected here. Did you mean "health"?`} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if strings.Contains(text, `"zzzzzz" is not expected here. Did you mean`) {
		t.Errorf("a suggestion for a name far from every key:\n%s", text)
	}
}

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n    int
		noun string
		want string
	}{{0, "error", "0 errors"}, {1, "error", "1 error"}, {2, "warning", "2 warnings"}, {1, "watch", "1 watch"}, {3, "watch", "3 watches"}, {2, "job", "2 jobs"}} {
		if got := Plural(c.n, c.noun); got != c.want {
			t.Errorf("Plural(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}
