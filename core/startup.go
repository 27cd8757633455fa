package core

import "runtime/debug"

// startupGCPercent is the GC target while the configuration is read and the first runs
// fork: fewer collections among the forks, each of which stops the goroutine in vfork.
const startupGCPercent = 400

// startGC raises the GC target for start-up and returns the one to restore.
func startGC() int { return debug.SetGCPercent(startupGCPercent) }

// afterStartup runs at each quiet check of the supervise loop until every job has handled
// the events queued for it at start-up (so the first runs are forked); then it restores the
// GC target and gives back to the OS what parsing and setting up left behind, which a
// long-lived PID 1 should not keep resident. Pokes drive it: no timer, no idle wake-up.
func (d *Daemon) afterStartup() {
	if d.startLeft < 0 || len(d.pokes) > 0 {
		return
	}
	list := d.jobList()
	for ; d.startLeft < len(list); d.startLeft++ {
		if j := list[d.startLeft]; !j.CaughtUp(j.Status()) {
			return
		}
	}
	d.startLeft = -1
	debug.SetGCPercent(d.gcPercent)
	debug.FreeOSMemory()
}

// endStartup restores the GC target if start-up never came to its end.
func (d *Daemon) endStartup() {
	if d.startLeft >= 0 {
		d.startLeft = -1
		debug.SetGCPercent(d.gcPercent)
	}
}
