package integration

// Job logs (docs/jobs.md#the-tail-of-a-jobs-output, docs/api.md#get-v1logs,
// docs/cli.md#logs): the tail every job keeps, GET /v1/logs with and without follow,
// `pilotfish logs`, and the job lines' formats on pilotfish's own stdout.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
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

// keeper keeps pilotfish running while the jobs under test have ended.
const keeper = `
job "keep" {
  exec = "sleep 1000"
}
`

// logLine is one line of GET /v1/logs, read strictly: nothing but the documented fields.
type logLine struct {
	Time    time.Time `json:"time"`
	Job     string    `json:"job"`
	Stream  string    `json:"stream"`
	Message string    `json:"message"`
	Dropped uint64    `json:"dropped"`
}

// getLogs asks GET /v1/logs with query through curl and returns its lines.
func getLogs(t testing.TB, sock, query string) []logLine {
	t.Helper()
	code, ctype, body := curlDo(t, sock, "GET", "/v1/logs?"+query, nil)
	if code != http.StatusOK || ctype != "application/x-ndjson" {
		t.Fatalf("GET /v1/logs?%s: %d %q %s", query, code, ctype, tail(string(body), 500))
	}
	return parseNDJSON(t, string(body))
}

func parseNDJSON(t testing.TB, body string) []logLine {
	t.Helper()
	var out []logLine
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	for dec.More() {
		var l logLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("not an NDJSON log line: %v\n%s", err, tail(body, 500))
		}
		out = append(out, l)
	}
	if body != "" && !strings.HasSuffix(body, "}\n") {
		t.Fatalf("the answer does not end with a whole line: %q", tail(body, 100))
	}
	return out
}

// waitTail waits until the newest line of job's tail is last: a job's exit does not wait
// for pilotfish to have read all its output (docs/jobs.md#logging).
func waitTail(t testing.TB, sock, job, last string) {
	t.Helper()
	var got []logLine
	waitFor(t, 30*time.Second, func() bool {
		got = getLogs(t, sock, "n=1&jobs="+job)
		return len(got) == 1 && got[0].Message == last
	}, "the last line of %s, %q, in its tail", job, last)
}

func messagesOf(lines []logLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Message)
	}
	return out
}

// cliTime is the TIME of `pilotfish logs`: RFC 3339 with milliseconds.
const cliTime = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)`

// The tail holds the newest whole lines of a job that printed far more than its buffer, in
// order, within the buffer's size; n picks the newest n; the CLI prints them as
// `TIME [job] line`, or the NDJSON lines with -json.
func TestLogsTailHoldsLastLines(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	const total = 20000
	k := startPF(t, keeper+`
job "many" {
  exec = ["seq", "-f", "line-%06g", "1", "`+strconv.Itoa(total)+`"]
  logging {
    buffer = "4KiB"
  }
}
job "quiet" {
  exec = ["echo", "only line"]
}
`)
	waitTail(t, k.sock, "many", fmt.Sprintf("line-%06d", total))
	waitTail(t, k.sock, "quiet", "only line")

	all := getLogs(t, k.sock, "jobs=many&n=-1")
	size := 0
	for i, l := range all {
		want := fmt.Sprintf("line-%06d", total-len(all)+1+i)
		if l.Message != want || l.Job != "many" || l.Stream != "stdout" {
			t.Fatalf("line %d of the tail: %+v, want %q (the newest lines, in order, none missing)", i, l, want)
		}
		if i > 0 && l.Time.Before(all[i-1].Time) {
			t.Fatalf("line %d goes back in time: %v after %v", i, l.Time, all[i-1].Time)
		}
		size += len(l.Message) + 12
	}
	// docs/jobs.md: each line costs its bytes plus 12; the buffer bounds them.
	if size > 4096 || len(all) < 4096/(len("line-000000")+12)-1 {
		t.Errorf("the 4KiB tail holds %d lines (%d bytes): want it full, and within 4096 bytes", len(all), size)
	}
	if got := getLogs(t, k.sock, "jobs=many"); len(got) != 30 || got[29].Message != fmt.Sprintf("line-%06d", total) {
		t.Errorf("default n: %d lines ending %q, want the newest 30", len(got), messagesOf(got))
	}
	if got := messagesOf(getLogs(t, k.sock, "jobs=quiet&n=1000000")); strings.Join(got, ",") != "only line" {
		t.Errorf("n larger than the tail: %q", got)
	}
	if got := getLogs(t, k.sock, "jobs=many&n=0"); len(got) != 0 {
		t.Errorf("n=0 gave %d lines", len(got))
	}

	r := k.cli("logs", "-n", "3", "many")
	re := regexp.MustCompile(`^` + cliTime + ` \[many\] line-(\d{6})$`)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("pilotfish logs -n 3 many: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for i, l := range lines {
		if m := re.FindStringSubmatch(l); m == nil || m[len(m)-1] != fmt.Sprintf("%06d", total-2+i) {
			t.Errorf("pilotfish logs line %q, want TIME [many] line-%06d", l, total-2+i)
		}
	}
	r = k.cli("logs", "-json", "-n", "-1", "many", "quiet")
	got := parseNDJSON(t, r.stdout)
	if r.code != 0 || len(got) != len(all)+1 {
		t.Fatalf("pilotfish logs -json -n -1 many quiet: exit %d, %d lines, want %d", r.code, len(got), len(all)+1)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Errorf("pilotfish logs -json: %+v after %+v", got[i], got[i-1])
		}
	}
}

// A follower sees each new line as it comes, right after the backlog; the CLI's -f too.
func TestLogsFollowSeesLinesAsTheyCome(t *testing.T) {
	t.Parallel()
	k := startPF(t, `
job "tick" {
  exec = `+sh(`i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done`)+`
}
`)
	cmd := exec.Command(pilotfishBin, "logs", "-socket", k.sock, "-f", "-n", "2", "tick")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	type arrival struct {
		line string
		at   time.Time
	}
	arrivals := make(chan arrival, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			arrivals <- arrival{sc.Text(), time.Now()}
		}
		close(arrivals)
	}()
	re := regexp.MustCompile(`^(` + cliTime + `) \[tick\] tick (\d+)$`)
	last := 0
	for i := range 12 {
		var a arrival
		select {
		case a = <-arrivals:
		case <-time.After(10 * time.Second):
			t.Fatalf("line %d of pilotfish logs -f did not come within 10s", i+1)
		}
		m := re.FindStringSubmatch(a.line)
		if m == nil {
			t.Fatalf("pilotfish logs -f printed %q, want TIME [tick] tick N", a.line)
		}
		n, _ := strconv.Atoi(m[len(m)-1])
		if last != 0 && n != last+1 {
			t.Fatalf("tick %d after tick %d: a line lost or given twice", n, last)
		}
		last = n
		if i < 2 {
			continue // the backlog
		}
		// As it comes: the line arrives soon after pilotfish read it.
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatal(err)
		}
		if lag := a.at.Sub(at); lag > 3*time.Second {
			t.Errorf("tick %d reached the follower %v after it was written", n, lag)
		}
	}

	// The API's own client, one stream per job list.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []client.LogLine
	err = k.c.Logs(ctx, []string{"tick"}, 0, true, func(l client.LogLine) error {
		if got = append(got, l); len(got) == 3 {
			cancel()
		}
		return nil
	})
	if err != nil || len(got) != 3 {
		t.Fatalf("following with the client: %d lines, %v", len(got), err)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Job != "tick" || got[i].Stream != "stdout" || got[i].Time.Before(got[i-1].Time) {
			t.Errorf("followed line %+v after %+v", got[i], got[i-1])
		}
	}
}

// Two jobs writing at once: GET /v1/logs merges their lines by time, each job's in its own
// order, and the merge agrees with the clock the jobs read when they wrote.
func TestLogsTwoJobsInterleavedByTime(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	job := func(name string) string {
		return `
job "` + name + `" {
  exec = ["` + python + `", "-u", "-c", "import time\nfor i in range(40):\n    print('` + name + ` %d %d' % (i, time.time_ns()))\n    time.sleep(0.02)"]
}
`
	}
	k := startPF(t, keeper+job("a")+job("b"))
	k.waitState(30*time.Second, "a", "completed")
	k.waitState(30*time.Second, "b", "completed")
	waitFor(t, 10*time.Second, func() bool { return len(getLogs(t, k.sock, "n=-1")) == 80 }, "80 lines in the tails")
	for _, q := range []string{"n=-1", "jobs=a,b&n=-1", "jobs=b&jobs=a&n=-1"} {
		lines := getLogs(t, k.sock, q)
		if len(lines) != 80 {
			t.Fatalf("%s: %d lines, want 80", q, len(lines))
		}
		next := map[string]int{}
		switches := 0
		var prevStamp int64
		for i, l := range lines {
			var name string
			var seq int
			var stamp int64
			if _, err := fmt.Sscanf(l.Message, "%s %d %d", &name, &seq, &stamp); err != nil || name != l.Job {
				t.Fatalf("%s: line %+v", q, l)
			}
			if seq != next[name] {
				t.Fatalf("%s: %s %d after %s %d: a job's lines out of order", q, name, seq, name, next[name]-1)
			}
			next[name] = seq + 1
			if i > 0 {
				if l.Time.Before(lines[i-1].Time) {
					t.Errorf("%s: line %d goes back in time", q, i)
				}
				if l.Job != lines[i-1].Job {
					switches++
				}
				// The jobs' own clock: a line merged after one written much later is out of
				// place (the margin: pilotfish reads a line some time after it was written,
				// up to a scheduling delay on a loaded machine; the jobs run for 800ms).
				if d := time.Duration(prevStamp - stamp); d > 300*time.Millisecond {
					t.Errorf("%s: %q comes after %q, written %v later", q, l.Message, lines[i-1].Message, d)
				}
			}
			prevStamp = stamp
		}
		if switches < 20 {
			t.Errorf("%s: the two jobs' lines alternate only %d times: not merged by time", q, switches)
		}
	}
	last := getLogs(t, k.sock, "jobs=a,b&n=4")
	all := getLogs(t, k.sock, "n=-1")
	if strings.Join(messagesOf(last), ",") != strings.Join(messagesOf(all[len(all)-4:]), ",") {
		t.Errorf("n=4 of a,b: %q, want the newest 4 of the merge %q", messagesOf(last), messagesOf(all[len(all)-4:]))
	}
}

// rawFollower is a client of GET /v1/logs?follow=true that reads nothing until told to.
type rawFollower struct {
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// followRaw opens a follow stream with a small receive buffer and reads only the answer's
// header: the rest waits in the socket until the test reads it.
func followRaw(t testing.TB, sock, query string) *rawFollower {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.(*net.UnixConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET /v1/logs?%s HTTP/1.1\r\nHost: x\r\n\r\n", query)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET /v1/logs?%s: %v", query, err)
	}
	return &rawFollower{conn: c, br: br, resp: resp}
}

// A follower that never reads does not slow the job down: a flood runs as fast with it as
// without it (asserted loosely here; BenchmarkLogFollowerCost measures it). Once it reads
// again it gets what fitted in its queue and a notice of how many lines it lost: together,
// every line. pilotfish answers /v1/ping all the while.
func TestLogsStuckFollowerDoesNotSlowJob(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	const total = 200000
	devnull := devNull(t)
	dir := t.TempDir()
	times := filepath.Join(dir, "took")
	k := startPF(t, keeper+floodJob(total, times), opts{Dir: dir, StdoutFile: devnull})
	k.waitState(60*time.Second, "flood", "completed")
	waitTail(t, k.sock, "flood", fmt.Sprintf("flood-%07d", total)) // the follower gets only the next run

	f := followRaw(t, k.sock, "jobs=flood&n=0&follow=true")
	if f.resp.StatusCode != http.StatusOK {
		t.Fatalf("follow: %s", f.resp.Status)
	}
	if r := k.cli("start", "flood"); r.code != 0 {
		t.Fatalf("pilotfish start flood: %d %s", r.code, r.stderr)
	}
	waitFor(t, 60*time.Second, func() bool { return len(fileLines(t, times)) == 2 }, "the second flood to end")
	if code, _, _ := rawRequest(k.sock, "GET", "/v1/ping", nil, 5*time.Second); code != 200 {
		t.Errorf("/v1/ping with a stuck follower: %d", code)
	}
	took := fileLines(t, times)
	alone, followed := parseSeconds(t, took[0]), parseSeconds(t, took[1])
	t.Logf("%d lines: %.3fs alone, %.3fs with a follower that reads nothing", total, alone, followed)
	if followed > 3*alone+1 {
		t.Errorf("the flood took %.3fs with a stuck follower, %.3fs without: the follower slows the job", followed, alone)
	}

	// Now read: lines, then a notice per job; lines plus dropped are every line.
	_ = f.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	dec := json.NewDecoder(f.resp.Body)
	var lines, dropped uint64
	notices := 0
	for lines+dropped < total {
		var l logLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("after %d lines and %d dropped: %v", lines, dropped, err)
		}
		switch {
		case l.Stream == "pilotfish":
			notices++
			dropped += l.Dropped
			if l.Job != "flood" || l.Message != fmt.Sprintf("%d lines dropped: this reader fell behind", l.Dropped) {
				t.Errorf("notice %+v", l)
			}
		case l.Message != fmt.Sprintf("flood-%07d", lines+dropped+1):
			t.Fatalf("line %q after %d lines and %d dropped", l.Message, lines, dropped)
		default:
			lines++
		}
	}
	t.Logf("the stuck follower got %d lines and %d notices for %d dropped", lines, notices, dropped)
	if dropped == 0 || notices == 0 {
		t.Errorf("a follower that read nothing during a %d-line flood lost no line (%d lines, %d notices)", total, lines, notices)
	}
}

// floodJob is a job that writes total numbered lines as fast as it can (not started until
// asked again: it ends) and appends the seconds it took to the file took.
func floodJob(total int, took string) string {
	return `
job "flood" {
  exec = ["` + python + `", "-c", "import sys, time\nt = time.monotonic()\nw = sys.stdout.write\nfor i in range(1, ` + strconv.Itoa(total+1) + `):\n    w('flood-%07d\\n' % i)\nsys.stdout.flush()\nopen(sys.argv[1], 'a').write('%.6f\\n' % (time.monotonic() - t))", ` + hclString(took) + `]
}
`
}

// devNull is /dev/null open for writing, as pilotfish's stdout: the fastest terminal.
func devNull(t testing.TB) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func parseSeconds(t testing.TB, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		t.Fatalf("not a number of seconds: %q", s)
	}
	return f
}

// SIGTERM while followers are connected — one with the CLI, one stuck in a write: pilotfish
// exits within stop_timeout + 1s, the CLI gets the job's last line (written while it was
// stopping) and ends with exit code 0.
func TestLogsFollowEndsOnShutdown(t *testing.T) {
	t.Parallel()
	k := startPF(t, `
stop_timeout = "3s"
job "svc" {
  exec = `+sh(`trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done`)+`
}
job "noisy" {
  exec = ["seq", "-f", "noise-%07g-0123456789012345678901234567890123456789", "1", "40000"]
  logging {
    buffer = "4MiB"
  }
}
`)
	k.WaitStdout(10*time.Second, `^\[svc\] up$`)
	k.waitState(30*time.Second, "noisy", "completed")
	// A follower whose answer (noisy's whole tail, 2.4 MB) waits in a write it never reads.
	stuck := followRaw(t, k.sock, "jobs=noisy&n=-1&follow=true")
	if stuck.resp.StatusCode != http.StatusOK {
		t.Fatalf("follow: %s", stuck.resp.Status)
	}

	cmd := exec.Command(pilotfishBin, "logs", "-socket", k.sock, "-f", "svc")
	var out strings.Builder
	var mu sync.Mutex
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(out.String(), "[svc] up") }, "the CLI to print the backlog")

	code, took := k.SignalWait(syscall.SIGTERM, 10*time.Second)
	if code != 0 || took > 4*time.Second {
		t.Errorf("SIGTERM with followers: exit code %d after %v, want 0 within stop_timeout + 1s", code, took)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("pilotfish logs -f ended with %v, want exit code 0", err)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatal("pilotfish logs -f did not end within 5s of pilotfish's exit")
	}
	mu.Lock()
	defer mu.Unlock()
	if !regexp.MustCompile(`(?m)^` + cliTime + ` \[svc\] bye$`).MatchString(out.String()) {
		t.Errorf("the follower missed the line written at shutdown:\n%s", out.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Bad queries get a clear 400, unknown jobs 404, in the API and in the CLI.
func TestLogsBadQueries(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	k := startPF(t, keeper)
	for _, c := range []struct{ query, says string }{
		{"n=ten", `not "ten"`},
		{"n=-2", `not "-2"`},
		{"n=1.5", `not "1.5"`},
		{"n=99999999999999999999999", "too large"},
		{"follow=maybe", "follow must be true or false"},
		{"job=keep", `unknown query parameter "job"`},
		{"n=1&n=2", "n is given 2 times"},
	} {
		code, ctype, body := curlDo(t, k.sock, "GET", "/v1/logs?"+c.query, nil)
		eb := apiError(t, c.query, code, ctype, body, http.StatusBadRequest, client.KindBadRequest)
		if !strings.Contains(eb.Error.Message, c.says) {
			t.Errorf("%s: message %q does not say %q", c.query, eb.Error.Message, c.says)
		}
	}
	for _, q := range []string{"jobs=nope", "jobs=keep,nope&follow=true"} {
		code, ctype, body := curlDo(t, k.sock, "GET", "/v1/logs?"+q, nil)
		if eb := apiError(t, q, code, ctype, body, http.StatusNotFound, client.KindNotFound); !strings.Contains(eb.Error.Message, `"nope"`) {
			t.Errorf("%s: %q does not name the job", q, eb.Error.Message)
		}
	}
	if r := k.cli("logs", "nope"); r.code != 1 || !strings.Contains(r.stderr, `there is no job "nope"`) {
		t.Errorf("pilotfish logs nope: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, args := range [][]string{{"logs", "-n", "-5"}, {"logs", "-n", "x"}} {
		if r := k.cli(args...); r.code != 2 || !strings.Contains(r.stderr, "usage: pilotfish logs") {
			t.Errorf("pilotfish %q: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
	if r := runCmd(t, k.Dir, "logs", "-socket", filepath.Join(k.Dir, "nothing.sock")); r.code != 3 {
		t.Errorf("pilotfish logs without a daemon: exit %d, want 3", r.code)
	}
}

// With format = "json" the jobs' lines on pilotfish's stdout and stderr are JSON objects
// {"time","job","stream","msg"}, and nothing else; a job with prefix = false passes its
// bytes through. With timestamps = true, a text line starts with its RFC 3339 time.
func TestLogsJSONLinesAndTimestamps(t *testing.T) {
	t.Parallel()
	p := start(t, opts{Config: jsonLogs + `
job "app" {
  exec = ` + sh(`echo 'hello "you"'; printf 'oops\ttab\n' >&2; printf 'bad \377 byte\n'`) + `
}
job "own" {
  exec = ["echo", "{\"level\":\"info\",\"msg\":\"my own json\"}"]
  logging {
    prefix = false
  }
}
`})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	jobLines := func(lines []string) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, l := range lines {
			var obj map[string]any
			if json.Unmarshal([]byte(l), &obj) != nil || obj["job"] != "app" || obj["level"] != nil {
				continue // not a job's line: pilotfish's own lines have a level
			}
			m := map[string]string{}
			for k, v := range obj {
				s, ok := v.(string)
				if !ok {
					t.Errorf("%s: %q is not a string", l, k)
				}
				m[k] = s
			}
			if len(m) != 4 || m["stream"] == "" {
				t.Errorf("job line %s: want exactly time, job, stream and msg", l)
			}
			if _, err := time.Parse(time.RFC3339Nano, m["time"]); err != nil {
				t.Errorf("job line %s: time: %v", l, err)
			}
			out[m["msg"]] = m
		}
		return out
	}
	out, errs := jobLines(p.Stdout.RawLines()), jobLines(p.Stderr.RawLines())
	if m := out[`hello "you"`]; m == nil || m["stream"] != "stdout" {
		t.Errorf("stdout lacks the JSON line of `hello \"you\"`:\n%s", p.Stdout.Raw())
	}
	if m := out["bad \ufffd byte"]; m == nil {
		t.Errorf("invalid UTF-8 is not U+FFFD in a JSON line:\n%s", p.Stdout.Raw())
	}
	if m := errs["oops\ttab"]; m == nil || m["stream"] != "stderr" {
		t.Errorf("stderr lacks the JSON line of the job's stderr:\n%s", p.Stderr.Raw())
	}
	if !strings.Contains(p.Stdout.Raw(), "{\"level\":\"info\",\"msg\":\"my own json\"}\n") || strings.Contains(p.Stdout.Raw(), `"job":"own"`) {
		t.Errorf("a prefix = false job's own JSON did not pass through untouched:\n%s", p.Stdout.Raw())
	}
	for _, l := range p.Stdout.RawLines() {
		if !strings.HasPrefix(l, "{") {
			t.Errorf("stdout line %q is not JSON", l)
		}
	}

	p = start(t, opts{Config: `
job "ts" {
  exec = ` + sh(`echo stamped; echo err stamped >&2`) + `
  logging {
    timestamps = true
  }
}
job "raw" {
  exec = ` + sh(`echo raw stamped`) + `
  logging {
    timestamps = true
    prefix     = false
  }
}
job "plain" {
  exec = ["echo", "not stamped"]
}
`})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, c := range []struct {
		s    *stream
		want string
	}{
		{p.Stdout, `^` + cliTime + ` \[ts\] stamped$`},
		{p.Stderr, `^` + cliTime + ` \[ts\] err stamped$`},
		{p.Stdout, `^` + cliTime + ` raw stamped$`},
		{p.Stdout, `^\[plain\] not stamped$`},
	} {
		if !regexp.MustCompile(`(?m)` + c.want).MatchString(c.s.Raw()) {
			t.Errorf("no line matching %s in:\n%s", c.want, c.s.Raw())
		}
	}
}

// A job removed by a reload gives its tail's memory back to the system, and its lines are
// gone; a job kept keeps its tail.
func TestLogsRemovedJobGivesMemoryBack(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	devnull := devNull(t)
	big := `
job "big" {
  exec = ["` + python + `", "-c", "import sys\nfor i in range(60000):\n    sys.stdout.write('big-%06d ' % i + 'x' * 1000 + '\\n')"]
  logging {
    buffer = "48MiB"
  }
}
`
	k := startPF(t, keeper+big, opts{NoRace: true, StdoutFile: devnull})
	waitTail(t, k.sock, "big", "big-059999 "+strings.Repeat("x", 1000))
	pid := k.PID()
	full := vmRSS(pid)
	writeFile(t, filepath.Join(k.Dir, "pilotfish.hcl"), jsonLogs+keeper+controlBlock(k.sock), 0o644)
	if r := k.cli("reload"); r.code != 0 {
		t.Fatalf("reload: %d %s", r.code, r.stderr)
	}
	var after int64
	if !poll(10*time.Second, func() bool { after = vmRSS(pid); return after < full-32<<20 }) {
		t.Errorf("RSS %d MiB with a 48 MiB tail, %d MiB after its job was removed: the memory was not given back", full>>20, after>>20)
	}
	t.Logf("RSS %d MiB with the tail, %d MiB after the reload", full>>20, after>>20)
	code, ctype, body := curlDo(t, k.sock, "GET", "/v1/logs?jobs=big", nil)
	apiError(t, "the removed job's logs", code, ctype, body, http.StatusNotFound, client.KindNotFound)
	if got := getLogs(t, k.sock, "n=-1"); len(got) != 0 {
		t.Errorf("lines of a removed job are still served: %d", len(got))
	}
}

// A log follow stream takes a slot of the 64 streams, and gives it back when its client
// leaves; a plain GET /v1/logs takes none.
func TestLogsFollowTakesStreamSlot(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	k := startPF(t, keeper)
	// startPF's event recorder holds one stream already.
	var followers []*rawFollower
	for i := 1; i < maxStreams; i++ {
		f := followRaw(t, k.sock, "follow=true")
		if f.resp.StatusCode != http.StatusOK {
			t.Fatalf("follow stream %d: %s", i+1, f.resp.Status)
		}
		followers = append(followers, f)
	}
	code, ctype, body := curlDo(t, k.sock, "GET", "/v1/logs?follow=true", nil)
	apiError(t, "the 65th stream", code, ctype, body, http.StatusTooManyRequests, client.KindTooManyStreams)
	if code, _, body := curlDo(t, k.sock, "GET", "/v1/logs", nil); code != 200 {
		t.Errorf("a plain GET /v1/logs with every slot taken: %d %s", code, body)
	}
	followers[0].conn.Close()
	waitFor(t, 10*time.Second, func() bool {
		f := followRaw(t, k.sock, "follow=true&n=0")
		f.conn.Close()
		return f.resp.StatusCode == http.StatusOK
	}, "the slot of the follower that left to be free again")
}

// The example of the Logs section (docs/operations.md#logs) runs, and its commands print
// what the page shows.
func TestLogsDocsExample(t *testing.T) {
	t.Parallel()
	example := docExample(t, operationsPage(t, "Logs"), "logs")
	dir := t.TempDir()
	p := start(t, opts{Dir: dir, ConfigName: "logs.hcl", ConfigArg: "logs.hcl", Config: example})
	sock := filepath.Join(dir, "pilotfish.sock")
	waitPing(t, p, sock, 10*time.Second)
	k := &ctlPF{instance: p, sock: sock, c: client.New(sock)}
	waitFor(t, 20*time.Second, func() bool {
		return strings.Count(k.cli("logs", "-n", "-1", "worker").stdout, "\n") >= 4
	}, "two tasks of the worker")
	r := k.cli("logs")
	for _, re := range []string{
		`(?m)^` + cliTime + ` \[web\] listening on :8080$`,
		`(?m)^` + cliTime + ` \[web\] GET /healthz 200$`,
		`(?m)^` + cliTime + ` \[worker\] task 1 done$`,
		`(?m)^` + cliTime + ` \[worker\] task 1: retrying upstream$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("pilotfish logs: no line matching %s in\n%s", re, r.stdout)
		}
	}
	got := parseNDJSON(t, k.cli("logs", "-json", "-n", "2", "worker").stdout)
	if len(got) != 2 || got[0].Job != "worker" || got[0].Stream == got[1].Stream {
		t.Errorf("pilotfish logs -json -n 2 worker: %+v, want a task's stdout and stderr lines", got)
	}
	// timestamps = true on pilotfish's stdout for web, not for worker.
	p.WaitStdout(10*time.Second, `^`+cliTime+` \[web\] GET /healthz 200$`)
	p.WaitStdout(10*time.Second, `^\[worker\] task 1 done$`)
	if code, _ := p.SignalWait(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// A syslog job's tail keeps what its stdout and stderr outputs write (without the prefix),
// so `pilotfish logs` shows the messages a container's daemons sent, from the real logger.
func TestLogsSyslogJobTail(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	if _, err := exec.LookPath("logger"); err != nil {
		t.Skip("logger(1) is not installed")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	k := startPF(t, keeper+`
job "log" {
  kind   = "syslog"
  listen = ["unixgram://`+sock+`"]
  output "console" {
    stdout = true
  }
  output "errors" {
    stderr   = true
    selector = "*.err"
  }
}
`, opts{Dir: dir})
	sysListening(t, k, "log")
	for _, args := range [][]string{{"-p", "daemon.info", "-t", "nginx", "request served"}, {"-p", "daemon.err", "-t", "nginx", "upstream down"}} {
		if out, err := exec.Command("logger", append([]string{"-u", sock}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("logger: %v %s", err, out)
		}
	}
	var got []logLine
	waitFor(t, 10*time.Second, func() bool { got = getLogs(t, k.sock, "jobs=log&n=-1"); return len(got) == 3 }, "three lines in the syslog job's tail")
	want := []struct{ stream, re string }{
		{"stdout", `^` + sysHeaderTime + ` daemon\.info nginx: request served$`},
		{"stdout", `^` + sysHeaderTime + ` daemon\.err nginx: upstream down$`},
		{"stderr", `^` + sysHeaderTime + ` daemon\.err nginx: upstream down$`},
	}
	for _, w := range want {
		found := false
		for _, l := range got {
			found = found || l.Stream == w.stream && regexp.MustCompile(w.re).MatchString(l.Message)
		}
		if !found {
			t.Errorf("the tail lacks a %s line matching %s: %+v", w.stream, w.re, got)
		}
	}
}
