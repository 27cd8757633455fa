package core

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/pilotfish/pilotfish/internal/memtrim"
)

// startupGCPercent is the GC target while the jobs of start-up fork.
const startupGCPercent = 400

// afterStartup runs at each quiet check of the supervise loop until every job has handled
// the events queued for it at start-up (so the first runs are forked); then it gives back
// to the OS what parsing and setting up left behind, which a long-lived PID 1 should not
// keep resident: the freed heap, and the mappings of the binary's start-up code
// (docs/operations.md#memory). From then on one P runs pilotfish's Go code, unless
// GOMAXPROCS says otherwise (docs/operations.md#cpu): start-up forks in parallel; a running
// supervisor waits on I/O, and with one P a request, an exit or an event is handled on the
// thread that woke for it instead of being handed to another. Before, the forced GC would stop the goroutines that fork. Pokes drive
// it: no timer, no idle wake-up.
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
	if d.startGC >= 0 {
		debug.SetGCPercent(d.startGC)
	}
	memtrim.Trim()
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
