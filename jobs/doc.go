// Package jobs runs pilotfish's jobs: one typed state machine per job, the job kinds, health
// probes, and restart with backoff.
//
// Concurrency: each Job is owned by one goroutine (its loop). Everything that changes a job
// — a bus event, a process exit, a timer, a health result, an API call — arrives as a message
// on a channel the loop selects on; nothing else touches the job's fields. Readers use
// Status, a snapshot the loop publishes after every step, so a busy or stuck job never blocks
// a status request.
//
// Kinds plug in through the Kind interface and the table in kinds.go: a kind decodes its own
// configuration and builds a Driver, which knows how to arm the job (a schedule, a listening
// socket) and how to start one run (a process, an HTTP call). Triggers, restarts, backoff,
// health, stop sequencing and events are the same for every kind and live here once.
//
// Core creates jobs with New, calls Start once every job exists, and publishes startup.
package jobs
