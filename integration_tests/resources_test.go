package integration

// Per-job resources (docs/operations.md#resources): cpu_seconds and memory_bytes in
// /v1/status and as metrics, read from /proc over the job's process group; limits { } and
// oom_score_adj set between fork and exec, as the job sees them.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// hogScript allocates argv[1] MiB, writes every page, says so and sleeps.
const hogScript = `import os, sys, time
b = bytearray(b"x") * (int(sys.argv[1]) << 20)
os.write(1, b"allocated\n")  # one write: two hogs share the pipe
time.sleep(3600)
`

const mib = 1 << 20

// groupRSS sums the resident memory of the host's processes in process group pgid.
func groupRSS(t *testing.T, pgid int) (uint64, int) {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var sum uint64
	n := 0
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 22 || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		pages, _ := strconv.ParseUint(fields[21], 10, 64)
		sum += pages * uint64(os.Getpagesize())
		n++
	}
	return sum, n
}

// A job that allocates 50 MiB shows it in memory_bytes (GET /v1/status, the job object,
// curl), in pilotfish_job_memory_bytes (a scrape that promtool accepts) and in `pilotfish
// status`; a job that runs no process has no resource series.
func TestResourcesMemory(t *testing.T) {
	requireCurl(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hog.py"), hogScript, 0o644)
	port := freePort(t)
	k := startPF(t, fmt.Sprintf(`
telemetry {
  listen = "127.0.0.1:%d"
}
job "hog" {
  exec = [%q, %q, "50"]
}
job "idle" {
  exec = ["sleep", "100000"]
}
job "reg" {
  service {
    name = "reg"
    port = 80
  }
}
`, port, python, filepath.Join(dir, "hog.py")), opts{Dir: dir})
	k.WaitStdout(20*time.Second, `\[hog\] allocated`)

	j := k.waitJob(10*time.Second, "hog", func(j client.Job) bool { return j.MemoryBytes >= 50*mib }, "memory_bytes >= 50 MiB")
	if j.CPUSeconds <= 0 {
		t.Errorf("hog used no CPU writing 50 MiB: %+v", j)
	}
	// The fields, as curl sees them, with their SPEC names.
	code, _, body := curlDo(t, k.sock, "GET", "/v1/status", nil)
	var raw struct {
		Jobs []map[string]any `json:"jobs"`
	}
	if err := json.Unmarshal(body, &raw); code != 200 || err != nil {
		t.Fatalf("GET /v1/status: %d %v\n%s", code, err, body)
	}
	for _, r := range raw.Jobs {
		mem, ok1 := r["memory_bytes"].(float64)
		_, ok2 := r["cpu_seconds"].(float64)
		if !ok1 || !ok2 {
			t.Errorf("job %v has no numeric memory_bytes and cpu_seconds: %v", r["name"], r)
		}
		if r["name"] == "hog" && mem < 50*mib {
			t.Errorf("GET /v1/status: hog has memory_bytes %v", mem)
		}
	}

	// The metrics, scraped with curl, checked by promtool.
	out, err := exec.Command("curl", "-sS", "--max-time", "10", fmt.Sprintf("http://127.0.0.1:%d/metrics", port)).Output()
	if err != nil {
		t.Fatalf("curl /metrics: %v", err)
	}
	text := string(out)
	if v := metricIn(text, "pilotfish_job_memory_bytes", map[string]string{"job": "hog"}); v < 50*mib {
		t.Errorf("pilotfish_job_memory_bytes{job=\"hog\"} = %v, want >= 50 MiB", v)
	}
	if v := metricIn(text, "pilotfish_job_cpu_seconds_total", map[string]string{"job": "hog"}); v <= 0 {
		t.Errorf("pilotfish_job_cpu_seconds_total{job=\"hog\"} = %v", v)
	}
	if v := metricIn(text, "pilotfish_job_memory_bytes", map[string]string{"job": "idle"}); v <= 0 || v >= 50*mib {
		t.Errorf("pilotfish_job_memory_bytes{job=\"idle\"} = %v, want a sleep's RSS", v)
	}
	for _, m := range []string{"pilotfish_job_memory_bytes", "pilotfish_job_cpu_seconds_total"} {
		if v := metricIn(text, m, map[string]string{"job": "reg"}); v != -1 {
			t.Errorf("%s{job=\"reg\"} = %v for a job that runs no process", m, v)
		}
	}
	for _, want := range []string{"# TYPE pilotfish_job_cpu_seconds_total counter", "# TYPE pilotfish_job_memory_bytes gauge"} {
		if !strings.Contains(text, want) {
			t.Errorf("the scrape has no %q", want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus)")
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}

	// pilotfish status: CPU% and MEM columns.
	r := k.cli("status")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	header := strings.Fields(lines[0])
	cpuCol, memCol := slices.Index(header, "CPU%"), slices.Index(header, "MEM")
	if r.code != 0 || cpuCol < 0 || memCol < 0 {
		t.Fatalf("status printed (exit %d):\n%s", r.code, r.stdout)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	hog := rows["hog"]
	if len(hog) <= memCol || !regexp.MustCompile(`^\d+(\.\d)?M$`).MatchString(hog[memCol]) {
		t.Fatalf("status row of hog: %q", hog)
	}
	if mem, _ := strconv.ParseFloat(strings.TrimSuffix(hog[memCol], "M"), 64); mem < 50 {
		t.Errorf("MEM of hog is %s, want >= 50M", hog[memCol])
	}
	if _, err := strconv.ParseFloat(hog[cpuCol], 64); err != nil {
		t.Errorf("CPU%% of hog is %q", hog[cpuCol])
	}
	if reg := rows["reg"]; len(reg) <= memCol || reg[cpuCol] != "-" || reg[memCol] != "-" {
		t.Errorf("status row of reg (no process): %q", reg)
	}
}

// memory_bytes and cpu_seconds sum the job's process group: two children of a shell hold
// the memory and a third burns the CPU, while the shell itself uses neither. The counter
// does not go back when the job stops.
func TestResourcesSumTheGroup(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hog.py"), hogScript, 0o644)
	hog := python + " " + filepath.Join(dir, "hog.py")
	k := startPF(t, `
job "group" {
  exec = `+sh(hog+" 30 & "+hog+" 30 & while :; do :; done & wait")+`
}
`, opts{Dir: dir})
	waitFor(t, 30*time.Second, func() bool { return strings.Count(k.Stdout.String(), "[group] allocated") == 2 }, "both children to allocate")
	j := k.waitJob(10*time.Second, "group", func(j client.Job) bool { return j.MemoryBytes >= 60*mib && j.CPUSeconds >= 0.3 },
		"memory_bytes >= 60 MiB and cpu_seconds >= 0.3")
	if j.CPUPercent <= 0 {
		t.Errorf("a busy child shows CPU%% %v", j.CPUPercent)
	}
	// The same sum as the test reads from /proc for the group (within a MiB: the busy
	// loop's shell may touch a page in between).
	leader := k.hostPID(j.Pid)
	sum, n := groupRSS(t, leader)
	if n != 4 || max(sum, j.MemoryBytes)-min(sum, j.MemoryBytes) > mib {
		t.Errorf("the group has %d processes with %d bytes of RSS; memory_bytes is %d", n, sum, j.MemoryBytes)
	}
	if own, _ := groupRSS(t, -1); own != 0 {
		t.Fatal("groupRSS matched nothing it should")
	}
	if m := k.metric("pilotfish_job_memory_bytes", map[string]string{"job": "group"}); m < 60*mib {
		t.Errorf("pilotfish_job_memory_bytes{job=\"group\"} = %v", m)
	}

	// Stopped: no memory, and the CPU counter keeps what it showed.
	last := k.job("group").CPUSeconds
	if r := k.cli("stop", "group"); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	j = k.waitState(10*time.Second, "group", "stopped")
	if j.MemoryBytes != 0 || j.CPUSeconds < last || j.CPUPercent != 0 {
		t.Errorf("stopped: memory_bytes %d, cpu_seconds %v (was %v), cpu_percent %v", j.MemoryBytes, j.CPUSeconds, last, j.CPUPercent)
	}
	if m := k.metric("pilotfish_job_cpu_seconds_total", map[string]string{"job": "group"}); m < last {
		t.Errorf("pilotfish_job_cpu_seconds_total went back from %v to %v", last, m)
	}
}

// hasCapSysResource reports whether the test runs with CAP_SYS_RESOURCE (pilotfish then
// has it too).
func hasCapSysResource(t *testing.T) bool {
	for _, l := range strings.Split(readFile(t, "/proc/self/status"), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps&(1<<24) != 0 // CAP_SYS_RESOURCE
		}
	}
	return false
}

// openTempDir is a temporary directory that the jobs of other users can enter.
func openTempDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// limitsScript prints what a job's process sees of its limits, identity and environment,
// then becomes a sleep (same PID).
const limitsScript = `echo "nofile=$(ulimit -n) hard=$(ulimit -Hn) core=$(ulimit -c) stack=$(ulimit -s) pid=$$ uid=$(id -u) gids=$(id -G | tr ' ' ,) dir=$(pwd) oom=$(cat /proc/self/oom_score_adj)"
env | grep -v '^PILOTFISH_JOB=' | sort | tr '\n' ' '; echo
exec sleep 100000`

var limitsLine = regexp.MustCompile(`^\[(\S+)\] nofile=(\S+) hard=(\S+) core=(\S+) stack=(\S+) pid=(\d+) uid=(\d+) gids=(\S+) dir=(\S+) oom=(-?\d+)$`)

// seen returns what the job printed with limitsScript: its fields and its environment.
func seen(t *testing.T, k *ctlPF, job string) ([]string, string) {
	t.Helper()
	line := k.WaitStdout(10*time.Second, `^\[`+job+`\] nofile=`)
	m := limitsLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("job %s printed %q", job, line)
	}
	env := k.WaitStdout(10*time.Second, `^\[`+job+`\] .*\bPATH=`)
	return m[2:], strings.TrimPrefix(env, "["+job+"] ")
}

// limits { } and oom_score_adj are what the job's process sees from its first instruction
// (ulimit, /proc/PID/oom_score_adj), under its own user too; the PID, the environment, the
// exit status and signals are those of a job without them.
func TestResourcesLimits(t *testing.T) {
	dir := openTempDir(t)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := exec.Command("/bin/sh", "-c", "ulimit -n").Output()
	if err != nil {
		t.Fatal(err)
	}
	k := startPF(t, `
job "lim" {
  exec = `+sh(limitsScript)+`
  limits {
    nofile = 64
    core   = 0
    stack  = "8MiB"
  }
  oom_score_adj = 500
}
job "plain" {
  exec = `+sh(limitsScript)+`
}
job "oomonly" {
  exec          = `+sh(limitsScript)+`
  oom_score_adj = 300
}
job "nobody" {
  exec          = `+sh(limitsScript)+`
  user          = "nobody"
  dir           = `+hclString(work)+`
  oom_score_adj = 200
  limits {
    nofile = "128"
  }
}
job "nobody-plain" {
  exec = `+sh(limitsScript)+`
  user = "nobody"
  dir  = `+hclString(work)+`
}
job "lower" {
  exec          = `+sh(limitsScript)+`
  oom_score_adj = -200
}
job "exit7" {
  exec = `+sh("exit 7")+`
  limits {
    nofile = 64
  }
}
job "sig" {
  exec = ["sleep", "100000"]
  limits {
    core = "unlimited"
  }
}
`, opts{Dir: dir, Launcher: []string{"/bin/sh", "-c", `trap '' HUP TTOU && exec "$@"`, "sh"}})

	lim, limEnv := seen(t, k, "lim")
	plain, plainEnv := seen(t, k, "plain")
	oomonly, _ := seen(t, k, "oomonly")
	nobody, nobodyEnv := seen(t, k, "nobody")
	nobodyPlain, nobodyPlainEnv := seen(t, k, "nobody-plain")
	if want := []string{"64", "64", "0", "8192"}; !slices.Equal(lim[:4], want) || lim[8] != "500" {
		t.Errorf("lim sees nofile, hard, core, stack %q and oom %s; want %q and 500", lim[:4], lim[8], want)
	}
	if limEnv != plainEnv {
		t.Errorf("the environment differs with limits:\n  %s\nwithout:\n  %s", limEnv, plainEnv)
	}
	if plain[8] != "0" || plain[0] != strings.TrimSpace(string(base)) {
		t.Errorf("plain sees nofile %s and oom %s; want %s and 0", plain[0], plain[8], base)
	}
	// Through the shim without a nofile limit: the soft limit of a job without one.
	if oomonly[0] != plain[0] || oomonly[1] != plain[1] || oomonly[8] != "300" {
		t.Errorf("oomonly sees nofile %s/%s and oom %s; want %s/%s and 300", oomonly[0], oomonly[1], oomonly[8], plain[0], plain[1])
	}
	// Under its user and groups, in its directory, as without the shim.
	if nobody[0] != "128" || nobody[5] != "65534" || nobody[7] != work || nobody[8] != "200" {
		t.Errorf("nobody sees nofile %s uid %s dir %s oom %s; want 128 65534 %s 200", nobody[0], nobody[5], nobody[7], nobody[8], work)
	}
	if nobody[5] != nobodyPlain[5] || nobody[6] != nobodyPlain[6] || nobody[7] != nobodyPlain[7] || nobodyEnv != nobodyPlainEnv {
		t.Errorf("user, groups, dir or environment differ with limits: %q %q, without: %q %q\n%s\n%s", nobody[5:8], nobody[6], nobodyPlain[5:8], nobodyPlain[6], nobodyEnv, nobodyPlainEnv)
	}
	// Below pilotfish's own oom_score_adj only with CAP_SYS_RESOURCE (not in Docker's
	// default set); without it, a start error that says so.
	if hasCapSysResource(t) {
		if lower, _ := seen(t, k, "lower"); lower[8] != "-200" {
			t.Errorf("lower sees oom %s, want -200", lower[8])
		}
	} else {
		j := k.waitState(10*time.Second, "lower", "failed")
		if !strings.Contains(j.Status, "cannot set oom_score_adj to -200") || !strings.Contains(j.Status, "CAP_SYS_RESOURCE") {
			t.Errorf("lower without CAP_SYS_RESOURCE: status %q", j.Status)
		}
	}
	for name, f := range map[string][]string{"lim": lim, "plain": plain, "nobody": nobody} {
		j := k.waitJob(10*time.Second, name, func(j client.Job) bool { return j.Pid > 0 }, "a pid")
		if f[4] != strconv.Itoa(j.Pid) {
			t.Errorf("%s printed $$ = %s, its pid in /v1/status is %d", name, f[4], j.Pid)
		}
	}
	// The kernel's view, read by the test: /proc/PID/oom_score_adj and /proc/PID/limits.
	for name, want := range map[string]string{"lim": "500", "nobody": "200", "plain": "0"} {
		pid := k.hostPID(k.job(name).Pid)
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid)); err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("/proc/%d/oom_score_adj of %s: %q %v, want %s", pid, name, b, err, want)
		}
	}
	// Signal dispositions and mask: pilotfish was started with SIGHUP and SIGTTOU ignored,
	// which its jobs inherit, through the shim too.
	limSt, plainSt := procStatus(k.hostPID(k.job("lim").Pid)), procStatus(k.hostPID(k.job("plain").Pid))
	const hupTtou = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGTTOU-1)
	for _, f := range []string{"SigIgn", "SigBlk", "SigCgt"} {
		if limSt[f] != plainSt[f] {
			t.Errorf("%s of lim %x, of plain %x", f, limSt[f], plainSt[f])
		}
	}
	if plainSt["SigIgn"]&hupTtou != hupTtou {
		t.Errorf("plain does not ignore SIGHUP and SIGTTOU as pilotfish's parent set: SigIgn %x", plainSt["SigIgn"])
	}
	limits := readFile(t, fmt.Sprintf("/proc/%d/limits", k.hostPID(k.job("lim").Pid)))
	if !regexp.MustCompile(`Max open files\s+64\s+64\s+files`).MatchString(limits) {
		t.Errorf("/proc/PID/limits of lim:\n%s", limits)
	}

	// Exit status and signals come from the program, not from the shim.
	k.waitJob(10*time.Second, "exit7", func(j client.Job) bool { return j.ExitCode != nil && *j.ExitCode == 7 }, "exit code 7")
	sig := k.waitState(10*time.Second, "sig", "running")
	if r := k.cli("signal", "sig", "SIGUSR1"); r.code != 0 {
		t.Fatalf("signal: %+v", r)
	}
	k.waitJob(10*time.Second, "sig", func(j client.Job) bool { return j.ExitCode != nil && *j.ExitCode == 138 }, "exit code 138 (SIGUSR1)")
	if ev := k.waitCode(10*time.Second, "sig", "exitFailed", 1); ev.Attrs["exit_code"] != "138" || ev.Attrs["pid"] != "" && ev.Attrs["pid"] != strconv.Itoa(sig.Pid) {
		t.Errorf("exitFailed of sig: %v", ev.Attrs)
	}
}

// A limit above the hard limit pilotfish runs with is a start error that says so: the job
// fails (exit code 127, the reason in its status line, a log line), the others run, PID 1
// answers. A failure in the new process before exec is a start error too.
func TestResourcesLimitAboveHardLimit(t *testing.T) {
	dir := openTempDir(t)
	private := filepath.Join(dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	k := startPF(t, `
job "big" {
  exec = ["sleep", "100000"]
  limits {
    nofile = 100000
  }
}
job "inf" {
  exec = ["sleep", "100000"]
  limits {
    nofile = "unlimited"
  }
}
job "fits" {
  exec = `+sh(`echo "nofile=$(ulimit -n)"; exec sleep 100000`)+`
  limits {
    nofile = 4096
  }
}
job "denied" {
  exec = ["sleep", "100000"]
  user = "nobody"
  dir  = `+hclString(private)+`
  limits {
    nofile = 64
  }
}
job "denied-plain" {
  exec = ["sleep", "100000"]
  user = "nobody"
  dir  = `+hclString(private)+`
}
`, opts{Dir: dir, Launcher: []string{"prlimit", "--nofile=1024:4096"}})
	for _, name := range []string{"big", "inf"} {
		j := k.waitState(10*time.Second, name, "failed")
		if j.ExitCode == nil || *j.ExitCode != 127 || !strings.Contains(j.Status, "is above the hard limit 4096") {
			t.Errorf("%s: exit code %v, status %q", name, j.ExitCode, j.Status)
		}
		l := k.WaitLog(10*time.Second, is("cannot start job", name), "the start error of "+name)
		if !strings.Contains(l.str("err"), "limits.nofile") || !strings.Contains(l.str("err"), "hard limit 4096") {
			t.Errorf("%s: log line %v", name, l)
		}
	}
	k.WaitStdout(10*time.Second, `^\[fits\] nofile=4096$`)
	// The same error, whether the new process or ForkExec found it.
	d := k.waitState(10*time.Second, "denied", "failed")
	dp := k.waitState(10*time.Second, "denied-plain", "failed")
	if d.ExitCode == nil || *d.ExitCode != 126 || dp.ExitCode == nil || *dp.ExitCode != 126 ||
		!strings.Contains(d.Status, "permission denied") || !strings.Contains(dp.Status, "permission denied") {
		t.Errorf("denied: %v %q; denied-plain: %v %q", d.ExitCode, d.Status, dp.ExitCode, dp.Status)
	}
	if r := k.cli("ping"); r.code != 0 || !k.Running() {
		t.Fatalf("PID 1 after the start errors: %+v", r)
	}
	k.waitState(5*time.Second, "fits", "running")
	// Once a run starts, the reason is gone from the status line.
	if err := os.Chmod(private, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := k.cli("start", "denied"); r.code != 0 {
		t.Fatalf("start denied: %+v", r)
	}
	if j := k.waitState(10*time.Second, "denied", "running"); j.Status != "" {
		t.Errorf("denied runs, its status still says %q", j.Status)
	}
}

// An invalid limit is a diagnostic at its position, with the others, from validate.
func TestResourcesValidation(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.hcl"), `job "a" {
  exec = "true"
  limits {
    nofile = -1
    stack  = "8 parsecs"
    nproc  = 1.5
  }
  oom_score_adj = 5000
}
job "hook" {
  kind = "webhook"
  url  = "http://127.0.0.1:1/"
  limits {
    core = 0
  }
}
`, 0o644)
	r := runCmd(t, dir, "validate", "-config", "bad.hcl")
	if r.code != 1 {
		t.Fatalf("validate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{
		`bad.hcl:4:14: Invalid limit: limits.nofile must be a whole number >= 0 or "unlimited"`,
		`bad.hcl:5:14: Invalid limit: limits.stack must be a size`,
		`bad.hcl:6:14: Invalid limit: limits.nproc must be a whole number`,
		`bad.hcl:8:19: Invalid value: "oom_score_adj" must be a whole number from -1000 to 1000`,
		`bad.hcl:13:3: job "hook" runs no process; "limits" apply to a job's processes`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate did not print %q:\n%s", want, out)
		}
	}
}

// The exec shim execs the program from an early package init: the heavy packages of
// pilotfish (the configuration language, Prometheus, Consul, pilotfish's own) never
// initialise in it, which would cost every start with limits milliseconds of CPU.
func TestResourcesShimSkipsHeavyInits(t *testing.T) {
	cmd := exec.Command(plainBin, "__exec", "-rlimit", "nofile:"+strconv.Itoa(syscall.RLIMIT_NOFILE)+":64", "--", "/bin/sh", "sh", "-c", "ulimit -n")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stdout.String() != "64\n" {
		t.Fatalf("the shim: %v, printed %q\n%s", err, stdout.String(), stderr.String())
	}
	inits := strings.Count(stderr.String(), "init ")
	for _, heavy := range []string{"hashicorp/hcl", "prometheus/client_golang", "hashicorp/consul", "armon/go-metrics", "pilotfish/pilotfish/config"} {
		if strings.Contains(stderr.String(), heavy) {
			t.Errorf("%s initialised in the shim (%d packages did)", heavy, inits)
		}
	}
}

// The example of the Resources section of docs/operations.md runs as the page shows.
func TestResourcesDocExample(t *testing.T) {
	page := operationsPage(t, "Resources")
	cfg := docExample(t, page, "resources")
	dir := t.TempDir()
	port := freePort(t)
	cfg = strings.ReplaceAll(cfg, `"/tmp/pilotfish-resources.sock"`, hclString(filepath.Join(dir, "pf.sock")))
	cfg = strings.ReplaceAll(cfg, "127.0.0.1:9464", "127.0.0.1:"+strconv.Itoa(port))
	if !strings.Contains(cfg, filepath.Join(dir, "pf.sock")) || !strings.Contains(cfg, strconv.Itoa(port)) {
		t.Fatalf("the example's socket or port changed; update this test:\n%s", cfg)
	}
	p := start(t, opts{Dir: dir, Config: cfg})
	sock := filepath.Join(dir, "pf.sock")
	waitPing(t, p, sock, 10*time.Second)
	k := &ctlPF{instance: p, sock: sock, c: client.New(sock)}
	p.WaitStdout(10*time.Second, `^\[sidecar\] oom_score_adj=500$`)
	for _, re := range []string{`Max open files\s+4096\s+4096`, `Max processes\s+4096\s+4096`, `Max core file size\s+0\s+0`,
		`Max stack size\s+8388608\s+8388608`, `Max locked memory\s+65536\s+65536`} {
		p.WaitStdout(10*time.Second, `^\[sidecar\] `+re)
	}
	k.waitJob(20*time.Second, "app", func(j client.Job) bool { return j.MemoryBytes >= 50*mib && j.CPUSeconds > 0 }, "50 MiB and some CPU")
	r := k.cli("status")
	if !regexp.MustCompile(`(?m)^app\s+exec\s+running\s+\d+\s+unknown\s+0\s+\S+\s+\d+\.\d\s+5\d\.\dM\s*$`).MatchString(r.stdout) {
		t.Errorf("pilotfish status:\n%s", r.stdout)
	}
	out, err := exec.Command("curl", "-sS", "--max-time", "10", fmt.Sprintf("http://127.0.0.1:%d/metrics", port)).Output()
	if err != nil || metricIn(string(out), "pilotfish_job_memory_bytes", map[string]string{"job": "app"}) < 50*mib {
		t.Errorf("the scrape (%v):\n%s", err, out)
	}
	k.cli("stop", "app")
	j := k.waitState(10*time.Second, "app", "stopped")
	if j.MemoryBytes != 0 || j.CPUSeconds <= 0 {
		t.Errorf("stopped app: %+v", j)
	}
}
