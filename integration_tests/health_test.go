package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// httpServer is an exec list running Python's HTTP server on a loopback port.
func httpServer(port int) string {
	return fmt.Sprintf(`["%s", "-m", "http.server", "%d", "--bind", "127.0.0.1", "--directory", "${env.TESTDIR}"]`, python, port)
}

// docs/configuration.md: every health probe kind, with a case that must pass and one that must fail.
func TestHealthProbes(t *testing.T) {
	t.Parallel()

	type check struct {
		job     string
		healthy bool   // want healthy (else unhealthy)
		detail  string // in the check message
	}
	cases := []struct {
		name   string
		cfg    func(port, other int) string
		checks []check
		// before runs after start; it may create files the probes look for.
		before func(t *testing.T, p *instance)
	}{
		{
			name: "http",
			cfg: func(port, other int) string {
				return fmt.Sprintf(`
job "srv" {
  exec = %s
  health {
    http     = "http://127.0.0.1:%d/"
    interval = "200ms"
  }
}
job "missing" {
  exec = "sleep 1000"
  when {
    source = "srv"
    once   = "healthy"
  }
  health {
    http     = "http://127.0.0.1:%d/no-such-page"
    interval = "100ms"
    failures = 2
  }
}
`, httpServer(port), port, port)
			},
			checks: []check{{"srv", true, "200"}, {"missing", false, "404"}},
		},
		{
			name: "tcp",
			cfg: func(port, other int) string {
				return fmt.Sprintf(`
job "srv" {
  exec = %s
  health {
    tcp      = "127.0.0.1:%d"
    interval = "200ms"
  }
}
job "closed" {
  exec = "sleep 1000"
  when {
    source = "srv"
    once   = "healthy"
  }
  health {
    tcp      = "127.0.0.1:%d"
    interval = "100ms"
    failures = 2
  }
}
`, httpServer(port), port, other)
			},
			checks: []check{{"srv", true, ""}, {"closed", false, "refused"}},
		},
		{
			name: "port",
			// The server is a child of the job's shell: the port is bound by the job's tree.
			// Job "other" checks the same port, which its own processes do not bind.
			cfg: func(port, other int) string {
				return fmt.Sprintf(`
job "srv" {
  exec = ["/bin/sh", "-c", "\"$0\" \"$@\" & wait", "%s", "-m", "http.server", "%d", "--bind", "127.0.0.1", "--directory", "${env.TESTDIR}"]
  health {
    port     = %d
    interval = "200ms"
  }
}
job "other" {
  exec = "sleep 1000"
  when {
    source = "srv"
    once   = "healthy"
  }
  health {
    port     = %d
    interval = "100ms"
    failures = 2
  }
}
`, python, port, port, port)
			},
			checks: []check{{"srv", true, "pid"}, {"other", false, "not by this job"}},
		},
		{
			name: "exec",
			cfg: func(int, int) string {
				return `
job "probed" {
  exec = "sleep 1000"
  health {
    exec     = ["test", "-f", "${env.TESTDIR}/ok"]
    interval = "100ms"
  }
}
job "failing" {
  exec = "sleep 1000"
  health {
    exec     = ["/bin/sh", "-c", "echo not today; exit 3"]
    interval = "100ms"
    failures = 2
  }
}
`
			},
			before: func(t *testing.T, p *instance) {
				p.WaitLog(10*time.Second, is("unhealthy", "probed"), "probed unhealthy before its file exists")
				writeFile(t, filepath.Join(p.Dir, "ok"), "", 0o644)
			},
			checks: []check{{"probed", true, ""}, {"failing", false, "not today"}},
		},
		{
			name: "log",
			cfg: func(int, int) string {
				return `
job "logger" {
  exec = ` + sh(`echo booting; while [ ! -f "$TESTDIR/go" ]; do sleep 0.05; done; echo "server ready on port 8080"; exec sleep 1000`) + `
  health {
    log = "ready on port [0-9]+"
  }
}
job "quiet" {
  exec = ` + sh(`echo booting; exec sleep 1000`) + `
  health {
    log = "ready on port [0-9]+"
  }
}
`
			},
			before: func(t *testing.T, p *instance) {
				p.WaitStdout(10*time.Second, `^\[logger\] booting$`)
				if p.CountLogs(is("healthy", "logger")) > 0 {
					t.Fatalf("logger healthy before it logged the line")
				}
				writeFile(t, filepath.Join(p.Dir, "go"), "", 0o644)
			},
			checks: []check{{"logger", true, "server ready on port 8080"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ports := freePorts(t, 2)
			port, other := ports[0], ports[1]
			p := start(t, opts{Config: jsonLogs + c.cfg(port, other)})
			p.WaitStarted()
			if c.before != nil {
				c.before(t, p)
			}
			for _, ch := range c.checks {
				msg := "unhealthy"
				if ch.healthy {
					msg = "healthy"
				}
				e := p.WaitLog(15*time.Second, is(msg, ch.job), ch.job+" "+msg)
				if !strings.Contains(e.str("check"), ch.detail) {
					t.Errorf("%s %s: check %q, want it to mention %q", ch.job, msg, e.str("check"), ch.detail)
				}
				if !ch.healthy && p.CountLogs(is("healthy", ch.job)) > 0 {
					t.Errorf("%s was reported healthy", ch.job)
				}
			}
			if c.name == "log" && p.CountLogs(is("healthy", "quiet")) > 0 {
				t.Errorf("quiet is healthy though it never logged the line")
			}
			p.Signal(syscall.SIGTERM)
			if code := p.Wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
		})
	}
}

// docs/guarantees.md#9: healthy and unhealthy are published on changes only, not on every check.
func TestHealthEventsOnlyOnChange(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "s" {
  exec = "sleep 1000"
  health {
    exec     = ` + probed("s") + `
    interval = "100ms"
    failures = 1
  }
}
job "onhealthy" {
  exec = ` + sh(`echo >> "$TESTDIR/healthy.runs"`) + `
  when {
    source = "s"
    each   = "healthy"
  }
}
job "onunhealthy" {
  exec = ` + sh(`echo >> "$TESTDIR/unhealthy.runs"`) + `
  when {
    source = "s"
    each   = "unhealthy"
  }
}
`
	p := start(t, opts{Config: cfg})
	probes := filepath.Join(p.Dir, "s.probes")
	ok := filepath.Join(p.Dir, "s.ok")
	count := func(f string) int { return len(fileLines(t, filepath.Join(p.Dir, f))) }
	// settle waits for 5 more checks of s, then checks the counts of trigger runs.
	settle := func(wantHealthy, wantUnhealthy int) {
		t.Helper()
		waitFor(t, 10*time.Second, func() bool {
			return count("healthy.runs") == wantHealthy && count("unhealthy.runs") == wantUnhealthy
		}, "%d healthy and %d unhealthy runs", wantHealthy, wantUnhealthy)
		n := len(fileLines(t, probes))
		waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, probes)) >= n+5 }, "5 more checks")
		if h, u := count("healthy.runs"), count("unhealthy.runs"); h != wantHealthy || u != wantUnhealthy {
			t.Fatalf("after 5 more checks: %d healthy and %d unhealthy runs, want %d and %d (events on changes only)", h, u, wantHealthy, wantUnhealthy)
		}
	}
	settle(0, 1) // failing from the start: one unhealthy
	writeFile(t, ok, "", 0o644)
	settle(1, 1)
	if err := os.Remove(ok); err != nil {
		t.Fatal(err)
	}
	settle(1, 2)
	writeFile(t, ok, "", 0o644)
	settle(2, 2)
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
