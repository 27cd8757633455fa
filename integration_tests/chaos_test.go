package integration

// The fault suite (`make chaos`, also part of `make test`): pilotfish as PID 1 under storms
// a hostile world produces — kill storms, reload storms, signals at the worst moment. Each
// test bounds its own time and asserts the exit code, that nothing promised was lost, and
// that what pilotfish holds (zombies, descriptors, goroutines) stays flat.

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fdCount is the number of open descriptors of pid.
func fdCount(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("cannot list the descriptors of %d: %v", pid, err)
	}
	return len(ents)
}

// sumMetric adds up every series of name.
func (k *ctlPF) sumMetric(name string) float64 {
	k.t.Helper()
	text, err := k.c.Metrics(k.ctx())
	if err != nil {
		k.t.Fatalf("GET /metrics: %v", err)
	}
	var sum float64
	for _, s := range metricSeries(text, name) {
		sum += s.value
	}
	return sum
}

// 1,000 SIGKILLs to 20 restarting jobs: every exit is seen (no status lost to the reaper),
// no zombie is left, and pilotfish's descriptors and goroutines are what they were.
func TestChaosKillStorm(t *testing.T) {
	t.Parallel()
	const jobs, kills = 20, 1000
	var cfg strings.Builder
	for i := range jobs {
		fmt.Fprintf(&cfg, `
job "w%02d" {
  exec     = ["sleep", "100000"]
  restarts = "unlimited"
  backoff  = { initial = "10ms", max = "40ms" }
}
`, i)
	}
	k := startPF(t, cfg.String(), opts{Logs: "logging {\n  format = \"json\"\n}\n"})
	allRunning := func() bool {
		for _, j := range k.status().Jobs {
			if j.State != "running" {
				return false
			}
		}
		return true
	}
	waitFor(t, 20*time.Second, allRunning, "every job running")
	pid := k.PID()
	fds0, gr0 := fdCount(t, pid), k.sumMetric("go_goroutines")

	killed := map[int]bool{}
	deadline := time.Now().Add(90 * time.Second)
	for len(killed) < kills {
		if time.Now().After(deadline) {
			t.Fatalf("only %d kills in 90 s", len(killed))
		}
		for _, c := range nsPIDsOf(pid, "sleep\x00100000\x00") {
			h := k.hostPID(c)
			if h == 0 || killed[h] || len(killed) >= kills {
				continue
			}
			if syscall.Kill(h, syscall.SIGKILL) == nil {
				killed[h] = true
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, func() bool { return k.sumMetric("pilotfish_job_exits_total") >= kills }, "%d exits counted", kills)
	waitFor(t, 20*time.Second, allRunning, "every job running again")
	if got := k.sumMetric("pilotfish_job_exits_total"); got != kills {
		t.Fatalf("%v exits counted for %d kills", got, kills)
	}
	if z := zombiesBelow(pid); len(z) > 0 {
		t.Fatalf("zombies left: %v", z)
	}
	waitFor(t, 10*time.Second, func() bool { return fdCount(t, pid) <= fds0+2 }, "descriptors back to %d (now %d)", fds0, fdCount(t, pid))
	waitFor(t, 10*time.Second, func() bool { return k.sumMetric("go_goroutines") <= gr0+5 }, "goroutines back to %v", gr0)
	if code, took := k.SignalWait(syscall.SIGTERM, 15*time.Second); code != 0 || took > 11*time.Second {
		t.Fatalf("exit code %d after %s", code, took)
	}
}

// 50 reloads mixing valid and invalid files, concurrent API reloads and SIGHUPs: the jobs
// that never changed keep their PIDs, the control plane keeps answering, and the end state
// is the last valid file.
func TestChaosReloadStorm(t *testing.T) {
	t.Parallel()
	base := `
job "a" {
  exec = ["sleep", "100000"]
}
job "b" {
  exec = ["sleep", "100001"]
  when {
    source = "a"
    once   = "started"
  }
}
`
	extra := func(i int) string {
		if i%2 == 0 {
			return ""
		}
		return fmt.Sprintf("\njob \"extra\" {\n  exec = [\"sleep\", \"%d\"]\n}\n", 200000+i)
	}
	k := startPF(t, base)
	k.waitState(10*time.Second, "b", "running")
	pids := map[string]int{"a": k.job("a").Pid, "b": k.job("b").Pid}

	var pings sync.WaitGroup
	stop := make(chan struct{})
	var slow []time.Duration
	pings.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			code, _, _ := rawRequest(k.sock, "GET", "/v1/ping", nil, 5*time.Second)
			if el := time.Since(t0); code != 200 || el > time.Second {
				slow = append(slow, el)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	last := 0
	for i := 0; i < 50; i++ {
		cfg := base + extra(i)
		invalid := i%5 == 3
		if invalid {
			cfg = base + "job \"broken\" {\n  exec = 42\n  nosuchkey = true\n}\n"
		} else {
			last = i
		}
		writeConfig(t, k.instance, k.sock, jsonLogs+cfg)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				code, _, body := rawRequest(k.sock, "POST", "/v1/reload", []byte("{}"), 30*time.Second)
				if invalid && code != 400 || !invalid && code != 200 {
					t.Errorf("reload %d: %d %s", i, code, body)
				}
			})
		}
		if i%3 == 0 {
			k.Signal(syscall.SIGHUP)
		}
		wg.Wait()
	}
	// A last API reload after every SIGHUP of the storm has been taken (they run in turn).
	code, _, body := rawRequest(k.sock, "POST", "/v1/reload", []byte("{}"), 30*time.Second)
	if code != 200 {
		t.Fatalf("final reload: %d %s", code, body)
	}
	close(stop)
	pings.Wait()
	if len(slow) > 0 {
		t.Fatalf("/v1/ping failed or took over 1 s %d times during the storm: %v", len(slow), slow)
	}
	for name, pid := range pids {
		if got := k.job(name).Pid; got != pid {
			t.Fatalf("job %s changed PID %d → %d although its definition never changed", name, pid, got)
		}
	}
	names := map[string]bool{}
	for _, j := range k.status().Jobs {
		names[j.Name] = true
	}
	if names["broken"] || names["extra"] != (extra(last) != "") {
		t.Fatalf("jobs after the storm %v; the last valid file was reload %d", names, last)
	}
	if z := zombiesBelow(k.PID()); len(z) > 0 {
		t.Fatalf("zombies left: %v", z)
	}
	if code, _ := k.SignalWait(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// SIGTERM at the worst moments of start-up — the instant pilotfish's handlers exist (the
// promise starts there: before it only the Go runtime's default action can meet a signal),
// and 1, 5 and 50 ms later, while the config loads and the jobs start — ends pilotfish
// within a second with exit code 0 and a log line; no signal is lost.
func TestChaosSIGTERMDuringStartup(t *testing.T) {
	t.Parallel()
	var cfg strings.Builder
	for i := range 30 {
		fmt.Fprintf(&cfg, "job \"j%02d\" {\n  exec = [\"sleep\", \"100000\"]\n}\n", i)
	}
	for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			for round := range 3 {
				p := start(t, opts{Config: jsonLogs + cfg.String()})
				pid := p.PID()
				p.WaitSignalHandlers(5 * time.Second)
				time.Sleep(delay)
				sent := time.Now()
				if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				if !p.ExitsWithin(3 * time.Second) {
					t.Fatalf("round %d: pilotfish still runs 3 s after a SIGTERM sent %s after exec; stderr:\n%s",
						round, delay, tail(p.Stderr.String(), 10))
				}
				took := p.ExitedAt().Sub(sent)
				if code := p.exitCode(); code != 0 || took > 1500*time.Millisecond {
					t.Fatalf("round %d: exit code %d after %s (want 0 within ~1 s); stderr:\n%s", round, code, took, tail(p.Stderr.String(), 10))
				}
				if !strings.Contains(p.Stderr.String(), "SIGTERM") {
					t.Fatalf("round %d: no log line names the signal; stderr:\n%s", round, tail(p.Stderr.String(), 10))
				}
			}
		})
	}
}
