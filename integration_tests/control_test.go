package integration

// Black-box tests of the control plane (docs/cli.md, docs/api.md): the real binary, the real
// unix socket, spoken to by curl(1), by raw connections and by the Go client.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// ---------------------------------------------------------------------------------------
// Harness additions for the control plane.

// apiError checks that an answer is a JSON error {"error":{"kind","message"}} with the
// wanted status (and kind, when not empty) and returns it.
func apiError(t testing.TB, what string, code int, ctype string, body []byte, wantCode int, wantKind string) client.ErrorBody {
	t.Helper()
	var eb client.ErrorBody
	if code != wantCode {
		t.Errorf("%s: status %d, want %d (body %s)", what, code, wantCode, tail(string(body), 300))
	}
	if !strings.HasPrefix(ctype, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ctype)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Errorf("%s: the error answer is not a JSON object: %v\n%s", what, err, body)
		return eb
	}
	var obj map[string]any
	if err := json.Unmarshal(raw["error"], &obj); err != nil || obj == nil {
		t.Errorf("%s: no \"error\" object in %s", what, body)
	}
	_ = json.Unmarshal(body, &eb)
	if eb.Error.Kind == "" || eb.Error.Message == "" {
		t.Errorf("%s: error without kind or message: %s", what, body)
	}
	if wantKind != "" && eb.Error.Kind != wantKind {
		t.Errorf("%s: error kind %q, want %q (%s)", what, eb.Error.Kind, wantKind, eb.Error.Message)
	}
	return eb
}

// parseSSE reads Server-Sent Events messages ("data: {json}") from r and sends the events.
func parseSSE(r io.Reader, out chan<- client.Event) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var ev client.Event
		if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
			return fmt.Errorf("bad event %q: %w", data, err)
		}
		out <- ev
	}
	return sc.Err()
}

// waitEvent reads events from ch until one matches, for at most d, and returns it with
// the ones read before.
func waitEvent(t testing.TB, ch <-chan client.Event, d time.Duration, code, source string) (client.Event, []client.Event) {
	t.Helper()
	return waitEventAfter(t, ch, d, 0, code, source)
}

// waitEventAfter is waitEvent for an event with a seq larger than after.
func waitEventAfter(t testing.TB, ch <-chan client.Event, d time.Duration, after uint64, code, source string) (client.Event, []client.Event) {
	t.Helper()
	var seen []client.Event
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the event stream ended before %s/%s (saw %v)", source, code, eventNames(seen))
			}
			if ev.Code == code && ev.Source == source && ev.Seq > after {
				return ev, seen
			}
			seen = append(seen, ev)
		case <-deadline:
			t.Fatalf("no event %s/%s within %s (saw %v)", source, code, d, eventNames(seen))
		}
	}
}

// checkReplay checks a replay: contiguous sequence numbers, all after since.
func checkReplay(t testing.TB, what string, evs []client.Event, since uint64) {
	t.Helper()
	if len(evs) == 0 {
		t.Errorf("%s: no events", what)
		return
	}
	if evs[0].Seq != since+1 {
		t.Errorf("%s: first seq %d, want %d (%v)", what, evs[0].Seq, since+1, eventNames(evs))
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != evs[i-1].Seq+1 {
			t.Errorf("%s: seq %d follows %d: the replay has a gap or is out of order", what, evs[i].Seq, evs[i-1].Seq)
			break
		}
	}
	for _, e := range evs {
		if e.Time.IsZero() || e.Code == "" || e.Source == "" {
			t.Errorf("%s: incomplete event %+v", what, e)
			break
		}
	}
}

// ---------------------------------------------------------------------------------------
// One API, two drivers: curl(1) and the Go client, so that both go through the same flow.

type api interface {
	Ping() (client.Ping, error)
	Status() (client.Status, error)
	Job(name string) (client.Job, error)
	Start(name string) (client.Job, error)
	Stop(name string) (client.Job, error)
	Restart(name string) (client.Job, error)
	Signal(name, sig string) error
	Reload() (client.Reload, error)
	Maintenance(on bool) error
	PutEnv(env map[string]string) error
	PutMetrics(m map[string]float64) error
	Health() (client.Health, int, error)
	// Replay returns the ring's events after since, with follow=false.
	Replay(since uint64) ([]client.Event, error)
	// Follow streams events until the test ends: the ring's events after *since first,
	// when since is not nil, then live ones.
	Follow(since *uint64) <-chan client.Event
	Shutdown() error
}

// curlAPI drives the API with curl(1).
type curlAPI struct {
	t    testing.TB
	sock string
}

func (c curlAPI) call(method, path string, body any, out any) error {
	c.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	code, ctype, raw := curlDo(c.t, c.sock, method, path, b)
	if code >= 400 {
		var eb client.ErrorBody
		if err := json.Unmarshal(raw, &eb); err != nil {
			return fmt.Errorf("%s %s: status %d with a body that is not JSON: %q", method, path, code, raw)
		}
		return &client.APIError{StatusCode: code, Kind: eb.Error.Kind, Message: eb.Error.Message, Diagnostics: eb.Diagnostics}
	}
	if !strings.HasPrefix(ctype, "application/json") {
		return fmt.Errorf("%s %s: Content-Type %q", method, path, ctype)
	}
	if out == nil {
		out = &map[string]any{}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: %v in %q", method, path, err, raw)
	}
	return nil
}

func (c curlAPI) Ping() (client.Ping, error) {
	var p client.Ping
	return p, c.call("GET", "/v1/ping", nil, &p)
}
func (c curlAPI) Status() (client.Status, error) {
	var s client.Status
	return s, c.call("GET", "/v1/status", nil, &s)
}
func (c curlAPI) Job(name string) (client.Job, error) {
	var j client.Job
	return j, c.call("GET", "/v1/jobs/"+name, nil, &j)
}
func (c curlAPI) verb(name, verb string) (client.Job, error) {
	var j client.Job
	return j, c.call("POST", "/v1/jobs/"+name+"/"+verb, map[string]any{}, &j)
}
func (c curlAPI) Start(name string) (client.Job, error)   { return c.verb(name, "start") }
func (c curlAPI) Stop(name string) (client.Job, error)    { return c.verb(name, "stop") }
func (c curlAPI) Restart(name string) (client.Job, error) { return c.verb(name, "restart") }
func (c curlAPI) Signal(name, sig string) error {
	return c.call("POST", "/v1/jobs/"+name+"/signal", client.Signal{Signal: sig}, nil)
}
func (c curlAPI) Reload() (client.Reload, error) {
	var r client.Reload
	return r, c.call("POST", "/v1/reload", nil, &r)
}
func (c curlAPI) Maintenance(on bool) error {
	if on {
		return c.call("POST", "/v1/maintenance/enable", nil, nil)
	}
	return c.call("POST", "/v1/maintenance/disable", nil, nil)
}
func (c curlAPI) PutEnv(env map[string]string) error { return c.call("POST", "/v1/environ", env, nil) }
func (c curlAPI) PutMetrics(m map[string]float64) error {
	return c.call("POST", "/v1/metric", m, nil)
}
func (c curlAPI) Health() (client.Health, int, error) {
	var h client.Health
	code, _, raw := curlDo(c.t, c.sock, "GET", "/v1/health", nil)
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, code, fmt.Errorf("health: %v in %q", err, raw)
	}
	return h, code, nil
}
func (c curlAPI) Replay(since uint64) ([]client.Event, error) {
	code, ctype, raw := curlDo(c.t, c.sock, "GET", fmt.Sprintf("/v1/events?since=%d&follow=false", since), nil)
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/event-stream") {
		return nil, fmt.Errorf("events: status %d, Content-Type %q: %s", code, ctype, raw)
	}
	ch := make(chan client.Event, 4096)
	err := parseSSE(bytes.NewReader(raw), ch)
	close(ch)
	var out []client.Event
	for e := range ch {
		out = append(out, e)
	}
	return out, err
}
func (c curlAPI) Follow(since *uint64) <-chan client.Event {
	path := "/v1/events"
	if since != nil {
		path += fmt.Sprintf("?since=%d", *since)
	}
	return curlFollow(c.t, c.sock, path)
}
func (c curlAPI) Shutdown() error {
	return c.call("POST", "/v1/shutdown", nil, nil)
}

// curlFollow runs `curl -N` on an event stream until the test ends.
func curlFollow(t testing.TB, sock, path string) <-chan client.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "curl", "-sSN", "-g", "--unix-socket", sock, "http://pilotfish"+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan client.Event, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		_ = parseSSE(out, ch)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = cmd.Wait()
	})
	return ch
}

// goAPI drives the API with pilotfish's Go client.
type goAPI struct {
	t testing.TB
	c *client.Client
}

func newGoAPI(t testing.TB, sock string) goAPI { return goAPI{t: t, c: client.New(sock)} }

func (g goAPI) ctx() context.Context { return ctxFor(g.t, 30*time.Second) }

func (g goAPI) Ping() (client.Ping, error)              { return g.c.Ping(g.ctx()) }
func (g goAPI) Status() (client.Status, error)          { return g.c.Status(g.ctx()) }
func (g goAPI) Job(name string) (client.Job, error)     { return g.c.Job(g.ctx(), name) }
func (g goAPI) Start(name string) (client.Job, error)   { return g.c.Start(g.ctx(), name) }
func (g goAPI) Stop(name string) (client.Job, error)    { return g.c.Stop(g.ctx(), name) }
func (g goAPI) Restart(name string) (client.Job, error) { return g.c.Restart(g.ctx(), name) }
func (g goAPI) Signal(name, sig string) error           { return g.c.Signal(g.ctx(), name, sig) }
func (g goAPI) Reload() (client.Reload, error)          { return g.c.Reload(g.ctx()) }
func (g goAPI) Maintenance(on bool) error               { return g.c.Maintenance(g.ctx(), on) }
func (g goAPI) PutEnv(env map[string]string) error      { return g.c.PutEnv(g.ctx(), env) }
func (g goAPI) PutMetrics(m map[string]float64) error   { return g.c.PutMetrics(g.ctx(), m) }
func (g goAPI) Health() (client.Health, int, error)     { return g.c.Health(g.ctx()) }
func (g goAPI) Shutdown() error                         { return g.c.Shutdown(g.ctx()) }
func (g goAPI) Replay(since uint64) ([]client.Event, error) {
	var out []client.Event
	err := g.c.Events(g.ctx(), &since, false, func(e client.Event) error {
		out = append(out, e)
		return nil
	})
	return out, err
}
func (g goAPI) Follow(since *uint64) <-chan client.Event {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan client.Event, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		_ = g.c.Events(ctx, since, true, func(e client.Event) error {
			ch <- e
			return nil
		})
	}()
	g.t.Cleanup(func() { cancel(); <-done })
	return ch
}

// must fails the test on err.
func must[T any](t testing.TB, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func check(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantAPIError checks that err is an *client.APIError with the status.
func wantAPIError(t testing.TB, what string, err error, status int) *client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Errorf("%s: error %v, want an API error with status %d", what, err, status)
		return &client.APIError{}
	}
	if ae.StatusCode != status || ae.Kind == "" || ae.Message == "" {
		t.Errorf("%s: %d %q %q, want status %d with a kind and a message", what, ae.StatusCode, ae.Kind, ae.Message, status)
	}
	return ae
}

// waitJob polls the job until cond holds.
func waitJob(t testing.TB, a api, name string, d time.Duration, cond func(client.Job) bool, what string) client.Job {
	t.Helper()
	var j client.Job
	var err error
	if !poll(d, func() bool {
		j, err = a.Job(name)
		return err == nil && cond(j)
	}) {
		t.Fatalf("job %s: timed out after %s waiting for %s (last: %+v, err %v)", name, d, what, j, err)
	}
	return j
}

func running(j client.Job) bool { return j.State == "running" && j.Pid > 0 }

// apiFlowConfig is the configuration the API flow runs against.
const apiFlowConfig = jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "trap" {
  exec = ["/bin/sh", "-c", "trap 'echo HUP >> \"$TESTDIR/hup.txt\"' HUP; trap 'sleep 0.3; date +%s%N > \"$TESTDIR/trap.exit\"; exit 0' TERM; while :; do sleep 0.05; done"]
}
job "svc" {
  exec = "sleep 1000"
  health {
    exec     = ["/bin/sh", "-c", "test -f \"$TESTDIR/healthy\""]
    interval = "100ms"
    failures = 1
  }
}
job "envjob" {
  exec = ["/bin/sh", "-c", "echo \"X=$PF_X\" >> \"$TESTDIR/envjob.txt\"; exec sleep 1000"]
}
`

// apiFlow exercises every endpoint of docs/api.md through a.
func apiFlow(t *testing.T, p *instance, a api) {
	jobNames := []string{"steady", "trap", "svc", "envjob"}

	// ping
	ping := must[client.Ping](t, "ping")(a.Ping())
	if ping.Status != "ok" || ping.Version == "" {
		t.Errorf("ping = %+v, want status ok and a version", ping)
	}

	// status: every job, in configuration order, with its fields.
	for _, n := range jobNames {
		waitJob(t, a, n, 10*time.Second, running, "running")
	}
	st := must[client.Status](t, "status")(a.Status())
	var names []string
	for _, j := range st.Jobs {
		names = append(names, j.Name)
		if j.Kind != "exec" || j.State != "running" || j.Pid <= 0 || j.Restarts != 0 || j.Since.IsZero() {
			t.Errorf("status of %s: %+v, want an exec job running with a pid, no restarts and a since", j.Name, j)
		}
		if j.ExitCode != nil && j.Name != "envjob" { // envjob may have been restarted by hand
			t.Errorf("status of %s: exit code %d, want none before any exit", j.Name, *j.ExitCode)
		}
		if j.Name != "svc" && j.Health != "unknown" {
			t.Errorf("status of %s: health %q, want unknown (no health check)", j.Name, j.Health)
		}
	}
	if !slices.Equal(names, jobNames) {
		t.Errorf("status lists jobs %q, want %q", names, jobNames)
	}
	if st.Watches == nil || len(st.Watches) != 0 || st.Maintenance {
		t.Errorf("status: watches %#v maintenance %v, want [] and false", st.Watches, st.Maintenance)
	}

	// jobs/{name}
	steady := must[client.Job](t, "job steady")(a.Job("steady"))
	if steady.Name != "steady" || !running(steady) {
		t.Errorf("job steady = %+v", steady)
	}
	_, err := a.Job("nosuchjob")
	wantAPIError(t, "job nosuchjob", err, http.StatusNotFound)

	// restart: a new process. The answer itself is checked by TestControlRestartAnswer.
	if _, err := a.Restart("steady"); err != nil {
		t.Fatalf("restart steady: %v", err)
	}
	restarted := waitJob(t, a, "steady", 10*time.Second, func(j client.Job) bool { return running(j) && j.Pid != steady.Pid }, "a new pid after restart")
	if p.hostPID(steady.Pid) != 0 {
		t.Errorf("restart: steady's old process %d still exists", steady.Pid)
	}

	// stop answers once the job has stopped; start answers with the running job.
	stopped := must[client.Job](t, "stop steady")(a.Stop("steady"))
	if stopped.State != "stopped" || stopped.Pid != 0 {
		t.Errorf("stop steady answered %+v, want state stopped and pid 0", stopped)
	}
	if p.hostPID(restarted.Pid) != 0 {
		t.Errorf("stop steady answered while its process %d still exists", restarted.Pid)
	}
	started := must[client.Job](t, "start steady")(a.Start("steady"))
	if !running(started) || started.Pid == restarted.Pid {
		t.Errorf("start steady answered %+v, want running with a new pid", started)
	}
	// Start of a running job is a no-op, like systemctl start: 200 with the same process.
	if again := must[client.Job](t, "start of a running job")(a.Start("steady")); again.Pid != started.Pid || !running(again) {
		t.Errorf("start of a running job answered %+v, want the same running process %d", again, started.Pid)
	}
	for _, verb := range []func(string) (client.Job, error){a.Start, a.Stop, a.Restart} {
		_, err := verb("nosuchjob")
		wantAPIError(t, "start/stop/restart of an unknown job", err, http.StatusNotFound)
	}

	// signal: the job's trap sees it.
	check(t, "signal trap HUP", a.Signal("trap", "HUP"))
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(readFile(t, filepath.Join(p.Dir, "hup.txt")), "HUP") }, "job trap to record SIGHUP")
	wantAPIError(t, "signal BOGUS", a.Signal("trap", "BOGUS"), http.StatusBadRequest)
	wantAPIError(t, "signal to an unknown job", a.Signal("nosuchjob", "HUP"), http.StatusNotFound)
	if j := must[client.Job](t, "job trap")(a.Job("trap")); !running(j) {
		t.Errorf("trap after SIGHUP: %+v, want still running", j)
	}

	// health: 503 with the failing job, 200 once it is healthy.
	h, code, err := a.Health()
	check(t, "health", err)
	if code != http.StatusServiceUnavailable || h.Status != "unhealthy" || len(h.Failing) != 1 || h.Failing[0].Job != "svc" {
		t.Errorf("health before svc is healthy: %d %+v, want 503 with svc failing", code, h)
	}
	writeFile(t, filepath.Join(p.Dir, "healthy"), "", 0o644)
	waitFor(t, 10*time.Second, func() bool { _, code, _ := a.Health(); return code == http.StatusOK }, "/v1/health to answer 200")
	h, _, _ = a.Health()
	if h.Status != "ok" || h.Maintenance || h.Failing == nil || len(h.Failing) != 0 {
		t.Errorf("healthy answer %+v, want status ok, maintenance false, failing []", h)
	}
	if j := must[client.Job](t, "job svc")(a.Job("svc")); j.Health != "healthy" {
		t.Errorf("svc health %q, want healthy", j.Health)
	}
	// A failing check turns it back to 503, with the job and its health.
	check(t, "remove the health file", os.Remove(filepath.Join(p.Dir, "healthy")))
	waitFor(t, 10*time.Second, func() bool { _, code, _ := a.Health(); return code == http.StatusServiceUnavailable }, "/v1/health to answer 503 again")
	h, _, _ = a.Health()
	if h.Status != "unhealthy" || len(h.Failing) != 1 || h.Failing[0].Job != "svc" || h.Failing[0].Health != "unhealthy" || h.Failing[0].State != "running" {
		t.Errorf("health with svc failing its check: %+v, want svc running and unhealthy", h)
	}
	writeFile(t, filepath.Join(p.Dir, "healthy"), "", 0o644)
	waitFor(t, 10*time.Second, func() bool { _, code, _ := a.Health(); return code == http.StatusOK }, "/v1/health to answer 200 again")

	// maintenance: events, status and health. The live stream starts after the ring's last
	// event, so that nothing published from here on can be missed.
	ring := must[[]client.Event](t, "events since=0")(a.Replay(0))
	last := ring[len(ring)-1].Seq
	live := a.Follow(&last)
	check(t, "maintenance enable", a.Maintenance(true))
	if st := must[client.Status](t, "status")(a.Status()); !st.Maintenance {
		t.Errorf("status after maintenance enable: maintenance false")
	}
	h, code, _ = a.Health()
	if code != http.StatusServiceUnavailable || h.Status != "maintenance" || !h.Maintenance {
		t.Errorf("health in maintenance: %d %+v, want 503 status maintenance", code, h)
	}
	check(t, "maintenance disable", a.Maintenance(false))
	h, code, _ = a.Health()
	if code != http.StatusOK || h.Maintenance {
		t.Errorf("health after maintenance disable: %d %+v, want 200", code, h)
	}
	enter, _ := waitEvent(t, live, 10*time.Second, "enterMaintenance", "global")
	exit, _ := waitEvent(t, live, 10*time.Second, "exitMaintenance", "global")
	if exit.Seq <= enter.Seq {
		t.Errorf("exitMaintenance seq %d is not after enterMaintenance seq %d", exit.Seq, enter.Seq)
	}

	// environ: a later start of a job sees the value.
	envFile := filepath.Join(p.Dir, "envjob.txt")
	before := len(fileLines(t, envFile))
	check(t, "environ", a.PutEnv(map[string]string{"PF_X": "a=b c"}))
	if _, err := a.Restart("envjob"); err != nil {
		t.Fatalf("restart envjob: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, envFile)) > before }, "envjob to start again")
	if got := fileLines(t, envFile); got[len(got)-1] != "X=a=b c" {
		t.Errorf("envjob started after putenv saw %q, want X=a=b c", got[len(got)-1])
	}

	// metric: not implemented yet; a clear 4xx.
	if err := a.PutMetrics(map[string]float64{"orders_total": 1}); err == nil {
		t.Errorf("metric update of an undeclared metric succeeded")
	} else if ae := (*client.APIError)(nil); !errors.As(err, &ae) || ae.StatusCode < 400 || ae.StatusCode > 499 || ae.Message == "" {
		t.Errorf("metric update: %v, want a 4xx API error with a message", err)
	}

	// reload with nothing changed: three empty arrays.
	r := must[client.Reload](t, "reload")(a.Reload())
	if r.Changed == nil || r.Added == nil || r.Removed == nil || len(r.Changed)+len(r.Added)+len(r.Removed) != 0 {
		t.Errorf("reload of the same file: %#v, want three empty arrays", r)
	}

	// events: the whole ring from seq 1, ending (follow=false); then a tail of it.
	evs := must[[]client.Event](t, "events since=0")(a.Replay(0))
	checkReplay(t, "events since=0", evs, 0)
	if evs[0].Code != "startup" || evs[0].Source != "global" {
		t.Errorf("first event %+v, want global/startup", evs[0])
	}
	if last := evs[len(evs)-1]; last.Seq < exit.Seq {
		t.Errorf("replay ends at seq %d, before exitMaintenance (%d)", last.Seq, exit.Seq)
	}
	for _, want := range [][2]string{{"steady", "started"}, {"steady", "stopping"}, {"steady", "stopped"}, {"svc", "healthy"},
		{"global", "enterMaintenance"}, {"global", "exitMaintenance"}, {"global", "reload"}} {
		if !slices.ContainsFunc(evs, func(e client.Event) bool { return e.Source == want[0] && e.Code == want[1] }) {
			t.Errorf("replay lacks %s/%s: %v", want[0], want[1], eventNames(evs))
		}
	}
	tailEvs := must[[]client.Event](t, "events since=enter")(a.Replay(enter.Seq))
	checkReplay(t, fmt.Sprintf("events since=%d", enter.Seq), tailEvs, enter.Seq)

	// stop waits until the job has stopped: trap takes 300 ms to exit after SIGTERM.
	trap := must[client.Job](t, "job trap")(a.Job("trap"))
	stopped = must[client.Job](t, "stop trap")(a.Stop("trap"))
	answered := time.Now()
	exitStamp := filepath.Join(p.Dir, "trap.exit")
	if !exists(exitStamp) {
		t.Errorf("stop trap answered before the job's TERM trap finished")
	} else if s := stamp(t, exitStamp); answered.Before(s) {
		t.Errorf("stop trap answered at %s, before the job exited at %s", answered, s)
	}
	if stopped.State != "stopped" || stopped.Pid != 0 || stopped.ExitCode == nil || *stopped.ExitCode != 0 {
		t.Errorf("stop trap answered %+v, want stopped, pid 0, exit code 0", stopped)
	}
	if p.hostPID(trap.Pid) != 0 {
		t.Errorf("stop trap answered while its process %d still exists", trap.Pid)
	}

	// shutdown: pilotfish ends, exit code 0.
	check(t, "shutdown", a.Shutdown())
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit code after /v1/shutdown: %d, want 0", code)
	}
	if exists(filepath.Join(p.Dir, "pf.sock")) {
		t.Errorf("the control socket is left behind after shutdown")
	}
}

// docs/api.md: every endpoint through the real binary with curl(1).
func TestControlAPIWithCurl(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	p, sock := startCtl(t, opts{Config: apiFlowConfig})

	// The exact JSON shape of /v1/status and /v1/jobs/{name}, as a script sees it.
	fields := []string{"name", "kind", "state", "pid", "restarts", "health", "exit_code", "since", "status"}
	waitFor(t, 10*time.Second, func() bool {
		code, _, b := curlDo(t, sock, "GET", "/v1/status", nil)
		return code == 200 && strings.Count(string(b), `"state":"running"`) == 4
	}, "every job to run")
	code, ctype, body := curlDo(t, sock, "GET", "/v1/status", nil)
	if code != 200 || !strings.HasPrefix(ctype, "application/json") {
		t.Errorf("GET /v1/status: %d %q", code, ctype)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, body)
	}
	if w := strings.Join(strings.Fields(string(raw["watches"])), ""); w != "[]" {
		t.Errorf(`status "watches" = %s, want []`, raw["watches"])
	}
	if string(raw["maintenance"]) != "false" {
		t.Errorf(`status "maintenance" = %s, want false`, raw["maintenance"])
	}
	var jobsRaw []map[string]json.RawMessage
	if err := json.Unmarshal(raw["jobs"], &jobsRaw); err != nil || len(jobsRaw) != 4 {
		t.Fatalf("status jobs: %v %s", err, raw["jobs"])
	}
	for _, j := range jobsRaw {
		for _, f := range fields {
			if _, ok := j[f]; !ok {
				t.Errorf("status job %s lacks field %q", j["name"], f)
			}
		}
		if string(j["exit_code"]) != "null" {
			t.Errorf("status job %s: exit_code %s, want null before any exit", j["name"], j["exit_code"])
		}
		var since time.Time
		if err := json.Unmarshal(j["since"], &since); err != nil || since.IsZero() {
			t.Errorf("status job %s: since %s is not a time", j["name"], j["since"])
		}
	}
	code, _, body = curlDo(t, sock, "GET", "/v1/jobs/steady", nil)
	var one map[string]json.RawMessage
	if err := json.Unmarshal(body, &one); code != 200 || err != nil {
		t.Fatalf("GET /v1/jobs/steady: %d %v %s", code, err, body)
	}
	for _, f := range fields {
		if _, ok := one[f]; !ok {
			t.Errorf("/v1/jobs/steady lacks field %q", f)
		}
	}

	// ContainerPilot's /v3 paths (docs/api.md).
	code, _, body = curlDo(t, sock, "GET", "/v3/ping", nil)
	if code != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("GET /v3/ping: %d %s", code, body)
	}
	code, _, body = curlDo(t, sock, "POST", "/v3/reload", nil)
	if code != 200 || !strings.Contains(string(body), `"changed"`) {
		t.Errorf("POST /v3/reload: %d %s", code, body)
	}
	code, _, body = curlDo(t, sock, "POST", "/v3/environ", []byte(`{"PF_X":"v3"}`))
	if code != 200 {
		t.Errorf("POST /v3/environ: %d %s", code, body)
	}
	code, ctype, body = curlDo(t, sock, "POST", "/v3/metric", []byte(`{"orders_total":1}`))
	if code < 400 || code > 499 {
		t.Errorf("POST /v3/metric of an undeclared metric: %d %s, want a 4xx", code, body)
	} else {
		apiError(t, "POST /v3/metric", code, ctype, body, code, "")
	}
	code, _, body = curlDo(t, sock, "POST", "/v3/maintenance/enable", nil)
	if code != 200 {
		t.Errorf("POST /v3/maintenance/enable: %d %s", code, body)
	}
	if c, _, b := curlDo(t, sock, "GET", "/v1/health", nil); c != 503 || !strings.Contains(string(b), `"maintenance":true`) {
		t.Errorf("/v1/health after /v3/maintenance/enable: %d %s", c, b)
	}
	code, _, body = curlDo(t, sock, "POST", "/v3/maintenance/disable", nil)
	if code != 200 {
		t.Errorf("POST /v3/maintenance/disable: %d %s", code, body)
	}
	if st := must[client.Status](t, "status")(curlAPI{t, sock}.Status()); st.Maintenance {
		t.Errorf("maintenance still on after /v3/maintenance/disable")
	}
	// The environ alias really set the value: a job started now sees it.
	if _, err := (curlAPI{t, sock}).Restart("envjob"); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(p.Dir, "envjob.txt")
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, envFile)) >= 2 }, "envjob to start again")
	if got := fileLines(t, envFile); got[len(got)-1] != "X=v3" {
		t.Errorf("envjob started after POST /v3/environ saw %q, want X=v3", got)
	}

	apiFlow(t, p, curlAPI{t, sock})
}

// docs/api.md: every endpoint through the real binary with the Go client (control/client).
func TestControlAPIWithGoClient(t *testing.T) {
	t.Parallel()
	p, sock := startCtl(t, opts{Config: apiFlowConfig})
	apiFlow(t, p, newGoAPI(t, sock))
}

// docs/api.md: start/stop/restart answer with "the job's new status": after a restart that is a
// running job with a new pid, not the stopped state in between.
func TestControlRestartAnswer(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "other" {
  exec = "sleep 1000"
}
`
	_, sock := startCtl(t, opts{Config: cfg})
	for _, a := range []api{newGoAPI(t, sock), curlAPI{t, sock}} {
		prev := waitJob(t, a, "steady", 10*time.Second, running, "running")
		bad := 0
		var answers []string
		for i := range 5 {
			j, err := a.Restart("steady")
			if err != nil {
				t.Fatalf("restart #%d: %v", i+1, err)
			}
			answers = append(answers, fmt.Sprintf("%s/pid %d", j.State, j.Pid))
			if !running(j) || j.Pid == prev.Pid {
				bad++
			}
			prev = waitJob(t, a, "steady", 10*time.Second, func(j client.Job) bool { return running(j) && j.Pid != prev.Pid }, "a new pid")
		}
		if bad > 0 {
			t.Errorf("%T: %d of 5 restart answers were not the running job with its new pid: %q", a, bad, answers)
		}
	}
}

// docs/cli.md: once /v1/ping answers, signal handlers are installed: a SIGTERM sent the moment
// the API first answers is a graceful shutdown (exit 0), as PID 1 (where an unhandled
// SIGTERM would be ignored) and as a plain process (where it would kill pilotfish).
func TestControlReadiness(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "pid1", true: "plain"}[plain], func(t *testing.T) {
			t.Parallel()
			for i := range 3 {
				dir := t.TempDir()
				sock := filepath.Join(dir, "pf.sock")
				p := start(t, opts{Dir: dir, Plain: plain, Config: jsonLogs + controlBlock(sock) + `
job "steady" {
  exec = "sleep 1000"
}
`})
				// Ask as fast as possible: the first answer is the moment that counts.
				deadline := time.Now().Add(10 * time.Second)
				for {
					if c, err := net.Dial("unix", sock); err == nil {
						fmt.Fprint(c, "GET /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
						_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
						line, _ := bufio.NewReader(c).ReadString('\n')
						c.Close()
						if strings.HasPrefix(line, "HTTP/1.1 200") {
							break
						}
					}
					if time.Now().After(deadline) || p.exited() {
						t.Fatalf("run %d: /v1/ping never answered", i)
					}
					time.Sleep(time.Millisecond)
				}
				p.Signal(syscall.SIGTERM)
				if !p.ExitsWithin(10 * time.Second) {
					t.Fatalf("run %d: SIGTERM right after the first ping answer was not handled (pilotfish still runs)", i)
				}
				if code := p.exitCode(); code != 0 {
					t.Fatalf("run %d: SIGTERM right after the first ping answer: exit code %d, want 0 (a graceful shutdown)", i, code)
				}
			}
		})
	}
}

// docs/cli.md: the control socket listens before the first job starts: each job checks the
// socket and asks /v1/ping at its very start.
func TestControlSocketBeforeFirstJob(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "pf.sock")
	probe := func(name string) string {
		return `
job "` + name + `" {
  exec = ["/bin/sh", "-c", "if test -S \"$SOCK\"; then echo socket; else echo none; fi > \"$TESTDIR/` + name + `.sock\"; curl -s --max-time 5 --unix-socket \"$SOCK\" http://x/v1/ping > \"$TESTDIR/` + name + `.ping\"; exec sleep 1000"]
  env  = { SOCK = ` + hclString(sock) + ` }
}
`
	}
	p := start(t, opts{Dir: dir, Config: jsonLogs + controlBlock(sock) + probe("first") + probe("second")})
	for _, name := range []string{"first", "second"} {
		pingFile := filepath.Join(dir, name+".ping")
		waitFor(t, 10*time.Second, func() bool { return strings.Contains(readFile(t, pingFile), "}") }, "job %s to record its ping", name)
		if got := strings.TrimSpace(readFile(t, filepath.Join(dir, name+".sock"))); got != "socket" {
			t.Errorf("job %s found %q at its start, want the control socket", name, got)
		}
		if got := readFile(t, pingFile); !strings.Contains(got, `"ok"`) {
			t.Errorf("job %s: /v1/ping at its start answered %q", name, got)
		}
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// docs/api.md: GET /v1/events streams live events with curl -N, after replaying the ring from
// since; the Go client's follow mode sees the same events in the same order.
func TestControlEventStream(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	_, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`})
	a := newGoAPI(t, sock)
	waitJob(t, a, "steady", 10*time.Second, running, "running")
	withReplay := curlFollow(t, sock, "/v1/events?since=0")
	first, _ := waitEvent(t, withReplay, 10*time.Second, "startup", "global")
	if first.Seq != 1 {
		t.Errorf("the replay from since=0 starts with seq %d, want 1", first.Seq)
	}
	started, _ := waitEvent(t, withReplay, 10*time.Second, "started", "steady")
	if started.Attrs["pid"] == "" {
		t.Errorf("started event without the pid: %+v", started)
	}
	// Live streams without since: once subscribed (each delivers an event made after it
	// connected), they see every later event in order, like the replaying one.
	goLive := a.Follow(nil)
	curlLive := curlFollow(t, sock, "/v1/events")
	for i := 0; ; i++ {
		on := i%2 == 0
		check(t, "maintenance", a.Maintenance(on))
		code := map[bool]string{true: "enterMaintenance", false: "exitMaintenance"}[on]
		if gotBoth(goLive, curlLive, code, 2*time.Second) {
			break
		}
		if i > 10 {
			t.Fatalf("the live event streams did not deliver a maintenance event")
		}
	}
	check(t, "maintenance off", a.Maintenance(false))
	ring := must[[]client.Event](t, "events since=0")(a.Replay(0))
	checkReplay(t, "events since=0", ring, 0)
	boundary := ring[len(ring)-1].Seq
	check(t, "maintenance on", a.Maintenance(true))
	check(t, "maintenance off", a.Maintenance(false))
	for name, ch := range map[string]<-chan client.Event{"replaying curl": withReplay, "curl": curlLive, "Go client": goLive} {
		enter, _ := waitEventAfter(t, ch, 10*time.Second, boundary, "enterMaintenance", "global")
		exit, _ := waitEventAfter(t, ch, 10*time.Second, boundary, "exitMaintenance", "global")
		if enter.Seq != boundary+1 || exit.Seq != enter.Seq+1 {
			t.Errorf("%s: enterMaintenance seq %d, exitMaintenance seq %d, want %d and %d", name, enter.Seq, exit.Seq, boundary+1, boundary+2)
		}
	}
	// Bad query parameters are JSON errors.
	for _, q := range []string{"since=abc", "since=-1", "follow=maybe"} {
		code, ctype, body := curlDo(t, sock, "GET", "/v1/events?"+q, nil)
		apiError(t, "GET /v1/events?"+q, code, ctype, body, http.StatusBadRequest, client.KindBadRequest)
	}
}

// gotBoth reports whether both streams delivered an event with code within d.
func gotBoth(a, b <-chan client.Event, code string, d time.Duration) bool {
	deadline := time.After(d)
	okA, okB := false, false
	for !okA || !okB {
		select {
		case e, ok := <-a:
			if !ok {
				return false
			}
			okA = okA || e.Code == code
		case e, ok := <-b:
			if !ok {
				return false
			}
			okB = okB || e.Code == code
		case <-deadline:
			return false
		}
	}
	return true
}

// docs/api.md, docs/jobs.md: restarting a job through the API must not look like "nothing can run any
// more": when it is the only job that runs (the others have completed), pilotfish must
// not shut down in the moment between the old process's exit and the new one's start.
func TestControlRestartOnlyRunningJob(t *testing.T) {
	t.Parallel()
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "setup" {
  exec = "true"
}
job "only" {
  exec = "sleep 1000"
}
`})
	a := newGoAPI(t, sock)
	prev := waitJob(t, a, "only", 10*time.Second, running, "running")
	waitJob(t, a, "setup", 10*time.Second, func(j client.Job) bool { return j.State == "completed" }, "completed")
	for i := range 10 {
		if _, err := a.Restart("only"); err != nil {
			t.Fatalf("restart #%d: %v", i+1, err)
		}
		if !poll(5*time.Second, func() bool {
			j, err := a.Job("only")
			if err == nil && running(j) && j.Pid != prev.Pid {
				prev = j
				return true
			}
			return p.exited()
		}) || p.exited() {
			t.Fatalf("restart #%d of the only running job: pilotfish shut down (reason %q), want the job running again", i+1, p.shutdownReason())
		}
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
