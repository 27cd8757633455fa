package client

import (
	"fmt"
	"strings"

	"github.com/pilotfish/pilotfish/control/api"
)

// The wire types are package api's, which the server shares; they are named here too so
// that a caller of the client needs one import.
type (
	Ping          = api.Ping
	Job           = api.Job
	Watch         = api.Watch
	Status        = api.Status
	Reload        = api.Reload
	Event         = api.Event
	LogLine       = api.LogLine
	Health        = api.Health
	HealthProblem = api.HealthProblem
	Signal        = api.Signal
	Metric        = api.Metric
	ErrorBody     = api.ErrorBody
	ErrorDetail   = api.ErrorDetail
)

// The streams of a LogLine, and how many lines GET /v1/logs gives when not told, as in
// package api.
const (
	DefaultLogLines = api.DefaultLogLines
	StreamStdout    = api.StreamStdout
	StreamStderr    = api.StreamStderr
	StreamNotice    = api.StreamNotice
)

// Error kinds (APIError.Kind), as in package api.
const (
	KindBadRequest     = api.KindBadRequest
	KindNotFound       = api.KindNotFound
	KindConflict       = api.KindConflict
	KindInvalidConfig  = api.KindInvalidConfig
	KindTooLarge       = api.KindTooLarge
	KindMethod         = api.KindMethod
	KindTimeout        = api.KindTimeout
	KindUnavailable    = api.KindUnavailable
	KindInternal       = api.KindInternal
	KindStarting       = api.KindStarting
	KindTooManyStreams = api.KindTooManyStreams
)

// APIError is a request the daemon refused.
type APIError struct {
	StatusCode  int
	Kind        string
	Message     string
	Diagnostics []string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s (%d %s)", e.Message, e.StatusCode, e.Kind)
	if len(e.Diagnostics) > 0 {
		msg += "\n" + strings.Join(e.Diagnostics, "\n")
	}
	return msg
}
