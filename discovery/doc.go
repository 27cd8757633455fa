// Package discovery registers pilotfish's services in a service catalog and watches the
// services of others. Backend is the small interface a catalog implements; consul.go is the
// Consul implementation.
//
// Manager keeps each job's service registered while the job is healthy and feeds the job's
// health to a TTL check at once (a failing check is never left to lapse); it deregisters a
// service when its job starts stopping, before the job is signalled (the job calls PreStop);
// maintenance takes every service out of the catalog and puts each back with its current
// health when it ends. Watches run blocking
// queries and publish changed/healthy/unhealthy on the bus.
//
// Concurrency: one goroutine (Manager.loop) owns every registration; bus events, requests
// (PreStop, maintenance, reload) and timers reach it as messages. Each watch has its own
// goroutine. Catalog outages are retried with capped exponential backoff, never in a busy
// loop, and everything is registered again when the agent comes back having forgotten it.
package discovery
