package integration

// Black-box tests of the job kinds cron, inetd and webhook (docs/kinds.md, docs/events.md, docs/metrics.md): the real
// binary as PID 1, real clients (nc, socat, curl, python3, Go's net and net/http), real
// time. This file holds the `plan` test and the check of the examples of docs/kinds.md.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docs/cli.md: `plan` lists every job with its kind.
func TestKindsPlan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.hcl"), `
job "backup" {
  kind     = "cron"
  schedule = "0 3 * * *"
  timezone = "Europe/Paris"
  exec     = ["true"]
}
job "echo" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1:7007"
  exec   = ["cat"]
}
job "alert" {
  kind = "webhook"
  url  = "http://127.0.0.1:9/hook"
  when {
    source = "backup"
    each   = "exitFailed"
  }
}
job "svc" {
  exec = "sleep 1000"
}
`, 0o644)
	r := runCmd(t, dir, "plan", "-config", "p.hcl")
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s", r.code, r.stderr)
	}
	for job, kind := range map[string]string{"backup": "cron", "echo": "inetd", "alert": "webhook", "svc": "exec"} {
		if !regexp.MustCompile(`(?m)^\s+` + job + `\s+` + kind + `\s`).MatchString(r.stdout) {
			t.Errorf("plan does not show job %s as kind %s:\n%s", job, kind, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^\s+alert\s+webhook\s+each backup\.exitFailed`).MatchString(r.stdout) {
		t.Errorf("plan does not show the webhook's trigger:\n%s", r.stdout)
	}
	if order := section(r.stdout, "start order:"); len(order) != 2 || !strings.Contains(order[1], "alert") {
		t.Errorf("start order %q: the webhook should come after the cron job it reports on", order)
	}
}

// Every example of docs/kinds.md is a valid configuration (each ```hcl block that is a
// whole file, i.e. holds a job block).
func TestKindsDocExamplesValidate(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/kinds.md")
	if err != nil {
		t.Fatalf("cannot read docs/kinds.md: %v", err)
	}
	blocks := regexp.MustCompile("(?s)```hcl\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	dir := t.TempDir()
	n := 0
	for i, m := range blocks {
		if !regexp.MustCompile(`(?m)^job "`).MatchString(m[1]) {
			continue // a fragment
		}
		n++
		name := "example" + strconv.Itoa(i) + ".hcl"
		writeFile(t, filepath.Join(dir, name), m[1], 0o644)
		if r := runCmd(t, dir, "validate", "-config", name); r.code != 0 {
			t.Errorf("docs/kinds.md example #%d is not valid (exit %d):\n%s\n%s", i, r.code, m[1], r.stderr)
		}
	}
	if n < 3 {
		t.Errorf("docs/kinds.md has %d complete examples, want one per kind at least", n)
	}
}
