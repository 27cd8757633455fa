package integration

// Helpers shared by the test files, on top of the harness (harness_test.go): the control
// socket (startCtl, raw requests, curl), a pilotfish with its control client and every bus
// event recorded (startPF, ctlPF, eventLog), metrics read from an exposition, client
// programs and Python scripts.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// ---------------------------------------------------------------------------------------
// The control socket.

// controlBlock is the control {} block that puts the socket at sock.
func controlBlock(sock string) string {
	return "\ncontrol {\n  socket = " + hclString(sock) + "\n}\n"
}

// startCtl starts pilotfish with its control socket in the test's directory and waits until
// /v1/ping answers. The socket path is returned.
func startCtl(t testing.TB, o opts) (*instance, string) {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	sock := filepath.Join(o.Dir, "pf.sock")
	o.Config += controlBlock(sock)
	p := start(t, o)
	waitPing(t, p, sock, 10*time.Second)
	return p, sock
}

// waitPing waits until GET /v1/ping answers 200 on sock.
func waitPing(t testing.TB, p *instance, sock string, d time.Duration) {
	t.Helper()
	ok := poll(d, func() bool {
		if p != nil && p.exited() {
			return true
		}
		code, _, _ := rawRequest(sock, "GET", "/v1/ping", nil, time.Second)
		return code == http.StatusOK
	})
	if !ok || (p != nil && p.exited()) {
		t.Fatalf("the control socket %s did not answer /v1/ping within %s (exited: %v)", sock, d, p != nil && p.exited())
	}
}

// ctxFor returns a context that ends after d or with the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// rawRequest sends one HTTP/1.1 request on a fresh connection to sock with Go's HTTP client
// (not pilotfish's) and returns the status, the Content-Type and the body. Status 0: the
// request failed.
func rawRequest(sock, method, path string, body []byte, timeout time.Duration) (int, string, []byte) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: timeout}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://pilotfish"+path, rd)
	if err != nil {
		return 0, "", []byte(err.Error())
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// curlDo runs curl(1) against the socket and returns the status, the Content-Type and the
// body.
func curlDo(t testing.TB, sock, method, path string, body []byte) (int, string, []byte) {
	t.Helper()
	args := []string{"-sS", "-g", "--max-time", "30", "--unix-socket", sock, "-X", method,
		"-w", "\n%{http_code} %{content_type}", "http://pilotfish" + path}
	if body != nil {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", "@-")
	}
	cmd := exec.Command("curl", args...)
	if body != nil {
		cmd.Stdin = bytes.NewReader(body)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s %s: %v\n%s", method, path, err, errb.String())
	}
	s := out.String()
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		t.Fatalf("curl %s %s: no status line in %q", method, path, s)
	}
	f := strings.Fields(s[i+1:])
	code, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("curl %s %s: bad status line %q", method, path, s[i+1:])
	}
	ctype := ""
	if len(f) > 1 {
		ctype = f[1]
	}
	return code, ctype, []byte(s[:i])
}

func requireCurl(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl(1) is not installed")
	}
}

// ---------------------------------------------------------------------------------------
// pilotfish with its control client and its events.

// ctlPF is one running pilotfish started by startPF: JSON logs, its control socket in the
// test's directory, and every bus event recorded from the first one on.
type ctlPF struct {
	*instance
	*eventLog
	sock string
	c    *client.Client
}

// startPF starts pilotfish with cfg (o.Logs, by default jsonLogs, and a control socket are
// added), waits until the control socket answers and records the bus events. o.Config is
// replaced by cfg.
func startPF(t testing.TB, cfg string, o ...opts) *ctlPF {
	t.Helper()
	var op opts
	if len(o) > 0 {
		op = o[0]
	}
	if op.Logs == "" {
		op.Logs = jsonLogs
	}
	op.Config = op.Logs + cfg
	p, sock := startCtl(t, op)
	c := client.New(sock)
	return &ctlPF{instance: p, eventLog: followEvents(t, c), sock: sock, c: c}
}

func (k *ctlPF) ctx() context.Context { return ctxFor(k.t, 20*time.Second) }

// replay returns the events of source in the daemon's ring now (not only those the
// recorder has received yet).
func (k *ctlPF) replay(source string) []client.Event {
	k.t.Helper()
	var since uint64
	var out []client.Event
	err := k.c.Events(k.ctx(), &since, false, func(e client.Event) error {
		if source == "" || e.Source == source {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		k.t.Fatalf("GET /v1/events: %v", err)
	}
	return out
}

// job returns one job's status (GET /v1/jobs/NAME).
func (k *ctlPF) job(name string) client.Job {
	k.t.Helper()
	j, err := k.c.Job(k.ctx(), name)
	if err != nil {
		k.t.Fatalf("GET /v1/jobs/%s: %v", name, err)
	}
	return j
}

// waitJob waits until cond holds for the job's status and returns it.
func (k *ctlPF) waitJob(d time.Duration, name string, cond func(client.Job) bool, what string) client.Job {
	k.t.Helper()
	var j client.Job
	if !poll(d, func() bool { j = k.job(name); return cond(j) }) {
		k.t.Fatalf("job %s: %s did not happen within %s; last status %+v", name, what, d, j)
	}
	return j
}

// waitState waits until the job is in state and returns its status.
func (k *ctlPF) waitState(d time.Duration, name, state string) client.Job {
	k.t.Helper()
	return k.waitJob(d, name, func(j client.Job) bool { return j.State == state }, "state "+strconv.Quote(state))
}

// status is GET /v1/status.
func (k *ctlPF) status() client.Status {
	k.t.Helper()
	st, err := k.c.Status(k.ctx())
	if err != nil {
		k.t.Fatalf("GET /v1/status: %v", err)
	}
	return st
}

// statusOf returns the job's entry of GET /v1/status (the list, not /v1/jobs/NAME).
func (k *ctlPF) statusOf(name string) client.Job {
	k.t.Helper()
	st := k.status()
	for _, j := range st.Jobs {
		if j.Name == name {
			return j
		}
	}
	k.t.Fatalf("GET /v1/status has no job %q: %+v", name, st.Jobs)
	return client.Job{}
}

// cli runs a client subcommand against this pilotfish and returns its result.
func (k *ctlPF) cli(args ...string) result {
	k.t.Helper()
	return runCmd(k.t, k.Dir, append(args[:1:1], append([]string{"-socket", k.sock}, args[1:]...)...)...)
}

// metric returns the value of name{labels}, or -1 when the series is not exposed.
func (k *ctlPF) metric(name string, labels map[string]string) float64 {
	k.t.Helper()
	text, err := k.c.Metrics(k.ctx())
	if err != nil {
		k.t.Fatalf("GET /metrics: %v", err)
	}
	return metricIn(text, name, labels)
}

// waitMetric waits until cond holds for name{labels} and returns the value.
func (k *ctlPF) waitMetric(d time.Duration, name string, labels map[string]string, cond func(float64) bool) float64 {
	k.t.Helper()
	var v float64
	if !poll(d, func() bool { v = k.metric(name, labels); return cond(v) }) {
		k.t.Fatalf("metric %s%v is %v after %s", name, labels, v, d)
	}
	return v
}

// ---------------------------------------------------------------------------------------
// The event stream.

// eventLog records pilotfish's event stream (GET /v1/events?since=0, following).
type eventLog struct {
	tb    testing.TB
	mu    sync.Mutex
	evs   []client.Event
	wake  chan struct{} // closed and replaced on every event and at the end of the stream
	ended bool
}

// followEvents records the events of c from the very first one until the test ends.
func followEvents(t testing.TB, c *client.Client) *eventLog {
	l := &eventLog{tb: t, wake: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var since uint64
		_ = c.Events(ctx, &since, true, func(e client.Event) error {
			l.mu.Lock()
			l.evs = append(l.evs, e)
			l.notify()
			l.mu.Unlock()
			return nil
		})
		l.mu.Lock()
		l.ended = true
		l.notify()
		l.mu.Unlock()
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// notify wakes the waiters; l.mu is held.
func (l *eventLog) notify() {
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *eventLog) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake
}

// events returns the events recorded so far; with source set, only that source's.
func (l *eventLog) events(source string) []client.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []client.Event
	for _, e := range l.evs {
		if source == "" || e.Source == source {
			out = append(out, e)
		}
	}
	return out
}

// codes returns the recorded events of source with code.
func (l *eventLog) codes(source, code string) []client.Event {
	return withCode(l.events(source), code)
}

// waitEvents waits until cond holds for the recorded events of source and returns them.
func (l *eventLog) waitEvents(d time.Duration, source string, cond func([]client.Event) bool, what string) []client.Event {
	l.tb.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		wake := l.changed()
		evs := l.events(source)
		if cond(evs) {
			return evs
		}
		select {
		case <-wake:
		case <-deadline.C:
			l.tb.Fatalf("timed out after %s waiting for %s; events of %q: %v", d, what, source, eventNames(evs))
		}
	}
}

// waitCode waits for the n-th (1-based) event code of source and returns it.
func (l *eventLog) waitCode(d time.Duration, source, code string, n int) client.Event {
	l.tb.Helper()
	evs := l.waitEvents(d, source, func(evs []client.Event) bool { return len(withCode(evs, code)) >= n },
		"event #"+strconv.Itoa(n)+" "+source+"/"+code)
	return withCode(evs, code)[n-1]
}

// lastSeq is the seq of the latest event recorded so far.
func (l *eventLog) lastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.evs) == 0 {
		return 0
	}
	return l.evs[len(l.evs)-1].Seq
}

// eventsAfter returns the recorded events with seq > after.
func (l *eventLog) eventsAfter(after uint64) []client.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []client.Event
	for _, e := range l.evs {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out
}

// waitAfter returns the first event after seq `after` with that source and code, waiting at
// most d.
func (l *eventLog) waitAfter(d time.Duration, after uint64, source, code string) client.Event {
	l.tb.Helper()
	ev, ok := l.tryWaitAfter(d, after, source, code)
	if !ok {
		l.tb.Fatalf("no %s/%s event after seq %d within %s; saw %s", source, code, after, d, eventNames(l.eventsAfter(after)))
	}
	return ev
}

// tryWaitAfter is waitAfter that reports false instead of failing (also at once when the
// stream has ended).
func (l *eventLog) tryWaitAfter(d time.Duration, after uint64, source, code string) (client.Event, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ch, ended := l.wake, l.ended
		for _, e := range l.evs {
			if e.Seq > after && e.Source == source && e.Code == code {
				l.mu.Unlock()
				return e, true
			}
		}
		l.mu.Unlock()
		if ended {
			return client.Event{}, false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return client.Event{}, false
		}
	}
}

// eventNames lists events as SEQ:SOURCE/CODE.
func eventNames(evs []client.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%d:%s/%s", e.Seq, e.Source, e.Code))
	}
	return out
}

// eventCodes lists the codes of the events of source ("" = every source), in order.
func eventCodes(evs []client.Event, source string) []string {
	var out []string
	for _, e := range evs {
		if source == "" || e.Source == source {
			out = append(out, e.Code)
		}
	}
	return out
}

// withCode returns the events with code.
func withCode(evs []client.Event, code string) []client.Event {
	var out []client.Event
	for _, e := range evs {
		if e.Code == code {
			out = append(out, e)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------
// Metrics.

// sample is one series of a Prometheus exposition.
type sample struct {
	labels map[string]string
	value  float64
}

var seriesLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// metricSeries returns the series of metric name in a Prometheus exposition.
func metricSeries(text, name string) []sample {
	var out []sample
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "#") || !strings.HasPrefix(l, name) {
			continue
		}
		sp := strings.LastIndexByte(l, ' ')
		if sp < 0 {
			continue
		}
		n, lbl, _ := strings.Cut(l[:sp], "{")
		if n != name {
			continue
		}
		v, err := strconv.ParseFloat(l[sp+1:], 64)
		if err != nil {
			continue
		}
		s := sample{labels: map[string]string{}, value: v}
		for _, m := range seriesLabel.FindAllStringSubmatch(lbl, -1) {
			s.labels[m[1]] = m[2]
		}
		out = append(out, s)
	}
	return out
}

// metricIn finds name{labels} (labels may be a subset of the series' labels) in a
// Prometheus exposition; -1 when absent.
func metricIn(text, name string, labels map[string]string) float64 {
	for _, s := range metricSeries(text, name) {
		match := true
		for k, v := range labels {
			match = match && s.labels[k] == v
		}
		if match {
			return s.value
		}
	}
	return -1
}

// ---------------------------------------------------------------------------------------
// Client programs and scripts.

// runClient runs a client program (nc, socat, logger, python…) with stdin and returns its
// stdout; the test is skipped when the program is not installed and fails when the
// program fails or takes more than d.
func runClient(t testing.TB, d time.Duration, stdin, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	late, err := runWithin(t, cmd, d)
	if late {
		t.Fatalf("%s %q did not return within %s (stdout %q, stderr %q)", name, args, d, out.String(), errb.String())
	}
	if err != nil {
		t.Fatalf("%s %q: %v (stdout %q, stderr %q)", name, args, err, out.String(), errb.String())
	}
	return out.String()
}

// writePython writes a Python program into dir and returns its path.
func writePython(t testing.TB, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	writeFile(t, p, src, 0o755)
	return p
}

// pyExec is the HCL exec list that runs the Python program at path with args.
func pyExec(path string, args ...string) string {
	list := []string{hclString(python), hclString(path)}
	for _, a := range args {
		list = append(list, hclString(a))
	}
	return "[" + strings.Join(list, ", ") + "]"
}
