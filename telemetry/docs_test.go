package telemetry

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/events"
)

// The documentation files these tests hold to the code.
var (
	metricsDoc    = filepath.Join("..", "docs", "metrics.md")
	dashboardFile = filepath.Join("..", "docs", "grafana-dashboard.json")
	prometheusYML = filepath.Join("..", "docs", "prometheus.yml")
)

// docsSource makes the built-in collector emit every series it can: a job with a health
// check and every kind-specific counter, exits of both results, a subscriber, reloads,
// orphans and Consul errors.
type docsSource struct{ bus *events.Bus }

func (s docsSource) Jobs() []JobSample {
	j := JobSample{Name: "web", State: "running", Restarts: 1, HasHealth: true, Healthy: true}
	for name, spec := range kindCounters {
		c := CounterSample{Metric: name, N: 1}
		if spec.label != "" {
			c.Label, c.Value = spec.label, "x"
		}
		j.Counters = append(j.Counters, c)
	}
	return []JobSample{j}
}
func (s docsSource) Bus() *events.Bus                { return s.bus }
func (s docsSource) Orphans() uint64                 { return 1 }
func (s docsSource) Reloads() map[string]uint64      { return map[string]uint64{"ok": 1} }
func (s docsSource) ConsulErrors() map[string]uint64 { return map[string]uint64{"register": 1} }
func (s docsSource) ConsulQueries() map[string]int   { return map[string]int{"service": 1} }
func (s docsSource) Templates() []TemplateSample {
	return []TemplateSample{{Name: "upstreams", Renders: 1, Errors: 1}}
}

func newDocsSource(t *testing.T) docsSource {
	bus := events.NewBus(nil)
	sub := bus.Subscribe(events.SubscribeOptions{Name: "job:web"})
	t.Cleanup(sub.Close)
	bus.Publish(events.ExitSuccess, "web", nil)
	bus.Publish(events.ExitFailed, "web", nil)
	return docsSource{bus: bus}
}

var builtinLiteral = regexp.MustCompile(`^pilotfish_[a-z0-9_]*[a-z0-9]$`)

// builtinMetricNames is every built-in metric name: the descriptors the built-in collector
// emits, the names of kindCounters, the health-check histogram,
// and every "pilotfish_…" string literal in the package's own sources, so that a descriptor
// declared in builtin.go but not emitted for docsSource is not missed either.
func builtinMetricNames(t *testing.T) []string {
	t.Helper()
	names := map[string]bool{"pilotfish_health_check_duration_seconds": true}
	for _, f := range (&builtin{src: newDocsSource(t)}).collect(nil) {
		names[f.name] = true
	}
	for name := range kindCounters {
		names[name] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	literals := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && builtinLiteral.MatchString(s) {
				names[s] = true
				literals++
			}
			return true
		})
	}
	if literals == 0 {
		t.Fatal("found no pilotfish_… literal in the package sources; is the test in the right directory?")
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	names := builtinMetricNames(t)
	for _, want := range []string{"pilotfish_job_state", "pilotfish_consul_errors_total", "pilotfish_cron_runs_total"} {
		if !slices.Contains(names, want) {
			t.Fatalf("the list of built-in metrics misses %s: %v", want, names)
		}
	}
	for _, name := range names {
		re := regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(name) + `([^A-Za-z0-9_]|$)`)
		if !re.Match(doc) {
			t.Errorf("%s is not documented in docs/metrics.md", name)
		}
	}
	for _, must := range []string{"honor_labels: true", "exported_job"} {
		if !strings.Contains(string(doc), must) {
			t.Errorf("docs/metrics.md does not mention %q", must)
		}
	}
}

// exposedMetricNames is every sample name a scrape can show for the built-in registry:
// families of the built-in collector, the health-check histogram and the Go and process
// collectors, with _bucket, _sum and _count for histograms and summaries.
func exposedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	tel := New(newDocsSource(t))
	tel.ObserveProbe("web", time.Millisecond)
	names := map[string]bool{}
	for _, f := range tel.gather() {
		names[f.name] = true
		switch f.typ {
		case histogramType:
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.name+s] = true
			}
		case summaryType:
			for _, s := range []string{"_sum", "_count"} {
				names[f.name+s] = true
			}
		}
	}
	for _, n := range builtinMetricNames(t) {
		names[n] = true
	}
	return names
}

var dashboardMetric = regexp.MustCompile(`\b(?:pilotfish|go|process)_[A-Za-z0-9_:]*`)

func TestDashboardIsValid(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json is not valid JSON: %v", err)
	}
	if v, _ := dash["schemaVersion"].(float64); v < 36 {
		t.Errorf("schemaVersion = %v, want a current one (39)", dash["schemaVersion"])
	}
	inputs, _ := dash["__inputs"].([]any)
	hasInput := false
	for _, in := range inputs {
		m, _ := in.(map[string]any)
		if m["name"] == "DS_PROMETHEUS" && m["type"] == "datasource" && m["pluginId"] == "prometheus" {
			hasInput = true
		}
	}
	if !hasInput {
		t.Error(`__inputs has no datasource input DS_PROMETHEUS (pluginId "prometheus")`)
	}

	// Every query, variable and annotation: metric names must exist, data sources must be
	// the import input.
	known := exposedMetricNames(t)
	used := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ds, ok := v["datasource"].(map[string]any); ok && ds["type"] == "prometheus" && ds["uid"] != "${DS_PROMETHEUS}" {
				t.Errorf("%s: data source %v, want uid ${DS_PROMETHEUS}", path, ds["uid"])
			}
			for k, e := range v {
				if s, ok := e.(string); ok && (k == "expr" || k == "definition" || k == "query") {
					if strings.Contains(s, "exported_job") {
						t.Errorf("%s.%s uses exported_job; the dashboard assumes honor_labels: true", path, k)
					}
					for _, name := range dashboardMetric.FindAllString(s, -1) {
						used[name] = true
						if !known[name] {
							t.Errorf("%s.%s: %s is not a metric pilotfish exposes", path, k, name)
						}
					}
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(path+"["+strconv.Itoa(i)+"]", e)
			}
		}
	}
	walk("$", dash)

	panels, _ := dash["panels"].([]any)
	ids := map[float64]bool{}
	for i, p := range panels {
		panel, _ := p.(map[string]any)
		id, _ := panel["id"].(float64)
		if ids[id] {
			t.Errorf("panel %d (%v): duplicate id %v", i, panel["title"], id)
		}
		ids[id] = true
		if panel["type"] == "row" {
			continue
		}
		if targets, _ := panel["targets"].([]any); len(targets) == 0 {
			t.Errorf("panel %d (%v) has no query", i, panel["title"])
		}
	}
	vars := map[string]bool{}
	if tpl, ok := dash["templating"].(map[string]any); ok {
		list, _ := tpl["list"].([]any)
		for _, v := range list {
			m, _ := v.(map[string]any)
			name, _ := m["name"].(string)
			vars[name] = true
		}
	}
	for _, v := range []string{"instance", "job"} {
		if !vars[v] {
			t.Errorf("no template variable %q", v)
		}
	}
	for _, name := range []string{
		"pilotfish_job_state", "pilotfish_job_restarts_total", "pilotfish_job_exits_total",
		"pilotfish_job_healthy", "pilotfish_health_check_duration_seconds_bucket",
		"pilotfish_bus_queue_depth", "pilotfish_events_total", "pilotfish_reloads_total",
		"pilotfish_orphans_reaped_total", "process_resident_memory_bytes", "process_cpu_seconds_total",
	} {
		if !used[name] {
			t.Errorf("the dashboard has no panel for %s", name)
		}
	}
}

// The shipped scrape configuration keeps pilotfish's job label and is valid for promtool.
func TestPrometheusConfigExample(t *testing.T) {
	raw, err := os.ReadFile(prometheusYML)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+honor_labels: true`).Match(raw) {
		t.Error("docs/prometheus.yml does not set honor_labels: true")
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	if out, err := exec.Command(path, "check", "config", prometheusYML).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}
