package core

import (
	"fmt"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/jobs"
)

// check decides, after any job changed, whether pilotfish must end: the main job exited, a
// job became unhealthy with health.on_failure = "shutdown", a job failed for good with
// exit_on_failure, or nothing can ever run again. It runs at every status change, so it
// reads each job's snapshot once, into a slice, and stops at the first live job.
func (d *Daemon) check() string {
	if d.reloading.Load() {
		return "" // jobs come and go during a reload; it pokes again when done
	}
	list := d.jobList()
	d.outer.update(list)
	status := d.checkBuf[:0]
	for _, j := range list {
		status = append(status, j.Status())
	}
	d.checkBuf = status
	defer clear(status) // keep no snapshot (nor its slices) alive until the next check
	for i, j := range list {
		if j.Name() == config.MainJob {
			if m := status[i]; m.State.Final() && m.ExitCode != nil {
				return fmt.Sprintf("the main job ended with exit code %d", *m.ExitCode)
			}
			break
		}
	}
	for _, st := range status {
		if st.Shutdown {
			d.failedExit = true // a main job's exit status still wins (docs/jobs.md, "Exit codes")
			return fmt.Sprintf("job %q is unhealthy and its health.on_failure is \"shutdown\"", st.Name)
		}
	}
	if d.config().ExitOnFailure {
		for _, st := range status {
			if st.State == jobs.Failed {
				d.failedExit = true
				return fmt.Sprintf("job %q failed and exit_on_failure is set", st.Name)
			}
		}
	}
	if !anyLive(list, status) && !d.templatesLive() {
		// Exiting by itself, pilotfish reports a job that failed for good (docs/jobs.md).
		for _, st := range status {
			if st.State == jobs.Failed {
				d.failedExit = true
			}
		}
		return "no job is running or can start again"
	}
	return ""
}

// anyLive reports whether some job runs, or could still be started by an event that can
// still come. Each job answers for itself (jobs.Job.Live, jobs.Status.CouldStart); core
// only spreads liveness from the jobs that publish an event to the jobs that wait for it.
// status[i] is list[i]'s snapshot.
//
// Liveness spreads only from a live job, so some job is live if and only if one is live by
// itself or could start with no other job live: the answer needs no fix-point, and the
// first live job ends the search.
func anyLive(list []*jobs.Job, status []jobs.Status) bool {
	for i, j := range list {
		if j.Live(status[i]) {
			return true
		}
	}
	none := func(string) bool { return false }
	for _, st := range status {
		if st.CouldStart(none) {
			return true
		}
	}
	return false
}
