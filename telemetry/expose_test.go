package telemetry

import (
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// The exposition of custom metrics of every type, in both formats, as client_golang wrote
// it: escaping, family names, number forms, label order, sorting.
func TestExpositionFormats(t *testing.T) {
	tel := New(&source{bus: events.NewBus(nil)})
	if err := tel.Apply([]*config.Metric{
		{Name: "orders_total", Type: "counter", Help: "Orders \\ \"q\"\nnext", Labels: []string{"region", "kind"}},
		{Name: "plain", Type: "counter", Help: "no suffix"},
		{Name: "temp", Type: "gauge", Help: "t", Labels: []string{"room"}},
		{Name: "lat_seconds", Type: "histogram", Help: "l", Buckets: []float64{0.5, 1, math.Inf(1)}},
		{Name: "size_bytes", Type: "summary", Help: "s", Objectives: map[float64]float64{0.99: 0.001, 0.5: 0.05}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := tel.Put([]Update{
		{Name: "orders_total", Value: 2, Labels: map[string]string{"kind": "we\"b\\x\ny", "region": "eu"}},
		{Name: "orders_total", Value: 1, Labels: map[string]string{"kind": "api", "region": "us"}},
		{Name: "temp", Value: -2.5, Labels: map[string]string{"room": "b"}},
		{Name: "temp", Value: 1, Labels: map[string]string{"room": "a"}},
		{Name: "lat_seconds", Value: 0.5}, {Name: "lat_seconds", Value: 3},
		{Name: "size_bytes", Value: 1}, {Name: "size_bytes", Value: 2}, {Name: "size_bytes", Value: 30},
	}); err != nil {
		t.Fatal(err)
	}
	custom := func(out string) string {
		var keep []string
		for line := range strings.Lines(out) {
			if !strings.Contains(line, "go_") && !strings.Contains(line, "process_") && !strings.Contains(line, "pilotfish_") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "")
	}
	text := scrape(t, tel, "")
	wantText := `# HELP lat_seconds l
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.5"} 1
lat_seconds_bucket{le="1"} 1
lat_seconds_bucket{le="+Inf"} 2
lat_seconds_sum 3.5
lat_seconds_count 2
# HELP orders_total Orders \\ "q"\nnext
# TYPE orders_total counter
orders_total{kind="api",region="us"} 1
orders_total{kind="we\"b\\x\ny",region="eu"} 2
# HELP plain no suffix
# TYPE plain counter
plain 0
# HELP size_bytes s
# TYPE size_bytes summary
size_bytes{quantile="0.5"} 2
size_bytes{quantile="0.99"} 30
size_bytes_sum 33
size_bytes_count 3
# HELP temp t
# TYPE temp gauge
temp{room="a"} 1
temp{room="b"} -2.5
`
	if got := custom(text); got != wantText {
		t.Errorf("text format:\n%s\nwant:\n%s", got, wantText)
	}
	om := scrape(t, tel, "application/openmetrics-text; version=1.0.0")
	wantOM := `# HELP lat_seconds l
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.5"} 1
lat_seconds_bucket{le="1.0"} 1
lat_seconds_bucket{le="+Inf"} 2
lat_seconds_sum 3.5
lat_seconds_count 2
# HELP orders Orders \\ \"q\"\nnext
# TYPE orders counter
orders_total{kind="api",region="us"} 1.0
orders_total{kind="we\"b\\x\ny",region="eu"} 2.0
# HELP plain no suffix
# TYPE plain unknown
plain 0.0
# HELP size_bytes s
# TYPE size_bytes summary
size_bytes{quantile="0.5"} 2.0
size_bytes{quantile="0.99"} 30.0
size_bytes_sum 33.0
size_bytes_count 3
# HELP temp t
# TYPE temp gauge
temp{room="a"} 1.0
temp{room="b"} -2.5
# EOF
`
	if got := custom(om); got != wantOM {
		t.Errorf("OpenMetrics:\n%s\nwant:\n%s", got, wantOM)
	}
	// promtool's linter wants counters named _total, as docs/metrics.md advises.
	var linted strings.Builder
	for line := range strings.Lines(text) {
		if !strings.Contains(line, "plain") {
			linted.WriteString(line)
		}
	}
	promtool(t, linted.String())
}

// The format is chosen from Accept as promhttp chose it.
func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]string{
		"":           "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
		"*/*":        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
		"text/plain": "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
		"application/openmetrics-text; version=1.0.0":                                     "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
		"application/openmetrics-text;version=0.0.1":                                      "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=underscores",
		"application/openmetrics-text;version=2.0.0":                                      "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
		"text/plain;version=0.0.4;q=0.3,application/openmetrics-text;version=1.0.0;q=0.5": "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
		"application/openmetrics-text;version=1.0.0;q=0.2,text/plain;version=0.0.4;q=0.9": "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
		// Prometheus 2.42's default.
		"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1": "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
		// Prometheus 3's.
		"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2": "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8",
		// No protobuf any more: the text format instead, which Prometheus reads too.
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited": "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
	} {
		if _, got := negotiate(accept); got != want {
			t.Errorf("Accept %q: %q, want %q", accept, got, want)
		}
	}
}

func TestScrapeGzip(t *testing.T) {
	tel, _ := newTelemetry(t, 1)
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil || !strings.Contains(string(body), "pilotfish_job_state{") {
		t.Fatalf("%v: %.200s", err, body)
	}
	if !slices.Equal(rec.Header().Values("Vary"), []string{"Accept", "Accept-Encoding"}) {
		t.Errorf("Vary: %v", rec.Header().Values("Vary"))
	}
	req.Header.Set("Accept-Encoding", "gzip;q=0")
	rec = httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 was compressed")
	}
}

// A summary's quantiles cover the last 10 minutes and at most summaryWindow observations.
func TestSummaryWindow(t *testing.T) {
	v, err := newVec("s", "s", summaryType, nil, nil, map[float64]float64{0: 0, 0.5: 0.05, 1: 0})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	v.now = func() time.Time { return now }
	q := func() []float64 { return v.family().series[0].qvals }
	if got := q(); !math.IsNaN(got[1]) {
		t.Fatalf("no observation: %v, want NaN", got)
	}
	for i := 1; i <= 100; i++ {
		v.observe(nil, float64(i))
	}
	if got := q(); !slices.Equal(got, []float64{1, 50, 100}) {
		t.Fatalf("quantiles %v", got)
	}
	now = now.Add(6 * time.Minute)
	v.observe(nil, 1000)
	now = now.Add(5 * time.Minute) // the first 100 are 11 minutes old
	if got := q(); !slices.Equal(got, []float64{1000, 1000, 1000}) {
		t.Fatalf("after 11 minutes: %v", got)
	}
	for i := 0; i < 3*summaryWindow; i++ {
		v.observe(nil, float64(i))
	}
	c := v.cells[""]
	if len(c.obs) != summaryWindow || cap(c.obs) > 2*summaryWindow {
		t.Fatalf("window holds %d (cap %d)", len(c.obs), cap(c.obs))
	}
	if got := q(); got[0] != 2*summaryWindow || got[2] != 3*summaryWindow-1 {
		t.Fatalf("the window is not the latest observations: %v", got)
	}
	f := v.family().series[0]
	if f.count != uint64(101+3*summaryWindow) {
		t.Errorf("count %d: the window must not limit it", f.count)
	}
}

// Definitions a Prometheus registry refused are refused, and the old metrics stay.
func TestApplyRefusesBadDefinitions(t *testing.T) {
	tel, _ := newTelemetry(t, 0)
	for name, d := range map[string]*config.Metric{
		"le on a histogram":   {Name: "h", Type: "histogram", Labels: []string{"le"}},
		"quantile on summary": {Name: "s", Type: "summary", Labels: []string{"quantile"}},
		"label twice":         {Name: "c_total", Type: "counter", Labels: []string{"a", "a"}},
		"equal bucket bounds": {Name: "h", Type: "histogram", Buckets: []float64{1, 1}},
		"unknown type":        {Name: "x", Type: "meter"},
		"decreasing buckets":  {Name: "h", Type: "histogram", Buckets: []float64{2, 1}},
	} {
		if err := tel.Apply([]*config.Metric{d}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if !strings.Contains(scrape(t, tel, ""), "queue_depth 0") {
		t.Error("a refused Apply changed the metrics")
	}
}

// The go_* and process_* families are those client_golang's collectors showed (names and
// types as docs/metrics.md lists them), with plausible values.
func TestRuntimeFamilies(t *testing.T) {
	want := map[string]metricType{
		"go_gc_duration_seconds": summaryType, "go_gc_gogc_percent": gaugeType, "go_gc_gomemlimit_bytes": gaugeType,
		"go_goroutines": gaugeType, "go_info": gaugeType, "go_memstats_alloc_bytes": gaugeType,
		"go_memstats_alloc_bytes_total": counterType, "go_memstats_buck_hash_sys_bytes": gaugeType,
		"go_memstats_frees_total": counterType, "go_memstats_gc_sys_bytes": gaugeType,
		"go_memstats_heap_alloc_bytes": gaugeType, "go_memstats_heap_idle_bytes": gaugeType,
		"go_memstats_heap_inuse_bytes": gaugeType, "go_memstats_heap_objects": gaugeType,
		"go_memstats_heap_released_bytes": gaugeType, "go_memstats_heap_sys_bytes": gaugeType,
		"go_memstats_last_gc_time_seconds": gaugeType, "go_memstats_mallocs_total": counterType,
		"go_memstats_mcache_inuse_bytes": gaugeType, "go_memstats_mcache_sys_bytes": gaugeType,
		"go_memstats_mspan_inuse_bytes": gaugeType, "go_memstats_mspan_sys_bytes": gaugeType,
		"go_memstats_next_gc_bytes": gaugeType, "go_memstats_other_sys_bytes": gaugeType,
		"go_memstats_stack_inuse_bytes": gaugeType, "go_memstats_stack_sys_bytes": gaugeType,
		"go_memstats_sys_bytes": gaugeType, "go_sched_gomaxprocs_threads": gaugeType, "go_threads": gaugeType,
		"process_cpu_seconds_total": counterType, "process_max_fds": gaugeType,
		"process_network_receive_bytes_total": counterType, "process_network_transmit_bytes_total": counterType,
		"process_open_fds": gaugeType, "process_resident_memory_bytes": gaugeType,
		"process_start_time_seconds": gaugeType, "process_virtual_memory_bytes": gaugeType,
		"process_virtual_memory_max_bytes": gaugeType,
	}
	fams := processFamilies(goFamilies(nil))
	got := map[string]float64{}
	for _, f := range fams {
		typ, ok := want[f.name]
		if !ok {
			t.Errorf("unexpected family %s", f.name)
			continue
		}
		if typ != f.typ || f.help == "" || len(f.series) != 1 {
			t.Errorf("%s: type %s, help %q, %d series", f.name, typeNames[f.typ], f.help, len(f.series))
			continue
		}
		got[f.name] = f.series[0].value
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("missing %s", name)
		}
	}
	now := float64(time.Now().Unix())
	for name, ok := range map[string]bool{
		"go_goroutines":                 got["go_goroutines"] >= 1,
		"go_memstats_heap_alloc_bytes":  got["go_memstats_heap_alloc_bytes"] > 0,
		"go_memstats_sys_bytes":         got["go_memstats_sys_bytes"] >= got["go_memstats_heap_sys_bytes"],
		"process_resident_memory_bytes": got["process_resident_memory_bytes"] > 1<<20,
		"process_open_fds":              got["process_open_fds"] >= 3,
		"process_start_time_seconds":    got["process_start_time_seconds"] > now-3600 && got["process_start_time_seconds"] <= now+1,
		"process_max_fds":               got["process_max_fds"] >= got["process_open_fds"],
	} {
		if !ok {
			t.Errorf("%s = %v is not plausible", name, got[name])
		}
	}
}

// The Prometheus client library is not linked into the daemon (docs/metrics.md): it was a
// fifth of the binary.
func TestNoPrometheusClientLibrary(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/pilotfish/pilotfish/cmd/pilotfish").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, heavy := range []string{"github.com/prometheus/", "google.golang.org/protobuf"} {
		if strings.Contains(string(out), heavy) {
			t.Errorf("the binary links %s", heavy)
		}
	}
}

// BenchmarkScrape50Jobs measures a scrape of 50 jobs and 20 custom series, the Go and
// process families included.
func BenchmarkScrape50Jobs(b *testing.B) {
	tel, _ := newTelemetry(b, 50)
	for i := 0; i < 17; i++ {
		l := map[string]string{"kind": fmt.Sprint("k", i)}
		if err := tel.Put([]Update{{Name: "orders_total", Value: 1, Labels: l}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ { // with the 3 unlabelled ones, 20 custom series
		_ = tel.Put([]Update{{Name: "size_bytes", Value: float64(i)}, {Name: "latency_seconds", Value: float64(i) / 100}})
	}
	benchScrape(b, tel, "application/openmetrics-text; version=1.0.0")
}
