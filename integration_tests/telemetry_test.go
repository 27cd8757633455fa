package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// startPrometheus runs a real Prometheus server (Debian's package) that scrapes target
// every 500 ms, and returns the base URL of its HTTP API.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("PILOTFISH_REQUIRE_CONSUL") != "" {
			t.Fatal("prometheus is not installed (Debian package prometheus)")
		}
		t.Skip("prometheus is not installed (Debian package prometheus)")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 500ms
  scrape_timeout: 400ms
scrape_configs:
  - job_name: pilotfish
    honor_labels: true # pilotfish's own "job" label names the pilotfish job
    static_configs:
      - targets: [%q]
`, target)
	writeFile(t, filepath.Join(dir, "prometheus.yml"), cfg, 0o644)
	port := freePort(t)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", tail(string(b), 30))
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "prometheus to be ready")
	return base
}

// promQuery returns the value of the first sample of an instant query, or "" if none.
func promQuery(t *testing.T, base, query string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data.Result) == 0 {
		return ""
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return s
}

// A real Prometheus scrapes pilotfish and records a custom metric and the restarts of a job
// that was killed (docs/metrics.md).
func TestPrometheusScrapesPilotfish(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	p := start(t, opts{Plain: true, Config: fmt.Sprintf(`
telemetry {
  listen = "127.0.0.1:%d"
  metric "orders_total" {
    type   = "counter"
    help   = "Orders processed"
    labels = ["kind"]
  }
  metric "queue_depth" {
    type = "gauge"
  }
}
job "victim" {
  exec     = ["sleep", "1000"]
  restarts = "unlimited"
  backoff  = { initial = "10ms", max = "100ms" }
  health {
    exec     = ["true"]
    interval = "1s"
  }
}
`, port)})
	c := client.New(filepath.Join(p.Dir, "pilotfish.sock"))
	ctx := context.Background()
	waitFor(t, 10*time.Second, func() bool { j, err := c.Job(ctx, "victim"); return err == nil && j.Pid > 0 }, "victim to run")

	// promtool accepts a live scrape, in both formats.
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	for _, accept := range []string{"text/plain", "application/openmetrics-text; version=1.0.0"} {
		req, _ := http.NewRequest("GET", metricsURL, nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if promtool, err := exec.LookPath("promtool"); err == nil && accept == "text/plain" {
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(string(body))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("promtool check metrics: %v\n%s", err, out)
			}
		}
		if accept != "text/plain" && !strings.HasSuffix(string(body), "# EOF\n") {
			t.Fatalf("OpenMetrics asked for, got:\n%s", tail(string(body), 5))
		}
	}
	// /metrics is on the control socket too, and /v1/health on the TCP listener.
	if m, err := c.Metrics(ctx); err != nil || !strings.Contains(m, "pilotfish_job_state") {
		t.Fatalf("metrics over the socket: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/health", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "/v1/health over TCP to answer 200")

	prom := startPrometheus(t, fmt.Sprintf("127.0.0.1:%d", port))
	if err := c.PutMetric(ctx, client.Metric{Name: "orders_total", Value: 3, Labels: map[string]string{"kind": "web"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutMetrics(ctx, map[string]float64{"queue_depth": 7}); err != nil {
		t.Fatal(err)
	}
	j, _ := c.Job(ctx, "victim")
	if err := syscall.Kill(j.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	recorded := poll(30*time.Second, func() bool {
		return promQuery(t, prom, `orders_total{kind="web"}`) == "3" && promQuery(t, prom, `queue_depth`) == "7" &&
			promQuery(t, prom, `pilotfish_job_restarts_total{job="victim"}`) == "1"
	})
	if !recorded {
		var targets string
		if resp, err := http.Get(prom + "/api/v1/targets"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			targets = string(b)
		}
		t.Fatalf("Prometheus did not record orders_total=3, queue_depth=7 and one restart of victim within 30s: up=%q orders=%q queue=%q restarts=%q\ntargets: %s",
			promQuery(t, prom, "up"), promQuery(t, prom, `orders_total{kind="web"}`), promQuery(t, prom, "queue_depth"),
			promQuery(t, prom, `pilotfish_job_restarts_total{job="victim"}`), targets)
	}
	if v := promQuery(t, prom, `pilotfish_job_exits_total{job="victim",result="failure"}`); v != "1" {
		t.Errorf("exits_total failure = %q", v)
	}
	if v := promQuery(t, prom, `pilotfish_job_state{job="victim",state="running"}`); v != "1" {
		t.Errorf("job_state running = %q", v)
	}
}

// Bad metric updates are refused with a clear 4xx and change nothing.
func TestBadMetricUpdates(t *testing.T) {
	t.Parallel()
	p := start(t, opts{Plain: true, Config: `
telemetry {
  metric "orders_total" {
    type   = "counter"
    labels = ["kind"]
  }
  metric "queue_depth" {
    type = "gauge"
  }
}
job "idle" {
  exec = ["sleep", "1000"]
}
`})
	sock := filepath.Join(p.Dir, "pilotfish.sock")
	c := client.New(sock)
	ctx := context.Background()
	waitPing(t, p, sock, 10*time.Second)
	cases := []struct {
		body string
		code int
	}{
		{`{"nope":1}`, 404},
		{`{"queue_depth":"NaN"}`, 400},
		{`{"name":"orders_total","value":-1,"labels":{"kind":"a"}}`, 400},
		{`{"name":"orders_total","value":1}`, 400},
		{`{"name":"orders_total","value":1,"labels":{"kind":"a","x":"y"}}`, 400},
		{`{"queue_depth":true}`, 400},
		{`not json`, 400},
	}
	for _, tc := range cases {
		if code, _, _ := curlDo(t, sock, "POST", "/v1/metric", []byte(tc.body)); code != tc.code {
			t.Errorf("%s: %d, want %d", tc.body, code, tc.code)
		}
	}
	r := runCmdEnv(t, p.Dir, []string{"PILOTFISH_SOCKET=" + sock}, "putmetric", "queue_depth=5", "queue_depth=+2", "orders_total{kind=web}=2")
	if r.code != 0 {
		t.Fatalf("putmetric: %+v", r)
	}
	m, _ := c.Metrics(ctx)
	if !strings.Contains(m, "queue_depth 7") || !strings.Contains(m, `orders_total{kind="web"} 2`) {
		t.Fatalf("metrics after putmetric:\n%s", m)
	}
	if r := runCmdEnv(t, p.Dir, []string{"PILOTFISH_SOCKET=" + sock}, "putmetric", "nope=1"); r.code != 1 {
		t.Fatalf("putmetric of an unknown metric: %+v", r)
	}
}
