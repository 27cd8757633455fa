package telemetry

import (
	"net/http"
	"time"

	"github.com/pilotfish/pilotfish/events"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// JobSample is what a scrape reads about one job.
type JobSample struct {
	Name      string
	State     string
	Restarts  int
	HasHealth bool
	Healthy   bool
	// Counters holds kind-specific counters by metric name and label value (cron runs,
	// inetd connections, syslog messages…), see KindCounters.
	Counters []CounterSample
	// Processes: the job runs processes, whose CPU time (seconds, over all its runs) and
	// resident memory (bytes, now) were read from /proc for this scrape.
	Processes   bool
	CPUSeconds  float64
	MemoryBytes uint64
}

// CounterSample is one kind-specific counter of a job.
type CounterSample struct {
	Metric string // full metric name, e.g. pilotfish_cron_runs_total
	Label  string // the extra label's name ("result", "output"), or ""
	Value  string // the extra label's value
	N      float64
}

// TemplateSample is what a scrape reads about one template.
type TemplateSample struct {
	Name    string
	Renders uint64 // writes of its file
	Errors  uint64 // runs and writes that failed
}

// Source is the daemon state the collectors read at scrape time.
type Source interface {
	Jobs() []JobSample
	Bus() *events.Bus
	Orphans() uint64
	Reloads() map[string]uint64
	ConsulErrors() map[string]uint64
	// ConsulQueries counts the catalog queries followed (each holds a blocking query), by
	// kind; nil without Consul.
	ConsulQueries() map[string]int
	Templates() []TemplateSample
}

// Telemetry is the daemon's registries and what feeds them.
type Telemetry struct {
	reg     *prometheus.Registry // built-in metrics
	probes  *prometheus.HistogramVec
	custom  *customMetrics
	handler http.Handler
}

// New builds the registry: the built-in collector, the health-check histogram, the Go and
// process collectors, and no custom metric yet (see Apply).
func New(src Source) *Telemetry {
	t := &Telemetry{reg: prometheus.NewRegistry()}
	t.probes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pilotfish_health_check_duration_seconds",
		Help:    "Time taken by each health check.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"job"})
	t.reg.MustRegister(&builtin{src: src}, t.probes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	t.custom = newCustomMetrics()
	gather := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return prometheus.Gatherers{t.reg, t.custom.registry()}.Gather()
	})
	t.handler = promhttp.HandlerFor(gather, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError})
	return t
}

// Handler serves the exposition, in OpenMetrics to scrapers that ask for it.
func (t *Telemetry) Handler() http.Handler { return t.handler }

// ObserveProbe records one health check's duration.
func (t *Telemetry) ObserveProbe(job string, d time.Duration) {
	t.probes.WithLabelValues(job).Observe(d.Seconds())
}

// ForgetJob drops the per-job series a removed job leaves in stateful metrics.
func (t *Telemetry) ForgetJob(job string) {
	t.probes.DeleteLabelValues(job)
}
