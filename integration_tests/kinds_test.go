package integration

// Black-box tests of the job kinds cron, inetd and webhook (SPEC §2.1, §3, §5): the real
// binary as PID 1, real clients (nc, socat, curl, python3, Go's net and net/http), real
// time. This file holds what the kinds_*_test.go files share, the `plan` test and the
// check of the examples of docs/kinds.md.

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// kindsPF is one pilotfish started for a kinds test: PID 1 of a namespace, JSON logs on
// stderr, its control socket in the test's directory, and every bus event recorded from
// the first one on.
type kindsPF struct {
	*instance
	t    testing.TB
	sock string
	c    *client.Client

	mu     sync.Mutex
	evs    []client.Event
	evWake chan struct{}
}

// startKinds starts pilotfish with cfg (JSON logs are added) and waits until its control
// socket answers.
func startKinds(t testing.TB, cfg string, o ...opts) *kindsPF {
	t.Helper()
	var op opts
	if len(o) > 0 {
		op = o[0]
	}
	op.Config = jsonLogs + cfg
	p, sock := startCtl(t, op)
	k := &kindsPF{instance: p, t: t, sock: sock, c: client.New(sock), evWake: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var since uint64
		_ = k.c.Events(ctx, &since, true, func(e client.Event) error {
			k.mu.Lock()
			k.evs = append(k.evs, e)
			close(k.evWake)
			k.evWake = make(chan struct{})
			k.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return k
}

func (k *kindsPF) ctx() context.Context { return ctxFor(k.t, 20*time.Second) }

// events returns the events recorded so far; with source set, only that source's.
func (k *kindsPF) events(source string) []client.Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []client.Event
	for _, e := range k.evs {
		if source == "" || e.Source == source {
			out = append(out, e)
		}
	}
	return out
}

// replay returns the events of source in the daemon's ring now (not only those the
// recorder has received yet).
func (k *kindsPF) replay(source string) []client.Event {
	k.t.Helper()
	var since uint64
	var out []client.Event
	err := k.c.Events(k.ctx(), &since, false, func(e client.Event) error {
		if source == "" || e.Source == source {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		k.t.Fatalf("GET /v1/events: %v", err)
	}
	return out
}

// waitEvents waits until cond holds for the recorded events of source and returns them.
func (k *kindsPF) waitEvents(d time.Duration, source string, cond func([]client.Event) bool, what string) []client.Event {
	k.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		wake := k.evWake
		k.mu.Unlock()
		evs := k.events(source)
		if cond(evs) {
			return evs
		}
		select {
		case <-wake:
		case <-deadline.C:
			k.t.Fatalf("timed out after %s waiting for %s; events of %q: %v", d, what, source, eventNames(evs))
		}
	}
}

// waitCode waits for the n-th (1-based) event code of source and returns it.
func (k *kindsPF) waitCode(d time.Duration, source, code string, n int) client.Event {
	k.t.Helper()
	evs := k.waitEvents(d, source, func(evs []client.Event) bool { return len(kindsWithCode(evs, code)) >= n },
		"event #"+strconv.Itoa(n)+" "+source+"/"+code)
	return kindsWithCode(evs, code)[n-1]
}

func kindsWithCode(evs []client.Event, code string) []client.Event {
	var out []client.Event
	for _, e := range evs {
		if e.Code == code {
			out = append(out, e)
		}
	}
	return out
}

// job returns one job's status.
func (k *kindsPF) job(name string) client.Job {
	k.t.Helper()
	j, err := k.c.Job(k.ctx(), name)
	if err != nil {
		k.t.Fatalf("GET /v1/jobs/%s: %v", name, err)
	}
	return j
}

// waitState waits until the job is in state and returns its status.
func (k *kindsPF) waitState(d time.Duration, name, state string) client.Job {
	k.t.Helper()
	var j client.Job
	ok := poll(d, func() bool {
		j = k.job(name)
		return j.State == state
	})
	if !ok {
		k.t.Fatalf("job %s is %q (status %q), want %q within %s", name, j.State, j.Status, state, d)
	}
	return j
}

// metric returns the value of the series name{labels}, or -1 when it is not exposed.
func (k *kindsPF) metric(name string, labels map[string]string) float64 {
	k.t.Helper()
	text, err := k.c.Metrics(k.ctx())
	if err != nil {
		k.t.Fatalf("GET /metrics: %v", err)
	}
	return kindsMetricIn(text, name, labels)
}

// waitMetric waits until cond holds for name{labels} and returns the value.
func (k *kindsPF) waitMetric(d time.Duration, name string, labels map[string]string, cond func(float64) bool) float64 {
	k.t.Helper()
	var v float64
	if !poll(d, func() bool { v = k.metric(name, labels); return cond(v) }) {
		k.t.Fatalf("metric %s%v is %v after %s", name, labels, v, d)
	}
	return v
}

var kindsSeriesLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// kindsMetricIn finds name{labels} (labels may be a subset of the series' labels) in a
// Prometheus exposition; -1 when absent.
func kindsMetricIn(text, name string, labels map[string]string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "#") || !strings.HasPrefix(l, name) {
			continue
		}
		sp := strings.LastIndexByte(l, ' ')
		if sp < 0 {
			continue
		}
		series := l[:sp]
		n, lbl, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		got := map[string]string{}
		for _, m := range kindsSeriesLabel.FindAllStringSubmatch(lbl, -1) {
			got[m[1]] = m[2]
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(l[sp+1:], 64)
		if err == nil {
			return v
		}
	}
	return -1
}

// logsOf returns the log entries with msg for job.
func (k *kindsPF) logsOf(msg, job string) []logEntry {
	var out []logEntry
	for _, e := range k.Logs() {
		if is(msg, job)(e) {
			out = append(out, e)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------

// SPEC §1: `plan` lists every job with its kind.
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
