package integration

// What the notify_*_test.go and syslog_*_test.go files share: a pilotfish started with JSON
// logs and its control socket in the test's directory, every bus event recorded from the
// first one on, metrics read from /metrics; optionally as PID 1 of a namespace with a
// private /dev (so that the default /dev/log is the test's own and the host's is never
// touched) or with its stdout sent to a file (benchmarks).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// nsOpts extends opts for the notify and syslog tests.
type nsOpts struct {
	opts
	// PrivateDev gives the namespace its own /dev: a directory of the test (TESTDIR/dev,
	// also reachable from the host) with null, zero, random and urandom bound in. pilotfish
	// then creates the default /dev/log there.
	PrivateDev bool
	// Stdout, if set, receives pilotfish's stdout instead of memory.
	Stdout *os.File
	// Quiet leaves debug logs out (benchmarks).
	Quiet bool
}

// nsPF is one running pilotfish of a notify or syslog test.
type nsPF struct {
	*instance
	t    testing.TB
	sock string
	c    *client.Client

	mu     sync.Mutex
	evs    []client.Event
	evWake chan struct{}
}

// nsStart starts pilotfish with cfg (JSON logs and a control socket are added), waits
// until the control socket answers and records the bus events.
func nsStart(t testing.TB, cfg string, o nsOpts) *nsPF {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	sock := filepath.Join(o.Dir, "pf.sock")
	logs := jsonLogs
	if o.Quiet {
		logs = "logging {\n  format = \"json\"\n  level  = \"info\"\n}\n"
	}
	o.Config = logs + cfg + controlBlock(sock)
	var p *instance
	if o.PrivateDev || o.Stdout != nil {
		p = nsLaunch(t, o)
	} else {
		p = start(t, o.opts)
	}
	waitPing(t, p, sock, 10*time.Second)
	k := &nsPF{instance: p, t: t, sock: sock, c: client.New(sock), evWake: make(chan struct{})}
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

// nsLaunch is the harness's start with a private /dev and/or stdout to a file.
func nsLaunch(t testing.TB, o nsOpts) *instance {
	t.Helper()
	if !o.Plain {
		requirePID1(t)
	}
	cfgPath := filepath.Join(o.Dir, "pilotfish.hcl")
	writeFile(t, cfgPath, o.Config, 0o644)
	argv := []string{"-config", cfgPath}
	var cmd *exec.Cmd
	switch {
	case o.Plain:
		cmd = exec.Command(pilotfishBin, argv...)
	default:
		script := `set -e; mount -t tmpfs -o mode=0755 pilotfish-run /run; `
		if o.PrivateDev {
			dev := filepath.Join(o.Dir, "dev")
			if err := os.MkdirAll(dev, 0o755); err != nil {
				t.Fatal(err)
			}
			script += `for n in null zero random urandom; do : > "$DEV/$n"; mount --bind "/dev/$n" "$DEV/$n"; done; mount --bind "$DEV" /dev; `
			cmd = exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "/bin/sh", "-c",
				script + `exec "$0" "$@"`, pilotfishBin}, argv...)...)
			cmd.Env = append(cmd.Env, "DEV="+dev)
		} else {
			cmd = exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "/bin/sh", "-c",
				script + `exec "$0" "$@"`, pilotfishBin}, argv...)...)
		}
	}
	p := &instance{t: t, Dir: o.Dir, Stdout: newStream(), Stderr: newStream(), pid1: !o.Plain, cmd: cmd, done: make(chan struct{})}
	cmd.Dir = o.Dir
	cmd.Env = append(append(append(os.Environ(), "TESTDIR="+o.Dir), cmd.Env...), o.Env...)
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	if o.Stdout != nil {
		cmd.Stdout = o.Stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start pilotfish: %v", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		p.exitAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(p.cleanup)
	return p
}

func (k *nsPF) ctx() context.Context { return ctxFor(k.t, 20*time.Second) }

// events returns the events recorded so far; with source set, only that source's.
func (k *nsPF) events(source string) []client.Event {
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

// codes returns the events of source with code.
func (k *nsPF) codes(source, code string) []client.Event {
	var out []client.Event
	for _, e := range k.events(source) {
		if e.Code == code {
			out = append(out, e)
		}
	}
	return out
}

// waitCode waits for the n-th (1-based) event code of source and returns it.
func (k *nsPF) waitCode(d time.Duration, source, code string, n int) client.Event {
	k.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		wake := k.evWake
		k.mu.Unlock()
		if evs := k.codes(source, code); len(evs) >= n {
			return evs[n-1]
		}
		select {
		case <-wake:
		case <-deadline.C:
			k.t.Fatalf("timed out after %s waiting for event #%d %s/%s; events of %s: %v", d, n, source, code,
				source, eventNames(k.events(source)))
		}
	}
}

// job returns one job's status.
func (k *nsPF) job(name string) client.Job {
	k.t.Helper()
	j, err := k.c.Job(k.ctx(), name)
	if err != nil {
		k.t.Fatalf("GET /v1/jobs/%s: %v", name, err)
	}
	return j
}

// waitJob waits until cond holds for the job's status and returns it.
func (k *nsPF) waitJob(d time.Duration, name string, cond func(client.Job) bool, what string) client.Job {
	k.t.Helper()
	var j client.Job
	if !poll(d, func() bool { j = k.job(name); return cond(j) }) {
		k.t.Fatalf("job %s: %s did not happen within %s; last status %+v", name, what, d, j)
	}
	return j
}

// statusOf returns the job's entry of GET /v1/status (the list, not /v1/jobs/NAME).
func (k *nsPF) statusOf(name string) client.Job {
	k.t.Helper()
	st, err := k.c.Status(k.ctx())
	if err != nil {
		k.t.Fatalf("GET /v1/status: %v", err)
	}
	for _, j := range st.Jobs {
		if j.Name == name {
			return j
		}
	}
	k.t.Fatalf("GET /v1/status has no job %q: %+v", name, st.Jobs)
	return client.Job{}
}

// cli runs a client subcommand against this pilotfish and returns its result.
func (k *nsPF) cli(args ...string) result {
	k.t.Helper()
	return runCmd(k.t, k.Dir, append(args[:1:1], append([]string{"-socket", k.sock}, args[1:]...)...)...)
}

// metric returns the value of name{labels}, or -1 when the series is not exposed.
func (k *nsPF) metric(name string, labels map[string]string) float64 {
	k.t.Helper()
	text, err := k.c.Metrics(k.ctx())
	if err != nil {
		k.t.Fatalf("GET /metrics: %v", err)
	}
	return nsMetricIn(text, name, labels)
}

// waitMetric waits until cond holds for name{labels} and returns the value.
func (k *nsPF) waitMetric(d time.Duration, name string, labels map[string]string, cond func(float64) bool) float64 {
	k.t.Helper()
	var v float64
	if !poll(d, func() bool { v = k.metric(name, labels); return cond(v) }) {
		k.t.Fatalf("metric %s%v is %v after %s", name, labels, v, d)
	}
	return v
}

// logsOf returns pilotfish's log entries with msg for job ("" = any job).
func (k *nsPF) logsOf(msg, job string) []logEntry {
	var out []logEntry
	for _, e := range k.Logs() {
		if is(msg, job)(e) {
			out = append(out, e)
		}
	}
	return out
}

var nsSeriesLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// nsMetricIn finds name{labels} (labels may be a subset of the series' labels) in a
// Prometheus exposition; -1 when absent.
func nsMetricIn(text, name string, labels map[string]string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "#") || !strings.HasPrefix(l, name) {
			continue
		}
		sp := strings.LastIndexByte(l, ' ')
		if sp < 0 {
			continue
		}
		n, lbl, _ := strings.Cut(l[:sp], "{")
		if n != name {
			continue
		}
		got := map[string]string{}
		for _, m := range nsSeriesLabel.FindAllStringSubmatch(lbl, -1) {
			got[m[1]] = m[2]
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		if v, err := strconv.ParseFloat(l[sp+1:], 64); err == nil {
			return v
		}
	}
	return -1
}

// inNS is the path of a file of pilotfish's mount namespace (its private /run, /dev), as
// seen from the host.
func (k *nsPF) inNS(path string) string {
	return fmt.Sprintf("/proc/%d/root%s", k.PID(), path)
}

// hostPID translates a PID of pilotfish's namespace into the host's (0 if unknown).
func (k *nsPF) hostPID(nsPID int) int {
	if !k.pid1 {
		return nsPID
	}
	for _, p := range append([]int{k.PID()}, descendants(k.PID())...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f, ok := strings.CutPrefix(l, "NSpid:"); ok {
				ids := strings.Fields(f)
				if len(ids) > 0 && ids[len(ids)-1] == strconv.Itoa(nsPID) {
					return p
				}
			}
		}
	}
	return 0
}

// nsPython writes a Python program into dir and returns its path.
func nsPython(t testing.TB, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	writeFile(t, p, src, 0o755)
	return p
}
