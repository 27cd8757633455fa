// Package telemetry is pilotfish's Prometheus side: the daemon's own registry, collectors
// that read job, bus, health and reaper state at scrape time, the custom metrics declared in
// `telemetry { metric … }`, and the optional TCP listener for /metrics and /v1/health.
//
// Concurrency: the built-in collector holds no state; it asks its Source at every scrape.
// Custom metrics are prometheus collectors, safe for concurrent updates; the set of them is
// swapped on reload under one mutex that no scrape or update holds for long.
package telemetry
