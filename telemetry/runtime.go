package telemetry

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/internal/procfs"
)

// The go_* and process_* families client_golang's Go and process collectors showed, with
// the same names, types and help (docs/metrics.md), read from runtime/metrics,
// debug.ReadGCStats and /proc/self at scrape time.

const (
	hObjects  = "/memory/classes/heap/objects:bytes"
	hUnused   = "/memory/classes/heap/unused:bytes"
	hReleased = "/memory/classes/heap/released:bytes"
	hFree     = "/memory/classes/heap/free:bytes"
)

// goGauges are the families computed from runtime/metrics.
var goGauges = []struct {
	name, help string
	typ        metricType
	value      func(m func(string) float64) float64
}{
	{"go_memstats_alloc_bytes", `Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.`, gaugeType, func(m func(string) float64) float64 { return m(hObjects) }},
	{"go_memstats_alloc_bytes_total", `Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.`, counterType, func(m func(string) float64) float64 { return m("/gc/heap/allocs:bytes") }},
	{"go_memstats_buck_hash_sys_bytes", `Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.`, gaugeType, func(m func(string) float64) float64 { return m("/memory/classes/profiling/buckets:bytes") }},
	{"go_memstats_frees_total", `Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.`, counterType, func(m func(string) float64) float64 {
		return m("/gc/heap/frees:objects") + m("/gc/heap/tiny/allocs:objects")
	}},
	{"go_memstats_gc_sys_bytes", `Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.`, gaugeType, func(m func(string) float64) float64 { return m("/memory/classes/metadata/other:bytes") }},
	{"go_memstats_heap_alloc_bytes", `Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.`, gaugeType, func(m func(string) float64) float64 { return m(hObjects) }},
	{"go_memstats_heap_idle_bytes", `Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.`, gaugeType, func(m func(string) float64) float64 { return m(hReleased) + m(hFree) }},
	{"go_memstats_heap_inuse_bytes", `Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes`, gaugeType, func(m func(string) float64) float64 { return m(hObjects) + m(hUnused) }},
	{"go_memstats_heap_objects", `Number of currently allocated objects. Equals to /gc/heap/objects:objects.`, gaugeType, func(m func(string) float64) float64 { return m("/gc/heap/objects:objects") }},
	{"go_memstats_heap_released_bytes", `Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.`, gaugeType, func(m func(string) float64) float64 { return m(hReleased) }},
	{"go_memstats_heap_sys_bytes", `Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.`, gaugeType, func(m func(string) float64) float64 { return m(hObjects) + m(hUnused) + m(hReleased) + m(hFree) }},
	{"go_memstats_mallocs_total", `Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.`, counterType, func(m func(string) float64) float64 {
		return m("/gc/heap/allocs:objects") + m("/gc/heap/tiny/allocs:objects")
	}},
	{"go_memstats_mcache_inuse_bytes", `Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.`, gaugeType, func(m func(string) float64) float64 { return m("/memory/classes/metadata/mcache/inuse:bytes") }},
	{"go_memstats_mcache_sys_bytes", `Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.`, gaugeType, func(m func(string) float64) float64 {
		return m("/memory/classes/metadata/mcache/inuse:bytes") + m("/memory/classes/metadata/mcache/free:bytes")
	}},
	{"go_memstats_mspan_inuse_bytes", `Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.`, gaugeType, func(m func(string) float64) float64 { return m("/memory/classes/metadata/mspan/inuse:bytes") }},
	{"go_memstats_mspan_sys_bytes", `Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.`, gaugeType, func(m func(string) float64) float64 {
		return m("/memory/classes/metadata/mspan/inuse:bytes") + m("/memory/classes/metadata/mspan/free:bytes")
	}},
	{"go_memstats_next_gc_bytes", `Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.`, gaugeType, func(m func(string) float64) float64 { return m("/gc/heap/goal:bytes") }},
	{"go_memstats_other_sys_bytes", `Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.`, gaugeType, func(m func(string) float64) float64 { return m("/memory/classes/other:bytes") }},
	{"go_memstats_stack_inuse_bytes", `Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.`, gaugeType, func(m func(string) float64) float64 { return m("/memory/classes/heap/stacks:bytes") }},
	{"go_memstats_stack_sys_bytes", `Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.`, gaugeType, func(m func(string) float64) float64 {
		return m("/memory/classes/heap/stacks:bytes") + m("/memory/classes/os-stacks:bytes")
	}},
	{"go_memstats_sys_bytes", `Number of bytes obtained from system. Equals to /memory/classes/total:byte.`, gaugeType, func(m func(string) float64) float64 { return m("/memory/classes/total:bytes") }},
	{"go_gc_gogc_percent", `Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.`, gaugeType, func(m func(string) float64) float64 { return m("/gc/gogc:percent") }},
	{"go_gc_gomemlimit_bytes", `Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.`, gaugeType, func(m func(string) float64) float64 { return m("/gc/gomemlimit:bytes") }},
	{"go_sched_gomaxprocs_threads", `The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.`, gaugeType, func(m func(string) float64) float64 { return m("/sched/gomaxprocs:threads") }},
}

var runtimeSamples = func() []metrics.Sample {
	seen := map[string]bool{}
	var s []metrics.Sample
	for _, d := range metrics.All() {
		seen[d.Name] = true
	}
	for _, name := range []string{hObjects, hUnused, hReleased, hFree,
		"/gc/heap/allocs:bytes", "/memory/classes/profiling/buckets:bytes", "/gc/heap/frees:objects",
		"/gc/heap/tiny/allocs:objects", "/memory/classes/metadata/other:bytes", "/gc/heap/objects:objects",
		"/gc/heap/allocs:objects", "/memory/classes/metadata/mcache/inuse:bytes",
		"/memory/classes/metadata/mcache/free:bytes", "/memory/classes/metadata/mspan/inuse:bytes",
		"/memory/classes/metadata/mspan/free:bytes", "/gc/heap/goal:bytes", "/memory/classes/other:bytes",
		"/memory/classes/heap/stacks:bytes", "/memory/classes/os-stacks:bytes", "/memory/classes/total:bytes",
		"/gc/gogc:percent", "/gc/gomemlimit:bytes", "/sched/gomaxprocs:threads"} {
		if seen[name] {
			s = append(s, metrics.Sample{Name: name})
		}
	}
	return s
}

func gauge(name, help string, v float64, labels ...label) family {
	return family{name: name, help: help, typ: gaugeType, series: []sample{{labels: labels, value: v}}}
}

func counter(name, help string, v float64) family {
	return family{name: name, help: help, typ: counterType, series: []sample{{value: v}}}
}

// goFamilies reads the Go runtime.
func goFamilies(fams []family) []family {
	samples := runtimeSamples()
	metrics.Read(samples)
	vals := make(map[string]float64, len(samples))
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			vals[s.Name] = float64(s.Value.Uint64())
		case metrics.KindFloat64:
			vals[s.Name] = s.Value.Float64()
		}
	}
	m := func(name string) float64 { return vals[name] }
	for _, g := range goGauges {
		fams = append(fams, family{name: g.name, help: g.help, typ: g.typ, series: []sample{{value: g.value(m)}}})
	}
	gc := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&gc)
	q := make([]float64, 5)
	for i, d := range gc.PauseQuantiles {
		q[i] = d.Seconds()
	}
	fams = append(fams, family{name: "go_gc_duration_seconds", help: `A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.`, typ: summaryType, series: []sample{{
		value: gc.PauseTotal.Seconds(), count: uint64(gc.NumGC), quants: []float64{0, 0.25, 0.5, 0.75, 1}, qvals: q}}})
	fams = append(fams, gauge("go_memstats_last_gc_time_seconds", `Number of seconds since 1970 of last garbage collection.`, float64(gc.LastGC.UnixNano())/1e9))
	threads, _ := runtime.ThreadCreateProfile(nil)
	fams = append(fams,
		gauge("go_goroutines", `Number of goroutines that currently exist.`, float64(runtime.NumGoroutine())),
		gauge("go_threads", `Number of OS threads created.`, float64(threads)),
		gauge("go_info", `Information about the Go environment.`, 1, label{"version", runtime.Version()}))
	return fams
}

// startTime is when the process started, in seconds since the epoch to the clock tick,
// computed once so that it never moves between scrapes.
var (
	startOnce sync.Once
	startTime float64
)

// processFamilies reads /proc/self; a file that cannot be read leaves its families out.
func processFamilies(fams []family) []family {
	if stat, err := os.ReadFile("/proc/self/stat"); err == nil {
		if p, ok := procfs.Parse(stat); ok {
			startOnce.Do(func() { startTime = float64(time.Now().Add(p.Start-procfs.Uptime()).UnixNano()/1e7) / 100 })
			fams = append(fams,
				counter("process_cpu_seconds_total", `Total user and system CPU time spent in seconds.`, p.CPU.Seconds()),
				gauge("process_resident_memory_bytes", `Resident memory size in bytes.`, float64(p.RSS)),
				gauge("process_start_time_seconds", `Start time of the process since unix epoch in seconds.`, startTime))
		}
		if vsize, ok := statField(stat, 23); ok {
			fams = append(fams, gauge("process_virtual_memory_bytes", `Virtual memory size in bytes.`, vsize))
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		fams = append(fams, gauge("process_open_fds", `Number of open file descriptors.`, float64(len(fds))))
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		fams = append(fams, gauge("process_max_fds", `Maximum number of open file descriptors.`, float64(rl.Cur)))
	}
	if syscall.Getrlimit(syscall.RLIMIT_AS, &rl) == nil {
		fams = append(fams, gauge("process_virtual_memory_max_bytes", `Maximum amount of virtual memory available in bytes.`, float64(rl.Cur)))
	}
	if rx, tx, ok := netDev(); ok {
		fams = append(fams,
			counter("process_network_receive_bytes_total", `Number of bytes received by the process over the network.`, rx),
			counter("process_network_transmit_bytes_total", `Number of bytes sent by the process over the network.`, tx))
	}
	return fams
}

// statField is field k (numbered as in proc(5)) of /proc/PID/stat; procfs.Parse does not
// read the virtual memory size (23).
func statField(stat []byte, k int) (float64, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if k-3 >= len(f) {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[k-3], 64)
	return v, err == nil
}

// netDev sums the bytes received and sent over every interface of the process's network
// namespace, from /proc/self/net/dev.
func netDev() (rx, tx float64, ok bool) {
	b, err := os.ReadFile("/proc/self/net/dev")
	if err != nil {
		return 0, 0, false
	}
	for line := range strings.Lines(string(b)) {
		_, counts, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		f := strings.Fields(counts)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseFloat(f[0], 64)
		t, err2 := strconv.ParseFloat(f[8], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rx, tx = rx+r, tx+t
	}
	return rx, tx, true
}
