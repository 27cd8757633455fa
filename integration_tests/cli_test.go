package integration

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docs/cli.md: a file ending in .json is HCL's JSON syntax.
func TestHCLJSONConfig(t *testing.T) {
	t.Parallel()
	cfg := `{
  "logging": {"format": "json"},
  "job": {
    "first": {"exec": ["sh", "-c", "echo first ran"]},
    "second": {
      "exec": ["sh", "-c", "echo \"second after $PILOTFISH_EVENT_SOURCE with $X\""],
      "env": {"X": "a=b c"},
      "when": {"source": "first", "once": "exitSuccess"}
    }
  }
}
`
	p := start(t, opts{Config: cfg, ConfigName: "pilotfish.json"})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out := p.Stdout.String()
	for _, want := range []string{"[first] first ran\n", "[second] second after first with a=b c\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if len(p.Logs()) == 0 {
		t.Errorf("logging.format = json from the JSON config was not applied")
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.json"), `{
  "job": {
    "x": {"exec": ["true"], "restarts": "often"}
  },
  "bogus": 1
}
`, 0o644)
	r := runCmd(t, dir, "validate", "-config", "bad.json")
	if r.code != 1 {
		t.Errorf("validate of an invalid JSON config: exit %d, want 1", r.code)
	}
	if !regexp.MustCompile(`(?m)^bad\.json:3:\d+: `).MatchString(r.stderr) || !regexp.MustCompile(`(?m)^bad\.json:5:\d+: `).MatchString(r.stderr) {
		t.Errorf("validate did not report both errors of bad.json as FILE:LINE:COL:\n%s", r.stderr)
	}
}

// docs/cli.md, docs/configuration.md: `validate` reports every problem at once and exits 0 valid / 1 invalid.
func TestValidateCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.hcl"), `
stop_timeout = "2s"
job "db" {
  exec = "sleep 1000"
  stop_timeout = "5s"
  health {
    exec = ["true"]
  }
}
job "app" {
  exec = "sleep 1000"
  when {
    source = "db"
    once   = "healthy"
  }
}
`, 0o644)
	writeFile(t, filepath.Join(dir, "invalid.hcl"), `job "a" {
  exec = "true"
  when {
    source = "b"
    once   = "exitSuccess"
  }
}
job "b" {
  exec = "true"
  when {
    source = "a"
    once   = "exitSuccess"
  }
}
job "c" {
  exec = "true"
  when {
    source = "a"
    once   = "healthy"
  }
}
job "d" {
  exec         = "true"
  stop_timeout = "soon"
  colour       = "red"
}
`, 0o644)

	r := runCmd(t, dir, "validate", "-config", "good.hcl")
	if r.code != 0 {
		t.Errorf("validate good.hcl: exit %d, want 0\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "good.hcl: valid (2 jobs") {
		t.Errorf("validate good.hcl printed %q", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^good\.hcl:3:\d+: warning: .*stop_timeout`).MatchString(r.stderr) {
		t.Errorf("validate good.hcl did not warn about db's stop_timeout longer than the budget:\n%s", r.stderr)
	}

	// -config defaults to $PILOTFISH_CONFIG.
	r = runCmdEnv(t, dir, []string{"PILOTFISH_CONFIG=good.hcl"}, "validate")
	if r.code != 0 || !strings.Contains(r.stdout, "good.hcl: valid") {
		t.Errorf("validate with PILOTFISH_CONFIG=good.hcl: exit %d, stdout %q", r.code, r.stdout)
	}

	r = runCmd(t, dir, "validate", "-config", "invalid.hcl")
	if r.code != 1 {
		t.Errorf("validate invalid.hcl: exit %d, want 1", r.code)
	}
	for _, want := range []string{
		`^invalid\.hcl:\d+:\d+: .*cycle`,                   // a → b → a
		`^invalid\.hcl:18:\d+: .*can never happen`,         // a has no health block
		`^invalid\.hcl:24:\d+: .*not a duration`,           // "soon"
		`^invalid\.hcl:25:\d+: .*"colour" is not expected`, // unknown key
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(r.stderr) {
			t.Errorf("validate invalid.hcl: no diagnostic matching %q in:\n%s", want, r.stderr)
		}
	}

	r = runCmd(t, dir, "validate", "-config", "missing.hcl")
	if r.code != 1 || !strings.Contains(r.stderr, "missing.hcl") {
		t.Errorf("validate of a missing file: exit %d, stderr %q; want 1 and the path", r.code, r.stderr)
	}
}

// docs/cli.md: `plan` shows the jobs, their start order and their shutdown order.
func TestPlanCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.hcl"), `
job "web" {
  exec = "sleep 1000"
  when {
    source = "app"
    once   = "started"
  }
}
job "app" {
  exec = "sleep 1000"
  when {
    source = "db"
    once   = "healthy"
  }
}
job "db" {
  exec = "sleep 1000"
  health {
    exec = ["true"]
  }
}
job "prestop" {
  exec = "true"
  when {
    source = "app"
    once   = "stopping"
  }
}
`, 0o644)
	r := runCmd(t, dir, "plan", "-config", "p.hcl")
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s", r.code, r.stderr)
	}
	startOrder := section(r.stdout, "start order:")
	stopOrder := section(r.stdout, "shutdown order:")
	t.Logf("start order %q, shutdown order %q", startOrder, stopOrder)
	pos := func(list []string, job string) int {
		for i, layer := range list {
			for _, j := range strings.Split(layer, ", ") {
				if j == job {
					return i
				}
			}
		}
		return -1
	}
	if !(pos(startOrder, "db") == 0 && pos(startOrder, "app") == 1 && pos(startOrder, "web") == 2) {
		t.Errorf("start order %q, want db, then app, then web", startOrder)
	}
	if !(pos(stopOrder, "web") == 0 && pos(stopOrder, "app") == 1 && pos(stopOrder, "db") == 2) {
		t.Errorf("shutdown order %q, want web, then app, then db", stopOrder)
	}
	if p := pos(stopOrder, "prestop"); p < pos(stopOrder, "app") {
		t.Errorf("the stopping hook of app is stopped before app")
	}
	for _, job := range []string{"web", "app", "db", "prestop"} {
		if !regexp.MustCompile(`(?m)^\s+` + job + `\s`).MatchString(r.stdout) {
			t.Errorf("plan does not list job %s", job)
		}
	}
}

// section returns the "N. a, b" items listed under a heading of the plan.
func section(out, heading string) []string {
	_, rest, ok := strings.Cut(out, "\n"+heading+"\n")
	if !ok {
		return nil
	}
	var items []string
	re := regexp.MustCompile(`^\s+\d+\.\s+(.*)$`)
	for _, l := range strings.Split(rest, "\n") {
		m := re.FindStringSubmatch(l)
		if m == nil {
			break
		}
		items = append(items, m[1])
	}
	return items
}
