// Package core is pilotfish's composition root. It loads the configuration, wires the bus,
// the reaper, the jobs, control, telemetry, discovery and templates, and then runs the daemon's one
// supervisor loop: signals, liveness, shutdown and the exit code.
//
//   - daemon.go: Run and New, start-up in phases (signals, config, jobs built, socket, jobs
//     installed, startup);
//   - signals.go: the signal handlers from before the config is read, and the supervisor
//     loop (Daemon.supervise);
//   - shutdown.go: the shutdown in reverse dependency order within stop_timeout, what is
//     abandoned at its deadline, and the exit code;
//   - liveness.go: after any job changed, whether pilotfish must end (Daemon.check); the
//     jobs answer whether they are live, core only spreads liveness along the triggers;
//   - reload.go: build new, diff, swap, stop old; a job a reload adds is primed with the
//     triggers that already hold (jobs.Job.Holds);
//   - api.go: the control API's backend; sdnotify.go, telemetry.go,
//     discovery.go, env.go: signals, sd_notify to pilotfish's own supervisor, metrics,
//     Consul, the environment with putenv values; templates.go: the template blocks (after
//     discovery, before the jobs), their endpoints and metrics; check.go: validate and plan;
//     logs.go: the jobs' output tails (GET /v1/logs), forgotten when a reload removes a job.
//
// Concurrency: the supervisor loop owns the daemon's lifecycle decisions. Jobs tell it that
// something changed through a non-blocking poke; it then reads their status snapshots, so
// a busy job never blocks it. The job table is guarded by one mutex that is never held
// while calling into a job.
package core
