package core

import (
	"runtime/debug"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/errdefs"
	"github.com/pilotfish/pilotfish/internal/logtail"
)

// Logs returns the newest n lines (every line kept when n < 0) of the named jobs (every
// job when none is named), oldest first, merged by time (docs/api.md#get-v1logs).
func (d *Daemon) Logs(names []string, n int) ([]logtail.Line, error) {
	names, err := d.logJobs(names)
	if err != nil {
		return nil, err
	}
	if names == nil {
		names = []string{} // every job there is now, and no other
		for _, j := range d.config().Jobs {
			names = append(names, j.Name)
		}
	}
	return d.logs.Last(names, n), nil
}

// FollowLogs is Logs and then a follower of the new lines of the named jobs; with no name,
// of every job, also those a reload adds later.
func (d *Daemon) FollowLogs(names []string, n int) ([]logtail.Line, *logtail.Follower, error) {
	names, err := d.logJobs(names)
	if err != nil {
		return nil, nil, err
	}
	lines, f := d.logs.Follow(names, n)
	return lines, f, nil
}

// logJobs checks that every named job exists; nil stays nil (every job).
func (d *Daemon) logJobs(names []string) ([]string, error) {
	cfg := d.config()
	for _, name := range names {
		if cfg.Job(name) == nil {
			return nil, errdefs.Errorf(errdefs.ErrNotFound, "there is no job %q", name)
		}
	}
	return names, nil
}

// freeLogsWorth is the memory of removed jobs' tails worth a collection to give back.
const freeLogsWorth = 1 << 20

// keepLogs forgets the tails of the jobs a reload removed and gives their memory back to
// the system at once: a long-lived PID 1 should not keep a removed job's buffer resident.
func (d *Daemon) keepLogs(cfg *config.Config) {
	names := make([]string, 0, len(cfg.Jobs))
	for _, j := range cfg.Jobs {
		names = append(names, j.Name)
	}
	if d.logs.Keep(names) >= freeLogsWorth {
		debug.FreeOSMemory()
	}
}
