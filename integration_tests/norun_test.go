package integration

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
	"github.com/pilotfish/pilotfish/integration_tests/consulagent"
)

// A job without exec runs nothing: it is running from its trigger on with no process, its
// health probe publishes healthy and triggers the jobs that wait for it, its service is in
// Consul while it is healthy, and a stop deregisters it with no exit event.
func TestJobWithoutExec(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	k := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + `
job "nginx-public" {
  service {
    port       = 8080
    interfaces = ["static:127.0.0.1"]
  }
  health {
    exec     = ` + sh(`test -f "$TESTDIR/up"`) + `
    interval = "200ms"
    failures = 1
  }
}
job "after" {
  exec = ["sh", "-c", "echo nginx-public is up"]
  when {
    source = "nginx-public"
    once   = "healthy"
  }
}
`})
	j := k.waitState(10*time.Second, "nginx-public", "running")
	if j.Pid != 0 || j.ExitCode != nil {
		t.Fatalf("a job without exec shows pid %d, exit code %v", j.Pid, j.ExitCode)
	}
	if ids := c.passingIDs("nginx-public"); len(ids) != 0 {
		t.Fatalf("registered as passing before its check passed: %v", ids)
	}
	writeFile(t, filepath.Join(k.Dir, "up"), "", 0o644)
	k.waitJob(10*time.Second, "nginx-public", func(j client.Job) bool { return j.Health == "healthy" }, "healthy")
	k.WaitStdout(10*time.Second, `^\[after\] nginx-public is up$`)
	waitFor(t, 10*time.Second, func() bool { return len(c.passingIDs("nginx-public")) == 1 }, "passing in Consul")

	if r := k.cli("stop", "nginx-public"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	k.waitState(10*time.Second, "nginx-public", "stopped")
	waitFor(t, 10*time.Second, func() bool { return len(c.health("nginx-public", false)) == 0 }, "deregistered")
	codes := eventCodes(k.replay("nginx-public"), "nginx-public")
	if got := strings.Join(codes, " "); got != "started healthy stopping stopped" {
		t.Fatalf("events %s", got)
	}
	if code, _ := k.SignalWait(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// A job's timeout bounds each run: the run is stopped with stop_signal, killed after
// stop_timeout if it ignores it, its exit is exitFailed, and restarts apply.
func TestJobRunTimeout(t *testing.T) {
	t.Parallel()
	k := startPF(t, `
job "steady" {
  exec = ["sleep", "100000"]
}
job "slow" {
  exec     = ["sleep", "1000"]
  timeout  = "300ms"
  restarts = 1
  backoff  = { initial = "10ms", max = "20ms" }
}
job "stubborn" {
  exec         = ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]
  timeout      = "200ms"
  stop_timeout = "300ms"
}
`)
	st := k.waitState(15*time.Second, "slow", "failed")
	if st.Restarts != 1 {
		t.Fatalf("restarts %d, want 1", st.Restarts)
	}
	k.waitCode(5*time.Second, "slow", "exitFailed", 2)
	k.WaitLog(5*time.Second, func(e logEntry) bool {
		return e.job() == "slow" && e.msg() == "stopping the run" && strings.Contains(e.str("why"), "timed out after 300ms")
	}, "the timeout logged")
	st = k.waitState(15*time.Second, "stubborn", "failed")
	if st.ExitCode == nil || *st.ExitCode != 137 {
		t.Fatalf("stubborn ended with %v, want 137 (SIGKILL after stop_timeout)", st.ExitCode)
	}
}
