package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// A container in which everything failed does not report success: pilotfish exiting by
// itself with a job `failed` exits 1.
func TestSelfExitAfterFailureIsOne(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "ok" {
  exec = ["true"]
}
job "bad" {
  exec = ["sh", "-c", "exit 4"]
}
`
	p := start(t, opts{Config: cfg})
	if code := p.Wait(10 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1 (job bad failed and pilotfish exited by itself)", code)
	}
}

// A pre-stop hook written `once = "stopping"` runs at every stop: after an operator's
// restart it still runs at the container's shutdown.
func TestStoppingHookRunsAfterRestart(t *testing.T) {
	t.Parallel()
	k := startPF(t, `
job "app" {
  exec = ["sleep", "100000"]
}
job "drain" {
  exec = ["sh", "-c", "echo drained >> drains"]
  when {
    source = "app"
    once   = "stopping"
  }
}
`)
	k.waitState(10*time.Second, "app", "running")
	if r := k.cli("restart", "app"); r.code != 0 {
		t.Fatalf("restart app: %d %s", r.code, r.stderr)
	}
	k.waitState(10*time.Second, "app", "running")
	drains := filepath.Join(k.Dir, "drains")
	waitFor(t, 10*time.Second, func() bool { return strings.Count(readFileOr(drains), "drained") == 1 }, "the hook at the restart")
	if code, _ := k.SignalWait(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if n := strings.Count(readFileOr(drains), "drained"); n != 2 {
		t.Fatalf("the hook ran %d times, want 2 (the restart and the shutdown)", n)
	}
}

// The quickstart's own verb must not break it: after `pilotfish restart app`, db stays
// healthy and app runs again.
func TestQuickstartRestartApp(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", "pilotfish.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	// The example's socket is pilotfish.sock in its working directory.
	p := start(t, opts{Config: string(src)})
	sock := filepath.Join(p.Dir, "pilotfish.sock")
	waitPing(t, p, sock, 10*time.Second)
	k := &ctlPF{instance: p, sock: sock, c: client.New(sock)}
	k.waitJob(20*time.Second, "app", func(j client.Job) bool { return j.State == "running" && j.Health == "healthy" }, "app healthy")
	if r := k.cli("restart", "app"); r.code != 0 {
		t.Fatalf("restart app: %d %s", r.code, r.stderr)
	}
	k.waitState(10*time.Second, "app", "running")
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Stdout.String(), "[drain] drained") }, "the drain hook")
	// db's health is checked every 2s: give it two checks to notice a lost file.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if h := k.job("db").Health; h != "healthy" {
			t.Fatalf("db is %s after `restart app`", h)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _ := p.SignalWait(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(p.Stdout.String(), "[cleanup] db cleaned up") {
		t.Fatalf("the post-stop hook of db did not run:\n%s", tail(p.Stdout.String(), 20))
	}
}

// An interval job stopped and started by hand keeps ticking.
func TestIntervalJobTicksAfterStopStart(t *testing.T) {
	t.Parallel()
	k := startPF(t, `
job "tick" {
  exec = ["sh", "-c", "echo tick >> ticks"]
  when {
    interval = "300ms"
  }
}
job "steady" {
  exec = ["sleep", "100000"]
}
`)
	ticks := filepath.Join(k.Dir, "ticks")
	waitFor(t, 10*time.Second, func() bool { return strings.Count(readFileOr(ticks), "tick") >= 1 }, "a first tick")
	if r := k.cli("stop", "tick"); r.code != 0 {
		t.Fatalf("stop: %s", r.stderr)
	}
	if r := k.cli("start", "tick"); r.code != 0 {
		t.Fatalf("start: %s", r.stderr)
	}
	n := strings.Count(readFileOr(ticks), "tick")
	waitFor(t, 10*time.Second, func() bool { return strings.Count(readFileOr(ticks), "tick") >= n+3 }, "ticks after start")
}

func readFileOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
