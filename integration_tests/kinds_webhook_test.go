package integration

// The webhook kind (docs/kinds.md) against real HTTP servers on loopback: the request, its
// JSON body, retries and backoff, failures, time-outs.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hookRequest is one request a hookServer received.
type hookRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	At           time.Time
	Canceled     time.Time // when the client gave up (slow paths only)
}

// hookServer records every request; answer decides the status by path and attempt (1-based).
type hookServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []hookRequest
}

func newHookServer(t testing.TB, answer func(path string, attempt int) int) *hookServer {
	t.Helper()
	h := &hookServer{}
	release := make(chan struct{})
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := hookRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()}
		h.mu.Lock()
		attempt := 1
		for _, q := range h.reqs {
			if q.Path == req.Path {
				attempt++
			}
		}
		i := len(h.reqs)
		h.reqs = append(h.reqs, req)
		h.mu.Unlock()
		code := answer(r.URL.Path, attempt)
		if code == 0 { // hang until the client gives up
			select {
			case <-r.Context().Done():
				h.mu.Lock()
				h.reqs[i].Canceled = time.Now()
				h.mu.Unlock()
			case <-release:
			case <-time.After(10 * time.Second):
			}
			return
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}))
	t.Cleanup(func() { close(release); h.Close() })
	return h
}

// requests returns the requests received on path.
func (h *hookServer) requests(path string) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookRequest
	for _, r := range h.reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func decodeHookBody(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("the webhook body is not a JSON object: %v\n%s", err, b)
	}
	return m
}

// docs/kinds.md webhook: method, headers, Content-Type, and the JSON body describing the
// triggering event.
func TestWebhookRequest(t *testing.T) {
	t.Parallel()
	srv := newHookServer(t, func(string, int) int { return http.StatusOK })
	k := startPF(t, `
job "fail" {
  exec = `+sh("exit 3")+`
}
job "hook" {
  kind    = "webhook"
  url     = "`+srv.URL+`/hook?from=pilotfish"
  headers = { Authorization = "Bearer s3cret", "X-Pilotfish-Test" = "yes" }
  when {
    source = "fail"
    once   = "exitFailed"
  }
}
job "ok" {
  exec = ["true"]
}
job "put" {
  kind   = "webhook"
  url    = "`+srv.URL+`/put"
  method = "put"
  when {
    source = "ok"
    once   = "exitSuccess"
  }
}
job "onstart" {
  kind = "webhook"
  url  = "`+srv.URL+`/started"
  when {
    source = "ok"
    once   = "started"
  }
}
job "cronsrc" {
  kind     = "cron"
  schedule = "@every 1s"
  exec     = `+sh("exit 5")+`
}
job "cronhook" {
  kind = "webhook"
  url  = "`+srv.URL+`/cron"
  when {
    source = "cronsrc"
    each   = "exitFailed"
  }
}
`)
	k.waitCode(10*time.Second, "hook", "exitSuccess", 1)
	reqs := srv.requests("/hook")
	if len(reqs) != 1 {
		t.Fatalf("/hook got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" {
		t.Errorf("method %s, want POST (the default)", r.Method)
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "Authorization": "Bearer s3cret", "X-Pilotfish-Test": "yes", "User-Agent": "pilotfish"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("header %s: %q, want %q", h, got, want)
		}
	}
	body := decodeHookBody(t, r.Body)
	var keys []string
	for key := range body {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	if want := []string{"code", "exit_code", "job", "seq", "source", "status", "time"}; !slices.Equal(keys, want) {
		t.Errorf("body keys %v, want %v: %s", keys, want, r.Body)
	}
	trig := k.waitCode(time.Second, "fail", "exitFailed", 1)
	if body["code"] != "exitFailed" || body["source"] != "fail" || body["job"] != "hook" || body["exit_code"] != float64(3) {
		t.Errorf("body %s: want code exitFailed, source fail, job hook, exit_code 3", r.Body)
	}
	// status is the source's state; its exact value right after the event is checked by
	// TestWebhookStatusFollowsEvent (it can lag behind the event).
	if st := body["status"]; st != "failed" && st != "running" {
		t.Errorf("body status %v, want the source job's state: failed", st)
	}
	if body["seq"] != float64(trig.Seq) {
		t.Errorf("body seq %v, want the triggering event's seq %d", body["seq"], trig.Seq)
	}
	if ts, err := time.Parse(time.RFC3339Nano, body["time"].(string)); err != nil || !ts.Equal(trig.Time) {
		t.Errorf("body time %v (%v), want the event's time %s", body["time"], err, trig.Time.Format(time.RFC3339Nano))
	}
	k.waitCode(5*time.Second, "hook", "stopped", 1) // right after exitSuccess: done for good
	hookEvs := k.events("hook")
	if got := eventCodes(hookEvs, ""); !slices.Equal(got, []string{"started", "exitSuccess", "stopped"}) {
		t.Errorf("the webhook job published %v, want started, exitSuccess, stopped (done for good)", got)
	}
	if l := k.WaitLog(5*time.Second, is("webhook delivered", "hook"), "webhook delivered"); l.str("status") != "200" {
		t.Errorf("delivery log %v", l)
	}
	k.waitState(5*time.Second, "hook", "completed")

	// method = "put" (any case), after an exitSuccess: exit_code 0.
	k.waitCode(10*time.Second, "put", "exitSuccess", 1)
	p := srv.requests("/put")
	if len(p) != 1 || p[0].Method != "PUT" {
		t.Fatalf("/put got %v", p)
	}
	pb := decodeHookBody(t, p[0].Body)
	if pb["code"] != "exitSuccess" || pb["source"] != "ok" || pb["job"] != "put" || pb["exit_code"] != float64(0) || (pb["status"] != "completed" && pb["status"] != "running") {
		t.Errorf("/put body %s: want exitSuccess from ok, job put, exit_code 0, status completed", p[0].Body)
	}

	// An event without an exit code: no exit_code in the body.
	k.waitCode(10*time.Second, "onstart", "exitSuccess", 1)
	sb := decodeHookBody(t, srv.requests("/started")[0].Body)
	if _, ok := sb["exit_code"]; ok || sb["code"] != "started" || sb["source"] != "ok" {
		t.Errorf("/started body %v: want code started, source ok, and no exit_code", sb)
	}

	// each: one request per failed cron run; the cron job is scheduled between runs.
	k.waitCode(5*time.Second, "cronhook", "exitSuccess", 1)
	c := srv.requests("/cron")
	cb := decodeHookBody(t, c[0].Body)
	if cb["code"] != "exitFailed" || cb["source"] != "cronsrc" || cb["exit_code"] != float64(5) || (cb["status"] != "scheduled" && cb["status"] != "running") {
		t.Errorf("/cron body %s: want exitFailed from cronsrc, exit_code 5, status scheduled", c[0].Body)
	}
}

// Network errors and 5xx are retried with backoff (500 ms, doubling); 4xx are not.
func TestWebhookRetries(t *testing.T) {
	t.Parallel()
	srv := newHookServer(t, func(path string, attempt int) int {
		switch {
		case path == "/flaky" && attempt <= 2:
			return http.StatusInternalServerError
		case path == "/missing":
			return http.StatusNotFound
		case path == "/down":
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	k := startPF(t, `
job "src" {
  exec = ["true"]
}
job "flaky" {
  kind = "webhook"
  url  = "`+srv.URL+`/flaky"
  when {
    source = "src"
    once   = "exitSuccess"
  }
}
job "missing" {
  kind = "webhook"
  url  = "`+srv.URL+`/missing"
  when {
    source = "src"
    once   = "exitSuccess"
  }
}
job "down" {
  kind    = "webhook"
  url     = "`+srv.URL+`/down"
  retries = 1
  when {
    source = "src"
    once   = "exitSuccess"
  }
}
job "keep" {
  exec = "sleep 1000"
}
`)
	// 500, 500, 200: three attempts, about 100 ms then 200 ms apart (with jitter), and
	// success.
	k.waitCode(10*time.Second, "flaky", "exitSuccess", 1)
	f := srv.requests("/flaky")
	if len(f) != 3 {
		t.Fatalf("/flaky got %d requests, want 3", len(f))
	}
	gap1, gap2 := f[1].At.Sub(f[0].At), f[2].At.Sub(f[1].At)
	t.Logf("retry gaps: %s, %s", gap1, gap2)
	if gap1 < 70*time.Millisecond || gap1 > 450*time.Millisecond || gap2 < 145*time.Millisecond || gap2 > 800*time.Millisecond {
		t.Errorf("retries came after %s and %s, want about 100ms and 200ms", gap1, gap2)
	}
	for i := 1; i < 3; i++ {
		if string(f[i].Body) != string(f[0].Body) {
			t.Errorf("attempt %d sent %s, the first %s: a retry sends the same event", i+1, f[i].Body, f[0].Body)
		}
	}
	if n := len(k.logsOf("webhook failed; retrying", "flaky")); n != 2 {
		t.Errorf("%d retry log lines for flaky, want 2", n)
	}
	k.waitCode(5*time.Second, "flaky", "stopped", 1)
	if n := len(k.events("flaky")); len(withCode(k.events("flaky"), "exitFailed")) != 0 || n != 3 {
		t.Errorf("flaky published %v, want started, exitSuccess, stopped", eventNames(k.events("flaky")))
	}

	// 404: one attempt, a logged error, exitFailed.
	k.waitCode(5*time.Second, "missing", "exitFailed", 1)
	if n := len(srv.requests("/missing")); n != 1 {
		t.Errorf("/missing got %d requests, want 1 (a 4xx is not retried)", n)
	}
	e := k.WaitLog(5*time.Second, is("webhook failed", "missing"), "the failure of missing")
	if e.str("level") != "ERROR" || !strings.Contains(e.str("err"), "404") || !strings.Contains(e.str("url"), "/missing") {
		t.Errorf("failure log %v: want ERROR with the URL and the status", e)
	}
	if n := len(k.logsOf("webhook failed; retrying", "missing")); n != 0 {
		t.Errorf("missing was retried %d times", n)
	}

	// 503 with retries = 1: two attempts, then exitFailed.
	k.waitCode(5*time.Second, "down", "exitFailed", 1)
	d := srv.requests("/down")
	if len(d) != 2 {
		t.Errorf("/down got %d requests, want 2 (retries = 1)", len(d))
	} else if g := d[1].At.Sub(d[0].At); g < 70*time.Millisecond || g > 450*time.Millisecond {
		t.Errorf("/down retried after %s, want about 100ms", g)
	}
	k.waitMetric(5*time.Second, "pilotfish_job_exits_total", map[string]string{"job": "down", "result": "failure"}, func(v float64) bool { return v == 1 })
	k.waitMetric(5*time.Second, "pilotfish_job_exits_total", map[string]string{"job": "flaky", "result": "success"}, func(v float64) bool { return v == 1 })
	// After flaky's retries, /missing still had its one request.
	if n := len(srv.requests("/missing")); n != 1 {
		t.Errorf("/missing got %d requests in the end, want 1", n)
	}
	if j := k.job("missing"); j.State != "failed" {
		t.Errorf("missing is %q, want failed", j.State)
	}
}

// An unreachable URL and a server slower than `timeout`: exitFailed, an error in the log,
// pilotfish keeps running.
func TestWebhookUnreachableAndTimeout(t *testing.T) {
	t.Parallel()
	srv := newHookServer(t, func(path string, attempt int) int {
		if path == "/slow" {
			return 0 // hang
		}
		return http.StatusOK
	})
	closed := freePort(t)
	k := startPF(t, `
job "src" {
  exec = ["true"]
}
job "unreach" {
  kind    = "webhook"
  url     = "http://127.0.0.1:`+strconv.Itoa(closed)+`/hook"
  retries = 1
  when {
    source = "src"
    once   = "exitSuccess"
  }
}
job "slow" {
  kind    = "webhook"
  url     = "`+srv.URL+`/slow"
  timeout = "300ms"
  retries = 0
  when {
    source = "src"
    once   = "exitSuccess"
  }
}
job "after" {
  kind = "webhook"
  url  = "`+srv.URL+`/after"
  when {
    source = "unreach"
    once   = "exitFailed"
  }
}
job "keep" {
  exec = "sleep 1000"
}
`)
	k.waitCode(10*time.Second, "unreach", "exitFailed", 1)
	e := k.WaitLog(5*time.Second, is("webhook failed", "unreach"), "the failure of unreach")
	if e.str("level") != "ERROR" || !strings.Contains(e.str("err"), "connection refused") {
		t.Errorf("failure log %v: want ERROR with connection refused", e)
	}
	if n := len(k.logsOf("webhook failed; retrying", "unreach")); n != 1 {
		t.Errorf("%d retry log lines for unreach, want 1 (a network error is retried)", n)
	}
	// The webhook's exitFailed triggers other jobs like any exitFailed.
	k.waitCode(5*time.Second, "after", "exitSuccess", 1)
	if a := srv.requests("/after"); len(a) != 1 || decodeHookBody(t, a[0].Body)["source"] != "unreach" {
		t.Errorf("/after got %v", a)
	}

	// timeout = "300ms" against a server that never answers.
	st := k.waitCode(5*time.Second, "slow", "started", 1)
	ex := k.waitCode(5*time.Second, "slow", "exitFailed", 1)
	took := ex.Time.Sub(st.Time)
	t.Logf("the slow webhook gave up after %s", took)
	if took < 250*time.Millisecond || took > 2*time.Second {
		t.Errorf("the slow webhook ended after %s, want about 300ms (timeout)", took)
	}
	if s := srv.requests("/slow"); len(s) != 1 {
		t.Errorf("/slow got %d requests, want 1 (retries = 0)", len(s))
	} else if !poll(2*time.Second, func() bool { return !srv.requests("/slow")[0].Canceled.IsZero() }) {
		t.Errorf("the slow request was not abandoned by pilotfish")
	}
	if e := k.WaitLog(5*time.Second, is("webhook failed", "slow"), "the failure of slow"); !strings.Contains(e.str("err"), "deadline exceeded") && !strings.Contains(e.str("err"), "Timeout") {
		t.Errorf("failure log of slow %v: want a time-out", e)
	}

	k.waitMetric(5*time.Second, "pilotfish_job_exits_total", map[string]string{"job": "unreach", "result": "failure"}, func(v float64) bool { return v == 1 })
	if _, err := k.c.Ping(k.ctx()); err != nil || k.exited() {
		t.Fatalf("pilotfish does not answer after the webhook failures: %v", err)
	}
	if j := k.job("keep"); j.State != "running" {
		t.Errorf("keep is %q, want running", j.State)
	}
	k.Signal(syscall.SIGTERM)
	if code := k.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0 (exit_on_failure is off)", code)
	}
}

// The body's status is the source job's state once the triggering event happened: after
// an exitSuccess that ends a one-shot job, "completed", never "running". Many pairs at
// once, because the state is read concurrently with the source job's own bookkeeping.
func TestWebhookStatusFollowsEvent(t *testing.T) {
	t.Parallel()
	srv := newHookServer(t, func(string, int) int { return http.StatusOK })
	const pairs = 200
	var cfg strings.Builder
	for i := range pairs {
		n := strconv.Itoa(i)
		cfg.WriteString(`
job "src` + n + `" {
  exec = ["true"]
}
job "hook` + n + `" {
  kind = "webhook"
  url  = "` + srv.URL + `/` + n + `"
  when {
    source = "src` + n + `"
    once   = "exitSuccess"
  }
}
job "fsrc` + n + `" {
  exec = ["false"]
}
job "fhook` + n + `" {
  kind = "webhook"
  url  = "` + srv.URL + `/f` + n + `"
  when {
    source = "fsrc` + n + `"
    once   = "exitFailed"
  }
}
`)
	}
	cfg.WriteString("job \"keep\" {\n  exec = \"sleep 1000\"\n}\n")
	k := startPF(t, cfg.String())
	var wrong []string
	for i := range pairs {
		n := strconv.Itoa(i)
		for _, c := range []struct{ hook, path, want string }{{"hook" + n, "/" + n, "completed"}, {"fhook" + n, "/f" + n, "failed"}} {
			k.waitCode(10*time.Second, c.hook, "exitSuccess", 1)
			r := srv.requests(c.path)
			if len(r) != 1 {
				t.Fatalf("%s got %d requests", c.path, len(r))
			}
			if st := decodeHookBody(t, r[0].Body)["status"]; st != c.want {
				wrong = append(wrong, c.hook+": "+string(r[0].Body))
			}
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d webhooks reported a stale state of their source (want completed after exitSuccess, failed after exitFailed), e.g.:\n%s",
			len(wrong), 2*pairs, strings.Join(wrong[:min(len(wrong), 5)], "\n"))
	}
}
