package telemetry

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

type source struct {
	bus  *events.Bus
	jobs []JobSample
}

func (s *source) Jobs() []JobSample               { return s.jobs }
func (s *source) Bus() *events.Bus                { return s.bus }
func (s *source) Orphans() uint64                 { return 7 }
func (s *source) Reloads() map[string]uint64      { return map[string]uint64{"ok": 2} }
func (s *source) ConsulErrors() map[string]uint64 { return map[string]uint64{"register": 1} }
func (s *source) ConsulQueries() map[string]int   { return nil }
func (s *source) Templates() []TemplateSample     { return nil }

func newTelemetry(t testing.TB, jobs int) (*Telemetry, *source) {
	src := &source{bus: events.NewBus(nil)}
	for i := 0; i < jobs; i++ {
		name := fmt.Sprintf("job%d", i)
		src.jobs = append(src.jobs, JobSample{Name: name, State: "running", Restarts: i, HasHealth: i%2 == 0, Healthy: true,
			Counters:  []CounterSample{{Metric: "pilotfish_cron_runs_total", Label: "result", Value: "success", N: 3}},
			Processes: i%2 == 0, CPUSeconds: 1.5, MemoryBytes: 52428800})
		src.bus.Publish(events.Started, name, nil)
		src.bus.Publish(events.ExitFailed, name, nil)
	}
	tel := New(src)
	if err := tel.Apply([]*config.Metric{
		{Name: "orders_total", Type: "counter", Help: "Orders", Labels: []string{"kind"}},
		{Name: "queue_depth", Type: "gauge", Help: "Queue"},
		{Name: "latency_seconds", Type: "histogram", Help: "Latency", Buckets: []float64{0.1, 1}},
		{Name: "size_bytes", Type: "summary", Help: "Size"},
	}); err != nil {
		t.Fatal(err)
	}
	return tel, src
}

func scrape(t testing.TB, tel *Telemetry, accept string) string {
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestBuiltinMetrics(t *testing.T) {
	tel, _ := newTelemetry(t, 2)
	tel.ObserveProbe("job0", 3*time.Millisecond)
	out := scrape(t, tel, "")
	for _, want := range []string{
		`pilotfish_job_state{job="job0",state="running"} 1`,
		`pilotfish_job_restarts_total{job="job1"} 1`,
		`pilotfish_job_exits_total{job="job1",result="failure"} 1`,
		`pilotfish_job_exits_total{job="job1",result="success"} 0`,
		`pilotfish_job_healthy{job="job0"} 1`,
		`pilotfish_events_total{code="started",source="job0"} 1`,
		`pilotfish_reloads_total{result="ok"} 2`,
		`pilotfish_reloads_total{result="invalid"} 0`,
		`pilotfish_orphans_reaped_total 7`,
		`pilotfish_consul_errors_total{op="register"} 1`,
		`pilotfish_health_check_duration_seconds_count{job="job0"} 1`,
		`pilotfish_cron_runs_total{job="job0",result="success"} 3`,
		`pilotfish_job_cpu_seconds_total{job="job0"} 1.5`,
		`pilotfish_job_memory_bytes{job="job0"} 5.24288e+07`,
		`queue_depth 0`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if strings.Contains(out, `state="failed"`) {
		t.Error("pilotfish_job_state has a series for a state the job is not in")
	}
	if strings.Contains(out, `pilotfish_job_healthy{job="job1"}`) {
		t.Error("a job without a health check reports pilotfish_job_healthy")
	}
	if strings.Contains(out, `pilotfish_job_memory_bytes{job="job1"}`) || strings.Contains(out, `pilotfish_job_cpu_seconds_total{job="job1"}`) {
		t.Error("a job that runs no process reports its resources")
	}
	promtool(t, out)
}

func promtool(t *testing.T, exposition string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestOpenMetricsNegotiation(t *testing.T) {
	tel, _ := newTelemetry(t, 1)
	out := scrape(t, tel, "application/openmetrics-text; version=1.0.0")
	if !strings.HasSuffix(out, "# EOF\n") {
		t.Fatal("OpenMetrics was asked for but not served")
	}
	if strings.Contains(scrape(t, tel, "text/plain"), "# EOF") {
		t.Fatal("plain text scrape got OpenMetrics")
	}
}

func TestCustomUpdates(t *testing.T) {
	tel, _ := newTelemetry(t, 0)
	ok := []Update{
		{Name: "orders_total", Value: 2, Labels: map[string]string{"kind": "web"}},
		{Name: "orders_total", Value: 1, Labels: map[string]string{"kind": "web"}},
		{Name: "queue_depth", Value: 7},
		{Name: "queue_depth", Value: -2, Add: true},
		{Name: "latency_seconds", Value: 0.5},
		{Name: "size_bytes", Value: 100},
	}
	if err := tel.Put(ok); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, tel, "")
	for _, want := range []string{`orders_total{kind="web"} 3`, `queue_depth 5`, `latency_seconds_bucket{le="1"} 1`, `size_bytes_count 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	bad := map[string]Update{
		"unknown":          {Name: "nope", Value: 1},
		"negative counter": {Name: "orders_total", Value: -1, Labels: map[string]string{"kind": "web"}},
		"missing label":    {Name: "orders_total", Value: 1},
		"extra label":      {Name: "queue_depth", Value: 1, Labels: map[string]string{"x": "y"}},
		"add to histogram": {Name: "latency_seconds", Value: 1, Add: true},
	}
	for name, u := range bad {
		err := tel.Put([]Update{{Name: "queue_depth", Value: 100}, u})
		var ue *UpdateError
		if !errors.As(err, &ue) || ue.Unknown != (name == "unknown") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !strings.Contains(scrape(t, tel, ""), "queue_depth 5") {
		t.Error("a rejected request changed a metric")
	}
}

// A metric whose definition is unchanged keeps its value across a reload.
func TestApplyKeepsUnchangedMetrics(t *testing.T) {
	tel, _ := newTelemetry(t, 0)
	tel.Put([]Update{{Name: "queue_depth", Value: 9}, {Name: "orders_total", Value: 4, Labels: map[string]string{"kind": "a"}}})
	if err := tel.Apply([]*config.Metric{
		{Name: "orders_total", Type: "counter", Help: "Orders, reworded", Labels: []string{"kind"}},
		{Name: "queue_depth", Type: "gauge", Help: "Queue"},
		{Name: "new_total", Type: "counter", Help: "New"},
	}); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, tel, "")
	if !strings.Contains(out, "queue_depth 9") || strings.Contains(out, `orders_total{kind="a"} 4`) ||
		!strings.Contains(out, "new_total 0") || strings.Contains(out, "latency_seconds") {
		t.Fatalf("after apply:\n%s", out)
	}
}

// BenchmarkScrape200Jobs measures one scrape of a daemon with 200 jobs.
func BenchmarkScrape200Jobs(b *testing.B) {
	tel, _ := newTelemetry(b, 200)
	benchScrape(b, tel, "")
}

// benchScrape measures scrapes of tel in the format accept asks for.
func benchScrape(b *testing.B, tel *Telemetry, accept string) {
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		tel.Handler().ServeHTTP(rec, req)
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkPut measures custom metric updates per second.
func BenchmarkPut(b *testing.B) {
	tel, _ := newTelemetry(b, 0)
	u := []Update{{Name: "orders_total", Value: 1, Labels: map[string]string{"kind": "web"}}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := tel.Put(u); err != nil {
				b.Error(err)
			}
		}
	})
}
