package integration

// The fault suite (`make chaos`, also part of `make test`): pilotfish as PID 1 under storms
// a hostile world produces — kill storms, reload storms, signals at the worst moment. Each
// test bounds its own time and asserts the exit code, that nothing promised was lost, and
// that what pilotfish holds (zombies, descriptors, goroutines) stays flat.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
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

// abusePy attacks a control socket for its first argument's seconds with every kind of bad
// client at once — garbage bytes, slowloris headers, 10 MB bodies, 1 MB headers, and more
// event streams than the cap — and prints what each kind was answered, as JSON.
const abusePy = `import asyncio, json, os, socket, sys, time
sock, secs = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + secs
seen = {}
def note(kind, key):
    d = seen.setdefault(kind, {})
    d[key] = d.get(key, 0) + 1
async def status_of(r):
    line = await asyncio.wait_for(r.readline(), 20)
    return line.split(b" ")[1].decode() if line.startswith(b"HTTP/") else "closed"
async def garbage():
    while time.monotonic() < end:
        try:
            r, w = await asyncio.open_unix_connection(sock)
            w.write(os.urandom(4096) + b"\r\n\r\n")
            await w.drain()
            note("garbage", await status_of(r))
            w.close()
        except Exception as e:
            note("garbage", type(e).__name__)
async def slowloris():
    conns = []
    while time.monotonic() < end:
        try:
            r, w = await asyncio.open_unix_connection(sock)
            w.write(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
            conns.append(w)
            conns = [c for c in conns if not c.is_closing()]
            for c in conns:
                c.write(b"X-Slow: 1\r\n")
            note("slowloris", "open")
        except Exception as e:
            note("slowloris", type(e).__name__)
        await asyncio.sleep(0.2)
    for c in conns:
        c.close()
def refused(req, kind):
    # A plain socket: the answer to a request refused half-way is still read after EPIPE.
    while time.monotonic() < end:
        c = socket.socket(socket.AF_UNIX)
        try:
            c.settimeout(20)
            c.connect(sock)
            try:
                c.sendall(req)
            except OSError:
                pass  # refused before it was all sent: the answer is already in
            line = c.makefile("rb").readline()
            note(kind, line.split(b" ")[1].decode() if line.startswith(b"HTTP/") else "closed")
        except Exception as e:
            note(kind, type(e).__name__)
        finally:
            c.close()
async def big_body():
    body = b'{"K":"' + b"x" * (10 << 20) + b'"}'
    req = b"POST /v1/environ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    await asyncio.get_running_loop().run_in_executor(None, refused, req, "body10MB")
async def big_headers():
    req = b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * (1 << 20) + b"\r\n\r\n"
    await asyncio.get_running_loop().run_in_executor(None, refused, req, "headers1MB")
async def streams():
    conns = []
    for _ in range(200):
        try:
            r, w = await asyncio.open_unix_connection(sock)
            w.write(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            note("streams", await status_of(r))
            conns.append(w)
        except Exception as e:
            note("streams", type(e).__name__)
    while time.monotonic() < end:
        await asyncio.sleep(0.1)
    for c in conns:
        c.close()
async def main():
    await asyncio.gather(garbage(), slowloris(), big_body(), big_headers(), streams())
    print(json.dumps(seen), flush=True)
asyncio.run(main())
`

// Every kind of bad client at once: pilotfish refuses each with a fitting status (400, 413,
// 431, 429), /v1/ping and /v1/status keep answering within a second, the stream cap holds,
// and the memory the storm took is given back once it is over.
func TestChaosControlAbuse(t *testing.T) {
	// Not parallel: the storm takes the CPU, and the test times ping.
	requireCurl(t)
	k := startPF(t, `
job "steady" {
  exec = ["sleep", "100000"]
}
`, opts{Logs: "logging {\n  format = \"json\"\n}\n", NoRace: true})
	pid := k.PID()
	before := rssAnon(pid)
	storm := exec.Command(python, "-c", abusePy, k.sock, "8")
	var out strings.Builder
	storm.Stdout, storm.Stderr = &out, os.Stderr
	if err := storm.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- storm.Wait() }()
	t.Cleanup(func() { _ = storm.Process.Kill() })
	var worst time.Duration
	var peak int64
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the storm script failed: %v", err)
			}
			running = false
		case <-time.After(50 * time.Millisecond):
		}
		t0 := time.Now()
		for _, path := range []string{"/v1/ping", "/v1/status"} {
			if code, _, body := rawRequest(k.sock, "GET", path, nil, 10*time.Second); code != 200 {
				t.Fatalf("GET %s during the storm: %d %s", path, code, body)
			}
		}
		worst = max(worst, time.Since(t0))
		peak = max(peak, rssAnon(pid))
	}
	t.Logf("storm answers: %s; slowest ping+status %s", strings.TrimSpace(out.String()), worst.Round(time.Millisecond))
	if worst > 2*time.Second {
		t.Errorf("ping and status took %s during the storm", worst.Round(time.Millisecond))
	}
	var seen map[string]map[string]int
	if err := json.Unmarshal([]byte(out.String()), &seen); err != nil {
		t.Fatalf("storm output %q: %v", out.String(), err)
	}
	for kind, want := range map[string]string{"garbage": "400", "body10MB": "413", "headers1MB": "431", "streams": "429"} {
		if seen[kind][want] == 0 {
			t.Errorf("%s was never answered %s: %v", kind, want, seen[kind])
		}
	}
	if n := seen["streams"]["200"]; n > maxStreams {
		t.Errorf("%d streams opened, more than %d", n, maxStreams)
	}
	var after int64
	settled := poll(30*time.Second, func() bool { after = rssAnon(pid); return after < before+8<<20 })
	t.Logf("anonymous RSS: %d MiB before, %d MiB at the peak, %d MiB after", before>>20, peak>>20, after>>20)
	if !settled {
		t.Errorf("anonymous RSS stays at %d MiB after the storm (%d MiB before)", after>>20, before>>20)
	}
	if code, _ := k.SignalWait(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// rssAnon is a process's anonymous resident memory in bytes: what it allocated, without the
// pages of its binary that the storm's code paths brought in (0 if it is gone).
func rssAnon(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
