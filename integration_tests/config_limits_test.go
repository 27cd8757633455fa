package integration

// Hostile configuration files (docs/configuration.md#limits, docs/guarantees.md#limits): a file too deep,
// too large or whose expressions would evaluate to something huge is a diagnostic for
// validate, run and reload, never a crash or a hang; a refused reload keeps the running
// jobs, gives its memory back, and never stops /v1/ping, /v1/status or the bus.

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// deepConfig is 200 KB: an exec of 100,000 nested lists (HCL's parser overflows its stack).
func deepConfig() string {
	return "job \"deep\" {\n  exec = " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n}\n"
}

// bombConfig is tiny, but evaluates to a 20 MB string through a million-element list.
const bombConfig = `job "bomb" {
  exec = "sleep 1000"
  dir  = join("", flatten([for i in range(1000) : [for j in range(1000) : "twenty characters..."]]))
}
`

// overBudgetConfig takes longer than the evaluation budget (each inner join converts a list).
const overBudgetConfig = `job "slow" {
  exec = "sleep 1000"
  dir  = join("", [for i in range(1000) : join("", [for j in range(1000) : "abc"])])
}
`

const twoSleepers = `
job "a" {
  exec = "sleep 1000"
}
job "b" {
  exec = "sleep 1000"
}
`

// noCrash fails when output holds a Go runtime crash.
func noCrash(t testing.TB, what, output string) {
	t.Helper()
	for _, s := range []string{"fatal error", "stack overflow", "goroutine ", "panic:"} {
		if strings.Contains(output, s) {
			t.Fatalf("%s: the output shows a crash (%q):\n%s", what, s, tail(output, 2000))
		}
	}
}

// rssKB is the resident memory of a process (VmRSS), in KiB.
func rssKB(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// cpuTicks is the CPU time a process has used, in clock ticks.
func cpuTicks(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// validate runs `pilotfish validate` on a file holding src and returns its result and
// how long it took.
func validate(t *testing.T, name, src string) (result, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, name), src, 0o644)
	t0 := time.Now()
	res := runCmd(t, dir, "validate", "-config", filepath.Join(dir, name))
	return res, time.Since(t0)
}

func TestConfigLimitsValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, file, src, want string }{
		{"deep", "deep.hcl", deepConfig(), `deep.hcl:2:73: Configuration nested too deeply`},
		{"deep json", "deep.json", `{"job": {"deep": {"exec": ` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}}}`, `deep.json:1:88: Configuration nested too deeply`},
		{"long chain", "chain.hcl", "job \"a\" {\n  exec = \"x\"\n  dir = 1" + strings.Repeat("+1", 1000000) + "\n}\n", `chain.hcl:3:136: Configuration nested too deeply`},
		{"evaluation bomb", "bomb.hcl", bombConfig, `bomb.hcl:3:\d+: Value too large: a for expression making more than 4096 elements`},
		{"huge file", "huge.hcl", "#" + strings.Repeat("x", 10<<20) + "\n", `huge.hcl:1:1: Configuration file too large: the file is larger than 4 MiB \(10485762 bytes\)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res, took := validate(t, c.file, c.src)
			noCrash(t, "validate", res.stdout+res.stderr)
			if res.code != 1 {
				t.Errorf("validate: exit %d, want 1\n%s", res.code, tail(res.stderr, 500))
			}
			if !regexp.MustCompile(`(?m)^\S*` + c.want).MatchString(res.stderr) {
				t.Errorf("validate: no diagnostic %q:\n%s", c.want, tail(res.stderr, 500))
			}
			if !strings.Contains(res.stderr, "docs/configuration.md#limits") {
				t.Errorf("validate: the diagnostic does not point to the limits:\n%s", tail(res.stderr, 500))
			}
			if took > 10*time.Second {
				t.Errorf("validate took %v", took)
			}
		})
	}
}

// `pilotfish run` of a hostile file ends with exit code 2 and the diagnostic.
func TestConfigLimitsRun(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, src, want string }{
		{"deep", deepConfig(), `pilotfish.hcl:2:73: Configuration nested too deeply`},
		{"evaluation bomb", bombConfig, `pilotfish.hcl:3:\d+: Value too large`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, opts{Config: c.src})
			if code := p.Wait(20 * time.Second); code != 2 {
				t.Errorf("exit %d, want 2 (a configuration error)", code)
			}
			stderr := p.Stderr.String()
			noCrash(t, "run", stderr)
			if !regexp.MustCompile(c.want).MatchString(stderr) {
				t.Errorf("no diagnostic %q:\n%s", c.want, tail(stderr, 500))
			}
		})
	}
}

// A hostile file applied by POST /v1/reload or SIGHUP is refused: 400 with the diagnostic,
// pilotfish alive, its jobs untouched.
func TestConfigLimitsReload(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, src, want string }{
		{"deep", deepConfig(), `pilotfish.hcl:2:73: Configuration nested too deeply`},
		{"long chain", "job \"a\" {\n  exec = \"x\"\n  dir = 1" + strings.Repeat(" + 1", 300000) + "\n}\n", `pilotfish.hcl:3:\d+: Configuration nested too deeply`},
		{"evaluation bomb", bombConfig, `pilotfish.hcl:3:\d+: Value too large`},
		{"huge file", "#" + strings.Repeat("x", 10<<20) + "\n", `pilotfish.hcl:1:1: Configuration file too large`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := startPF(t, twoSleepers)
			cfgPath := filepath.Join(k.Dir, "pilotfish.hcl")
			a := k.waitState(10*time.Second, "a", "running")
			b := k.waitState(10*time.Second, "b", "running")
			unchanged := func(what string) {
				t.Helper()
				if !k.Running() {
					t.Fatalf("%s: pilotfish exited\n%s", what, tail(k.Stderr.String(), 2000))
				}
				if ja, jb := k.statusOf("a"), k.statusOf("b"); ja.Pid != a.Pid || jb.Pid != b.Pid || ja.State != "running" || jb.State != "running" {
					t.Errorf("%s: jobs a %+v, b %+v; were pids %d, %d", what, ja, jb, a.Pid, b.Pid)
				}
			}

			writeFile(t, cfgPath, c.src, 0o644)
			code, ctype, body := rawRequest(k.sock, "POST", "/v1/reload", nil, 30*time.Second)
			eb := apiError(t, "reload", code, ctype, body, http.StatusBadRequest, client.KindInvalidConfig)
			if d := strings.Join(eb.Diagnostics, "\n"); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k.Dir) + `/` + c.want).MatchString(d) {
				t.Errorf("reload: no diagnostic %q in %q", c.want, eb.Diagnostics)
			}
			unchanged("after POST /v1/reload")

			k.Signal(syscall.SIGHUP)
			k.WaitLog(30*time.Second, is("reload on SIGHUP refused", ""), "the SIGHUP reload to be refused")
			unchanged("after SIGHUP")
			if !regexp.MustCompile(c.want).MatchString(k.Stderr.String()) {
				t.Errorf("SIGHUP: the diagnostic %q was not printed", c.want)
			}
			noCrash(t, "pilotfish", k.Stderr.String())
			if n := k.metric("pilotfish_reloads_total", map[string]string{"result": "invalid"}); n != 2 {
				t.Errorf("pilotfish_reloads_total{result=\"invalid\"} = %v, want 2", n)
			}
		})
	}
}

// Memory taken by a refused reload is given back, and never was much: the file is read
// no further than the limit.
func TestConfigLimitsReloadMemory(t *testing.T) {
	t.Parallel()
	k := startPF(t, twoSleepers, opts{NoRace: true})
	k.waitState(10*time.Second, "a", "running")
	pid := k.PID()
	cfgPath := filepath.Join(k.Dir, "pilotfish.hcl")
	before := rssKB(t, pid)
	for _, c := range []struct{ name, src string }{
		{"10 MB file", "#" + strings.Repeat("x", 10<<20) + "\n"},
		{"4 MiB of tokens", "x = [" + strings.Repeat("1,", 2<<20-4) + "]\n"},
		{"4 MiB within the token limit", "job \"a\" {\n  exec = \"sleep 1000\"\n  dir = \"" + strings.Repeat("y", 4<<20-64) + "\"\n}\n"},
		{"evaluation bomb", bombConfig},
		{"huge string", `job "a" {
  exec = "sleep 1000"
  dir  = join("", [for s in [join("", [for i in range(1000) : "` + strings.Repeat("z", 1000) + `"])] : [for i in range(4000) : s]])
}
`},
	} {
		writeFile(t, cfgPath, c.src, 0o644)
		t0 := time.Now()
		code, _, body := rawRequest(k.sock, "POST", "/v1/reload", nil, 30*time.Second)
		if code != http.StatusBadRequest {
			t.Fatalf("%s: reload answered %d, want 400: %s", c.name, code, tail(string(body), 300))
		}
		after := rssKB(t, pid)
		t.Logf("%s: refused in %v; RSS %d KiB before, %d KiB after", c.name, time.Since(t0).Round(time.Millisecond), before, after)
		if after > before+48<<10 {
			t.Errorf("%s: RSS grew from %d KiB to %d KiB after a refused reload", c.name, before, after)
		}
	}
	if !k.Running() {
		t.Fatal("pilotfish exited")
	}
}

// A slow reload holds nothing ping, status or the bus need; a second reload waits for it
// and is answered too; the running configuration stays.
func TestConfigLimitsSlowReloadKeepsAnswering(t *testing.T) {
	t.Parallel()
	k := startPF(t, twoSleepers)
	a := k.waitState(10*time.Second, "a", "running")
	writeFile(t, filepath.Join(k.Dir, "pilotfish.hcl"), overBudgetConfig, 0o644)

	type answer struct {
		code int
		body []byte
		at   time.Time
	}
	answers := make(chan answer, 2)
	reload := func() {
		code, _, body := rawRequest(k.sock, "POST", "/v1/reload", nil, 60*time.Second)
		answers <- answer{code, body, time.Now()}
	}
	t0 := time.Now()
	go reload()
	pid := k.PID()
	cpu := cpuTicks(t, pid)
	waitFor(t, 10*time.Second, func() bool { return cpuTicks(t, pid) > cpu+20 }, "pilotfish to be busy evaluating")
	go reload()

	// Meanwhile: ping and status answer at once, and the bus carries events.
	if code, _, body := rawRequest(k.sock, "POST", "/v1/maintenance/enable", nil, 5*time.Second); code != http.StatusOK {
		t.Fatalf("maintenance enable during a reload: %d %s", code, body)
	}
	var slowest time.Duration
	var n int
	var maintenanceAt time.Time
	var first answer
	for first.code == 0 {
		select {
		case first = <-answers:
		default:
			t1 := time.Now()
			code, _, _ := rawRequest(k.sock, "GET", "/v1/ping", nil, 5*time.Second)
			scode, _, _ := rawRequest(k.sock, "GET", "/v1/status", nil, 5*time.Second)
			d := time.Since(t1)
			if code != http.StatusOK || scode != http.StatusOK {
				t.Fatalf("during a reload: ping %d, status %d", code, scode)
			}
			n++
			slowest = max(slowest, d)
			if maintenanceAt.IsZero() && len(k.codes("global", "enterMaintenance")) > 0 {
				maintenanceAt = time.Now()
			}
		}
	}
	t.Logf("reload refused after %v; %d ping+status meanwhile, slowest %v", first.at.Sub(t0).Round(time.Millisecond), n, slowest)
	if n < 3 || slowest > 3*time.Second {
		t.Errorf("during the reload: %d ping+status, the slowest took %v", n, slowest)
	}
	if maintenanceAt.IsZero() || maintenanceAt.After(first.at) {
		t.Errorf("the enterMaintenance event came at %v, the reload ended at %v: the bus waited for the reload", maintenanceAt, first.at)
	}
	var second answer
	select {
	case second = <-answers:
	case <-time.After(30 * time.Second):
		t.Fatal("a second reload during a slow one was not answered within 30s")
	}
	for _, r := range []answer{first, second} {
		if r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "Configuration takes too long to evaluate: evaluation stopped after 5s") {
			t.Errorf("reload: %d %s", r.code, tail(string(r.body), 300))
		}
	}
	if j := k.statusOf("a"); j.Pid != a.Pid || j.State != "running" {
		t.Errorf("job a after the refused reload: %+v, was pid %d", j, a.Pid)
	}
}

// SIGTERM during a slow reload ends pilotfish promptly: the load stops at once.
func TestConfigLimitsSIGTERMDuringSlowReload(t *testing.T) {
	t.Parallel()
	k := startPF(t, twoSleepers)
	k.waitState(10*time.Second, "a", "running")
	writeFile(t, filepath.Join(k.Dir, "pilotfish.hcl"), overBudgetConfig, 0o644)
	go rawRequest(k.sock, "POST", "/v1/reload", nil, 30*time.Second)
	pid := k.PID()
	cpu := cpuTicks(t, pid)
	waitFor(t, 10*time.Second, func() bool { return cpuTicks(t, pid) > cpu+20 }, "pilotfish to be busy evaluating")
	if _, took := k.SignalWait(syscall.SIGTERM, 10*time.Second); took > 3*time.Second {
		t.Errorf("pilotfish took %v to exit on SIGTERM during a reload", took)
	}
	noCrash(t, "pilotfish", k.Stderr.String())
}
