package telemetry

import (
	"github.com/pilotfish/pilotfish/events"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descJobState    = prometheus.NewDesc("pilotfish_job_state", "1 for the state the job is in (one series per job; the state label changes).", []string{"job", "state"}, nil)
	descRestarts    = prometheus.NewDesc("pilotfish_job_restarts_total", "Automatic restarts of the job.", []string{"job"}, nil)
	descExits       = prometheus.NewDesc("pilotfish_job_exits_total", "Runs of the job that ended, by result (success or failure).", []string{"job", "result"}, nil)
	descCPU         = prometheus.NewDesc("pilotfish_job_cpu_seconds_total", "CPU time (user and system) of the job's processes over all its runs, read from /proc at scrape time.", []string{"job"}, nil)
	descMemory      = prometheus.NewDesc("pilotfish_job_memory_bytes", "Resident memory (RSS) summed over the job's processes, read from /proc at scrape time.", []string{"job"}, nil)
	descHealthy     = prometheus.NewDesc("pilotfish_job_healthy", "1 when the job's health check passes, 0 otherwise (jobs with a health check or readiness only).", []string{"job"}, nil)
	descEvents      = prometheus.NewDesc("pilotfish_events_total", "Events published on the bus.", []string{"source", "code"}, nil)
	descQueue       = prometheus.NewDesc("pilotfish_bus_queue_depth", "Events waiting in a subscriber's queue.", []string{"subscriber"}, nil)
	descReloads     = prometheus.NewDesc("pilotfish_reloads_total", "Configuration reloads by result: ok, invalid (refused) or failed.", []string{"result"}, nil)
	descOrphans     = prometheus.NewDesc("pilotfish_orphans_reaped_total", "Processes reaped that pilotfish did not start itself.", nil, nil)
	descConsulError = prometheus.NewDesc("pilotfish_consul_errors_total", "Failed Consul calls by operation.", []string{"op"}, nil)
	descQueries     = prometheus.NewDesc("pilotfish_consul_queries", "Catalog queries followed with blocking queries, by kind (service, services, key, prefix; agent: the agent monitor). Watches and templates that read the same thing share one.", []string{"kind"}, nil)
	descRenders     = prometheus.NewDesc("pilotfish_template_renders_total", "Writes of the template's file (a render whose text did not change writes nothing).", []string{"template"}, nil)
	descTmplErrors  = prometheus.NewDesc("pilotfish_template_errors_total", "Renders of the template that failed (run-time errors, files that could not be written); the file keeps its last text.", []string{"template"}, nil)
)

// kindCounters describes the kind-specific counters jobs report in JobSample.Counters.
var kindCounters = map[string]struct {
	help  string
	label string
}{
	"pilotfish_cron_runs_total":           {"Scheduled runs of a cron job, by result.", "result"},
	"pilotfish_cron_skipped_total":        {"Scheduled runs skipped because the previous run was still going.", ""},
	"pilotfish_inetd_connections_total":   {"Connections accepted by an inetd job.", ""},
	"pilotfish_inetd_refused_total":       {"Connections an inetd job refused (max_connections reached).", ""},
	"pilotfish_notify_rejected_total":     {"sd_notify datagrams dropped: malformed, or sent by a process outside the job.", ""},
	"pilotfish_syslog_messages_total":     {"Syslog messages routed to each output.", "output"},
	"pilotfish_syslog_dropped_total":      {"Syslog messages dropped because an output fell too far behind.", ""},
	"pilotfish_syslog_parse_errors_total": {"Syslog datagrams or lines that could not be parsed.", ""},
}

// builtin reads everything at scrape time from the Source; it keeps no state.
type builtin struct {
	src Source
}

// Describe sends nothing: the label sets change with the configuration, so this is an
// unchecked collector.
func (b *builtin) Describe(chan<- *prometheus.Desc) {}

func (b *builtin) Collect(ch chan<- prometheus.Metric) {
	bus := b.src.Bus()
	exits := map[string][2]float64{}
	for _, c := range bus.Counts() {
		switch c.Code {
		case events.ExitSuccess:
			e := exits[c.Source]
			e[0] = float64(c.N)
			exits[c.Source] = e
		case events.ExitFailed:
			e := exits[c.Source]
			e[1] = float64(c.N)
			exits[c.Source] = e
		}
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(c.N), c.Source, string(c.Code))
	}
	kinds := map[string]*prometheus.Desc{}
	for _, j := range b.src.Jobs() {
		ch <- prometheus.MustNewConstMetric(descJobState, prometheus.GaugeValue, 1, j.Name, j.State)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(j.Restarts), j.Name)
		e := exits[j.Name]
		ch <- prometheus.MustNewConstMetric(descExits, prometheus.CounterValue, e[0], j.Name, "success")
		ch <- prometheus.MustNewConstMetric(descExits, prometheus.CounterValue, e[1], j.Name, "failure")
		if j.Processes {
			ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, j.CPUSeconds, j.Name)
			ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(j.MemoryBytes), j.Name)
		}
		if j.HasHealth {
			v := 0.0
			if j.Healthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, v, j.Name)
		}
		for _, c := range j.Counters {
			spec, ok := kindCounters[c.Metric]
			if !ok {
				continue
			}
			d := kinds[c.Metric]
			if d == nil {
				labels := []string{"job"}
				if spec.label != "" {
					labels = append(labels, spec.label)
				}
				d = prometheus.NewDesc(c.Metric, spec.help, labels, nil)
				kinds[c.Metric] = d
			}
			if spec.label != "" {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, c.N, j.Name, c.Value)
			} else {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, c.N, j.Name)
			}
		}
	}
	depths := map[string]int{} // subscriber names may repeat (two streams from one process)
	for _, d := range bus.Depths() {
		depths[d.Subscriber] += d.Depth
	}
	for sub, n := range depths {
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(n), sub)
	}
	for result, n := range withDefaults(b.src.Reloads(), "ok", "invalid", "failed") {
		ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(n), result)
	}
	ch <- prometheus.MustNewConstMetric(descOrphans, prometheus.CounterValue, float64(b.src.Orphans()))
	for op, n := range b.src.ConsulErrors() {
		ch <- prometheus.MustNewConstMetric(descConsulError, prometheus.CounterValue, float64(n), op)
	}
	for kind, n := range b.src.ConsulQueries() {
		ch <- prometheus.MustNewConstMetric(descQueries, prometheus.GaugeValue, float64(n), kind)
	}
	for _, t := range b.src.Templates() {
		ch <- prometheus.MustNewConstMetric(descRenders, prometheus.CounterValue, float64(t.Renders), t.Name)
		ch <- prometheus.MustNewConstMetric(descTmplErrors, prometheus.CounterValue, float64(t.Errors), t.Name)
	}
}

func withDefaults(m map[string]uint64, keys ...string) map[string]uint64 {
	out := map[string]uint64{}
	for _, k := range keys {
		out[k] = 0
	}
	for k, v := range m {
		out[k] = v
	}
	return out
}
