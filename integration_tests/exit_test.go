package integration

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docs/jobs.md, docs/guarantees.md#2: the exit code tells what happened.
func TestExitCodeOfMainJob(t *testing.T) {
	t.Parallel()

	t.Run("main exits 3", func(t *testing.T) {
		t.Parallel()
		p := start(t, opts{Config: jsonLogs, Main: []string{"sh", "-c", "exit 3"}})
		if code := p.Wait(10 * time.Second); code != 3 {
			t.Fatalf("exit code %d, want 3 (the main job's)", code)
		}
	})

	t.Run("main killed by SIGKILL", func(t *testing.T) {
		t.Parallel()
		p := start(t, opts{Config: jsonLogs, Main: []string{"sh", "-c", "kill -9 $$"}})
		if code := p.Wait(10 * time.Second); code != 137 {
			t.Fatalf("exit code %d, want 137 (128+SIGKILL)", code)
		}
	})

	t.Run("main killed by pilotfish's own SIGTERM", func(t *testing.T) {
		t.Parallel()
		p := start(t, opts{Config: jsonLogs, Main: []string{"sleep", "1000"}})
		p.WaitStarted()
		p.WaitLog(10*time.Second, is("started", "main"), "main started")
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(10 * time.Second); code != 143 {
			t.Fatalf("exit code %d, want 143 (the main job died of SIGTERM during shutdown)", code)
		}
	})

	t.Run("main exits 0 while another job runs", func(t *testing.T) {
		t.Parallel()
		cfg := jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`
		p := start(t, opts{Config: cfg, Main: []string{"sh", "-c", "exit 0"}})
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
	})

	t.Run("exit_on_failure", func(t *testing.T) {
		t.Parallel()
		cfg := jsonLogs + `
exit_on_failure = true
job "bad" {
  exec = "false"
}
job "steady" {
  exec = "sleep 1000"
}
`
		p := start(t, opts{Config: cfg})
		if code := p.Wait(10 * time.Second); code != 1 {
			t.Fatalf("exit code %d, want 1 (job bad failed with exit_on_failure = true)", code)
		}
	})

	t.Run("config error", func(t *testing.T) {
		t.Parallel()
		bad := `stop_timeout = "10 parsecs"
bogus = 1
job "a" {
  exec = "true"
  when {
    source = "nosuch"
    once   = "healthy"
  }
}
job "b" {
  exec     = "true"
  restarts = "sometimes"
}
`
		// The path is given relative to the working directory and must be printed as given.
		p := start(t, opts{Config: bad, ConfigName: "bad.hcl", ConfigArg: "bad.hcl", Main: []string{"true"}})
		if code := p.Wait(10 * time.Second); code != 2 {
			t.Fatalf("exit code %d, want 2 (configuration error)", code)
		}
		stderr := p.Stderr.String()
		for _, want := range []string{`bad.hcl:1:16: `, `bad.hcl:2:1: `, `bad.hcl:6:14: `, `bad.hcl:12:14: `} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).MatchString(stderr) {
				t.Errorf("stderr has no diagnostic line starting with %q", want)
			}
		}
		if strings.Contains(stderr, p.Dir) {
			t.Errorf("diagnostics print the absolute path instead of the path as given:\n%s", stderr)
		}
	})
}

// docs/guarantees.md#4: a config with zero jobs exits at once; SIGTERM is always answered.
func TestZeroJobs(t *testing.T) {
	t.Parallel()

	for name, cfg := range map[string]string{"logging only": jsonLogs, "empty file": ""} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := start(t, opts{Config: cfg})
			code := p.Wait(5 * time.Second)
			took := p.ExitedAt().Sub(p.start)
			t.Logf("zero jobs: exited with %d after %s", code, took)
			if code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			if took > 3*time.Second {
				t.Fatalf("took %s to exit with zero jobs, want right after start-up", took)
			}
		})
	}

	t.Run("SIGTERM with one sleeping job", func(t *testing.T) {
		t.Parallel()
		cfg := jsonLogs + `
job "sleeper" {
  exec = "sleep 1000"
}
`
		p := start(t, opts{Config: cfg})
		p.WaitLog(10*time.Second, is("started", "sleeper"), "sleeper started")
		code, took := p.SignalWait(syscall.SIGTERM, 5*time.Second)
		t.Logf("SIGTERM → exit in %s", took)
		if code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		if took > time.Second {
			t.Fatalf("SIGTERM took %s to end pilotfish, want it prompt (< 1s)", took)
		}
	})
}

// docs/jobs.md: pilotfish exits by itself when nothing runs and nothing can start again.
func TestExitsWhenNothingCanRun(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "first" {
  exec = ["sh", "-c", "echo first ran"]
}
job "second" {
  exec = ["sh", "-c", "echo second ran"]
  when {
    source = "first"
    once   = "exitSuccess"
  }
}
job "never" {
  exec = ["sh", "-c", "echo never ran"]
  when {
    source = "first"
    once   = "exitFailed"
  }
}
`
	p := start(t, opts{Config: cfg})
	code := p.Wait(10 * time.Second)
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out := p.Stdout.String()
	if !strings.Contains(out, "[first] first ran") || !strings.Contains(out, "[second] second ran") {
		t.Fatalf("the oneshot jobs did not both run:\n%s", out)
	}
	if strings.Contains(out, "never ran") {
		t.Fatalf("job never ran although first succeeded")
	}
}

// docs/jobs.md: when pilotfish cannot set itself up it says so and exits non-zero at once; it
// must never hang (a hung PID 1 ignores SIGTERM and keeps the container alive forever).
func TestStartupFailureExitsPromptly(t *testing.T) {
	t.Parallel()

	t.Run("log file cannot be opened", func(t *testing.T) {
		t.Parallel()
		cfg := jsonLogs + `
job "a" {
  exec = "sleep 1000"
}
job "b" {
  exec = "true"
  logging {
    file = "/proc/no-such-dir/b.log"
  }
}
`
		p := start(t, opts{Config: cfg})
		if !p.ExitsWithin(5 * time.Second) {
			t.Fatalf("pilotfish hangs when job b's log file cannot be opened (no exit within 5s)")
		}
		code := p.Wait(time.Second)
		if code == 0 {
			t.Errorf("exit code 0, want non-zero")
		}
		if !strings.Contains(p.Stderr.String(), "b.log") {
			t.Errorf("stderr does not name the log file that failed")
		}
	})

	t.Run("control socket in use", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cfg := jsonLogs + `
control {
  socket = "${env.TESTDIR}/ctl.sock"
}
job "a" {
  exec = "sleep 1000"
}
`
		first := start(t, opts{Config: cfg, Dir: dir, ConfigName: "first.hcl"})
		first.WaitStarted()
		second := start(t, opts{Config: cfg, Dir: dir, ConfigName: "second.hcl"})
		if !second.ExitsWithin(5 * time.Second) {
			t.Fatalf("the second pilotfish hangs when its control socket is taken (no exit within 5s)")
		}
		if code := second.Wait(time.Second); code == 0 {
			t.Errorf("the second pilotfish exited 0, want non-zero")
		}
		if !strings.Contains(second.Stderr.String(), "ctl.sock") {
			t.Errorf("the second pilotfish does not name the socket it could not create")
		}
		if !first.Running() {
			t.Fatalf("the first pilotfish died")
		}
		first.Signal(syscall.SIGTERM)
		if code := first.Wait(10 * time.Second); code != 0 {
			t.Fatalf("first: exit code %d, want 0", code)
		}
	})
}

// docs/jobs.md: a main command that cannot run gives the shell's codes: 127 when it does not
// exist, 126 when it is not executable.
func TestExitCodeWhenMainCannotStart(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		cmd  string
		want int
	}{
		"main not found":      {"/no/such/command", 127},
		"main not executable": {"/etc/passwd", 126},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := start(t, opts{Config: jsonLogs, Main: []string{c.cmd}})
			if code := p.Wait(10 * time.Second); code != c.want {
				t.Fatalf("exit code %d for main command %s, want %d", code, c.cmd, c.want)
			}
		})
	}
}
