package integration

// The notify kind (docs/kinds.md, docs/events.md, docs/metrics.md): programs written for systemd's Type=notify, run as
// jobs of pilotfish as PID 1 and spoken to by the real systemd-notify (systemd 252) and by
// Python programs that use the raw protocol (AF_UNIX SOCK_DGRAM to $NOTIFY_SOCKET).

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// sdsendPy sends one sd_notify datagram ("\n" in the argument is a newline) to
// $NOTIFY_SOCKET (or --to PATH), then, like systemd-notify, BARRIER=1 with a pipe and
// waits until the receiver closed it, so that it is still alive while its datagram is
// read. Exit 2 with the error when the socket cannot be reached.
const sdsendPy = `import array, os, select, socket, sys
args = sys.argv[1:]
to, barrier = os.environ.get("NOTIFY_SOCKET", ""), True
while args and args[0].startswith("--"):
    a = args.pop(0)
    if a == "--to":
        to = args.pop(0)
    elif a == "--no-barrier":
        barrier = False
payload = args[0].replace("\\n", "\n").encode()
if to.startswith("@"):
    to = "\0" + to[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.sendto(payload, to)
    if barrier:
        r, w = os.pipe()
        s.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))], 0, to)
        os.close(w)
        p = select.poll()
        p.register(r, select.POLLHUP)
        if not p.poll(10000):
            print("sdsend: BARRIER=1 was not answered", file=sys.stderr)
            sys.exit(3)
except OSError as e:
    print("sdsend: " + e.strerror)
    sys.exit(2)
`

// sdprogPy is a Type=notify daemon driven by the test through the FIFO $TESTDIR/ctl, one
// command a line: "send PAYLOAD" ("\n" escapes a newline; the time is logged first),
// "dog 0|1" (stop or resume the WATCHDOG=1 keep-alives, sent every WATCHDOG_USEC/4 when
// that is set), "exit N". It logs to $TESTDIR/sdprog.log.
const sdprogPy = `import os, resource, signal, socket, sys, threading, time
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
d = os.environ["TESTDIR"]
addr = os.environ.get("NOTIFY_SOCKET", "")
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
lock = threading.Lock()
def send(b):
    with lock:
        s.sendto(b, addr)
def log(line):
    fd = os.open(os.path.join(d, "sdprog.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (line + "\n").encode())
    os.close(fd)
log("start pid=%d WATCHDOG_PID=%s WATCHDOG_USEC=%s NOTIFY_SOCKET=%s" % (os.getpid(),
    os.environ.get("WATCHDOG_PID", "-"), os.environ.get("WATCHDOG_USEC", "-"), os.environ.get("NOTIFY_SOCKET", "-")))
usec = int(os.environ.get("WATCHDOG_USEC", "0"))
dog = [usec > 0]
def keepalive():
    while True:
        time.sleep(usec / 4e6)
        if dog[0]:
            send(b"WATCHDOG=1")
if usec:
    threading.Thread(target=keepalive, daemon=True).start()
with open(os.path.join(d, "ctl")) as ctl:
    for line in ctl:
        cmd, _, arg = line.rstrip("\n").partition(" ")
        if cmd == "send":
            log("sent pid=%d t=%d %s" % (os.getpid(), time.time_ns(), arg))
            send(arg.replace("\\n", "\n").encode())
        elif cmd == "dog":
            dog[0] = arg == "1"
            log("dog " + arg)
        elif cmd == "exit":
            sys.exit(int(arg))
`

// notifyScripts writes sdsend.py and sdprog.py into dir and makes the FIFO dir/ctl, opened
// read-write by the test (so that it never blocks and outlives each run of the program).
// It returns the HCL exec lists of both programs and a function that sends one command.
func notifyScripts(t testing.TB, dir string) (sdsend string, sdprog string, ctl func(string)) {
	t.Helper()
	sdsendPath := writePython(t, dir, "sdsend.py", sdsendPy)
	sdprogPath := writePython(t, dir, "sdprog.py", sdprogPy)
	fifo := filepath.Join(dir, "ctl")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return python + " " + sdsendPath, pyExec(sdprogPath), func(cmd string) {
		t.Helper()
		if _, err := f.WriteString(cmd + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// sdprogLine waits for the n-th (1-based) line of sdprog.log that matches re and returns its
// submatches.
func sdprogLine(t testing.TB, dir string, n int, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	waitFor(t, 10*time.Second, func() bool {
		k := 0
		for _, l := range fileLines(t, filepath.Join(dir, "sdprog.log")) {
			if s := rx.FindStringSubmatch(l); s != nil {
				if k++; k == n {
					m = s
					return true
				}
			}
		}
		return false
	}, "line #%d of sdprog.log matching %q (log: %q)", n, re, readFile(t, filepath.Join(dir, "sdprog.log")))
	return m
}

// statusRow returns the row of `pilotfish status` for job.
func statusRow(t testing.TB, k *ctlPF, job string) string {
	t.Helper()
	r := k.cli("status")
	if r.code != 0 {
		t.Fatalf("pilotfish status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == job {
			return l
		}
	}
	t.Fatalf("pilotfish status has no row for %s:\n%s", job, r.stdout)
	return ""
}

// docs/kinds.md notify with the real systemd-notify: --status= before readiness is shown in
// /v1/status and `pilotfish status`; --ready makes the job healthy (BARRIER=1 is answered,
// or systemd-notify would hang) and starts the job waiting for `once = "healthy"`; the job
// sees its own NOTIFY_SOCKET in a 0700 directory.
func TestNotifySystemdNotify(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		t.Skip("systemd-notify is not installed")
	}
	dir := t.TempDir()
	k := startPF(t, `
job "daemon" {
  kind = "notify"
  exec = `+sh(`echo "$NOTIFY_SOCKET" > sockpath
systemd-notify --status="warming up" || exit 7
while [ ! -e go ]; do sleep 0.02; done
systemd-notify --ready --status="serving 3 clients" || exit 8
echo notified
exec sleep 1000`)+`
}
job "dep" {
  exec = `+sh(`exec sleep 1000`)+`
  when {
    source = "daemon"
    once   = "healthy"
  }
}
`, opts{Dir: dir})

	j := k.waitJob(10*time.Second, "daemon", func(j client.Job) bool { return j.Status == "warming up" }, `status "warming up"`)
	if j.Health != "unknown" || j.State != "running" || j.Kind != "notify" {
		t.Errorf("daemon before READY=1: kind %q state %q health %q, want notify, running, unknown", j.Kind, j.State, j.Health)
	}
	if s := k.statusOf("daemon"); s.Status != "warming up" {
		t.Errorf("GET /v1/status shows status %q, want %q", s.Status, "warming up")
	}
	if row := statusRow(t, k, "daemon"); !strings.HasSuffix(row, "warming up") {
		t.Errorf("pilotfish status row %q does not end with the status line", row)
	}
	if d := k.job("dep"); d.State != "waiting" {
		t.Errorf("dep before READY=1: %q, want waiting", d.State)
	}
	if h, code, err := k.c.Health(k.ctx()); err != nil || code != 503 || len(h.Failing) != 1 || h.Failing[0].Job != "daemon" {
		t.Errorf("GET /v1/health before READY=1: %d %+v %v, want 503 with daemon failing", code, h, err)
	}
	sock := strings.TrimSpace(readFile(t, filepath.Join(dir, "sockpath")))
	if sock != "/run/pilotfish/notify/daemon/notify.sock" {
		t.Errorf("NOTIFY_SOCKET = %q, want /run/pilotfish/notify/daemon/notify.sock", sock)
	}
	if st, err := os.Stat(k.inNS(filepath.Dir(sock))); err != nil || st.Mode().Perm() != 0o700 || !st.IsDir() {
		t.Errorf("the socket's directory: %v %v, want a 0700 directory", st, err)
	}

	writeFile(t, filepath.Join(dir, "go"), "", 0o644)
	k.waitCode(10*time.Second, "daemon", "healthy", 1)
	k.WaitStdout(10*time.Second, `^\[daemon\] notified$`) // systemd-notify got its BARRIER answer
	j = k.waitJob(5*time.Second, "daemon", func(j client.Job) bool { return j.Status == "serving 3 clients" }, "status serving")
	if j.Health != "healthy" {
		t.Errorf("daemon after READY=1: health %q, want healthy", j.Health)
	}
	k.waitCode(5*time.Second, "dep", "started", 1)
	if h, code, err := k.c.Health(k.ctx()); err != nil || code != 200 {
		t.Errorf("GET /v1/health after READY=1: %d %+v %v, want 200", code, h, err)
	}
	if row := statusRow(t, k, "daemon"); !regexp.MustCompile(`^daemon\s+notify\s+running\s+\d+\s+healthy\s.*serving 3 clients$`).MatchString(row) {
		t.Errorf("pilotfish status row %q, want notify running healthy … serving 3 clients", row)
	}
	if v := k.metric("pilotfish_job_healthy", map[string]string{"job": "daemon"}); v != 1 {
		t.Errorf("pilotfish_job_healthy{job=daemon} = %v, want 1", v)
	}
	if n := len(k.codes("daemon", "healthy")); n != 1 {
		t.Errorf("%d healthy events, want 1", n)
	}
}

// docs/kinds.md notify, raw protocol: WATCHDOG_USEC and WATCHDOG_PID (= the program's own PID,
// not a shell's or a shim's); keep-alives keep the job healthy; STATUS=, RELOADING=1 then
// READY=1, ERRNO= in /v1/status and `pilotfish status`; a missed watchdog makes the job
// unhealthy, kills it with SIGABRT and restarts it per policy; WATCHDOG=trigger does the
// same at once.
func TestNotifyWatchdog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, sdprog, ctl := notifyScripts(t, dir)
	k := startPF(t, `
job "svc" {
  kind     = "notify"
  exec     = `+sdprog+`
  watchdog = "1s"
  restarts = 1
  backoff  = { initial = "100ms", max = "1s" }
}
job "keeper" {
  exec = "sleep 1000"
}
`, opts{Dir: dir})

	m := sdprogLine(t, dir, 1, `^start pid=(\d+) WATCHDOG_PID=(\S+) WATCHDOG_USEC=(\S+) NOTIFY_SOCKET=(\S+)$`)
	pid1, _ := strconv.Atoi(m[1])
	if m[2] != m[1] {
		t.Errorf("WATCHDOG_PID = %s, want the program's own PID %s", m[2], m[1])
	}
	if m[3] != "1000000" {
		t.Errorf("WATCHDOG_USEC = %s, want 1000000", m[3])
	}
	if m[4] != "/run/pilotfish/notify/svc/notify.sock" {
		t.Errorf("NOTIFY_SOCKET = %s", m[4])
	}
	if j := k.job("svc"); j.Pid != pid1 {
		t.Errorf("svc shows pid %d, the program is %d", j.Pid, pid1)
	}

	ctl(`send STATUS=loading config`)
	k.waitJob(5*time.Second, "svc", func(j client.Job) bool { return j.Status == "loading config" }, "STATUS=loading config")
	ctl(`send READY=1\nSTATUS=serving`)
	k.waitCode(5*time.Second, "svc", "healthy", 1)
	k.waitJob(5*time.Second, "svc", func(j client.Job) bool { return j.Status == "serving" && j.Health == "healthy" }, "healthy and serving")

	// Keep-alives every 250ms: three watchdog periods pass without a complaint.
	if poll(3*time.Second, func() bool { return len(k.codes("svc", "unhealthy")) > 0 }) {
		t.Fatalf("svc became unhealthy although it sent WATCHDOG=1 every 250ms")
	}

	// A reload cycle.
	ctl(`send RELOADING=1`)
	k.waitJob(5*time.Second, "svc", func(j client.Job) bool { return j.Status == "reloading" }, "RELOADING=1 shown")
	if row := statusRow(t, k, "svc"); !strings.HasSuffix(row, " reloading") {
		t.Errorf("pilotfish status row while reloading: %q", row)
	}
	ctl(`send READY=1\nSTATUS=serving again`)
	j := k.waitJob(5*time.Second, "svc", func(j client.Job) bool { return j.Status == "serving again" }, "STATUS after reload")
	if j.Health != "healthy" {
		t.Errorf("after the reload cycle health is %q", j.Health)
	}
	if row := statusRow(t, k, "svc"); !strings.HasSuffix(row, " serving again") {
		t.Errorf("pilotfish status row after the reload: %q", row)
	}
	ctl(`send ERRNO=5`)
	j = k.waitJob(5*time.Second, "svc", func(j client.Job) bool { return strings.Contains(j.Status, "5") }, "ERRNO=5 shown")
	if !regexp.MustCompile(`(?i)errno 5\b.*input/output error`).MatchString(j.Status) {
		t.Errorf("status after ERRNO=5: %q, want the errno and its text", j.Status)
	}

	// The keep-alives stop: unhealthy, SIGABRT, a restart.
	stopped := time.Now()
	ctl(`dog 0`)
	sdprogLine(t, dir, 1, `^dog 0$`)
	ev := k.waitCode(5*time.Second, "svc", "unhealthy", 1)
	if d := ev.Time.Sub(stopped); d < 700*time.Millisecond {
		t.Errorf("unhealthy %s after the last keep-alive, the watchdog is 1s", d)
	}
	if !strings.Contains(ev.Attrs["message"], "watchdog") {
		t.Errorf("unhealthy event %+v does not name the watchdog", ev)
	}
	k.waitCode(5*time.Second, "svc", "exitFailed", 1)
	k.WaitLog(5*time.Second, func(e logEntry) bool {
		return e.msg() == "exited" && e.job() == "svc" && e.str("status") == "killed by SIGABRT"
	}, "svc killed by SIGABRT")
	k.waitCode(5*time.Second, "svc", "started", 2)
	m = sdprogLine(t, dir, 2, `^start pid=(\d+) WATCHDOG_PID=(\S+) `)
	if m[1] == strconv.Itoa(pid1) || m[2] != m[1] {
		t.Errorf("second run: pid %s WATCHDOG_PID %s (first run %d)", m[1], m[2], pid1)
	}
	k.waitMetric(5*time.Second, "pilotfish_job_restarts_total", map[string]string{"job": "svc"}, func(v float64) bool { return v == 1 })

	// WATCHDOG=trigger: the program asks to be treated as hung.
	ctl(`send READY=1`)
	k.waitCode(5*time.Second, "svc", "healthy", 2)
	ctl(`send WATCHDOG=trigger`)
	ev = k.waitCode(5*time.Second, "svc", "unhealthy", 2)
	if !strings.Contains(ev.Attrs["message"], "trigger") {
		t.Errorf("unhealthy event after WATCHDOG=trigger: %+v", ev)
	}
	k.WaitLogN(5*time.Second, 2, func(e logEntry) bool {
		return e.msg() == "exited" && e.job() == "svc" && e.str("status") == "killed by SIGABRT"
	}, "second run killed by SIGABRT")
	// A missed watchdog restarts the job whatever `restarts` says (docs/kinds.md: "missed →
	// unhealthy, then restart"): restarts = 1 is used up, and it starts a third time.
	k.waitCode(5*time.Second, "svc", "started", 3)
	k.waitMetric(5*time.Second, "pilotfish_job_restarts_total", map[string]string{"job": "svc"}, func(v float64) bool { return v == 2 })
}

// docs/kinds.md notify: ready_timeout expires (unhealthy, SIGTERM); EXTEND_TIMEOUT_USEC moves it
// (a program that asks for more time and is ready within it is never touched; one that asks
// for more time and still is not ready is stopped when the extension ends, not before).
func TestNotifyReadyTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sdsend, _, _ := notifyScripts(t, dir)
	k := startPF(t, `
job "slow" {
  kind          = "notify"
  ready_timeout = "800ms"
  exec          = `+sh(`exec sleep 1000`)+`
}
job "extended" {
  kind          = "notify"
  ready_timeout = "800ms"
  exec          = `+sh(sdsend+` EXTEND_TIMEOUT_USEC=3000000 || exit 9
sleep 1.5
`+sdsend+` 'READY=1\nSTATUS=ready late' || exit 9
exec sleep 1000`)+`
}
job "extexpire" {
  kind          = "notify"
  ready_timeout = "800ms"
  exec          = `+sh(sdsend+` EXTEND_TIMEOUT_USEC=1800000 || exit 9
exec sleep 1000`)+`
}
`, opts{Dir: dir})

	started := func(job string) time.Time { return k.waitCode(5*time.Second, job, "started", 1).Time }
	ev := k.waitCode(5*time.Second, "slow", "unhealthy", 1)
	if d := ev.Time.Sub(started("slow")); d < 750*time.Millisecond || d > 2500*time.Millisecond {
		t.Errorf("slow: unhealthy %s after start, ready_timeout is 800ms", d)
	}
	if !strings.Contains(ev.Attrs["message"], "ready_timeout") {
		t.Errorf("slow: unhealthy event %+v does not name ready_timeout", ev)
	}
	k.WaitLog(5*time.Second, func(e logEntry) bool {
		return e.msg() == "exited" && e.job() == "slow" && e.str("status") == "killed by SIGTERM"
	}, "slow killed by SIGTERM")

	ev = k.waitCode(6*time.Second, "extexpire", "unhealthy", 1)
	if d := ev.Time.Sub(started("extexpire")); d < 1700*time.Millisecond || d > 4*time.Second {
		t.Errorf("extexpire: unhealthy %s after start; it asked for 1.8s (EXTEND_TIMEOUT_USEC) over a ready_timeout of 800ms", d)
	}
	k.WaitLog(5*time.Second, func(e logEntry) bool {
		return e.msg() == "exited" && e.job() == "extexpire" && e.str("status") == "killed by SIGTERM"
	}, "extexpire killed by SIGTERM")

	ev = k.waitCode(6*time.Second, "extended", "healthy", 1)
	if d := ev.Time.Sub(started("extended")); d < 1400*time.Millisecond {
		t.Errorf("extended: healthy %s after start, it waits 1.5s", d)
	}
	if u := k.codes("extended", "unhealthy"); len(u) != 0 {
		t.Errorf("extended was declared unhealthy although it extended its timeout: %v", u)
	}
	if j := k.job("extended"); j.State != "running" || j.Status != "ready late" {
		t.Errorf("extended: state %q status %q, want running, ready late", j.State, j.Status)
	}
	if e := k.codes("extended", "exitFailed"); len(e) != 0 {
		t.Errorf("extended was stopped: %v", e)
	}
}

// docs/kinds.md notify: datagrams from processes outside the job's process tree are dropped,
// logged and counted (pilotfish_notify_rejected_total), and cannot make the job healthy:
// another job of the same pilotfish, a process of the namespace started from outside
// (nsenter), and the test process itself (which found the socket in /proc/PID/environ of
// the job's process); malformed datagrams are dropped and counted too.
func TestNotifyForeignSender(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sdsend, _, _ := notifyScripts(t, dir)
	k := startPF(t, `
job "d" {
  kind = "notify"
  exec = `+sh(`while [ ! -e go ]; do sleep 0.02; done
`+sdsend+` 'READY=1\nSTATUS=ready for real' || exit 9
exec sleep 1000`)+`
}
job "intruder" {
  exec = `+sh(`while [ ! -e intrude ]; do sleep 0.02; done
`+sdsend+` --to /run/pilotfish/notify/d/notify.sock 'READY=1\nSTATUS=hijacked'; echo "rc=$?"
exec sleep 1000`)+`
}
`, opts{Dir: dir})
	// Each rejection is logged; pilotfish_notify_rejected_total{job} counts them.
	const rejectMsg = "sd_notify message from a process outside the job; dropped"
	waitRejects := func(n int, what string) {
		t.Helper()
		k.WaitLogN(5*time.Second, n, is(rejectMsg, "d"), what)
	}

	// 1. Another job: a datagram and its BARRIER=1, both dropped (the barrier's fd is closed
	// all the same, so the sender does not hang).
	writeFile(t, filepath.Join(dir, "intrude"), "", 0o644)
	k.WaitStdout(10*time.Second, `^\[intruder\] rc=0$`)
	waitRejects(2, "the intruder job's two datagrams rejected")
	logs := k.logsOf(rejectMsg, "d")
	if pid, _ := strconv.Atoi(logs[0].str("sender_pid")); pid <= 1 || pid == k.job("d").Pid {
		t.Errorf("rejection logged with sender_pid %q, want the intruder's", logs[0].str("sender_pid"))
	}

	// 2. The test process itself, to the path read from the job's environment.
	hostPID := k.hostPID(k.job("d").Pid)
	if hostPID == 0 {
		t.Fatalf("cannot find the host PID of d's process")
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", hostPID))
	if err != nil {
		t.Fatal(err)
	}
	var sock string
	for _, kv := range strings.Split(string(environ), "\x00") {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			sock = v
		}
	}
	if sock == "" {
		t.Fatalf("d's process has no NOTIFY_SOCKET in its environment")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: k.inNS(sock), Net: "unixgram"})
	if err != nil {
		t.Fatalf("dial %s: %v", k.inNS(sock), err)
	}
	if _, err := c.Write([]byte("READY=1\nSTATUS=from the host")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitRejects(3, "the test process's datagram rejected")
	want := 3.0

	// 3. A process of pilotfish's namespaces that is not below the job.
	if _, err := exec.LookPath("nsenter"); err == nil {
		cmd := exec.Command("nsenter", "-t", strconv.Itoa(k.PID()), "-p", "-m", "--", python, filepath.Join(dir, "sdsend.py"),
			"--to", sock, `READY=1\nSTATUS=nsenter`)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("nsenter python sdsend.py: %v\n%s", err, out)
		}
		waitRejects(5, "the nsenter'd process's datagrams rejected")
		want = 5
	}

	// 4. A datagram that is not KEY=VALUE lines (or has a NUL byte): dropped as malformed,
	// whoever sent it.
	c, err = net.DialUnix("unixgram", nil, &net.UnixAddr{Name: k.inNS(sock), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"not a notify message", "READY=1\x00STATUS=nul"} {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	k.WaitLogN(5*time.Second, 2, is("malformed sd_notify message; dropped", "d"), "two malformed datagrams")
	want += 2

	j := k.job("d")
	if j.Health != "unknown" || len(k.codes("d", "healthy")) != 0 || j.Status != "" {
		t.Fatalf("foreign datagrams changed d: health %q status %q, events %v", j.Health, j.Status, eventNames(k.events("d")))
	}
	if v := k.metric("pilotfish_notify_rejected_total", map[string]string{"job": "d"}); v != want {
		t.Errorf("pilotfish_notify_rejected_total{job=d} = %v after %v dropped datagrams (-1: not exposed at all)", v, want)
	}

	// The job's own process is heard.
	writeFile(t, filepath.Join(dir, "go"), "", 0o644)
	k.waitCode(10*time.Second, "d", "healthy", 1)
	k.waitJob(5*time.Second, "d", func(j client.Job) bool { return j.Status == "ready for real" }, "status from the job")
}

// docs/kinds.md notify with user = "nobody": the socket's directory is 0700 and owned by the
// job's user, the job (systemd-notify as nobody) still notifies, and a job of another user
// cannot even reach the socket.
func TestNotifyUserNobody(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		t.Skip("systemd-notify is not installed")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // the jobs of other users run scripts from here
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sdsend, _, _ := notifyScripts(t, dir)
	k := startPF(t, `
job "d" {
  kind = "notify"
  user = "nobody"
  exec = `+sh(`systemd-notify --ready --status="ready as $(id -un)" || exit 9
exec sleep 1000`)+`
}
job "other" {
  user = "daemon"
  exec = `+sh(sdsend+` --to /run/pilotfish/notify/d/notify.sock 'READY=1'; echo "rc=$?"; exec sleep 1000`)+`
}
`, opts{Dir: dir})
	k.waitCode(10*time.Second, "d", "healthy", 1)
	k.waitJob(5*time.Second, "d", func(j client.Job) bool { return j.Status == "ready as nobody" }, "status as nobody")

	for _, c := range []struct {
		path string
		dir  bool
		perm os.FileMode
		uid  uint32
	}{
		{"/run/pilotfish/notify", true, 0o755, 0},
		{"/run/pilotfish/notify/d", true, 0o700, 65534},
		{"/run/pilotfish/notify/d/notify.sock", false, 0, 65534},
	} {
		st, err := os.Stat(k.inNS(c.path))
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		uid := st.Sys().(*syscall.Stat_t).Uid
		if st.IsDir() != c.dir || (c.dir && st.Mode().Perm() != c.perm) || uid != c.uid {
			t.Errorf("%s: %v uid %d, want dir=%v perm %v uid %d", c.path, st.Mode(), uid, c.dir, c.perm, c.uid)
		}
		if st.Mode().Perm()&0o002 != 0 {
			t.Errorf("%s is world-writable: %v", c.path, st.Mode())
		}
	}
	line := k.WaitStdout(10*time.Second, `^\[other\] `)
	if !strings.Contains(line, "Permission denied") {
		t.Errorf("a job of user daemon sending to nobody's socket: %q, want Permission denied", line)
	}
}

// docs/kinds.md notify MAINPID= with a daemon that double-forks (and stays in the job's process
// group): the first process announces the daemon with `systemd-notify --pid=` and exits;
// the job stays running with the daemon's PID; stopping the job signals the daemon.
func TestNotifyMainPIDDoubleFork(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		t.Skip("systemd-notify is not installed")
	}
	dir := t.TempDir()
	daemon := writePython(t, dir, "daemon.py", notifyDaemonPy)
	k := startPF(t, `
job "forking" {
  kind = "notify"
  exec = `+pyExec(daemon, "parent", "keep-group")+`
}
job "keeper" {
  exec = "sleep 1000"
}
`, opts{Dir: dir})
	checkAdoptedDaemon(t, k, dir, "forking")
}

// docs/kinds.md notify MAINPID= with a classic daemon: double fork and setsid, so that the daemon
// leaves the job's process group and, once the middle process is gone, is a child of
// pilotfish. The daemon is still the job's: systemd (NotifyAccess=all, by cgroup) accepts
// `systemd-notify --pid=DAEMON` from the first process, which sends with the daemon's PID
// as its credentials, and READY=1 + MAINPID= sent by the daemon itself while the first
// process waits for it. pilotfish must accept both, adopt the daemon when the first process
// exits, and signal the daemon when the job stops.
func TestNotifyMainPIDNewSession(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"parent", "self"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			if _, err := exec.LookPath("systemd-notify"); err != nil && mode == "parent" {
				t.Skip("systemd-notify is not installed")
			}
			dir := t.TempDir()
			daemon := writePython(t, dir, "daemon.py", notifyDaemonPy)
			writePython(t, dir, "sdsend.py", sdsendPy)
			k := startPF(t, `
job "forking" {
  kind = "notify"
  exec = `+pyExec(daemon, mode, "setsid")+`
}
job "keeper" {
  exec = "sleep 1000"
}
`, opts{Dir: dir})
			checkAdoptedDaemon(t, k, dir, "forking")
		})
	}
}

// notifyDaemonPy double-forks a daemon that writes its PID to daemon.pid, logs SIGTERM to
// daemon.log and exits on it. First argument: "parent": the first process announces the
// daemon with systemd-notify --pid; "self": the daemon sends READY=1 and MAINPID itself
// (with sdsend.py). Second: "setsid" makes the middle process a session leader (a new
// session and process group), "keep-group" does not. The first process exits once the
// announcement was sent.
const notifyDaemonPy = `import os, signal, subprocess, sys
d = os.environ["TESTDIR"]
mode, group = sys.argv[1], sys.argv[2]
r, w = os.pipe()
if os.fork() == 0:
    if group == "setsid":
        os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.close(r)
    def term(sig, frame):
        with open(os.path.join(d, "daemon.log"), "a") as f:
            f.write("TERM %d\n" % os.getpid())
        os._exit(0)
    signal.signal(signal.SIGTERM, term)
    with open(os.path.join(d, "daemon.pid"), "w") as f:
        f.write("%d\n" % os.getpid())
    if mode == "self":
        rc = subprocess.call([sys.executable, os.path.join(d, "sdsend.py"),
            "READY=1\\nMAINPID=%d\\nSTATUS=daemon %d" % (os.getpid(), os.getpid())])
        if rc != 0:
            os._exit(rc)
    os.write(w, b"%d\n" % os.getpid())
    os.close(w)
    while True:
        signal.pause()
os.close(w)
os.wait()
pid = int(os.read(r, 64))
if mode == "parent":
    subprocess.check_call(["systemd-notify", "--pid=%d" % pid, "--ready", "--status=daemon %d" % pid])
sys.exit(0)
`

func checkAdoptedDaemon(t *testing.T, k *ctlPF, dir, job string) {
	t.Helper()
	var daemonPID int
	waitFor(t, 10*time.Second, func() bool {
		daemonPID, _ = strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(dir, "daemon.pid"))))
		return daemonPID > 0
	}, "daemon.pid")
	// Either the job becomes healthy, or pilotfish drops the announcement and the job ends
	// with its first process.
	const rejectMsg = "sd_notify message from a process outside the job; dropped"
	waitFor(t, 10*time.Second, func() bool {
		return len(k.codes(job, "healthy")) > 0 || len(k.codes(job, "exitSuccess"))+len(k.codes(job, "exitFailed")) > 0
	}, "READY=1 to be taken, or the job to end")
	if len(k.codes(job, "healthy")) == 0 {
		if l := k.logsOf(rejectMsg, job); len(l) > 0 {
			t.Fatalf("the announcement of the daemon (PID %d, a descendant of the job's first process) was dropped "+
				"as coming from outside the job: sender_pid %s; events %v", daemonPID, l[0].str("sender_pid"), eventNames(k.events(job)))
		}
		t.Fatalf("the job ended without READY=1: events %v", eventNames(k.events(job)))
	}
	// The first process exits; the job goes on with the daemon.
	first := k.waitCode(5*time.Second, job, "started", 1).Attrs["pid"]
	j := k.waitJob(5*time.Second, job, func(j client.Job) bool { return j.Pid == daemonPID }, "the daemon's PID shown")
	if j.State != "running" || j.Health != "healthy" || j.Status != fmt.Sprintf("daemon %d", daemonPID) {
		t.Errorf("%s: state %q health %q status %q, want running, healthy, daemon %d", job, j.State, j.Health, j.Status, daemonPID)
	}
	if first != "" && first != strconv.Itoa(daemonPID) {
		firstPID, _ := strconv.Atoi(first)
		waitFor(t, 5*time.Second, func() bool { return k.hostPID(firstPID) == 0 }, "the first process (%d) to exit", firstPID)
	}
	if e := append(k.codes(job, "exitSuccess"), k.codes(job, "exitFailed")...); len(e) != 0 {
		t.Errorf("the first process's exit ended the job: %v", e)
	}
	if row := statusRow(t, k, job); !strings.Contains(row, " "+strconv.Itoa(daemonPID)+" ") {
		t.Errorf("pilotfish status row %q does not show the daemon's PID %d", row, daemonPID)
	}
	host := k.hostPID(daemonPID)
	if host == 0 {
		t.Fatalf("the daemon (%d) is not running", daemonPID)
	}

	// Stopping the job signals the daemon, and the job ends when the daemon does.
	if r := k.cli("stop", job); r.code != 0 {
		t.Fatalf("pilotfish stop %s: exit %d\n%s%s", job, r.code, r.stdout, r.stderr)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "daemon.log"))); got != fmt.Sprintf("TERM %d", daemonPID) {
		t.Errorf("daemon.log = %q, want TERM %d", got, daemonPID)
	}
	k.waitJob(5*time.Second, job, func(j client.Job) bool { return j.State == "stopped" }, "stopped")
	waitFor(t, 5*time.Second, func() bool { return k.hostPID(daemonPID) == 0 }, "the daemon to be gone")
	k.waitCode(5*time.Second, job, "stopped", 1)
}

// docs/kinds.md, docs/jobs.md#triggers: a job with `once = "healthy"` of a notify job starts right after
// READY=1.
func TestNotifyDependentStartsOnReady(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, sdprog, ctl := notifyScripts(t, dir)
	k := startPF(t, readyDepConfig(sdprog), opts{Dir: dir})
	sdprogLine(t, dir, 1, `^start `)
	if d := k.job("dep"); d.State != "waiting" {
		t.Fatalf("dep is %q before READY=1", d.State)
	}
	ready, ev, ran := readyToDep(t, k, dir, ctl)
	t.Logf("READY=1 → dep started (event) %s, → dep's first command %s", ev.Time.Sub(ready), ran.Sub(ready))
	if d := ev.Time.Sub(ready); d < 0 || d > time.Second {
		t.Errorf("dep started %s after READY=1", d)
	}
}

// readyDepConfig is a notify job "svc" running sdprog and a job "dep" with `once =
// "healthy"` of it, which stamps its first command (date +%s%N) into dep.start.
func readyDepConfig(sdprog string) string {
	return `
job "svc" {
  kind = "notify"
  exec = ` + sdprog + `
}
job "dep" {
  exec = ` + sh(`date +%s%N > dep.start; exec sleep 1000`) + `
  when {
    source = "svc"
    once   = "healthy"
  }
}
`
}

// readyToDep makes sdprog send READY=1 and returns when it sent it, the started event of
// the job "dep" of readyDepConfig and the time of dep's first command.
func readyToDep(t testing.TB, k *ctlPF, dir string, ctl func(string)) (ready time.Time, started client.Event, ran time.Time) {
	t.Helper()
	ctl(`send READY=1`)
	m := sdprogLine(t, dir, 1, `^sent pid=\d+ t=(\d+) READY=1$`)
	ns, _ := strconv.ParseInt(m[1], 10, 64)
	ready = time.Unix(0, ns)
	started = k.waitCode(5*time.Second, "dep", "started", 1)
	waitFor(t, 5*time.Second, func() bool { return len(fileLines(t, filepath.Join(dir, "dep.start"))) == 1 }, "dep.start")
	return ready, started, stamp(t, filepath.Join(dir, "dep.start"))
}

// outerSocket is a unixgram server standing in for systemd (or a container runtime) that
// passes NOTIFY_SOCKET to pilotfish; it records every datagram.
type outerSocket struct {
	t    testing.TB
	addr string
	mu   sync.Mutex
	msgs []string
	wake chan struct{}
}

// listenOuter binds name: a path, or "@name" for an abstract address (Go's net package
// reads a leading "@" as abstract, as sd_notify does).
func listenOuter(t testing.TB, name string) *outerSocket {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	o := &outerSocket{t: t, addr: name, wake: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, _, err := c.ReadFromUnix(buf)
			if err != nil {
				return
			}
			o.mu.Lock()
			o.msgs = append(o.msgs, string(buf[:n]))
			close(o.wake)
			o.wake = make(chan struct{})
			o.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return o
}

func (o *outerSocket) all() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.msgs...)
}

// wait waits for a datagram that has a line matching re and returns it.
func (o *outerSocket) wait(d time.Duration, re string) string {
	o.t.Helper()
	rx := regexp.MustCompile(`(?m)` + re)
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		wake := o.wake
		o.mu.Unlock()
		for _, m := range o.all() {
			if rx.MatchString(m) {
				return m
			}
		}
		select {
		case <-wake:
		case <-deadline.C:
			o.t.Fatalf("no datagram on %s matching %q within %s; got %q", o.addr, re, d, o.all())
		}
	}
}

// count counts the datagrams with a line matching re.
func (o *outerSocket) count(re string) int {
	rx := regexp.MustCompile(`(?m)` + re)
	n := 0
	for _, m := range o.all() {
		if rx.MatchString(m) {
			n++
		}
	}
	return n
}

// docs/kinds.md (the outer NOTIFY_SOCKET): pilotfish, started with NOTIFY_SOCKET by its own
// supervisor, sends READY=1 (with MAINPID) only once every job with a health check or of
// kind notify has been healthy once, and only once; STATUS= with a summary as it changes;
// STOPPING=1 at shutdown. The jobs never see that socket. A path and an abstract address.
func TestNotifyOuterSocket(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, addr string }{
		{"path", ""},
		{"abstract", fmt.Sprintf("@pilotfish-test-%d-%d", os.Getpid(), time.Now().UnixNano())},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			addr := c.addr
			if addr == "" {
				addr = filepath.Join(dir, "outer.sock")
			}
			outer := listenOuter(t, addr)
			sdsend, _, _ := notifyScripts(t, dir)
			k := startPF(t, `
job "svc" {
  kind = "notify"
  exec = `+sh(`env > svc.env
while [ ! -e svc.go ]; do sleep 0.02; done
`+sdsend+` READY=1 || exit 9
exec sleep 1000`)+`
}
job "web" {
  exec = `+sh(`env > web.env; exec sleep 1000`)+`
  health {
    exec     = ["test", "-e", `+hclString(filepath.Join(dir, "web.ok"))+`]
    interval = "100ms"
    failures = 1
  }
}
job "plain" {
  exec = "sleep 1000"
}
`, opts{Dir: dir, Env: []string{"NOTIFY_SOCKET=" + addr}})

			outer.wait(10*time.Second, `^STATUS=3 jobs: .*0/2 healthy`)
			waitFor(t, 5*time.Second, func() bool { return exists(filepath.Join(dir, "web.env")) && exists(filepath.Join(dir, "svc.env")) }, "the jobs' env files")
			if n := outer.count(`^READY=1$`); n != 0 {
				t.Fatalf("READY=1 before any job was healthy: %q", outer.all())
			}

			writeFile(t, filepath.Join(dir, "web.ok"), "", 0o644)
			k.waitCode(5*time.Second, "web", "healthy", 1)
			outer.wait(5*time.Second, `^STATUS=.*1/2 healthy`)
			if n := outer.count(`^READY=1$`); n != 0 {
				t.Fatalf("READY=1 while the notify job svc was not ready yet: %q", outer.all())
			}

			writeFile(t, filepath.Join(dir, "svc.go"), "", 0o644)
			k.waitCode(5*time.Second, "svc", "healthy", 1)
			ready := outer.wait(5*time.Second, `^READY=1$`)
			if regexp.MustCompile(`(?m)^MAINPID=`).MatchString(ready) {
				t.Errorf("READY=1 datagram %q: as PID 1 of its namespace pilotfish must not send a MAINPID the host cannot use", ready)
			}
			outer.wait(5*time.Second, `^STATUS=3 jobs: 3 running; 2/2 healthy$`)

			// web goes down and comes back: STATUS follows, READY=1 is not sent again.
			if err := os.Remove(filepath.Join(dir, "web.ok")); err != nil {
				t.Fatal(err)
			}
			k.waitCode(5*time.Second, "web", "unhealthy", 1)
			outer.wait(5*time.Second, `^STATUS=.*1/2 healthy`)
			writeFile(t, filepath.Join(dir, "web.ok"), "", 0o644)
			k.waitCode(5*time.Second, "web", "healthy", 2)
			waitFor(t, 5*time.Second, func() bool { return outer.count(`^STATUS=.*2/2 healthy$`) >= 2 }, "STATUS 2/2 healthy again")
			if n := outer.count(`^READY=1$`); n != 1 {
				t.Errorf("READY=1 sent %d times, want once: %q", n, outer.all())
			}

			// The jobs do not see the outer socket; a notify job sees its own.
			if v, ok := envFile(t, filepath.Join(dir, "web.env"))["NOTIFY_SOCKET"]; ok {
				t.Errorf("job web sees NOTIFY_SOCKET=%s", v)
			}
			if v := envFile(t, filepath.Join(dir, "svc.env"))["NOTIFY_SOCKET"]; v != "/run/pilotfish/notify/svc/notify.sock" {
				t.Errorf("notify job svc sees NOTIFY_SOCKET=%q, want its own socket", v)
			}

			k.Signal(syscall.SIGTERM)
			if code := k.Wait(15 * time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM", code)
			}
			stopping := outer.wait(time.Second, `^STOPPING=1$`)
			t.Logf("datagrams: %q", outer.all())
			all := outer.all()
			if all[len(all)-1] != stopping {
				t.Errorf("STOPPING=1 is not the last datagram: %q", all)
			}
		})
	}
}

// docs/kinds.md: without a job that has a health check, READY=1 comes at once; outside a PID
// namespace MAINPID is pilotfish's own PID.
func TestNotifyOuterSocketPlain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outer := listenOuter(t, filepath.Join(dir, "outer.sock"))
	k := startPF(t, `
job "plain" {
  exec = `+sh(`echo "NOTIFY_SOCKET=${NOTIFY_SOCKET:-unset}"; exec sleep 1000`)+`
}
`, opts{Dir: dir, Plain: true, Env: []string{"NOTIFY_SOCKET=" + filepath.Join(dir, "outer.sock")}})
	ready := outer.wait(10*time.Second, `^READY=1$`)
	if want := fmt.Sprintf("MAINPID=%d", k.PID()); !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(ready) {
		t.Errorf("READY=1 datagram %q, want %s", ready, want)
	}
	k.WaitStdout(5*time.Second, `^\[plain\] NOTIFY_SOCKET=unset$`)
	k.Signal(syscall.SIGTERM)
	k.Wait(15 * time.Second)
	outer.wait(time.Second, `^STOPPING=1$`)
}

// docs/kinds.md BARRIER=1: systemd-notify (without --no-block) sends its message, then
// BARRIER=1 with a pipe, and exits as soon as pilotfish closed the pipe. The barrier is part
// of a legitimate exchange: it must not be dropped and counted as "from a process outside
// the job" because its sender is gone by the time pilotfish checks it (pilotfish closes the
// passed fds before it looks at the sender, in jobs/notify.go read()).
//
// Not parallel: the race is lost most often on a quiet machine, where systemd-notify runs
// (and exits) the moment its pipe is closed.
func TestNotifyBarrierFromExitingSender(t *testing.T) {
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		t.Skip("systemd-notify is not installed")
	}
	dir := t.TempDir()
	const calls = 150
	k := startPF(t, `
job "chatty" {
  kind = "notify"
  exec = `+sh(`i=0
while [ $i -lt `+strconv.Itoa(calls)+` ]; do
  i=$((i+1))
  systemd-notify --status="step $i" || exit 9
done
systemd-notify --ready --status="done" || exit 9
exec sleep 1000`)+`
}
`, opts{Dir: dir})
	k.waitCode(20*time.Second, "chatty", "healthy", 1)
	k.waitJob(5*time.Second, "chatty", func(j client.Job) bool { return j.Status == "done" }, "status done")
	if l := k.logsOf("sd_notify message from a process outside the job; dropped", "chatty"); len(l) > 0 {
		t.Errorf("%d of the %d datagrams of systemd-notify run by the job itself were dropped as coming from outside the job (first: sender_pid %s)",
			len(l), 2*(calls+1), l[0].str("sender_pid"))
	}
}

// A datagram longer than 4096 bytes is dropped whole, as systemd does, not read in part:
// "READY=1\nSTATUS=…" cut after 4096 bytes would still say READY=1. One of exactly 4096
// bytes is read.
func TestNotifyOversizeDatagram(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sdsend, _, _ := notifyScripts(t, dir)
	long := "READY=1\\nSTATUS=" + strings.Repeat("x", 4100)
	exact := "STATUS=" + strings.Repeat("y", 4096-len("STATUS="))
	k := startPF(t, `
job "d" {
  kind = "notify"
  exec = `+sh(sdsend+` '`+long+`'
`+sdsend+` 'STATUS=after'
while [ ! -e go ]; do sleep 0.02; done
`+sdsend+` '`+exact+`'
`+sdsend+` 'READY=1'
exec sleep 1000`)+`
}
`, opts{Dir: dir})
	e := k.WaitLog(10*time.Second, is("malformed sd_notify message; dropped", "d"), "the long datagram dropped")
	if !strings.Contains(e.str("err"), "4096") {
		t.Errorf("dropped with err %q, want it to say the limit", e.str("err"))
	}
	k.waitJob(10*time.Second, "d", func(j client.Job) bool { return j.Status == "after" }, "the status sent after the long datagram")
	if j := k.job("d"); j.Health != "unknown" || len(k.codes("d", "healthy")) != 0 {
		t.Fatalf("the long datagram was read in part: health %q, events %v", j.Health, eventNames(k.events("d")))
	}
	writeFile(t, filepath.Join(dir, "go"), "", 0o644)
	k.waitCode(10*time.Second, "d", "healthy", 1)
	if j := k.job("d"); j.Status != exact[len("STATUS="):] {
		t.Errorf("status of a 4096-byte datagram: %d bytes, want %d", len(j.Status), 4096-len("STATUS="))
	}
}
