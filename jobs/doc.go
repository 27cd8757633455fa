// Package jobs runs pilotfish's jobs: one typed state machine per job, the job kinds, health
// probes, and restart with backoff.
//
// The machine: a Job is in one of the states of docs/jobs.md (state.go), and moves only
// along the edges of the one transitions table there; setState refuses any other move and
// logs it as an error. Besides its state a job has one mode (normal, held, paused, shutting
// down) that says what it does with triggers and restarts. Every input is a method that
// switches on state and mode and either moves along an edge or answers "cannot X while Y",
// of class ErrConflict:
//
//   - job.go: the Job type, its API (Start, StartNow, Stop, Pause, Restart, Signal,
//     BeginShutdown, KillAll, Close) and the verbs as the loop runs them;
//   - loop.go: the loop, bus events and triggers, timers, arming the kind and its
//     activations;
//   - run.go: starting a run, its end and what follows it (backoff, waiting, completed,
//     failed), health results and kind reports;
//   - stop.go: the stop sequence (stopping event, hooks, stop signal, SIGKILL);
//   - status.go: the Status snapshot and what the daemon asks of it: Live, CouldStart,
//     Holds.
//
// Concurrency: each Job is owned by one goroutine, its loop. Everything that changes a job
// arrives as a message on a channel the loop selects on; API calls are commands run on the
// loop. Nothing else touches the job's fields. Readers use Status, a snapshot the loop
// publishes after every step, so a busy or stuck job never blocks a status request. A run's
// end goes from the reaper to the goroutine that drains the run's output, and from there
// straight to the loop (RunRequest.Exit).
//
// Kinds plug in through the Kind interface and the table Kinds in kind.go: a kind decodes
// its own configuration and builds a Driver, which knows how to arm the job (a schedule, a
// listening socket) and how to start one run (a process, an HTTP call). Triggers, restarts,
// backoff, health, stop sequencing and events are the same for every kind and live here
// once.
//
// Core creates jobs with New, primes those a reload adds (Prime), calls Start once every
// job exists, and publishes startup. It asks the jobs whether pilotfish has anything left
// to run (Job.Live, Status.CouldStart) rather than reading their internals.
package jobs
