package integration

// The control API's limits (docs/guarantees.md#limits, docs/api.md#limits): a bounded number of streams,
// connections that cannot take every file descriptor, and bounded putenv values. Whatever
// the clients do, /v1/ping and /v1/status keep answering and memory comes back.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

const maxStreams = 64 // docs/api.md#limits

// openStream starts curl(1) following /v1/events and returns once the answer's status line
// is in; kill ends the stream.
func openStream(t *testing.T, sock string) (status string, kill func()) {
	t.Helper()
	cmd := exec.Command("curl", "-sS", "-N", "-D", "-", "-o", "/dev/null", "--unix-socket", sock, "http://pilotfish/v1/events")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	kill = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(kill)
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case status = <-line:
	case <-time.After(20 * time.Second):
		t.Fatalf("stream %s: no answer within 20s", sock)
	}
	return status, kill
}

// docs/guarantees.md#limits: at most 64 concurrent streams; one more gets 429 too-many-streams while ping and
// status keep answering, and a slot comes back as soon as a client leaves.
func TestControlStreamCap(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`})
	var kills []func()
	for i := range maxStreams {
		status, kill := openStream(t, sock)
		if !strings.Contains(status, " 200") {
			t.Fatalf("stream %d answered %q, want 200", i+1, status)
		}
		kills = append(kills, kill)
	}
	code, ctype, body := curlDo(t, sock, "GET", "/v1/events", nil)
	apiError(t, "the 65th stream", code, ctype, body, http.StatusTooManyRequests, client.KindTooManyStreams)
	for _, path := range []string{"/v1/ping", "/v1/status", "/v1/health"} {
		if code, _, body := curlDo(t, sock, "GET", path, nil); code != 200 {
			t.Errorf("GET %s with every stream slot taken: %d %s", path, code, body)
		}
	}
	kills[0]()
	waitFor(t, 10*time.Second, func() bool {
		code, _, _ := curlDo(t, sock, "GET", "/v1/events?follow=false", nil)
		return code == 200
	}, "the slot of the stream that left to be free again")
	for _, kill := range kills[1:] {
		kill()
	}
	if code, _ := p.SignalWait(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// floodPy opens N connections to the socket at once, each asking for /v1/events, prints
// how they were answered, holds them until its stdin closes, then closes them all.
const floodPy = `import asyncio, json, sys
sock, n = sys.argv[1], int(sys.argv[2])
answers, conns = {}, []
async def one():
    try:
        r, w = await asyncio.wait_for(asyncio.open_unix_connection(sock), 30)
        conns.append(w)
        w.write(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        await w.drain()
        line = await asyncio.wait_for(r.readline(), 30)
        key = line.split(b" ")[1].decode() if line else "closed"
    except Exception as e:
        key = type(e).__name__
    answers[key] = answers.get(key, 0) + 1
async def main():
    await asyncio.gather(*(one() for _ in range(n)))
    print(json.dumps(answers), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in conns:
        w.close()
asyncio.run(main())
`

// vmRSS is a process's resident memory in bytes (0 if it is gone).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// docs/guarantees.md#limits: thousands of clients asking for /v1/events at once, more than pilotfish has
// file descriptors, cannot take the API down: at most 64 get a stream, the others 429 or a
// closed connection, /v1/ping and /v1/status keep answering, and the memory the flood took
// is given back once its clients leave.
func TestControlStreamFlood(t *testing.T) {
	// Not parallel: the flood takes the CPU, and other tests time their answers.
	requireCurl(t)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit(1) is not installed: cannot lower pilotfish's file limit")
	}
	const nofile, clients = 512, 3000
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`, Launcher: []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile)}, NoRace: true})
	pid := p.PID()
	before := rssAnon(pid)

	flood := exec.Command(python, "-c", floodPy, sock, strconv.Itoa(clients))
	stdin, err := flood.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := flood.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	flood.Stderr = os.Stderr
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = flood.Wait(); close(done) }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = flood.Process.Kill()
			<-done
		}
	})
	// While the flood connects and holds: ping and status answer.
	pings := 0
	answered := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		answered <- l
	}()
	var summary string
	deadline := time.Now().Add(60 * time.Second)
	for summary == "" {
		t0 := time.Now()
		for _, path := range []string{"/v1/ping", "/v1/status"} {
			if code, _, body := curlDo(t, sock, "GET", path, nil); code != 200 {
				t.Fatalf("GET %s during the flood: %d %s", path, code, body)
			}
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("ping and status took %s during the flood", d.Round(time.Millisecond))
		}
		pings++
		select {
		case summary = <-answered:
		case <-time.After(100 * time.Millisecond):
		}
		if summary == "" && time.Now().After(deadline) {
			t.Fatalf("the flood's clients were not all answered within 60s")
		}
	}
	peak := rssAnon(pid)
	t.Logf("%d clients: %s; ping and status answered %d times meanwhile", clients, strings.TrimSpace(summary), pings)
	if code, _, body := curlDo(t, sock, "GET", "/v1/ping", nil); code != 200 {
		t.Fatalf("ping while the flood holds its connections: %d %s", code, body)
	}
	if n := jsonInt(summary, "200"); n > maxStreams {
		t.Errorf("%d streams were opened, more than %d", n, maxStreams)
	}
	if code, ctype, body := curlDo(t, sock, "GET", "/v1/events", nil); code != http.StatusTooManyRequests && code != 200 {
		apiError(t, "a stream during the flood", code, ctype, body, http.StatusTooManyRequests, client.KindTooManyStreams)
	}

	// The clients leave: the slots come back, and the memory.
	stdin.Close()
	<-done
	waitFor(t, 10*time.Second, func() bool {
		code, _, _ := curlDo(t, sock, "GET", "/v1/events?follow=false", nil)
		return code == 200
	}, "a stream slot after the flood left")
	var after int64
	settled := poll(30*time.Second, func() bool {
		after = rssAnon(pid)
		return after < before+12<<20
	})
	t.Logf("anonymous RSS: %d MiB before, %d MiB with the flood connected, %d MiB after it left", before>>20, peak>>20, after>>20)
	if !settled {
		t.Errorf("RSS stays at %d MiB after the flood left (%d MiB before)", after>>20, before>>20)
	}
	if code, _ := p.SignalWait(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// jsonInt reads one integer member of a flat JSON object line ({"200": 64, …}).
func jsonInt(line, key string) int {
	i := strings.Index(line, `"`+key+`": `)
	if i < 0 {
		return 0
	}
	rest := line[i+len(key)+4:]
	j := strings.IndexAny(rest, ",}")
	n, _ := strconv.Atoi(strings.TrimSpace(rest[:j]))
	return n
}

// docs/guarantees.md#limits: a putenv value the kernel would refuse at exec (an environment string over
// 128 KiB) or a total over 1 MiB is refused with 413 and a message that says why, and jobs
// keep starting.
func TestControlEnvironLimits(t *testing.T) {
	t.Parallel()
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "tick" {
  exec = ["/bin/sh", "-c", "echo \"$SMALL\" > \"$TESTDIR/small\""]
  when {
    interval = "200ms"
  }
}
`})
	a := newGoAPI(t, sock)
	post := func(body string) (int, string, []byte) {
		return rawRequest(sock, "POST", "/v1/environ", []byte(body), 20*time.Second)
	}
	// 140 KB: accepted before, and then every job start failed with E2BIG.
	code, ctype, body := post(`{"BIG":"` + strings.Repeat("x", 140_000) + `"}`)
	apiError(t, "a 140 KB value", code, ctype, body, http.StatusRequestEntityTooLarge, client.KindTooLarge)
	if !strings.Contains(string(body), "E2BIG") || !strings.Contains(string(body), "BIG") {
		t.Errorf("the refusal does not say why: %s", body)
	}
	// The largest entry the kernel takes: KEY=VALUE plus its NUL in 128 KiB.
	if code, _, body := post(`{"K":"` + strings.Repeat("x", 128<<10-3) + `"}`); code != 200 {
		t.Errorf("a value of 128 KiB - 3 bytes under a one-letter name: %d %s, want 200", code, body)
	}
	if code, _, body := post(`{"K":"` + strings.Repeat("x", 128<<10-2) + `"}`); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a value one byte longer: %d %s, want 413", code, body)
	}
	// Many values: the total stops at 1 MiB.
	refused := 0
	for i := range 12 {
		code, ctype, body := post(fmt.Sprintf(`{"V%d":"%s"}`, i, strings.Repeat("y", 100<<10)))
		if code != 200 {
			apiError(t, fmt.Sprintf("value %d", i), code, ctype, body, http.StatusRequestEntityTooLarge, client.KindTooLarge)
			if !strings.Contains(string(body), "1 MiB") {
				t.Errorf("the refusal does not name the limit: %s", body)
			}
			refused++
		}
	}
	if refused != 4 {
		t.Errorf("%d of 12 values of 100 KiB were refused, want the 4 past 1 MiB in all (with the 128 KiB one)", refused)
	}
	// Overwriting a value with a shorter one makes room.
	if code, _, body := post(`{"K":"","SMALL":"fits"}`); code != 200 {
		t.Errorf("shortening a value: %d %s", code, body)
	}
	// Jobs still start, and see the values.
	waitFor(t, 10*time.Second, func() bool { return strings.TrimSpace(readFile(t, p.Dir+"/small")) == "fits" }, "the job to see SMALL")
	if j := must[client.Job](t, "tick")(a.Job("tick")); j.ExitCode != nil && *j.ExitCode != 0 {
		t.Errorf("tick exited %d after the putenv refusals", *j.ExitCode)
	}
}
