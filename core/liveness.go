package core

import (
	"fmt"
	"strings"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/jobs"
)

// check decides, after any job changed, whether pilotfish must end: the main job exited, a
// job failed for good with exit_on_failure, or nothing can ever run again.
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
// still come.
func anyLive(list []*jobs.Job, status map[string]jobs.Status) bool {
	live := map[string]bool{}
	for _, j := range list {
		st := status[j.Name()]
		if st.Settling {
			live[st.Name] = true // its last events are on their way
			continue
		}
		switch st.State {
		case jobs.Starting, jobs.Running, jobs.Backoff, jobs.Stopping, jobs.Scheduled, jobs.Listening:
			live[st.Name] = true
		case jobs.Waiting:
			if st.TimerArmed || st.Runs > 0 || j.Behind(st) {
				live[st.Name] = true
			}
		case jobs.Stopped:
			if st.Paused { // the operator may start it again
				live[st.Name] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, j := range list {
			st := status[j.Name()]
			if live[st.Name] || st.State != jobs.Waiting {
				continue
			}
			for _, p := range st.Pending {
				if canCome(p, live) {
					live[st.Name], changed = true, true
					break
				}
			}
		}
	}
	return len(live) > 0
}

// canCome reports whether an awaited event may still be published.
func canCome(t config.Trigger, live map[string]bool) bool {
	switch {
	case strings.HasPrefix(t.Source, events.WatchPrefix), strings.HasPrefix(t.Source, events.TemplatePrefix):
		return true
	case t.Source == events.Global:
		// Reload and maintenance can be asked for at any time through the control API;
		// startup is behind us and shutdown is the end.
		return t.Code == events.Reload || t.Code == events.EnterMaintenance || t.Code == events.ExitMaintenance
	}
	return live[t.Source]
}
