package integration

// The control API under bad input and bad clients (docs/api.md): every refusal is a JSON error
// with a fitting status; silent, slow, numerous and stalled clients do not hold up anyone.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/pilotfish/pilotfish/control/client"
)

// docs/api.md: malformed JSON, wrong types, unknown jobs and signals, oversized bodies, wrong
// methods and unknown paths are each refused with {"error":{"kind","message"}} and the
// fitting status; none of them changes anything.
func TestControlBadInput(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "done" {
  exec = "true"
}
`})
	a := newGoAPI(t, sock)
	steady := waitJob(t, a, "steady", 10*time.Second, running, "running")
	waitJob(t, a, "done", 10*time.Second, func(j client.Job) bool { return j.State == "completed" }, "completed")

	big := func(n int) string { return strings.Repeat("x", n) }
	// A JSON object of exactly n bytes: {"K":"xxx…"}.
	objectOf := func(n int) string { return `{"K":"` + big(n-len(`{"K":""}`)) + `"}` }
	const mib = 1 << 20
	type req struct {
		method, path, body string
		code               int
		kind               string
	}
	bad := client.KindBadRequest
	cases := []req{
		// malformed JSON
		{"POST", "/v1/jobs/steady/signal", `{"signal":`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `not json`, 400, bad},
		{"POST", "/v1/environ", `{bad`, 400, bad},
		{"POST", "/v1/metric", `{"orders_total":`, 400, bad},
		{"POST", "/v1/reload", `{`, 400, bad},
		{"POST", "/v1/maintenance/enable", `{]`, 400, bad},
		{"POST", "/v1/jobs/steady/stop", `{"`, 400, bad},
		// wrong types and shapes
		{"POST", "/v1/jobs/steady/signal", `{"signal":1}`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `{"signal":["HUP"]}`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `["HUP"]`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `{"signal":"HUP","force":true}`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `{"signal":"HUP"}{"signal":"HUP"}`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", ``, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `{}`, 400, bad},
		{"POST", "/v1/environ", `{"A":1}`, 400, bad},
		{"POST", "/v1/environ", `["A=1"]`, 400, bad},
		{"POST", "/v1/environ", `"A=1"`, 400, bad},
		{"POST", "/v1/environ", `null`, 400, bad},
		{"POST", "/v1/environ", `{"A=B":"c"}`, 400, bad},
		{"POST", "/v1/environ", `{"":"c"}`, 400, bad},
		{"POST", "/v1/metric", `{"orders_total":"many"}`, 400, bad},
		{"POST", "/v1/metric", `[1]`, 400, bad},
		{"POST", "/v1/reload", `{"file":"/etc/passwd"}`, 400, bad},
		{"POST", "/v1/reload", `[]`, 400, bad},
		{"POST", "/v1/jobs/steady/start", `{"force":true}`, 400, bad},
		{"POST", "/v1/maintenance/disable", `"on"`, 400, bad},
		{"POST", "/v1/shutdown", `{"now":true}`, 400, bad},
		// unknown signals
		{"POST", "/v1/jobs/steady/signal", `{"signal":"BOGUS"}`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `{"signal":"SIGNOPE"}`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `{"signal":"99"}`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `{"signal":"0"}`, 400, bad},
		{"POST", "/v1/jobs/steady/signal", `{"signal":"-9"}`, 400, bad},
		// unknown jobs
		{"GET", "/v1/jobs/nosuchjob", ``, 404, client.KindNotFound},
		{"POST", "/v1/jobs/nosuchjob/start", `{}`, 404, client.KindNotFound},
		{"POST", "/v1/jobs/nosuchjob/stop", ``, 404, client.KindNotFound},
		{"POST", "/v1/jobs/nosuchjob/restart", `{}`, 404, client.KindNotFound},
		{"POST", "/v1/jobs/nosuchjob/signal", `{"signal":"HUP"}`, 404, client.KindNotFound},
		// the job exists but the request does not fit its state (start of a running job is
		// a no-op answered 200, see TestControlAPIWithGoClient)
		{"POST", "/v1/jobs/done/signal", `{"signal":"HUP"}`, 409, client.KindConflict},
		// oversized bodies (> 1 MiB), even ones that would otherwise be fine
		{"POST", "/v1/environ", objectOf(mib + 1), 413, client.KindTooLarge},
		{"POST", "/v1/environ", big(mib + 64<<10), 413, client.KindTooLarge},
		{"POST", "/v1/jobs/steady/signal", `{"signal":"HUP"}` + strings.Repeat(" ", mib), 413, client.KindTooLarge},
		{"POST", "/v1/reload", `{}` + strings.Repeat(" ", mib), 413, client.KindTooLarge},
		{"POST", "/v1/metric", objectOf(mib + 1), 413, client.KindTooLarge},
		{"POST", "/v1/maintenance/enable", strings.Repeat(" ", mib+1), 413, client.KindTooLarge},
		{"POST", "/v1/shutdown", strings.Repeat(" ", mib+1), 413, client.KindTooLarge},
		{"POST", "/v3/environ", objectOf(mib + 1), 413, client.KindTooLarge},
		// wrong methods
		{"GET", "/v1/reload", ``, 405, client.KindMethod},
		{"POST", "/v1/status", `{}`, 405, client.KindMethod},
		{"DELETE", "/v1/ping", ``, 405, client.KindMethod},
		{"PUT", "/v1/environ", `{"A":"b"}`, 405, client.KindMethod},
		{"GET", "/v1/jobs/steady/restart", ``, 405, client.KindMethod},
		{"DELETE", "/v1/jobs/steady", ``, 405, client.KindMethod},
		{"POST", "/v1/events", ``, 405, client.KindMethod},
		{"GET", "/v1/shutdown", ``, 405, client.KindMethod},
		{"POST", "/v1/health", ``, 405, client.KindMethod},
		{"GET", "/v3/reload", ``, 405, client.KindMethod},
		{"GET", "/v3/maintenance/enable", ``, 405, client.KindMethod},
		// unknown paths
		{"GET", "/", ``, 404, client.KindNotFound},
		{"GET", "/v1/nope", ``, 404, client.KindNotFound},
		{"GET", "/v2/ping", ``, 404, client.KindNotFound},
		{"GET", "/v3/status", ``, 404, client.KindNotFound},
		{"POST", "/v1/jobs/steady/explode", `{}`, 404, client.KindNotFound},
		{"GET", "/v1/jobs/steady/logs", ``, 404, client.KindNotFound},
		{"POST", "/v1/maintenance/toggle", ``, 404, client.KindNotFound},
	}
	for _, c := range cases {
		what := fmt.Sprintf("%s %s %q", c.method, c.path, tail(c.body, 40))
		var body []byte
		if c.body != "" || c.method == "POST" {
			body = []byte(c.body)
		}
		code, ctype, resp := rawRequest(sock, c.method, c.path, body, 20*time.Second)
		apiError(t, what, code, ctype, resp, c.code, c.kind)
	}
	// The same classes through curl(1), as a shell script would send them.
	for _, c := range []req{
		{"POST", "/v1/environ", `{"A":`, 400, bad},
		{"POST", "/v1/environ", `{"A":1}`, 400, bad},
		{"POST", "/v1/jobs/nosuchjob/restart", `{}`, 404, client.KindNotFound},
		{"POST", "/v1/jobs/steady/signal", `{"signal":"BOGUS"}`, 400, bad},
		{"POST", "/v1/environ", objectOf(mib + 1), 413, client.KindTooLarge},
		{"GET", "/v1/reload", ``, 405, client.KindMethod},
		{"GET", "/v1/nope", ``, 404, client.KindNotFound},
	} {
		what := fmt.Sprintf("curl %s %s %q", c.method, c.path, tail(c.body, 40))
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		code, ctype, resp := curlDo(t, sock, c.method, c.path, body)
		apiError(t, what, code, ctype, resp, c.code, c.kind)
	}
	// A body of exactly 1 MiB is still accepted: ten values within the putenv limits
	// (128 KiB each, 1 MiB in all; see TestControlEnvironLimits).
	var exact strings.Builder
	exact.WriteString("{")
	for i := range 10 {
		if i > 0 {
			exact.WriteString(",")
		}
		fmt.Fprintf(&exact, `"K%d":"`, i)
		n := 100 << 10
		if i == 9 {
			n = mib - exact.Len() - len(`"}`)
		}
		exact.WriteString(big(n) + `"`)
	}
	exact.WriteString("}")
	if code, _, resp := rawRequest(sock, "POST", "/v1/environ", []byte(exact.String()), 20*time.Second); code != 200 || exact.Len() != mib {
		t.Errorf("POST /v1/environ with a body of exactly 1 MiB (%d): %d %s, want 200", exact.Len(), code, tail(string(resp), 200))
	}

	// Nothing was changed by the refused requests: same process, still not in maintenance,
	// still running.
	if j := must[client.Job](t, "job steady")(a.Job("steady")); j.Pid != steady.Pid || j.State != "running" || j.Restarts != 0 {
		t.Errorf("steady after the bad requests: %+v, want the same running process (pid %d)", j, steady.Pid)
	}
	if st := must[client.Status](t, "status")(a.Status()); st.Maintenance {
		t.Errorf("maintenance is on after refused requests")
	}
	if !p.Running() {
		t.Fatalf("pilotfish exited")
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// The message of an error leaves out the class the kind already names ("conflict: …"
// twice reads like a stutter, and control/errors.go strips it on purpose).
func TestControlConflictMessage(t *testing.T) {
	t.Parallel()
	_, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`})
	a := newGoAPI(t, sock)
	waitJob(t, a, "steady", 10*time.Second, running, "running")
	must[client.Job](t, "stop steady")(a.Stop("steady"))
	err := a.Signal("steady", "HUP")
	ae := wantAPIError(t, "signal to a stopped job", err, http.StatusConflict)
	if ae.Kind != client.KindConflict {
		t.Errorf("kind %q, want %q", ae.Kind, client.KindConflict)
	}
	if strings.HasPrefix(ae.Message, "conflict") {
		t.Errorf("message %q repeats the error class that kind %q already says", ae.Message, ae.Kind)
	}
}

// docs/api.md: /v1/environ takes "a JSON object of strings"; a null value is a wrong type, not an
// empty string.
func TestControlEnvironNullValue(t *testing.T) {
	t.Parallel()
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "envjob" {
  exec = ["/bin/sh", "-c", "echo \"PF_N=$${PF_N-unset}\" >> \"$TESTDIR/env.txt\"; exec sleep 1000"]
}
`})
	a := newGoAPI(t, sock)
	waitJob(t, a, "envjob", 10*time.Second, running, "running")
	code, ctype, body := rawRequest(sock, "POST", "/v1/environ", []byte(`{"PF_N":null}`), 10*time.Second)
	if code == http.StatusOK {
		if _, err := a.Restart("envjob"); err != nil {
			t.Fatal(err)
		}
		envFile := filepath.Join(p.Dir, "env.txt")
		waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, envFile)) >= 2 }, "envjob to start again")
		t.Errorf(`POST /v1/environ {"PF_N":null} was accepted (200 %s); a job started after it sees %q`, strings.TrimSpace(string(body)), fileLines(t, envFile)[1])
		return
	}
	apiError(t, `POST /v1/environ {"PF_N":null}`, code, ctype, body, http.StatusBadRequest, client.KindBadRequest)
}

// docs/api.md: a client that connects and sends nothing (or half a request) neither blocks
// other clients nor holds its connection for ever.
func TestControlSilentClients(t *testing.T) {
	t.Parallel()
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`})
	var conns []net.Conn
	for i := range 20 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		switch i % 3 {
		case 1: // half a request line
			fmt.Fprint(c, "GET /v1/sta")
		case 2: // headers without their end
			fmt.Fprint(c, "POST /v1/reload HTTP/1.1\r\nHost: x\r\n")
		}
		conns = append(conns, c)
	}
	opened := time.Now()
	// Others are answered at once, through curl and the Go client.
	a := newGoAPI(t, sock)
	for range 10 {
		t0 := time.Now()
		if _, err := a.Status(); err != nil {
			t.Fatalf("status while silent clients are connected: %v", err)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("status took %s while silent clients are connected", d)
		}
	}
	if _, err := curlPing(t, sock); err != nil {
		t.Errorf("curl ping while silent clients are connected: %v", err)
	}
	// Each silent connection is closed by the daemon: a read ends (EOF or reset, or an
	// HTTP 408 before the close) instead of timing out.
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(40 * time.Second))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				errs[i] = fmt.Errorf("still open after %s", time.Since(opened).Round(time.Second))
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("silent connection %d: %v", i, err)
		}
	}
	t.Logf("silent connections cut off after %s", time.Since(opened).Round(100*time.Millisecond))
	if !p.Running() {
		t.Fatalf("pilotfish exited")
	}
}

func curlPing(t testing.TB, sock string) (string, error) {
	code, _, body := curlDo(t, sock, "GET", "/v1/ping", nil)
	if code != 200 {
		return "", fmt.Errorf("status %d: %s", code, body)
	}
	return string(body), nil
}

// docs/api.md: 100 clients at once are all answered.
func TestControlConcurrentClients(t *testing.T) {
	t.Parallel()
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "other" {
  exec = "sleep 1000"
}
`})
	waitJob(t, newGoAPI(t, sock), "other", 10*time.Second, running, "running")
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	begin := make(chan struct{})
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(sock) // a transport, and so a connection, of its own
			ctx := ctxFor(t, 30*time.Second)
			<-begin
			var err error
			switch i % 4 {
			case 0:
				var st client.Status
				if st, err = c.Status(ctx); err == nil && len(st.Jobs) != 2 {
					err = fmt.Errorf("status lists %d jobs", len(st.Jobs))
				}
			case 1:
				_, err = c.Ping(ctx)
			case 2:
				var j client.Job
				if j, err = c.Job(ctx, "steady"); err == nil && j.Name != "steady" {
					err = fmt.Errorf("job answered %+v", j)
				}
			case 3:
				_, _, err = c.Health(ctx)
			}
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	close(begin)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d concurrent clients answered in %s", n, time.Since(t0).Round(time.Millisecond))
	// And once more over raw connections all opened before any request is sent.
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprint(c, "GET /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
				t.Errorf("raw connection %d: %q %v", i, line, err)
			}
		}()
	}
	wg.Wait()
	if !p.Running() {
		t.Fatalf("pilotfish exited")
	}
}

// docs/events.md, docs/api.md, docs/guarantees.md#1: an event-stream reader that never reads (its socket buffer full, the
// daemon's write blocked) slows neither the API nor the bus nor shutdown.
func TestControlStalledEventReader(t *testing.T) {
	t.Parallel()
	// Each failed start of "noisy" publishes an exitFailed event carrying its ~3 KB path, so
	// replaying the ring is far more than a socket buffer holds.
	long := "/nonexistent"
	for range 15 {
		long += "/" + strings.Repeat("a", 200)
	}
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "other" {
  exec = "sleep 1000"
}
job "noisy" {
  exec     = [` + hclString(long) + `]
  restarts = 40
  backoff  = { initial = "1ms", max = "2ms" }
}
`})
	a := newGoAPI(t, sock)
	waitJob(t, a, "noisy", 20*time.Second, func(j client.Job) bool { return j.State == "failed" }, "noisy to fail for good")
	steady := waitJob(t, a, "steady", 10*time.Second, running, "running")

	stalled, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprint(stalled, "GET /v1/events?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
	// Wait until the daemon's writes to it block: the unread bytes stop growing at a size
	// that only a full buffer explains.
	var last, inq int
	waitFor(t, 10*time.Second, func() bool {
		last, inq = inq, unreadBytes(t, stalled)
		return inq > 100<<10 && inq == last
	}, "the stalled reader's socket buffer to fill (%d bytes unread)", inq)
	stalledAt := time.Now()
	t.Logf("stalled reader holds %d unread bytes", inq)

	// The API answers at once, jobs can be driven, and the bus goes on.
	var slowest time.Duration
	for range 20 {
		t0 := time.Now()
		if _, err := a.Ping(); err != nil {
			t.Fatalf("ping with a stalled event reader: %v", err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	if slowest > time.Second {
		t.Errorf("a ping took %s with a stalled event reader", slowest)
	}
	t0 := time.Now()
	if _, err := a.Restart("steady"); err != nil {
		t.Fatalf("restart with a stalled event reader: %v", err)
	}
	waitJob(t, a, "steady", 5*time.Second, func(j client.Job) bool { return running(j) && j.Pid != steady.Pid }, "a new pid")
	check(t, "maintenance on", a.Maintenance(true))
	evs, err := a.Replay(0)
	check(t, "events from another reader", err)
	if n := len(evs); n == 0 || evs[n-1].Code != "enterMaintenance" {
		t.Errorf("another reader does not see the latest event: %v", eventNames(evs[max(0, len(evs)-3):]))
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("restart, maintenance and a replay took %s with a stalled event reader", d)
	}
	if time.Since(stalledAt) > 4*time.Second {
		t.Logf("warning: the checks took %s; the daemon may have dropped the stalled reader already", time.Since(stalledAt))
	}
	if got := unreadBytes(t, stalled); got < inq {
		t.Fatalf("the stalled reader's buffer shrank (%d → %d bytes)?", inq, got)
	}

	// Shutdown is not held up by the reader either.
	t0 = time.Now()
	p.Signal(syscall.SIGTERM)
	if !p.ExitsWithin(10 * time.Second) {
		t.Fatalf("pilotfish did not exit within 10s of SIGTERM with a stalled event reader")
	}
	if d := p.ExitedAt().Sub(t0); d > 3*time.Second {
		t.Errorf("shutdown took %s with a stalled event reader", d)
	}
	if code := p.exitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// unreadBytes is how many bytes wait in c's receive queue (FIONREAD).
func unreadBytes(t testing.TB, c net.Conn) int {
	t.Helper()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var errno syscall.Errno
	_ = raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	})
	if errno != 0 {
		t.Fatalf("FIONREAD: %v", errno)
	}
	return n
}

// docs/jobs.md: "with nothing left running it exits at once" and "pilotfish always answers
// SIGTERM at once". A client connected to the socket, a follower of /v1/events (`pilotfish
// events -f` in another terminal, a monitoring sidecar) or one that has not sent its request
// yet, must not hold pilotfish up when it exits; the follower's stream ends cleanly after
// the shutdown events.
func TestControlShutdownWithOpenConnections(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	cfg := jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`
	shutdownTime := func(t *testing.T, p *instance) time.Duration {
		t.Helper()
		t0 := time.Now()
		p.Signal(syscall.SIGTERM)
		if !p.ExitsWithin(10 * time.Second) {
			t.Fatalf("pilotfish did not exit within 10s of SIGTERM")
		}
		if code := p.exitCode(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		return p.ExitedAt().Sub(t0)
	}
	// Reference: the same shutdown with no client connected.
	var alone time.Duration
	{
		p, sock := startCtl(t, opts{Config: cfg})
		waitJob(t, newGoAPI(t, sock), "steady", 10*time.Second, running, "running")
		alone = shutdownTime(t, p)
	}

	t.Run("event follower", func(t *testing.T) {
		p, sock := startCtl(t, opts{Config: cfg})
		waitJob(t, newGoAPI(t, sock), "steady", 10*time.Second, running, "running")
		cmd := exec.Command("curl", "-sSN", "--unix-socket", sock, "http://pilotfish/v1/events?since=0")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		ch := make(chan client.Event, 100)
		go func() { defer close(ch); _ = parseSSE(out, ch) }()
		waitEvent(t, ch, 10*time.Second, "started", "steady")
		took := shutdownTime(t, p)
		_, _ = waitEvent(t, ch, 5*time.Second, "shutdown", "global")
		_, _ = waitEvent(t, ch, 5*time.Second, "stopped", "steady")
		for range ch {
		}
		err = cmd.Wait()
		t.Logf("shutdown took %s with an event follower (%s with no client); curl: %v %s", took.Round(time.Millisecond), alone.Round(time.Millisecond), err, strings.TrimSpace(stderr.String()))
		if took > 900*time.Millisecond {
			t.Errorf("shutdown took %s with an event follower connected, %s without: the follower holds pilotfish up", took.Round(time.Millisecond), alone.Round(time.Millisecond))
		}
		if err != nil {
			t.Errorf("the follower's stream did not end cleanly at shutdown: curl %v: %s", err, strings.TrimSpace(stderr.String()))
		}
	})

	t.Run("client that sent nothing yet", func(t *testing.T) {
		p, sock := startCtl(t, opts{Config: cfg})
		waitJob(t, newGoAPI(t, sock), "steady", 10*time.Second, running, "running")
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		took := shutdownTime(t, p)
		t.Logf("shutdown took %s with a silent client (%s with no client)", took.Round(time.Millisecond), alone.Round(time.Millisecond))
		if took > 900*time.Millisecond {
			t.Errorf("shutdown took %s with a silent client connected, %s without: the client holds pilotfish up", took.Round(time.Millisecond), alone.Round(time.Millisecond))
		}
	})
}
