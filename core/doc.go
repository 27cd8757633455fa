// Package core is pilotfish's composition root. It loads the configuration, wires the bus,
// the reaper, the jobs (and, as they land, control, telemetry and discovery), and then runs
// the daemon's one supervisor loop: signals, liveness, shutdown and the exit code.
//
// Concurrency: the supervisor loop (Daemon.run) owns the daemon's lifecycle decisions.
// Jobs tell it that something changed through a non-blocking poke; it then reads their
// status snapshots, so a busy job never blocks it. The job table is guarded by one mutex
// that is never held while calling into a job.
package core
