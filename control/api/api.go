// Package api holds the request and answer types of pilotfish's control API, the JSON on
// the wire (docs/api.md): the server (package control), its backend (core) and the client
// (control/client) share them, so that neither end imports the other. Plain data, no
// behaviour.
package api

import "time"

// Ping is the answer of GET /v1/ping.
type Ping struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// Job is one job in /v1/status and /v1/jobs/{name}.
type Job struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	State    string    `json:"state"`
	Pid      int       `json:"pid"`
	Restarts int       `json:"restarts"`
	Health   string    `json:"health"`
	ExitCode *int      `json:"exit_code"`
	Since    time.Time `json:"since"`
	Status   string    `json:"status"`
	// NextRun is when a cron job runs next (docs/api.md#status); absent for other jobs.
	NextRun *time.Time `json:"next_run,omitempty"`
	// CPUSeconds, MemoryBytes and CPUPercent are read from /proc when asked
	// (docs/api.md#the-job-object).
	CPUSeconds  float64 `json:"cpu_seconds"`
	MemoryBytes uint64  `json:"memory_bytes"`
	CPUPercent  float64 `json:"cpu_percent"`
}

// Watch is one Consul watch in /v1/status.
type Watch struct {
	Name      string `json:"name"`
	Healthy   bool   `json:"healthy"`
	Instances int    `json:"instances"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Jobs        []Job   `json:"jobs"`
	Watches     []Watch `json:"watches"`
	Maintenance bool    `json:"maintenance"`
}

// Reload is the answer of POST /v1/reload.
type Reload struct {
	Changed []string `json:"changed"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

// Event is one bus event as /v1/events streams it.
type Event struct {
	Seq    uint64            `json:"seq"`
	Code   string            `json:"code"`
	Source string            `json:"source"`
	Time   time.Time         `json:"time"`
	Attrs  map[string]string `json:"attrs,omitempty"`
}

// LogLine is one line of GET /v1/logs, which answers NDJSON: one object per line.
type LogLine struct {
	Time    time.Time `json:"time"`
	Job     string    `json:"job"`
	Stream  string    `json:"stream"` // StreamStdout, StreamStderr or StreamNotice
	Message string    `json:"message"`
	// Dropped is, in a notice, how many lines of Job this reader lost before it.
	Dropped uint64 `json:"dropped,omitempty"`
}

// DefaultLogLines is how many lines GET /v1/logs gives when the request does not say.
const DefaultLogLines = 30

// The streams of a LogLine. A notice is pilotfish's own word to a follower that fell
// behind: "N lines dropped: this reader fell behind", with Dropped N.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamNotice = "pilotfish"
)

// Health is the answer of GET /v1/health.
type Health struct {
	Status      string          `json:"status"` // ok, unhealthy, maintenance
	Maintenance bool            `json:"maintenance"`
	Failing     []HealthProblem `json:"failing"`
}

// HealthProblem is one job that keeps /v1/health from answering 200.
type HealthProblem struct {
	Job    string `json:"job"`
	State  string `json:"state"`
	Health string `json:"health"`
}

// Signal is the body of POST /v1/jobs/{name}/signal.
type Signal struct {
	Signal string `json:"signal"`
}

// Metric is one custom metric update in the long form of POST /v1/metric.
type Metric struct {
	Name   string            `json:"name"`
	Value  float64           `json:"value"`
	Labels map[string]string `json:"labels,omitempty"`
	// Add makes a gauge update add Value instead of setting it (counters always add).
	Add bool `json:"add,omitempty"`
}

// Error kinds: the "kind" of an error answer. control.HTTPStatus gives each its status
// (the table in docs/api.md#errors is tested against it).
const (
	KindBadRequest    = "bad-request"
	KindNotFound      = "not-found"
	KindConflict      = "conflict"
	KindInvalidConfig = "invalid-config"
	KindTooLarge      = "too-large"
	KindMethod        = "method-not-allowed"
	KindTimeout       = "timeout"
	KindUnavailable   = "unavailable"
	KindInternal      = "internal"
	// KindStarting: a mutating call before start-up has installed every job (503).
	KindStarting = "starting"
	// KindTooManyStreams: every stream slot is taken (429).
	KindTooManyStreams = "too-many-streams"
)

// ErrorBody is the JSON of every error answer: {"error":{"kind","message"}}, plus the
// configuration diagnostics when a reload was refused.
type ErrorBody struct {
	Error       ErrorDetail `json:"error"`
	Diagnostics []string    `json:"diagnostics,omitempty"`
}

// ErrorDetail is the "error" object.
type ErrorDetail struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Template is one template in GET /v1/templates (docs/api.md#templates).
type Template struct {
	Name        string   `json:"name"`
	Destination string   `json:"destination"`
	Rendered    bool     `json:"rendered"`             // its file was written, or found as it should be, once
	Renders     uint64   `json:"renders"`              // writes of the file
	Errors      uint64   `json:"errors"`               // runs and writes that failed
	LastError   string   `json:"last_error,omitempty"` // "" once a run succeeds
	Waiting     []string `json:"waiting,omitempty"`    // values read that have not answered yet
}

// Render is the answer of GET /v1/templates/{name}/render: what the template would write now.
type Render struct {
	Name        string `json:"name"`
	Destination string `json:"destination"`
	Text        string `json:"text"`
}
