package core

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
	"github.com/pilotfish/pilotfish/events"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harness struct {
	t      testing.TB
	d      *Daemon
	dir    string
	cfg    string
	out    *lockedBuffer
	c      *client.Client
	done   chan int // receives the exit code once; see exited
	code   int
	ended  bool
	before int
}

// exited waits (bounded) for the daemon to end and returns its exit code.
func (h *harness) exited(within time.Duration) (int, bool) {
	if h.ended {
		return h.code, true
	}
	select {
	case h.code = <-h.done:
		h.ended = true
		return h.code, true
	case <-time.After(within):
		return 0, false
	}
}

// start runs a daemon in this process with the given configuration (a control block with
// a socket in the test's directory is added).
func start(t testing.TB, hcl string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), out: &lockedBuffer{}, done: make(chan int, 1), before: runtime.NumGoroutine()}
	h.cfg = filepath.Join(h.dir, "pilotfish.hcl")
	h.write(hcl)
	d, code := New(Options{ConfigPaths: []string{h.cfg}, Env: append(os.Environ(), "TESTDIR="+h.dir), Stdout: h.out, Stderr: h.out, Version: "test"})
	if d == nil {
		t.Fatalf("config refused (%d):\n%s", code, h.out)
	}
	h.d = d
	go func() { h.done <- d.Run() }()
	h.c = client.New(filepath.Join(h.dir, "pf.sock"))
	h.waitFor("control socket", func() bool {
		_, err := h.c.Ping(context.Background())
		_, ended := h.exited(0)
		return err == nil || ended
	})
	t.Cleanup(func() {
		if _, ok := h.exited(0); !ok {
			d.Shutdown("test over")
			h.exited(time.Minute)
		}
	})
	return h
}

func (h *harness) write(hcl string) {
	h.t.Helper()
	full := "control {\n  socket = \"" + filepath.Join(h.dir, "pf.sock") + "\"\n}\n" + hcl
	if err := os.WriteFile(h.cfg, []byte(full), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; output:\n%s", what, h.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) job(name string) client.Job {
	h.t.Helper()
	j, err := h.c.Job(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *harness) stop() (int, time.Duration) {
	h.t.Helper()
	t0 := time.Now()
	h.d.Shutdown("test")
	code, ok := h.exited(20 * time.Second)
	if !ok {
		h.t.Fatalf("daemon did not stop; output:\n%s", h.out)
	}
	return code, time.Since(t0)
}

// checkNoLeaks waits for the goroutines started by the daemon to end.
func (h *harness) checkNoLeaks() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > h.before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			h.t.Fatalf("%d goroutines before, %d after:\n%s", h.before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// docs/guarantees.md#1: a subscriber that never reads stalls neither other jobs nor shutdown.
func TestStuckSubscriberStallsNothing(t *testing.T) {
	h := start(t, `
job "chatty" {
  exec     = "true"
  restarts = "unlimited"
  backoff  = { initial = "1ms", max = "2ms" }
}
job "counter" {
  exec    = ["sh", "-c", "echo x >> $TESTDIR/count"]
  overlap = "skip"
  when {
    source = "chatty"
    each   = "exitSuccess"
  }
}`)
	stuck := h.d.bus.Subscribe(events.SubscribeOptions{Name: "stuck"})
	defer stuck.Close()
	h.waitFor("many chatty runs and counter runs", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.dir, "count"))
		return h.job("chatty").Restarts > 200 && bytes.Count(b, []byte("x")) > 20
	})
	if stuck.Depth() < 200 {
		t.Fatalf("stuck subscriber holds %d events", stuck.Depth())
	}
	code, took := h.stop()
	if code != 0 || took > 2*time.Second {
		t.Fatalf("exit %d after %s", code, took)
	}
}

func TestReloadKeepsUnchangedJobs(t *testing.T) {
	h := start(t, `
job "keep" {
  exec = ["sleep", "1000"]
}
job "change" {
  exec = ["sleep", "1000"]
}
job "drop" {
  exec = ["sleep", "1000"]
}`)
	h.waitFor("all running", func() bool {
		st, _ := h.c.Status(context.Background())
		n := 0
		for _, j := range st.Jobs {
			if j.State == "running" {
				n++
			}
		}
		return n == 3
	})
	keepPid, changePid := h.job("keep").Pid, h.job("change").Pid

	// An invalid file changes nothing.
	h.write("job \"keep\" {\n  exec = 42\n}\n")
	_, err := h.c.Reload(context.Background())
	var apiErr *client.APIError
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != 400 || len(apiErr.Diagnostics) == 0 || !strings.Contains(apiErr.Diagnostics[0], "pilotfish.hcl:5:") {
		t.Fatalf("invalid reload: %v", err)
	}
	if h.job("keep").Pid != keepPid || h.job("drop").State != "running" {
		t.Fatal("invalid reload disturbed a job")
	}

	h.write(`
job "keep" {
  exec = ["sleep", "1000"]
}
job "change" {
  exec = ["sleep", "999"]
}
job "add" {
  exec = ["sleep", "1000"]
  when {
    source = "keep"
    once   = "started"
  }
}`)
	res, err := h.c.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Changed, ",") != "change" || strings.Join(res.Added, ",") != "add" || strings.Join(res.Removed, ",") != "drop" {
		t.Fatalf("reload answer %+v", res)
	}
	if h.job("keep").Pid != keepPid {
		t.Fatal("unchanged job restarted")
	}
	h.waitFor("changed and added jobs running", func() bool {
		c, a := h.job("change"), h.job("add")
		return c.State == "running" && c.Pid != changePid && a.State == "running"
	})
	if _, err := h.c.Job(context.Background(), "drop"); err == nil {
		t.Fatal("removed job still listed")
	}
	h.stop()
	h.checkNoLeaks()
}

func asAPIError(err error, target **client.APIError) bool {
	e, ok := err.(*client.APIError)
	if ok {
		*target = e
	}
	return ok
}

// Fifty reloads mixing valid and invalid files while jobs run: every answer is clear, the
// daemon keeps answering, and the unchanged job is never disturbed.
func TestReloadStorm(t *testing.T) {
	base := `
job "steady" {
  exec = ["sleep", "1000"]
}
`
	h := start(t, base)
	h.waitFor("steady running", func() bool { return h.job("steady").State == "running" })
	pid := h.job("steady").Pid
	for i := 0; i < 50; i++ {
		switch i % 3 {
		case 0:
			h.write(base + "job \"extra\" {\n  exec = [\"sleep\", \"" + strings.Repeat("1", i%5+1) + "\"]\n}\n")
		case 1:
			h.write(base + "job \"broken\" {\n  exec = \n}\n")
		case 2:
			h.write(base)
		}
		_, err := h.c.Reload(context.Background())
		var apiErr *client.APIError
		if i%3 == 1 {
			if !asAPIError(err, &apiErr) || apiErr.StatusCode != 400 {
				t.Fatalf("reload %d of an invalid file: %v", i, err)
			}
		} else if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	if j := h.job("steady"); j.Pid != pid || j.State != "running" || j.Restarts != 0 {
		t.Fatalf("steady job disturbed: %+v", j)
	}
	h.d.mu.Lock()
	ok, invalid := h.d.reloads[ReloadOK], h.d.reloads[ReloadInvalid]
	h.d.mu.Unlock()
	if ok != 33 || invalid != 17 {
		t.Fatalf("reloads ok=%d invalid=%d", ok, invalid)
	}
	h.stop()
}

// A job added by a reload that waits for a state an unchanged job is already in starts.
func TestReloadedJobSeesCurrentState(t *testing.T) {
	h := start(t, `
job "db" {
  exec = ["sleep", "1000"]
  health {
    exec     = ["true"]
    interval = "1s"
  }
}`)
	h.waitFor("db healthy", func() bool { return h.job("db").Health == "healthy" })
	h.write(`
job "db" {
  exec = ["sleep", "1000"]
  health {
    exec     = ["true"]
    interval = "1s"
  }
}
job "app" {
  exec = ["sleep", "1000"]
  when {
    source = "db"
    once   = "healthy"
  }
}`)
	if _, err := h.c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitFor("app running", func() bool { return h.job("app").State == "running" })
	h.stop()
}

func TestExitsByItselfWhenNothingCanRun(t *testing.T) {
	h := start(t, `
job "once" {
  exec = "true"
}
job "after" {
  exec = "true"
  when {
    source = "once"
    once   = "exitSuccess"
  }
}
job "never" {
  exec = "true"
  when {
    source = "once"
    once   = "exitFailed"
  }
}`)
	code, ok := h.exited(10 * time.Second)
	if !ok || code != 0 {
		t.Fatalf("exit code %d, exited %v:\n%s", code, ok, h.out)
	}
	if !strings.Contains(h.out.String(), "no job is running or can start again") {
		t.Fatalf("output:\n%s", h.out)
	}
	h.checkNoLeaks()
}
