package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux
// architecture Go supports (the stdlib has no sysconf to ask).
const clockTicks = 100

// pollUntil calls cond every interval until it holds or timeout passes.
func pollUntil(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// procStat is the part of /proc/PID/stat we use.
type procStat struct {
	pid, ppid    int
	state        byte
	comm         string
	utime, stime uint64 // clock ticks
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	// comm is in parentheses and may itself contain spaces and parentheses.
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return procStat{}, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[end+2:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	st := procStat{pid: pid, comm: s[open+1 : end], state: f[0][0]}
	st.ppid, _ = strconv.Atoi(f[1])
	st.utime, _ = strconv.ParseUint(f[11], 10, 64)
	st.stime, _ = strconv.ParseUint(f[12], 10, 64)
	return st, nil
}

// allProcs reads the stat of every process.
func allProcs() map[int]procStat {
	out := map[int]procStat{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			out[pid] = st
		}
	}
	return out
}

// descendants are the processes below root (root excluded).
func descendants(root int, procs map[int]procStat) []procStat {
	kids := map[int][]int{}
	for pid, st := range procs {
		kids[st.ppid] = append(kids[st.ppid], pid)
	}
	var out []procStat
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range kids[p] {
			out = append(out, procs[k])
			queue = append(queue, k)
		}
	}
	return out
}

// children lists pid's children (zombies included) from /proc/PID/task/*/children: cheap
// enough to poll, and exactly the processes pid has not reaped yet.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(f); err == nil {
				out = append(out, k)
			}
		}
	}
	return out
}

// childrenExcept counts pid's children other than those in skip.
func childrenExcept(pid int, skip map[int]bool) int {
	n := 0
	for _, k := range children(pid) {
		if !skip[k] {
			n++
		}
	}
	return n
}

// statusKB reads numeric fields ("VmRSS:   1234 kB", "voluntary_ctxt_switches: 7") of
// /proc/PID/status; every name must be there.
func statusKB(pid int, names ...string) (map[string]int, error) {
	out, err := statusFields("/proc/"+strconv.Itoa(pid)+"/status", names...)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("no %s in /proc/%d/status", n, pid)
		}
	}
	return out, nil
}

// statusFields reads the first number of each named field of a status file.
func statusFields(path string, names ...string) (map[string]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, n := range names {
			if k == n {
				if f := strings.Fields(v); len(f) > 0 {
					out[n], _ = strconv.Atoi(f[0])
				}
			}
		}
	}
	return out, nil
}

// usage is a process's CPU time and context switches at one moment.
type usage struct {
	cpuTicks  uint64 // utime+stime of the whole process, clock ticks
	runNs     uint64 // sum of the threads' schedstat run time, ns (0 if unavailable)
	voluntary int    // summed over the threads alive now
	forced    int
	threads   int
}

func readUsage(pid int) (usage, error) {
	var u usage
	st, err := readStat(pid)
	if err != nil {
		return u, err
	}
	u.cpuTicks = st.utime + st.stime
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, t := range tasks {
		dir := "/proc/" + strconv.Itoa(pid) + "/task/" + t.Name()
		if m, err := statusFields(dir+"/status", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"); err == nil {
			u.voluntary += m["voluntary_ctxt_switches"]
			u.forced += m["nonvoluntary_ctxt_switches"]
			u.threads++
		}
		if b, err := os.ReadFile(dir + "/schedstat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseUint(f[0], 10, 64)
				u.runNs += ns
			}
		}
	}
	return u, nil
}

// becomeSubreaper makes processes orphaned below pfbench (jobs that outlive pilotfish)
// come back to it, so sweep can find and end them.
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// sweep kills and reaps every process below pfbench. Call it only when no exec.Cmd is
// waiting for its process. It returns the live processes it found, as "PID COMM".
func sweep() []string {
	self := os.Getpid()
	var found []string
	first := true
	pollUntil(5*time.Second, 2*time.Millisecond, func() bool {
		ds := descendants(self, allProcs())
		if first {
			for _, d := range ds {
				if d.state != 'Z' {
					found = append(found, fmt.Sprintf("%d %s", d.pid, d.comm))
				}
			}
			first = false
		}
		for _, d := range ds {
			if d.state != 'Z' {
				_ = syscall.Kill(d.pid, syscall.SIGKILL)
			}
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
		}
		return len(ds) == 0
	})
	return found
}
