// Package telemetry is pilotfish's Prometheus side: its own exposition writer (text format
// and OpenMetrics, without the Prometheus client library), built-in metrics that read job,
// bus, health and reaper state at scrape time, the Go and process series, the custom metrics declared in
// `telemetry { metric … }`, and the optional TCP listener for /metrics and /v1/health.
//
// Concurrency: the built-in collector holds no state; it asks its Source at every scrape.
// Custom metrics and the health-check histogram are vecs, each under its own mutex; the set of
// custom metrics is swapped on reload under one mutex that no scrape or update holds for long.
package telemetry
