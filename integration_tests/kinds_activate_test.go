package integration

// The inetd kind in activate mode (docs/kinds.md): systemd socket activation of a program that
// uses the standard LISTEN_FDS convention (Python scripts), over TCP and UDP.

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// activatedTCP is a socket-activated server written against the LISTEN_FDS convention
// alone: it checks nothing but reports what it was given, waits DELAY seconds before its
// first accept (connections pile up in the backlog meanwhile), answers every connection
// with one line, and exits once no connection came for IDLE seconds.
const activatedTCP = `import os, socket, sys, time
pid = os.getpid()
blocking = os.get_blocking(3)
info = "pid=%d listen_pid=%s fds=%s names=%s blocking=%s" % (pid, os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_FDNAMES"), blocking)
s = socket.socket(fileno=3)
print("activated %s type=%s" % (info, s.type.name), file=sys.stderr, flush=True)
time.sleep(float(os.environ.get("DELAY", "0")))
s.settimeout(float(os.environ.get("IDLE", "0.5")))
n = 0
while True:
    try:
        c, _ = s.accept()
    except socket.timeout:
        break
    c.setblocking(True)
    c.sendall(("%s n=%d\n" % (info, n)).encode())
    c.close()
    n += 1
print("served %d" % n, file=sys.stderr, flush=True)
`

// activatedUDP answers every datagram on fd 3 and exits once none came for IDLE seconds.
const activatedUDP = `import os, socket, sys
pid = os.getpid()
info = "pid=%d listen_pid=%s fds=%s names=%s" % (pid, os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_FDNAMES"))
s = socket.socket(fileno=3)
print("activated %s type=%s" % (info, s.type.name), file=sys.stderr, flush=True)
s.settimeout(float(os.environ.get("IDLE", "0.5")))
while True:
    try:
        data, addr = s.recvfrom(65536)
    except socket.timeout:
        break
    s.sendto(("%s got=%s\n" % (info, data.decode().strip())).encode(), addr)
`

// activation parses one answer of the scripts above.
func activation(t testing.TB, line string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	if m["pid"] == "" {
		t.Fatalf("not an answer of the activated program: %q", line)
	}
	return m
}

// checkActivation checks the socket activation environment, as systemd sets it.
func checkActivation(t testing.TB, a map[string]string, job string) {
	t.Helper()
	if a["listen_pid"] != a["pid"] {
		t.Errorf("LISTEN_PID=%s, but the program's PID is %s", a["listen_pid"], a["pid"])
	}
	if a["fds"] != "1" || a["names"] != job {
		t.Errorf("LISTEN_FDS=%s LISTEN_FDNAMES=%s, want 1 and %s", a["fds"], a["names"], job)
	}
}

// docs/kinds.md inetd activate over TCP: started by the first connection only, with the
// listening socket as fd 3; connections made before it accepts are all answered; when it
// exits the socket is re-armed and the next connection starts it again.
func TestInetdActivateTCP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	server := writePython(t, dir, "server.py", activatedTCP)
	ports := freePorts(t, 2)
	addr, eager := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1])
	k := startPF(t, `
job "act" {
  kind   = "inetd"
  mode   = "activate"
  listen = "tcp://`+addr+`"
  exec   = `+pyExec(server)+`
  env    = { DELAY = "0.5", IDLE = "0.5" }
}
job "eager" {
  kind   = "inetd"
  mode   = "activate"
  listen = "tcp://`+eager+`"
  exec   = `+pyExec(server)+`
  env    = { IDLE = "0.02" }
}
`, opts{Dir: dir})

	// Nothing runs until the first connection.
	// (startup reaches the job a moment after the socket answers)
	if j := k.waitJob(5*time.Second, "act", func(j client.Job) bool { return j.State != "waiting" }, "act armed"); j.State != "listening" || j.Pid != 0 {
		t.Errorf("act before any connection: %q pid %d, want listening, 0", j.State, j.Pid)
	}
	if n := len(k.events("act")); n != 0 {
		t.Errorf("act published %v before any connection", eventNames(k.events("act")))
	}
	if l := k.logsOf("listening", "act"); len(l) != 1 || l[0].str("mode") != "activate" {
		t.Errorf("log of the act listener: %v", l)
	}

	// Five connections at once, while the program sleeps before its first accept: every
	// one is answered, by one program.
	t0 := time.Now()
	answers := make([]string, 5)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				answers[i] = "dial: " + err.Error()
				return
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			l, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				answers[i] = fmt.Sprintf("read: %v (%q)", err, l)
				return
			}
			answers[i] = strings.TrimSpace(l)
		}()
	}
	wg.Wait()
	first := activation(t, answers[0])
	seen := map[string]bool{}
	for i, a := range answers {
		m := activation(t, a)
		if m["pid"] != first["pid"] {
			t.Errorf("connection %d was answered by pid %s, the others by %s: one activation, one program", i, m["pid"], first["pid"])
		}
		seen[m["n"]] = true
	}
	if len(seen) != 5 {
		t.Errorf("the program accepted %d distinct connections, want 5: %q", len(seen), answers)
	}
	checkActivation(t, first, "act")
	if first["blocking"] != "True" {
		t.Errorf("fd 3 is non-blocking in the first activation; socket-activated programs expect a blocking socket")
	}
	started := k.waitCode(5*time.Second, "act", "started", 1)
	if started.Attrs["pid"] != first["pid"] {
		t.Errorf("the started event names pid %s, the program is %s", started.Attrs["pid"], first["pid"])
	}
	if started.Time.Before(t0.Add(-time.Millisecond)) {
		t.Errorf("act started at %s, before the first connection at %s", started.Time, t0)
	}
	k.WaitStderr(5*time.Second, `^\[act\] activated pid=`+first["pid"]+` .* type=SOCK_STREAM$`)

	// It exits once idle; the job listens again, and the next connection starts a new one.
	k.waitCode(10*time.Second, "act", "exitSuccess", 1)
	k.WaitStderr(time.Second, `^\[act\] served 5$`)
	k.waitState(5*time.Second, "act", "listening")
	_, line := kindsDialLine(t, "tcp", addr, 10*time.Second)
	second := activation(t, line)
	if second["pid"] == first["pid"] {
		t.Errorf("the second activation was answered by the first program's pid %s", first["pid"])
	}
	checkActivation(t, second, "act")
	// systemd sets the socket's blocking mode at every activation (NonBlocking=no): the
	// first program's settimeout() must not leak into the next one.
	if second["blocking"] != "True" {
		t.Errorf("fd 3 is non-blocking in the second activation: the previous program's O_NONBLOCK leaked (the socket's open file description is shared)")
	}
	k.waitCode(10*time.Second, "act", "started", 2)
	k.waitCode(10*time.Second, "act", "exitSuccess", 2)
	if v := k.metric("pilotfish_inetd_connections_total", map[string]string{"job": "act"}); v != 2 {
		t.Errorf("pilotfish_inetd_connections_total{job=act} = %v, want 2 (one per activation)", v)
	}

	// No connection is lost across the program's exits: "eager" exits 20 ms after its last
	// connection, so with three clients connecting in turn many connections arrive while a
	// program is exiting or not yet started. Every one must be answered.
	var mu sync.Mutex
	pids := map[string]int{}
	var failures []string
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				c, err := net.DialTimeout("tcp", eager, 5*time.Second)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				l, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("connection %d: %v", i, err))
				} else {
					pids[activation(t, l)["pid"]]++
				}
				mu.Unlock()
				time.Sleep(time.Duration(i%4) * 10 * time.Millisecond) // vary the timing
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("connections to eager were lost: %q", failures)
	}
	t.Logf("45 connections to eager were served by %d activations", len(pids))
	if k.exited() {
		t.Fatal("pilotfish exited")
	}
}

// docs/kinds.md inetd activate over UDP: the first datagram starts the program, which reads it
// from fd 3; when it exits the next datagram starts it again.
func TestInetdActivateUDP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	server := writePython(t, dir, "server.py", activatedUDP)
	port := freePort(t)
	k := startPF(t, `
job "uact" {
  kind   = "inetd"
  mode   = "activate"
  listen = "udp://127.0.0.1:`+strconv.Itoa(port)+`"
  exec   = `+pyExec(server)+`
  env    = { IDLE = "0.3" }
}
`, opts{Dir: dir})
	if j := k.waitJob(5*time.Second, "uact", func(j client.Job) bool { return j.State != "waiting" }, "uact armed"); j.State != "listening" {
		t.Errorf("uact before any datagram: %q, want listening", j.State)
	}
	ask := func(msg string) map[string]string {
		t.Helper()
		out := runClient(t, 10*time.Second, msg+"\n", "nc", "-u", "-W", "1", "-w", "5", "127.0.0.1", strconv.Itoa(port))
		a := activation(t, out)
		if a["got"] != msg {
			t.Errorf("the program answered %q to %q", out, msg)
		}
		return a
	}
	first := ask("one")
	checkActivation(t, first, "uact")
	k.WaitStderr(5*time.Second, `^\[uact\] activated pid=`+first["pid"]+` .* type=SOCK_DGRAM$`)
	k.waitCode(10*time.Second, "uact", "exitSuccess", 1)
	k.waitState(5*time.Second, "uact", "listening")
	second := ask("two")
	checkActivation(t, second, "uact")
	if second["pid"] == first["pid"] {
		t.Errorf("the second datagram was answered by the first program (pid %s)", first["pid"])
	}
	k.waitCode(10*time.Second, "uact", "started", 2)
}

// A socket-activated program that fails without taking the waiting connection leaves the
// socket readable. Re-arming at once starts it again and again: a crash loop without
// backoff (docs/guarantees.md#7), which pilotfish must not have in any kind. systemd stops it with
// its trigger and start limits; pilotfish has its backoff.
func TestInetdActivateFailingProgramIsNotACrashLoop(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	k := startPF(t, `
job "broken" {
  kind   = "inetd"
  mode   = "activate"
  listen = "tcp://127.0.0.1:`+strconv.Itoa(port)+`"
  exec   = `+sh("echo cannot serve >&2; exit 1")+`
}
`)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k.waitCode(5*time.Second, "broken", "exitFailed", 1)
	// The connection stays waiting for 1.5 s.
	t0 := time.Now()
	window := 1500 * time.Millisecond
	for time.Since(t0) < window && len(withCode(k.events("broken"), "started")) <= 20 {
		time.Sleep(20 * time.Millisecond)
	}
	n, took := len(withCode(k.events("broken"), "started")), time.Since(t0)
	t.Logf("the failing program was started %d times in %s while one connection waited", n, took.Round(time.Millisecond))
	if n > 20 {
		t.Errorf("the failing program was started %d times in %s for one waiting connection: a crash loop without backoff", n, took.Round(time.Millisecond))
	}
	if k.exited() {
		t.Fatal("pilotfish exited")
	}
}

// A socket-activated job that failed: the socket is re-armed (docs/kinds.md) and the next
// connection starts the program again, with the listening socket again (fd 3, LISTEN_FDS,
// LISTEN_PID). `restarts` does not start it outside an activation.
func TestInetdActivateRestartGetsTheSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	once := writePython(t, dir, "once.py", `import os, socket, sys
print("env LISTEN_FDS=%s LISTEN_PID=%s pid=%d" % (os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID"), os.getpid()), file=sys.stderr, flush=True)
s = socket.socket(fileno=3)
c, _ = s.accept()
c.sendall(b"pid=%d\n" % os.getpid())
c.close()
sys.exit(1)
`)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	k := startPF(t, `
job "once" {
  kind     = "inetd"
  mode     = "activate"
  listen   = "tcp://`+addr+`"
  restarts = 1
  backoff  = { initial = "100ms", max = "1s" }
  exec     = `+pyExec(once)+`
}
job "keep" {
  exec = "sleep 1000"
}
`, opts{Dir: dir})
	_, first := kindsDialLine(t, "tcp", addr, 10*time.Second)
	if !strings.HasPrefix(first, "pid=") {
		t.Fatalf("first connection got %q", first)
	}
	k.waitCode(10*time.Second, "once", "exitFailed", 1)
	// The second start: the next activation.
	_, second := kindsDialLine(t, "tcp", addr, 10*time.Second)
	if !strings.HasPrefix(second, "pid=") || second == first {
		t.Fatalf("second connection got %q (first %q)", second, first)
	}
	k.waitCode(10*time.Second, "once", "started", 2)
	re := regexp.MustCompile(`^\[once\] env LISTEN_FDS=(\S+) LISTEN_PID=(\S+) pid=(\d+)$`)
	ok := k.Stderr.waitUntil(10*time.Second, func(string) bool { return countLines(k.Stderr.String(), re) >= 2 })
	if !ok {
		t.Fatalf("the second start printed no environment")
	}
	var envs [][]string
	for _, l := range k.Stderr.Lines() {
		if m := re.FindStringSubmatch(l); m != nil {
			envs = append(envs, m)
		}
	}
	for i, m := range envs[:2] {
		if m[1] != "1" || m[2] != m[3] {
			t.Errorf("start #%d of the activated program had LISTEN_FDS=%s LISTEN_PID=%s (pid %s): want 1 and its pid, and the socket as fd 3", i+1, m[1], m[2], m[3])
		}
	}
	if strings.Contains(k.Stderr.String(), "Bad file descriptor") {
		t.Errorf("a start of the activated program had no fd 3")
	}
}
