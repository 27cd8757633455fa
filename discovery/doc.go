// Package discovery registers pilotfish's services in a service catalog and watches the
// services of others. Backend is the small interface a catalog implements; consul.go is the
// Consul implementation (two HTTP clients: one connection for calls, one per blocking query).
//
// Manager keeps each job's service registered while the job is healthy and feeds the job's
// health to a TTL check at once (a failing check is never left to lapse); it deregisters a
// service when its job starts stopping, before the job is signalled (the job calls PreStop),
// and at shutdown everything the agent may hold, whatever the loop was doing; maintenance
// takes every service out of the catalog and puts each back with its current health when it
// ends. A service ID is never one another live instance holds (claim, verify). Watches run
// paced blocking queries and publish changed/healthy/unhealthy on the bus.
//
// Concurrency: one goroutine (Manager.loop) owns every registration; bus events, requests
// (PreStop, maintenance, reload, Close) and timers reach it as messages. Each watch, and the
// agent monitor that runs when there is no watch, is a follower with its own goroutine; they
// reach the loop through resyncSoon and share the agent's identity and the crowding state
// (a 429 lately: watches poll, calls hand over) under Manager.mu. Every failed call is retried after the backoff of internal/backoff (each
// service and each follower its own), never in a busy loop, and everything is registered
// again when the agent comes back having forgotten it. Called by core (docs/consul.md).
package discovery
