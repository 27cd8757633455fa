package telemetry

import (
	"net/http"
	"time"

	"github.com/pilotfish/pilotfish/events"
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

// Telemetry is the daemon's metrics and what feeds them.
type Telemetry struct {
	builtin builtin
	probes  *vec
	custom  *customMetrics
}

// New builds the built-in metrics, the health-check histogram, the Go and process families,
// and no custom metric yet (see Apply).
func New(src Source) *Telemetry {
	probes, _ := newVec("pilotfish_health_check_duration_seconds", "Time taken by each health check.", histogramType,
		[]string{"job"}, []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, nil)
	return &Telemetry{builtin: builtin{src: src}, probes: probes, custom: newCustomMetrics()}
}

// gather reads every family for one scrape, sorted.
func (t *Telemetry) gather() []family {
	fams := make([]family, 0, 64)
	fams = t.builtin.collect(fams)
	fams = append(fams, t.probes.family())
	fams = goFamilies(fams)
	fams = processFamilies(fams)
	fams = t.custom.families(fams)
	sortFamilies(fams)
	return fams
}

// Handler serves the exposition, in OpenMetrics to scrapers that ask for it.
func (t *Telemetry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(w, r, t.gather()) })
}

// ObserveProbe records one health check's duration.
func (t *Telemetry) ObserveProbe(job string, d time.Duration) {
	t.probes.observe([]string{job}, d.Seconds())
}

// ForgetJob drops the per-job series a removed job leaves in stateful metrics.
func (t *Telemetry) ForgetJob(job string) {
	t.probes.delete([]string{job})
}
