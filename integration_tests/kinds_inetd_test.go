package integration

// The inetd kind in accept mode (docs/kinds.md, docs/metrics.md): one child per connection over TCP, unix
// sockets and UDP, spoken to by nc, socat and Go; max_connections; clients that vanish; a
// port already in use; stop and start.

import (
	"bufio"
	"errors"
	"io"
	"net"
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

// kindsDialLine connects, reads one line within d and returns the connection and the line.
func kindsDialLine(t testing.TB, network, addr string, d time.Duration) (net.Conn, string) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, d)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(d))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s %s: no line within %s: %v (got %q)", network, addr, d, err, line)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, strings.TrimSuffix(line, "\n")
}

// docs/kinds.md inetd accept: TCP (nc, socat, Go), a unix socket (socat) and UDP (nc -u);
// REMOTE_ADDR/REMOTE_PORT; the child's stderr in the log; listening between children;
// stop closes the socket and start opens it again; the connections metric.
func TestInetdAccept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ports := freePorts(t, 6)
	tcpPort, udpPort, src1, src2, src3, greet := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	tcpAddr := "127.0.0.1:" + strconv.Itoa(tcpPort)
	unixPath := filepath.Join(dir, "echo.sock")
	k := startPF(t, `
job "echo" {
  kind   = "inetd"
  listen = "tcp://`+tcpAddr+`"
  exec   = `+sh(`echo "hello $REMOTE_ADDR $REMOTE_PORT $PILOTFISH_JOB"; echo "stderr from $REMOTE_PORT" >&2; read line; echo "echo:$line"`)+`
}
job "unixecho" {
  kind   = "inetd"
  listen = "unix://`+unixPath+`"
  exec   = `+sh(`echo "unix hello"; read line; echo "echo:$line"`)+`
}
job "udpecho" {
  kind   = "inetd"
  listen = "udp://127.0.0.1:`+strconv.Itoa(udpPort)+`"
  exec   = `+sh(`read line; echo "udp:$line from $REMOTE_ADDR:$REMOTE_PORT"`)+`
}
job "greet" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1:`+strconv.Itoa(greet)+`"
  exec   = ["/bin/echo", "greetings"]
}
job "early" {
  exec = `+sh(`nc -N 127.0.0.1 `+strconv.Itoa(greet)+` </dev/null >"$TESTDIR/early.out"`)+`
}
`, opts{Dir: dir})

	// A job started by startup connects at once: the listener was open before.
	k.waitCode(10*time.Second, "early", "exitSuccess", 1)
	if got := readFile(t, filepath.Join(dir, "early.out")); got != "greetings\n" {
		t.Errorf("a job connecting at startup got %q: the listener was not ready before startup", got)
	}

	// The sockets were open before startup was published; nothing runs yet.
	for _, name := range []string{"echo", "unixecho", "udpecho"} {
		if j := k.waitJob(5*time.Second, name, func(j client.Job) bool { return j.State != "waiting" }, name+" armed"); j.State != "listening" || j.Pid != 0 || j.Kind != "inetd" {
			t.Errorf("%s before any connection: kind %q state %q pid %d, want inetd, listening, 0", name, j.Kind, j.State, j.Pid)
		}
		if v := k.metric("pilotfish_inetd_connections_total", map[string]string{"job": name}); v != 0 {
			t.Errorf("pilotfish_inetd_connections_total{job=%s} = %v before any connection, want 0", name, v)
		}
	}
	if l := k.logsOf("listening", "echo"); len(l) != 1 || l[0].str("listen") != "tcp://"+tcpAddr || l[0].str("mode") != "accept" {
		t.Errorf("log of the echo listener: %v", l)
	}

	// nc, with a known source port: REMOTE_PORT must be it.
	out := runClient(t, 10*time.Second, "abc\n", "nc", "-N", "-p", strconv.Itoa(src1), "127.0.0.1", strconv.Itoa(tcpPort))
	if want := "hello 127.0.0.1 " + strconv.Itoa(src1) + " echo\necho:abc\n"; out != want {
		t.Errorf("nc got %q, want %q", out, want)
	}
	k.WaitStderr(5*time.Second, `^\[echo\] stderr from `+strconv.Itoa(src1)+`$`)

	// socat.
	out = runClient(t, 10*time.Second, "def\n", "socat", "-t", "5", "-", "TCP:"+tcpAddr+",sourceport="+strconv.Itoa(src2))
	if want := "hello 127.0.0.1 " + strconv.Itoa(src2) + " echo\necho:def\n"; out != want {
		t.Errorf("socat got %q, want %q", out, want)
	}
	k.WaitStderr(5*time.Second, `^\[echo\] stderr from `+strconv.Itoa(src2)+`$`)

	// Each connection is one run: started, then exitSuccess, with the child's pid.
	evs := k.waitEvents(5*time.Second, "echo", func(evs []client.Event) bool {
		return len(withCode(evs, "exitSuccess")) >= 2
	}, "two runs of echo")
	if s := withCode(evs, "started"); len(s) != 2 || s[0].Attrs["pid"] == "" || s[0].Attrs["pid"] == s[1].Attrs["pid"] {
		t.Errorf("echo's started events %v: want two, each with its own pid", s)
	}
	k.waitState(5*time.Second, "echo", "listening")
	k.waitMetric(5*time.Second, "pilotfish_inetd_connections_total", map[string]string{"job": "echo"}, func(v float64) bool { return v == 2 })

	// While a connection is open its child runs; the job is running with the child's pid.
	c, line := kindsDialLine(t, "tcp", tcpAddr, 5*time.Second)
	if !strings.HasPrefix(line, "hello 127.0.0.1 ") {
		t.Errorf("Go client got %q", line)
	}
	j := k.waitState(5*time.Second, "echo", "running")
	if j.Pid == 0 {
		t.Errorf("echo is running a child but shows pid 0")
	}
	c.Close() // the child reads EOF and ends
	k.waitState(5*time.Second, "echo", "listening")

	// A unix socket, with socat.
	if st, err := os.Stat(unixPath); err != nil || st.Mode().Type() != os.ModeSocket {
		t.Fatalf("the unix listener %s: %v %v", unixPath, st, err)
	}
	out = runClient(t, 10*time.Second, "ghi\n", "socat", "-t", "5", "-", "UNIX-CONNECT:"+unixPath)
	if out != "unix hello\necho:ghi\n" {
		t.Errorf("socat UNIX-CONNECT got %q", out)
	}
	k.waitCode(5*time.Second, "unixecho", "exitSuccess", 1)

	// UDP: one run per datagram, its output sent back as one datagram.
	out = runClient(t, 10*time.Second, "ping\n", "nc", "-u", "-W", "1", "-w", "5", "-p", strconv.Itoa(src3), "127.0.0.1", strconv.Itoa(udpPort))
	if want := "udp:ping from 127.0.0.1:" + strconv.Itoa(src3) + "\n"; out != want {
		t.Errorf("nc -u got %q, want %q", out, want)
	}
	k.waitCode(5*time.Second, "udpecho", "exitSuccess", 1)
	k.waitMetric(5*time.Second, "pilotfish_inetd_connections_total", map[string]string{"job": "udpecho"}, func(v float64) bool { return v == 1 })
	k.waitState(5*time.Second, "udpecho", "listening")

	// pilotfish stop JOB closes the socket: connections are refused; start opens it again.
	cli := func(args ...string) result {
		t.Helper()
		r := runCmd(t, dir, append(args[:1:1], append([]string{"-socket", k.sock}, args[1:]...)...)...)
		if r.code != 0 {
			t.Fatalf("pilotfish %q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}
	cli("stop", "echo")
	if j := k.job("echo"); j.State != "stopped" {
		t.Errorf("echo after stop: %q, want stopped", j.State)
	}
	if c, err := net.DialTimeout("tcp", tcpAddr, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("a connection to the stopped echo job was accepted")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial the stopped echo job: %v, want connection refused", err)
	}
	cli("stop", "unixecho")
	if c, err := net.DialTimeout("unix", unixPath, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("a connection to the stopped unixecho job was accepted")
	}
	cli("start", "echo")
	cli("start", "unixecho")
	if j := k.job("echo"); j.State != "listening" {
		t.Errorf("echo after start: %q, want listening", j.State)
	}
	out = runClient(t, 10*time.Second, "again\n", "nc", "-N", "127.0.0.1", strconv.Itoa(tcpPort))
	if !strings.HasSuffix(out, " echo\necho:again\n") {
		t.Errorf("nc after start got %q", out)
	}
	out = runClient(t, 10*time.Second, "again\n", "socat", "-t", "5", "-", "UNIX-CONNECT:"+unixPath)
	if out != "unix hello\necho:again\n" {
		t.Errorf("socat UNIX-CONNECT after start got %q", out)
	}
	k.waitMetric(5*time.Second, "pilotfish_inetd_connections_total", map[string]string{"job": "echo"}, func(v float64) bool { return v == 4 })
	if k.exited() {
		t.Fatalf("pilotfish exited")
	}
}

// max_connections: extra connections are closed at once and counted; clients that connect
// and vanish do not hurt.
func TestInetdMaxConnectionsAndVanishingClients(t *testing.T) {
	t.Parallel()
	ports := freePorts(t, 2)
	limited, vanish := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1])
	k := startPF(t, `
job "limited" {
  kind            = "inetd"
  listen          = "tcp://`+limited+`"
  max_connections = 2
  exec            = `+sh(`echo hello; read line; echo "bye $line"`)+`
}
job "vanish" {
  kind   = "inetd"
  listen = "tcp://`+vanish+`"
  exec   = `+sh(`echo hello; sleep 0.1; echo more; cat`)+`
}
`)
	c1, l1 := kindsDialLine(t, "tcp", limited, 5*time.Second)
	c2, l2 := kindsDialLine(t, "tcp", limited, 5*time.Second)
	if l1 != "hello" || l2 != "hello" {
		t.Fatalf("the first two connections got %q and %q", l1, l2)
	}
	if j := k.job("limited"); j.State != "running" {
		t.Errorf("limited with two children: %q, want running", j.State)
	}

	// The third: accepted by the kernel, closed at once by pilotfish.
	c3, err := net.DialTimeout("tcp", limited, 5*time.Second)
	if err != nil {
		t.Fatalf("third dial: %v", err)
	}
	defer c3.Close()
	t0 := time.Now()
	_ = c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c3)
	if len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("the third connection read %q, %v: want it closed at once", b, err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("the third connection was closed only after %s", d)
	}
	k.waitMetric(5*time.Second, "pilotfish_inetd_refused_total", map[string]string{"job": "limited"}, func(v float64) bool { return v == 1 })
	w := k.WaitLog(5*time.Second, is("connection refused: max_connections reached", "limited"), "the refusal")
	if w.str("max_connections") != "2" || w.str("level") != "WARN" {
		t.Errorf("refusal log %v", w)
	}
	if v := k.metric("pilotfish_inetd_connections_total", map[string]string{"job": "limited"}); v != 2 {
		t.Errorf("pilotfish_inetd_connections_total{job=limited} = %v, want 2 (the refused one is not counted)", v)
	}

	// One finishes: room for one more.
	if _, err := c1.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	_ = c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, _ := io.ReadAll(c1)
	if string(rest) != "bye one\n" {
		t.Errorf("first connection ended with %q", rest)
	}
	k.waitCode(5*time.Second, "limited", "exitSuccess", 1)
	_, l4 := kindsDialLine(t, "tcp", limited, 5*time.Second)
	if l4 != "hello" {
		t.Errorf("a connection after one ended got %q", l4)
	}
	c2.Close()

	// Twenty clients that connect and vanish at once, half of them with a reset.
	for i := range 20 {
		c, err := net.DialTimeout("tcp", vanish, 5*time.Second)
		if err != nil {
			t.Fatalf("vanishing client %d: %v", i, err)
		}
		if i%2 == 0 {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}
	k.waitMetric(10*time.Second, "pilotfish_inetd_connections_total", map[string]string{"job": "vanish"}, func(v float64) bool { return v == 20 })
	k.waitEvents(10*time.Second, "vanish", func(evs []client.Event) bool {
		return len(withCode(evs, "exitSuccess"))+len(withCode(evs, "exitFailed")) == 20
	}, "20 children of vanish to end")
	k.waitState(5*time.Second, "vanish", "listening")
	out := runClient(t, 10*time.Second, "still here\n", "nc", "-N", "127.0.0.1", strconv.Itoa(ports[1]))
	if out != "hello\nmore\nstill here\n" {
		t.Errorf("a normal client after the vanishing ones got %q", out)
	}
	// A child that just exited is a zombie until pilotfish reaps it on SIGCHLD.
	if !poll(5*time.Second, func() bool { return len(zombiesBelow(k.PID())) == 0 }) {
		t.Errorf("zombies left below pilotfish: %v", zombiesBelow(k.PID()))
	}
	if v := k.metric("pilotfish_inetd_refused_total", map[string]string{"job": "vanish"}); v != 0 {
		t.Errorf("pilotfish_inetd_refused_total{job=vanish} = %v, want 0", v)
	}
	if _, err := k.c.Ping(k.ctx()); err != nil || k.exited() {
		t.Errorf("pilotfish does not answer after the vanishing clients: %v", err)
	}
}

// A port already in use: the job fails with a clear log line and status; pilotfish and
// its other jobs keep running; once the port is free, `pilotfish start` listens.
func TestInetdPortInUse(t *testing.T) {
	t.Parallel()
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	busy := holder.Addr().String()
	okPort := freePort(t)
	k := startPF(t, `
job "busy" {
  kind   = "inetd"
  listen = "tcp://`+busy+`"
  exec   = ["/bin/echo", "busy"]
}
job "ok" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1:`+strconv.Itoa(okPort)+`"
  exec   = ["/bin/echo", "ok"]
}
`)
	w := k.WaitLog(5*time.Second, is("cannot prepare job; it will not run", "busy"), "the listen failure")
	if e := w.str("err"); !strings.Contains(e, "tcp://"+busy) || !strings.Contains(e, "address already in use") || w.str("level") != "ERROR" {
		t.Errorf("the failure log does not say what and why: %v", w)
	}
	j := k.job("busy")
	if j.State != "failed" || !strings.Contains(j.Status, "address already in use") {
		t.Errorf("busy: state %q status %q, want failed and the reason", j.State, j.Status)
	}
	if v := k.metric("pilotfish_job_state", map[string]string{"job": "busy", "state": "failed"}); v != 1 {
		t.Errorf("pilotfish_job_state{job=busy,state=failed} = %v, want 1", v)
	}
	r := runCmd(t, k.Dir, "status", "-socket", k.sock)
	if !regexp.MustCompile(`(?m)^busy\s+inetd\s+failed\s.*address already in use`).MatchString(r.stdout) {
		t.Errorf("pilotfish status does not show busy's failure:\n%s", r.stdout)
	}
	if out := runClient(t, 10*time.Second, "", "nc", "-N", "127.0.0.1", strconv.Itoa(okPort)); out != "ok\n" {
		t.Errorf("the other inetd job answered %q", out)
	}
	if k.exited() {
		t.Fatalf("pilotfish exited")
	}

	// The port is free again: start listens.
	holder.Close()
	if r := runCmd(t, k.Dir, "start", "-socket", k.sock, "busy"); r.code != 0 {
		t.Fatalf("pilotfish start busy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	j = k.waitState(5*time.Second, "busy", "listening")
	host, port, _ := net.SplitHostPort(busy)
	if out := runClient(t, 10*time.Second, "", "nc", "-N", host, port); out != "busy\n" {
		t.Errorf("busy after start answered %q", out)
	}
	// The failure is over: the status line should not still report it.
	j = k.job("busy")
	if strings.Contains(j.Status, "address already in use") {
		t.Errorf("busy is %s and serves connections, but its status still says %q", j.State, j.Status)
	}
}

// A listen address that cannot be a unix socket path is refused by validate.
func TestInetdValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.hcl"), `
job "a" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1:7000"
  exec   = ["cat"]
}
job "b" {
  kind            = "inetd"
  listen          = "udp://0.0.0.0:7001"
  max_connections = 8
  exec            = ["cat"]
}
job "c" {
  kind   = "inetd"
  listen = "unix:///run/c.sock"
  mode   = "activate"
  exec   = ["/usr/bin/app"]
}
job "d" {
  kind   = "inetd"
  listen = "tcp://[::1]:7002"
  mode   = "accept"
  exec   = ["cat"]
}
`, 0o644)
	if r := runCmd(t, dir, "validate", "-config", "good.hcl"); r.code != 0 {
		t.Errorf("validate good.hcl: exit %d\n%s", r.code, r.stderr)
	}
	writeFile(t, filepath.Join(dir, "bad.hcl"), `job "scheme" {
  kind   = "inetd"
  listen = "http://127.0.0.1:80"
  exec   = ["cat"]
}
job "port" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1:99999"
  exec   = ["cat"]
}
job "mode" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1:7000"
  mode   = "spawn"
  exec   = ["cat"]
}
job "max" {
  kind            = "inetd"
  listen          = "tcp://127.0.0.1:7000"
  max_connections = 0
  exec            = ["cat"]
}
job "health" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1:7000"
  exec   = ["cat"]
  health {
    exec = ["true"]
  }
}
job "noport" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1"
  exec   = ["cat"]
}
job "relative" {
  kind   = "inetd"
  listen = "unix://run/app.sock"
  exec   = ["cat"]
}
job "empty" {
  kind   = "inetd"
  listen = ""
  exec   = ["cat"]
}
job "fragment" {
  kind   = "inetd"
  listen = "unix:///run/a#1.sock"
  exec   = ["cat"]
}
job "query" {
  kind   = "inetd"
  listen = "unix:///run/b.sock?mode=0600"
  exec   = ["cat"]
}
job "path" {
  kind   = "inetd"
  listen = "tcp://127.0.0.1:7003/app"
  exec   = ["cat"]
}
`, 0o644)
	r := runCmd(t, dir, "validate", "-config", "bad.hcl")
	if r.code != 1 {
		t.Errorf("validate bad.hcl: exit %d, want 1", r.code)
	}
	bad := readFile(t, filepath.Join(dir, "bad.hcl"))
	for _, want := range []string{
		`^bad\.hcl:` + kindsLineOf(bad, "http://127.0.0.1:80") + `:\d+: .*the scheme must be one of tcp, udp, unix`,
		`^bad\.hcl:` + kindsLineOf(bad, ":99999") + `:\d+: .*"99999" is not a port`,
		`^bad\.hcl:` + kindsLineOf(bad, `"spawn"`) + `:\d+: .*"mode" must be one of "accept", "activate"`,
		`^bad\.hcl:` + kindsLineOf(bad, "= 0") + `:\d+: .*"max_connections" must be a whole number from 1`,
		`^bad\.hcl:` + kindsLineOf(bad, `job "health"`) + `:\d+: .*health checks apply to mode = "activate"`,
		`^bad\.hcl:` + kindsLineOf(bad, `"tcp://127.0.0.1"`) + `:\d+: .*missing port`,
		// unix://run/app.sock parses as host "run" and path "/app.sock": pilotfish would
		// listen on /app.sock, not on the path the user wrote. It must be refused.
		`^bad\.hcl:` + kindsLineOf(bad, "unix://run/app.sock") + `:\d+: .*unix://run/app\.sock`,
		// Found by fuzzing: an empty listen listened on a random TCP port, and a "#", a "?"
		// or a path were ignored, listening elsewhere than written.
		`^bad\.hcl:` + kindsLineOf(bad, `listen = ""`) + `:\d+: .*"" is not a listen address`,
		`^bad\.hcl:` + kindsLineOf(bad, "a#1.sock") + `:\d+: .*no user, query \(\?\) or fragment`,
		`^bad\.hcl:` + kindsLineOf(bad, "mode=0600") + `:\d+: .*no user, query \(\?\) or fragment`,
		`^bad\.hcl:` + kindsLineOf(bad, "7003/app") + `:\d+: .*without a path`,
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(r.stderr) {
			t.Errorf("validate bad.hcl: no diagnostic matching %q in:\n%s", want, r.stderr)
		}
	}
}

// kindsLineOf returns the 1-based number of the first line of s that contains sub.
func kindsLineOf(s, sub string) string {
	for i, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strconv.Itoa(i + 1)
		}
	}
	return "NOT-FOUND"
}
