package core

import (
	"fmt"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/jobs"
)

// check decides, after any job changed, whether pilotfish must end: the main job exited, a
// job became unhealthy with health.on_failure = "shutdown", a job failed for good with
// exit_on_failure, or nothing can ever run again.
func (d *Daemon) check() string {
	if d.reloading.Load() {
		return "" // jobs come and go during a reload; it pokes again when done
	}
	list := d.jobList()
	d.outer.update(list)
	status := make(map[string]jobs.Status, len(list))
	for _, j := range list {
		status[j.Name()] = j.Status()
	}
	if m, ok := status[config.MainJob]; ok && m.State.Final() && m.ExitCode != nil {
		return fmt.Sprintf("the main job ended with exit code %d", *m.ExitCode)
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
func anyLive(list []*jobs.Job, status map[string]jobs.Status) bool {
	live := map[string]bool{}
	for _, j := range list {
		if j.Live(status[j.Name()]) {
			live[j.Name()] = true
		}
	}
	isLive := func(job string) bool { return live[job] }
	for changed := true; changed; {
		changed = false
		for _, j := range list {
			if !live[j.Name()] && status[j.Name()].CouldStart(isLive) {
				live[j.Name()], changed = true, true
			}
		}
	}
	return len(live) > 0
}
