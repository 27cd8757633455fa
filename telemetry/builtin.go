package telemetry

import (
	"github.com/pilotfish/pilotfish/events"
)

// desc names and describes a built-in family; its labels are given with each sample.
type desc struct {
	name, help string
	typ        metricType
}

var (
	descJobState    = desc{"pilotfish_job_state", "1 for the state the job is in (one series per job; the state label changes).", gaugeType}
	descRestarts    = desc{"pilotfish_job_restarts_total", "Automatic restarts of the job.", counterType}
	descExits       = desc{"pilotfish_job_exits_total", "Runs of the job that ended, by result (success or failure).", counterType}
	descCPU         = desc{"pilotfish_job_cpu_seconds_total", "CPU time (user and system) of the job's processes over all its runs, read from /proc at scrape time.", counterType}
	descMemory      = desc{"pilotfish_job_memory_bytes", "Resident memory (RSS) summed over the job's processes, read from /proc at scrape time.", gaugeType}
	descHealthy     = desc{"pilotfish_job_healthy", "1 when the job's health check passes, 0 otherwise (jobs with a health check or readiness only).", gaugeType}
	descEvents      = desc{"pilotfish_events_total", "Events published on the bus.", counterType}
	descQueue       = desc{"pilotfish_bus_queue_depth", "Events waiting in a subscriber's queue.", gaugeType}
	descReloads     = desc{"pilotfish_reloads_total", "Configuration reloads by result: ok, invalid (refused) or failed.", counterType}
	descOrphans     = desc{"pilotfish_orphans_reaped_total", "Processes reaped that pilotfish did not start itself.", counterType}
	descConsulError = desc{"pilotfish_consul_errors_total", "Failed Consul calls by operation.", counterType}
	descQueries     = desc{"pilotfish_consul_queries", "Catalog queries followed with blocking queries, by kind (service, services, key, prefix; agent: the agent monitor). Watches and templates that read the same thing share one.", gaugeType}
	descRenders     = desc{"pilotfish_template_renders_total", "Writes of the template's file (a render whose text did not change writes nothing).", counterType}
	descTmplErrors  = desc{"pilotfish_template_errors_total", "Renders of the template that failed (run-time errors, files that could not be written); the file keeps its last text.", counterType}
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

// families collects the families of one scrape, each once, in the order first seen.
type families struct {
	list []family
	at   map[string]int
}

func (fs *families) emit(d desc, v float64, labels ...label) {
	i, ok := fs.at[d.name]
	if !ok {
		if fs.at == nil {
			fs.at = map[string]int{}
		}
		i = len(fs.list)
		fs.at[d.name] = i
		fs.list = append(fs.list, family{name: d.name, help: d.help, typ: d.typ})
	}
	fs.list[i].series = append(fs.list[i].series, sample{labels: labels, value: v})
}

func (b *builtin) collect(fams []family) []family {
	var fs families
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
		fs.emit(descEvents, float64(c.N), label{"source", c.Source}, label{"code", string(c.Code)})
	}
	for _, j := range b.src.Jobs() {
		job := label{"job", j.Name}
		fs.emit(descJobState, 1, job, label{"state", j.State})
		fs.emit(descRestarts, float64(j.Restarts), job)
		e := exits[j.Name]
		fs.emit(descExits, e[0], job, label{"result", "success"})
		fs.emit(descExits, e[1], job, label{"result", "failure"})
		if j.Processes {
			fs.emit(descCPU, j.CPUSeconds, job)
			fs.emit(descMemory, float64(j.MemoryBytes), job)
		}
		if j.HasHealth {
			v := 0.0
			if j.Healthy {
				v = 1
			}
			fs.emit(descHealthy, v, job)
		}
		for _, c := range j.Counters {
			spec, ok := kindCounters[c.Metric]
			if !ok {
				continue
			}
			d := desc{c.Metric, spec.help, counterType}
			if spec.label != "" {
				fs.emit(d, c.N, job, label{spec.label, c.Value})
			} else {
				fs.emit(d, c.N, job)
			}
		}
	}
	depths := map[string]int{} // subscriber names may repeat (two streams from one process)
	for _, d := range bus.Depths() {
		depths[d.Subscriber] += d.Depth
	}
	for sub, n := range depths {
		fs.emit(descQueue, float64(n), label{"subscriber", sub})
	}
	for result, n := range withDefaults(b.src.Reloads(), "ok", "invalid", "failed") {
		fs.emit(descReloads, float64(n), label{"result", result})
	}
	fs.emit(descOrphans, float64(b.src.Orphans()))
	for op, n := range b.src.ConsulErrors() {
		fs.emit(descConsulError, float64(n), label{"op", op})
	}
	for kind, n := range b.src.ConsulQueries() {
		fs.emit(descQueries, float64(n), label{"kind", kind})
	}
	for _, t := range b.src.Templates() {
		tl := label{"template", t.Name}
		fs.emit(descRenders, float64(t.Renders), tl)
		fs.emit(descTmplErrors, float64(t.Errors), tl)
	}
	return append(fams, fs.list...)
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
