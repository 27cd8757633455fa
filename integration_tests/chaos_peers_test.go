package integration

// The fault suite (`make chaos`), dead and slow peers: every shutdown ends within the
// top-level stop_timeout plus one second whatever the outside world does (docs/jobs.md, docs/guarantees.md#limits) — a
// syslog forward target that is down, a webhook target that is down or hung, a stdout or
// stderr that nobody reads — and what is given up is counted. Each test runs the real
// binary as PID 1 against real peers: logger(1), TCP listeners that never answer, pipes
// nobody reads.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hungServer accepts TCP connections and never reads or answers; it returns its address.
func hungServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1024)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String()
}

// termWithin sends SIGTERM and checks that pilotfish exits 0 within stopTimeout plus one
// second; it returns how long that took.
func termWithin(t testing.TB, p *instance, stopTimeout time.Duration, fault string) time.Duration {
	t.Helper()
	code, took := p.SignalWait(syscall.SIGTERM, stopTimeout+10*time.Second)
	t.Logf("stop_timeout %s, %s: exited %d after %s", stopTimeout, fault, code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took > stopTimeout+time.Second {
		t.Errorf("the shutdown took %s, want at most stop_timeout + 1s = %s", took, stopTimeout+time.Second)
	}
	return took
}

// waitPipeFull waits until the pipe whose read end is r is about full (the kernel fills it
// by pages, so a large write blocks with some bytes of the last page still free): whoever
// writes into it blocks.
func waitPipeFull(t testing.TB, r *os.File, what string) {
	t.Helper()
	size, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatalf("F_GETPIPE_SZ: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool {
		n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ) // FIONREAD
		return err == nil && n >= size*3/4
	}, "%s to fill its pipe (%d bytes)", what, size)
}

// The fault of docs/jobs.md: five messages from logger queued for a forward target nobody
// listens on, then SIGTERM. pilotfish exits 0 within stop_timeout plus one second and says
// it dropped the five; meanwhile a reload is refused at once and a second SIGTERM changes
// nothing.
func TestChaosSyslogForwardDownAtShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	port := freePort(t) // nothing listens there
	k := startPF(t, `
stop_timeout = "2s"
job "log" {
  kind   = "syslog"
  listen = "unixgram://`+sock+`"
  output "fw" {
    forward = "tcp://127.0.0.1:`+strconv.Itoa(port)+`"
  }
  output "local" {
    file = "`+dir+`/local.log"
  }
}
job "app" {
  exec = "sleep 1000"
}
`+sysGuard, opts{Dir: dir})
	sysListening(t, k, "log")
	sysFlood(t, dir, sock, "message %d", 5)
	// Each message is queued for fw before local writes it.
	waitLines(t, 5*time.Second, filepath.Join(dir, "local.log"), 5)
	k.WaitLog(5*time.Second, is("cannot forward syslog messages; retrying", "log"), "the forward to fail")

	sent := time.Now()
	k.Signal(syscall.SIGTERM)
	k.WaitLog(5*time.Second, is("shutting down", ""), "shutting down")
	t0 := time.Now()
	code, _, body := rawRequest(k.sock, "POST", "/v1/reload", nil, 5*time.Second)
	t.Logf("a reload during the shutdown answered %d in %s: %s", code, time.Since(t0).Round(time.Millisecond), body)
	if code != http.StatusServiceUnavailable || time.Since(t0) > time.Second {
		t.Errorf("a reload during the shutdown answered %d after %s, want 503 at once", code, time.Since(t0))
	}
	if k.Running() {
		k.Signal(syscall.SIGTERM)
	}

	code = k.Wait(10 * time.Second)
	took := k.ExitedAt().Sub(sent)
	t.Logf("stop_timeout 2s, forward target down: exited %d after %s", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took > 3*time.Second {
		t.Errorf("the shutdown took %s, want at most stop_timeout + 1s = 3s", took)
	}
	e := k.WaitLog(time.Second, is("syslog output gave up; queued messages dropped", "log"), "the drop report")
	if e.str("output") != "fw" || e.str("dropped") != "5" || !strings.Contains(e.str("to"), strconv.Itoa(port)) {
		t.Errorf("drop report %v, want output fw, dropped 5 and the target", e)
	}
}

// A forward target that is down holds neither `pilotfish stop JOB` nor a reload that
// changes the job beyond the job's stop_timeout: the queue is dropped and counted in
// pilotfish_syslog_dropped_total, and the new outputs work.
func TestChaosSyslogForwardDownStopAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	ports := freePorts(t, 2) // nothing listens on either yet
	cfg := func(port int) string {
		return `
job "log" {
  kind         = "syslog"
  listen       = "unixgram://` + sock + `"
  stop_timeout = "1s"
  output "fw" {
    forward = "tcp://127.0.0.1:` + strconv.Itoa(port) + `"
  }
  output "local" {
    file = "` + dir + `/local.log"
  }
}
job "app" {
  exec = "sleep 1000"
}
` + sysGuard
	}
	k := startPF(t, cfg(ports[0]), opts{Dir: dir})
	sysListening(t, k, "log")
	sysFlood(t, dir, sock, "first %d", 5)
	waitLines(t, 5*time.Second, filepath.Join(dir, "local.log"), 5)

	t0 := time.Now()
	if _, err := k.c.Stop(ctxFor(t, 10*time.Second), "log"); err != nil {
		t.Fatalf("pilotfish stop log with its forward target down: %v (after %s)", err, time.Since(t0))
	}
	t.Logf("stop answered in %s", time.Since(t0).Round(time.Millisecond))
	if took := time.Since(t0); took > 2500*time.Millisecond {
		t.Errorf("stop took %s, want about the job's stop_timeout of 1s", took)
	}
	k.waitMetric(5*time.Second, "pilotfish_syslog_dropped_total", map[string]string{"job": "log"}, func(v float64) bool { return v == 5 })
	e := k.WaitLog(5*time.Second, is("syslog output gave up; queued messages dropped", "log"), "the drop report")
	if e.str("dropped") != "5" || e.str("output") != "fw" {
		t.Errorf("drop report %v, want 5 dropped by fw", e)
	}

	if _, err := k.c.Start(k.ctx(), "log"); err != nil {
		t.Fatal(err)
	}
	sysListening(t, k, "log")
	sysFlood(t, dir, sock, "second %d", 3)
	waitLines(t, 5*time.Second, filepath.Join(dir, "local.log"), 8)

	// The reload moves the forward to a target that listens.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Skipf("cannot listen on port %d any more: %v", ports[1], err)
	}
	defer ln.Close()
	writeFile(t, filepath.Join(dir, "pilotfish.hcl"), jsonLogs+cfg(ports[1])+controlBlock(k.sock), 0o644)
	t0 = time.Now()
	res, err := k.c.Reload(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("reload with the forward target down: %v (after %s)", err, time.Since(t0))
	}
	t.Logf("reload answered in %s: %+v", time.Since(t0).Round(time.Millisecond), res)
	if took := time.Since(t0); took > 2500*time.Millisecond {
		t.Errorf("the reload took %s, want about the job's stop_timeout of 1s", took)
	}
	if len(res.Changed) != 1 || res.Changed[0] != "log" {
		t.Errorf("reload changed %v, want [log]", res.Changed)
	}
	e = k.WaitLogN(5*time.Second, 2, is("syslog output gave up; queued messages dropped", "log"), "the second drop report")
	if e.str("dropped") != "3" {
		t.Errorf("drop report %v, want 3 dropped", e)
	}

	sysListening(t, k, "log")
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
	}()
	sysFlood(t, dir, sock, "third %d", 1)
	select {
	case m := <-got:
		if !strings.Contains(m, "third 0") {
			t.Errorf("the new target got %q, want the message sent after the reload", m)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the new forward target got nothing")
	}
}

// A webhook retrying toward a target that is down, one toward a target that accepts and
// never answers, and a stopping hook doing the same: a reload that changes them answers
// at once, and SIGTERM ends pilotfish within stop_timeout plus one second.
func TestChaosWebhookRetryingAtShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	down := freePorts(t, 2)
	hung := hungServer(t)
	cfg := func(downPort int) string {
		return `
stop_timeout = "2s"
job "keep" {
  exec         = "sleep 1000"
  stop_timeout = "30s"
}
job "down" {
  kind    = "webhook"
  url     = "http://127.0.0.1:` + strconv.Itoa(downPort) + `/down"
  retries = 100
  when {
    source = "keep"
    once   = "started"
  }
}
job "hung" {
  kind    = "webhook"
  url     = "http://` + hung + `/hung"
  timeout = "60s"
  retries = 100
  when {
    source = "keep"
    once   = "started"
  }
}
job "onstop" {
  kind    = "webhook"
  url     = "http://` + hung + `/onstop"
  timeout = "60s"
  retries = 100
  when {
    source = "keep"
    once   = "stopping"
  }
}
`
	}
	k := startPF(t, cfg(down[0]), opts{Dir: dir})
	k.WaitLogN(10*time.Second, 3, is("webhook failed; retrying", "down"), "down to retry")
	// docs/kinds.md: the retries back off from 100–200 ms, doubling, with jitter.
	for i, e := range k.logsOf("webhook failed; retrying", "down")[:3] {
		in, err := time.ParseDuration(e.str("in")) // JSON logs give durations as text ("150ms")
		base := 100 * time.Millisecond << i
		if err != nil || in < base || in > 2*base {
			t.Errorf("retry %d of down came after %q, want between %s and %s", i+1, e.str("in"), base, 2*base)
		}
	}
	k.waitState(5*time.Second, "hung", "running")

	retried := len(k.logsOf("webhook failed; retrying", "down"))
	writeFile(t, filepath.Join(dir, "pilotfish.hcl"), jsonLogs+cfg(down[1])+controlBlock(k.sock), 0o644)
	t0 := time.Now()
	res, err := k.c.Reload(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("reload while a webhook retries: %v", err)
	}
	t.Logf("reload answered in %s: %+v", time.Since(t0).Round(time.Millisecond), res)
	if took := time.Since(t0); took > time.Second {
		t.Errorf("the reload took %s while a webhook retried, want it at once", took)
	}
	k.WaitLogN(10*time.Second, retried+2, is("webhook failed; retrying", "down"), "the new down to retry")

	termWithin(t, k.instance, 2*time.Second, "webhooks retrying")
	if len(k.logsOf("started", "onstop")) == 0 {
		t.Errorf("the stopping hook did not run")
	}
}

// The fault of docs/jobs.md: `pilotfish … | sleep 40` — a stdout nobody reads — with a job
// flooding it. The job is stopped at once, the output pending at the deadline is dropped
// and counted on stderr, and pilotfish exits 0 within stop_timeout plus one second.
func TestChaosStdoutNobodyReads(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := start(t, opts{StdoutFile: w, Config: jsonLogs + `
stop_timeout = "3s"
job "y" {
  exec = ["yes"]
}
`})
	w.Close()
	p.WaitStarted()
	waitPipeFull(t, r, "pilotfish's stdout")

	termWithin(t, p, 3*time.Second, "stdout nobody reads")
	e := p.WaitLog(time.Second, is("output nobody read was dropped at the shutdown deadline", ""), "the drop report")
	if n, _ := strconv.Atoi(e.str("stdout_lines")); n <= 0 || e.str("stdout_bytes") == "0" {
		t.Errorf("drop report %v, want the stdout lines and bytes dropped", e)
	}
	if len(p.logsOf("stopped", "")) != 1 {
		t.Errorf("no final log line after the drop")
	}
}

// Neither stdout nor stderr is read, and jobs flood both: pilotfish's own log lines must
// not block it either. It answers the control API, and SIGTERM ends it within stop_timeout
// plus one second.
func TestChaosStdoutAndStderrNobodyReads(t *testing.T) {
	t.Parallel()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer errR.Close()
	dir := t.TempDir()
	sock := filepath.Join(dir, "pf.sock")
	p := start(t, opts{Dir: dir, StdoutFile: outW, StderrFile: errW, Config: jsonLogs + `
stop_timeout = "2s"
job "out" {
  exec = ["yes"]
}
job "err" {
  exec = ["/bin/sh", "-c", "exec yes >&2"]
}
job "chatty" {
  exec     = "true"
  restarts = "unlimited"
  backoff  = { initial = "50ms", max = "50ms" }
}
` + controlBlock(sock)})
	outW.Close()
	errW.Close()
	waitPing(t, p, sock, 10*time.Second)
	waitPipeFull(t, outR, "pilotfish's stdout")
	waitPipeFull(t, errR, "pilotfish's stderr")
	// pilotfish logs every restart of chatty: its log lines pile up behind a full stderr,
	// and the API still answers.
	for range 3 {
		if code, _, _ := rawRequest(sock, "GET", "/v1/status", nil, 2*time.Second); code != http.StatusOK {
			t.Fatalf("GET /v1/status answered %d with stdout and stderr full", code)
		}
	}

	termWithin(t, p, 2*time.Second, "stdout and stderr nobody reads")
}
