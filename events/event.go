package events

import (
	"fmt"
	"time"
)

// Code names what happened.
type Code string

// The event codes of docs/events.md.
const (
	Startup          Code = "startup"
	Shutdown         Code = "shutdown"
	Reload           Code = "reload"
	EnterMaintenance Code = "enterMaintenance"
	ExitMaintenance  Code = "exitMaintenance"
	Started          Code = "started"
	ExitSuccess      Code = "exitSuccess"
	ExitFailed       Code = "exitFailed"
	Healthy          Code = "healthy"
	Unhealthy        Code = "unhealthy"
	Stopping         Code = "stopping"
	Stopped          Code = "stopped"
	TimerExpired     Code = "timerExpired"
	Changed          Code = "changed"
)

// Global is the source of events that belong to the daemon rather than to a job or watch.
const Global = "global"

// WatchPrefix starts the source name of every watch ("watch.db").
const WatchPrefix = "watch."

// TemplatePrefix starts the source name of every template ("template.upstreams").
const TemplatePrefix = "template."

// GlobalCodes are the codes published with source Global.
var GlobalCodes = []Code{Startup, Shutdown, Reload, EnterMaintenance, ExitMaintenance}

// JobCodes are the codes a job may publish; which of them a given job can really emit depends
// on its kind and configuration.
var JobCodes = []Code{Started, ExitSuccess, ExitFailed, Healthy, Unhealthy, Stopping, Stopped, TimerExpired}

// WatchCodes are the codes a watch of a service publishes.
var WatchCodes = []Code{Changed, Healthy, Unhealthy}

// ChangedCodes are the codes a watch of a KV key or prefix, and a template, publish.
var ChangedCodes = []Code{Changed}

// AllCodes lists every code once.
func AllCodes() []Code {
	all := make([]Code, 0, len(GlobalCodes)+len(JobCodes)+1)
	all = append(all, GlobalCodes...)
	all = append(all, JobCodes...)
	return append(all, Changed)
}

// Valid reports whether c is a known code.
func (c Code) Valid() bool {
	for _, k := range AllCodes() {
		if k == c {
			return true
		}
	}
	return false
}

// Event is one thing that happened. Attrs carries optional details (the exit code, a watch's
// instances); it is never modified after publishing.
type Event struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Code   Code              `json:"code"`
	Source string            `json:"source"`
	Attrs  map[string]string `json:"attrs,omitempty"`
}

func (e Event) String() string { return fmt.Sprintf("%s.%s", e.Source, e.Code) }

// Attribute keys used in Event.Attrs.
const (
	AttrExitCode  = "exit_code"
	AttrInstances = "instances"
	AttrValue     = "value" // a KV watch's value: the value of its key, or a JSON object for a prefix
	AttrMessage   = "message"
)

// Publisher is the half of the bus that producers need.
type Publisher interface {
	Publish(code Code, source string, attrs map[string]string) Event
}
