package core

import (
	"fmt"
	"slices"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/jobs"
)

// check decides, after any job changed, whether pilotfish must end: the main job exited, a
// job became unhealthy with health.on_failure = "shutdown", a job failed for good with
// exit_on_failure, or nothing can ever run again. It runs at every status change, so it
// keeps the snapshots it read and takes a new one only of a job whose status changed since
// (at start-up, 200 jobs change 400 times: 80,000 snapshots otherwise), and stops at the
// first live job.
func (d *Daemon) check() string {
	if d.reloading.Load() {
		return "" // jobs come and go during a reload; it pokes again when done
	}
	list := d.jobList()
	d.outer.update(list)
	status := d.checkSnapshots(list)
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

// checkSnapshots returns a snapshot of each job of list, reusing those of the last check
// whose job has not changed since. Only the supervise loop calls it.
func (d *Daemon) checkSnapshots(list []*jobs.Job) []jobs.Status {
	c := &d.checked
	if !slices.Equal(c.jobs, list) {
		clear(c.status) // nothing of a removed job kept alive
		c.jobs = append(c.jobs[:0], list...)
		c.status = slices.Grow(c.status[:0], len(list))[:len(list)]
		c.version = slices.Grow(c.version[:0], len(list))[:len(list)]
		for i, j := range list {
			c.version[i] = j.StatusVersion()
			c.status[i] = j.Status()
		}
		return c.status
	}
	for i, j := range list {
		// The version first: a change in between gives a newer snapshot under an older
		// version, read again next time; never the reverse.
		if v := j.StatusVersion(); v != c.version[i] {
			c.version[i] = v
			c.status[i] = j.Status()
		}
	}
	return c.status
}

// checkCache holds, for each job of the last check, its snapshot and status version.
type checkCache struct {
	jobs    []*jobs.Job
	status  []jobs.Status
	version []uint64
}
