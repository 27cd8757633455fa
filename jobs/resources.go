package jobs

import (
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/procfs"
)

// Usage is what a job's processes use (docs/api.md#status): read from /proc when asked,
// never sampled in the background.
type Usage struct {
	// CPU is the user and system time of the job's processes since the job was created:
	// of every run that ended, as wait4 reported it for the process pilotfish started
	// (with the children it waited for), plus now, of every live process of the current
	// runs' process groups (and of the children they waited for). It never decreases.
	CPU time.Duration
	// Memory is the resident memory (RSS) summed over the live processes of the job's
	// process groups; pages shared between them count once per process.
	Memory uint64
	// CPUPercent is, as ps(1) %CPU, each live process's CPU time (with the children it
	// waited for) divided by the time it has been running (at least one second), summed
	// over the job's processes: 100 is one core.
	CPUPercent float64
}

// procRef is where a run's processes are: the process group of the process pilotfish
// started, and a main PID the program announced outside it (sd_notify's MAINPID).
type procRef struct {
	group int
	main  int // 0 when none, or when it is in the group
}

// processes is a run made of processes.
type processes interface {
	procRef() procRef
}

func (p *procRun) procRef() procRef { return procRef{group: p.pid} }

// RunsProcesses reports whether the job runs processes of its own (not a webhook, a
// syslog router or a job that only registers a service).
func (j *Job) RunsProcesses() bool { return j.runsProcs }

func runsProcesses(cfg *config.Job) bool {
	k, ok := Kinds()[cfg.Kind]
	return ok && k.ExecRule() != config.ExecForbidden && !cfg.RegistrationOnly()
}

// Usages reads what each job of js uses, in one pass over /proc for all of them: the cost
// is one read per process in /proc, and nothing when no job has a process.
func Usages(js []*Job) []Usage {
	out := make([]Usage, len(js))
	owner := map[int]int{} // process group → index in js
	mains := map[int]int{} // main PID outside its group → index in js
	for i, j := range js {
		st := j.Status()
		out[i].CPU = st.cpuDone
		for _, r := range st.procs {
			owner[r.group] = i
			if r.main != 0 {
				mains[r.main] = i
			}
		}
	}
	if len(owner) > 0 {
		procs := scanProcs()
		// A main PID brings its own process group along (a daemon that left the job's
		// group with setsid leads a group of its own), but never pilotfish's.
		self := syscall.Getpgrp()
		for _, p := range procs {
			if i, ok := mains[p.Pid]; ok && p.Pgrp != self {
				if _, taken := owner[p.Pgrp]; !taken {
					owner[p.Pgrp] = i
				}
			}
		}
		now := procfs.Uptime()
		for _, p := range procs {
			if i, ok := owner[p.Pgrp]; ok {
				cpu := p.CPU + p.ChildCPU
				out[i].CPU += cpu
				out[i].Memory += p.RSS
				out[i].CPUPercent += 100 * cpu.Seconds() / max(now-p.Start, time.Second).Seconds()
			}
		}
	}
	for i, j := range js {
		out[i].CPU = j.cpuHigh(out[i].CPU)
	}
	return out
}

// procsMaxAge is how long one pass over /proc answers: status and scrapes that come
// closer together share it (a pass costs about 10 µs per process in the container), so
// what /v1/status shows is at most this old (docs/operations.md#what-is-counted).
const procsMaxAge = time.Second

var procsCache struct {
	sync.Mutex
	at    time.Time
	procs []procfs.Proc
}

// scanProcs returns the processes in /proc, read at most procsMaxAge ago. Nothing is read
// when nobody asks. An older reading can only count less, never more: a run that ended
// is no longer asked about, and a live process's counters only grow.
func scanProcs() []procfs.Proc {
	c := &procsCache
	c.Lock()
	defer c.Unlock()
	if c.procs == nil || time.Since(c.at) >= procsMaxAge {
		procs := make([]procfs.Proc, 0, len(c.procs)) // callers may still read the last one
		_ = procfs.Scan(func(p procfs.Proc) { procs = append(procs, p) })
		c.procs, c.at = procs, time.Now()
	}
	return c.procs
}

// cpuHigh returns the highest CPU time reported for the job so far, after taking cpu into
// account. A reading can fall behind the last one for a moment (the process that ended
// is reaped before its run's end reaches the loop; a straggler reaped by pilotfish takes
// its time with it): the counter must not go back.
func (j *Job) cpuHigh(cpu time.Duration) time.Duration {
	for {
		old := j.cpuSeen.Load()
		if int64(cpu) <= old {
			return time.Duration(old)
		}
		if j.cpuSeen.CompareAndSwap(old, int64(cpu)) {
			return cpu
		}
	}
}

// addCPU counts the CPU time of a run that ended. With no run left, what was last reported
// is the floor: processes of the group that the run's process did not wait for (killed
// with it by the stop signal) took their time with them, and the counter would otherwise
// stand still until the next runs make up for it.
func (j *Job) addCPU(d time.Duration) {
	j.cpuDone += d
	if len(j.runs) == 0 {
		j.cpuDone = max(j.cpuDone, time.Duration(j.cpuSeen.Load()))
	}
}

// procRefs lists where the job's active runs have processes, in a stable order.
func (j *Job) procRefs() []procRef {
	var out []procRef
	for _, ar := range j.runs {
		if p, ok := ar.run.(processes); ok {
			out = append(out, p.procRef())
		}
	}
	slices.SortFunc(out, func(a, b procRef) int { return a.group - b.group })
	return out
}
