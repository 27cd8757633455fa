package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/control/client"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/errdefs"
	"github.com/pilotfish/pilotfish/internal/logtail"
)

// backend is a stand-in for core's daemon: it records what the API asked.
type backend struct {
	mu      sync.Mutex
	bus     *events.Bus
	env     map[string]string
	metrics []api.Metric
	maint   bool
	signals []syscall.Signal
	reload  error
	down    chan string
	logs    *logtail.Store
}

func newBackend() *backend {
	return &backend{bus: events.NewBus(nil), env: map[string]string{}, down: make(chan string, 1), logs: logtail.NewStore()}
}

func (b *backend) Version() string { return "test" }
func (b *backend) Status() api.Status {
	return api.Status{Jobs: []api.Job{{Name: "app", State: "running", Pid: 42}}, Watches: []api.Watch{}}
}
func (b *backend) Job(name string) (api.Job, error) {
	if name != "app" {
		return api.Job{}, errdefs.Errorf(errdefs.ErrNotFound, "there is no job %q", name)
	}
	return api.Job{Name: "app", State: "running"}, nil
}
func (b *backend) StartJob(ctx context.Context, name string) (api.Job, error) {
	if _, err := b.Job(name); err != nil {
		return api.Job{}, err
	}
	return api.Job{}, errdefs.Errorf(errdefs.ErrConflict, "job %q is running", name)
}
func (b *backend) StopJob(ctx context.Context, name string) (api.Job, error) {
	j, err := b.Job(name)
	j.State = "stopped"
	return j, err
}
func (b *backend) RestartJob(ctx context.Context, name string) (api.Job, error) {
	return b.Job(name)
}
func (b *backend) SignalJob(ctx context.Context, name string, sig syscall.Signal) error {
	if _, err := b.Job(name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.signals = append(b.signals, sig)
	return nil
}
func (b *backend) Reload(ctx context.Context) (api.Reload, error) {
	if b.reload != nil {
		return api.Reload{}, b.reload
	}
	return api.Reload{Changed: []string{}, Added: []string{"x"}, Removed: []string{}}, nil
}
func (b *backend) SetMaintenance(ctx context.Context, on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maint = on
	return nil
}
func (b *backend) PutEnv(env map[string]string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, v := range env {
		b.env[k] = v
	}
	return nil
}
func (b *backend) PutMetrics(m []api.Metric) error {
	if m[0].Name == "nope" {
		return errdefs.Errorf(errdefs.ErrNotFound, "no metric %q", m[0].Name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.metrics = append(b.metrics, m...)
	return nil
}
func (b *backend) Health() (api.Health, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.maint {
		return api.Health{Status: "maintenance", Maintenance: true, Failing: []api.HealthProblem{}}, false
	}
	return api.Health{Status: "ok", Failing: []api.HealthProblem{}}, true
}
func (b *backend) Shutdown(reason string) { b.down <- reason }
func (b *backend) Bus() *events.Bus       { return b.bus }
func (b *backend) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up 1\n") })
}

func (b *backend) Logs(jobs []string, n int) ([]logtail.Line, error) {
	for _, j := range jobs {
		if _, err := b.Job(j); err != nil {
			return nil, err
		}
	}
	return b.logs.Last(jobs, n), nil
}
func (b *backend) FollowLogs(jobs []string, n int) ([]logtail.Line, *logtail.Follower, error) {
	if _, err := b.Logs(jobs, 0); err != nil {
		return nil, nil, err
	}
	lines, f := b.logs.Follow(jobs, n)
	return lines, f, nil
}

func serve(t *testing.T, cfg config.Control) (*Server, *backend, *client.Client) {
	t.Helper()
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(t.TempDir(), "pf.sock")
	}
	if cfg.Mode == 0 {
		cfg.Mode = 0o600
	}
	b := newBackend()
	s, err := Listen(cfg, b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	s.Started()
	return s, b, client.New(cfg.Socket)
}

// raw sends a request and returns the status and body.
func raw(t *testing.T, socket, method, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", socket)
	}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSocketPermissions(t *testing.T) {
	s, _, _ := serve(t, config.Control{})
	st, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %o, want 600", st.Mode().Perm())
	}
	dir := t.TempDir()
	s2, _, _ := serve(t, config.Control{Socket: filepath.Join(dir, "g.sock"), Mode: 0o660, Group: "0"})
	st, _ = os.Stat(s2.Path())
	if st.Mode().Perm() != 0o660 || st.Sys().(*syscall.Stat_t).Gid != 0 {
		t.Fatalf("socket mode %o gid %d", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid)
	}
}

func TestStaleSocketReplacedLiveOneRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pf.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves a stale socket file behind
	_, _, c := serve(t, config.Control{Socket: path})
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if _, err := Listen(config.Control{Socket: path, Mode: 0o600}, newBackend(), slog.Default()); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("took over a live socket: %v", err)
	}
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, nil, 0o600)
	if _, err := Listen(config.Control{Socket: regular, Mode: 0o600}, newBackend(), slog.Default()); err == nil {
		t.Fatal("replaced a regular file")
	}
}

func TestEndpoints(t *testing.T) {
	s, b, _ := serve(t, config.Control{})
	cases := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/v1/ping", "", 200, `"status":"ok"`},
		{"GET", "/v3/ping", "", 200, `"version":"test"`},
		{"POST", "/v3/ping", "", 200, `"status":"ok"`},
		{"HEAD", "/v3/ping", "", 200, ``},
		{"POST", "/v1/ping", "", 405, `"kind":"method-not-allowed"`},
		{"GET", "/v1/status", "", 200, `"pid":42`},
		{"GET", "/v1/jobs/app", "", 200, `"name":"app"`},
		{"GET", "/v1/jobs/nope", "", 404, `"kind":"not-found"`},
		{"POST", "/v1/jobs/app/start", "{}", 409, `"kind":"conflict"`},
		{"POST", "/v1/jobs/app/stop", "", 200, `"state":"stopped"`},
		{"POST", "/v1/jobs/app/stop", `{"force":true}`, 400, `takes no parameters`},
		{"POST", "/v1/jobs/app/signal", `{"signal":"HUP"}`, 200, `{}`},
		{"POST", "/v1/jobs/app/signal", `{"signal":"SIGNOPE"}`, 400, `not a signal name`},
		{"POST", "/v1/jobs/app/signal", `{"signal":1}`, 400, `malformed JSON`},
		{"POST", "/v1/jobs/app/signal", `{"signal":`, 400, `malformed JSON`},
		{"POST", "/v1/jobs/app/signal", `{}`, 400, `must name a signal`},
		{"POST", "/v1/jobs/nope/signal", `{"signal":"HUP"}`, 404, `there is no job`},
		{"GET", "/v1/jobs/app/signal", "", 405, `"kind":"method-not-allowed"`},
		{"POST", "/v1/reload", "{}", 200, `"added":[`},
		{"POST", "/v3/reload", "", 200, `"x"`},
		{"POST", "/v1/environ", `{"A":"b=c d"}`, 200, `{}`},
		{"POST", "/v1/environ", `{"A":1}`, 400, `JSON object of strings`},
		{"POST", "/v1/environ", `["A"]`, 400, `JSON object of strings`},
		{"POST", "/v1/environ", `{"A=B":"x"}`, 400, `not a valid environment variable name`},
		{"POST", "/v3/environ", `{"B":"2"}`, 200, `{}`},
		{"POST", "/v1/metric", `{"orders_total":1,"queue":"+2"}`, 200, `{}`},
		{"POST", "/v1/metric", `{"name":"orders_total","value":2,"labels":{"kind":"a"}}`, 200, `{}`},
		{"POST", "/v1/metric", `{"nope":1}`, 404, `no metric`},
		{"POST", "/v1/metric", `{"x":"lots"}`, 400, `must be a number`},
		{"POST", "/v1/metric", `{"name":"x","value":1,"extra":1}`, 400, `unknown field`},
		{"POST", "/v1/metric", `{"name":"x"}`, 400, `has no`},
		{"POST", "/v3/metric", `{"orders_total":"2"}`, 200, `{}`},
		{"POST", "/v3/metric", `{"orders_total":" 2.5 ","queue":3}`, 200, `{}`},
		{"POST", "/v3/metric", `{"orders_total":"lots"}`, 400, `is not a number`},
		{"POST", "/v3/metric", `{"orders_total":true}`, 400, `must be a number or a string`},
		{"POST", "/v3/metric", `{}`, 400, `JSON object`},
		{"GET", "/v3/metric", "", 405, `"kind":"method-not-allowed"`},
		{"POST", "/v1/maintenance/enable", "", 200, `{}`},
		{"GET", "/v1/health", "", 503, `"maintenance"`},
		{"POST", "/v3/maintenance/disable", "", 200, `{}`},
		{"GET", "/v1/health", "", 200, `"ok"`},
		{"GET", "/metrics", "", 200, "up 1"},
		{"GET", "/v1/nothing", "", 404, `no endpoint /v1/nothing`},
		{"GET", "/v1/events?since=abc", "", 400, `since must be`},
		{"POST", "/v1/environ", `{"A":"` + strings.Repeat("x", MaxBody) + `"}`, 413, `"kind":"too-large"`},
	}
	for _, c := range cases {
		code, body := raw(t, s.Path(), c.method, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s %.40q: %d %s; want %d with %q", c.method, c.path, c.body, code, body, c.code, c.want)
		}
		if code >= 400 && !strings.Contains(body, `"error":{`) && c.path != "/v1/health" {
			t.Errorf("%s %s: error body is not {\"error\":…}: %s", c.method, c.path, body)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.env["A"] != "b=c d" || b.env["B"] != "2" || len(b.signals) != 1 || b.signals[0] != syscall.SIGHUP {
		t.Fatalf("backend saw env %v signals %v", b.env, b.signals)
	}
	if len(b.metrics) != 6 || !b.metrics[1].Add || b.metrics[2].Labels["kind"] != "a" {
		t.Fatalf("metrics %+v", b.metrics)
	}
	// ContainerPilot's string values are plain values (set a gauge, add to a counter).
	if m := b.metrics[3:]; m[0].Value != 2 || m[0].Add || m[1].Name != "orders_total" || m[1].Value != 2.5 || m[2].Value != 3 {
		t.Fatalf("/v3/metric gave %+v", m)
	}
}

func TestInvalidReloadCarriesDiagnostics(t *testing.T) {
	s, b, c := serve(t, config.Control{})
	b.reload = &ConfigError{Diagnostics: []string{"x.hcl:1:1: bad"}}
	code, body := raw(t, s.Path(), "POST", "/v1/reload", "")
	if code != 400 || !strings.Contains(body, `"diagnostics":[`) || !strings.Contains(body, "x.hcl:1:1: bad") {
		t.Fatalf("%d %s", code, body)
	}
	_, err := c.Reload(context.Background())
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Kind != api.KindInvalidConfig || len(apiErr.Diagnostics) != 1 {
		t.Fatalf("client error %#v", err)
	}
}

func TestShutdownEndpoint(t *testing.T) {
	_, b, c := serve(t, config.Control{})
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if reason := <-b.down; !strings.Contains(reason, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("reason %q does not name the peer", reason)
	}
}

// A client that connects and sends nothing is cut off; the others are served meanwhile.
func TestSilentClientIsDisconnected(t *testing.T) {
	defer func(d time.Duration) { readHeaderTimeout = d }(readHeaderTimeout)
	readHeaderTimeout = 200 * time.Millisecond
	s, _, c := serve(t, config.Control{})
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("silent connection not closed by the server: %v", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	_, _, c := serve(t, config.Control{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 10; k++ {
				if _, err := c.Status(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestEventStream(t *testing.T) {
	_, b, c := serve(t, config.Control{})
	b.bus.Publish(events.Startup, events.Global, nil)
	b.bus.Publish(events.Started, "app", map[string]string{"pid": "1"})
	var got []string
	zero := uint64(0)
	err := c.Events(context.Background(), &zero, false, func(ev api.Event) error {
		got = append(got, fmt.Sprintf("%d:%s.%s", ev.Seq, ev.Source, ev.Code))
		return nil
	})
	if err != nil || strings.Join(got, " ") != "1:global.startup 2:app.started" {
		t.Fatalf("replay %v %v", got, err)
	}
	// Follow from seq 1: the replay of 2, then live events.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	one := uint64(1)
	got = nil
	ready := make(chan struct{})
	go func() {
		for b.bus.Depths() == nil || len(b.bus.Depths()) == 0 {
			time.Sleep(time.Millisecond)
		}
		close(ready)
		b.bus.Publish(events.Stopping, "app", nil)
	}()
	err = c.Events(ctx, &one, true, func(ev api.Event) error {
		got = append(got, fmt.Sprintf("%d:%s.%s", ev.Seq, ev.Source, ev.Code))
		if len(got) == 2 {
			return io.EOF
		}
		return nil
	})
	<-ready
	if err != io.EOF || strings.Join(got, " ") != "2:app.started 3:app.stopping" {
		t.Fatalf("follow %v %v", got, err)
	}
}

// A stream reader that stops reading is dropped; the bus and other clients are unaffected.
func TestStalledStreamReaderIsDropped(t *testing.T) {
	s, b, c := serve(t, config.Control{})
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, func() bool { return len(b.bus.Depths()) == 1 })
	big := map[string]string{"pad": strings.Repeat("x", 4096)}
	deadline := time.Now().Add(20 * time.Second)
	for len(b.bus.Depths()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("stalled reader never dropped")
		}
		for i := 0; i < 500; i++ {
			b.bus.Publish(events.Started, "app", big)
		}
		if _, err := c.Ping(context.Background()); err != nil {
			t.Fatalf("API stuck behind a stalled reader: %v", err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The API works with a client nobody here wrote.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	s, _, _ := serve(t, config.Control{})
	out, err := exec.Command(curl, "-sS", "--unix-socket", s.Path(), "http://x/v1/ping").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(`"status":"ok"`)) {
		t.Fatalf("curl ping: %v %s", err, out)
	}
	out, err = exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", s.Path(),
		"-X", "POST", "-d", `{"A":"1"}`, "http://x/v3/environ").CombinedOutput()
	if err != nil || string(out) != "200" {
		t.Fatalf("curl environ: %v %s", err, out)
	}
}
