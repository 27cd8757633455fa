package config

import (
	"os"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/events"
)

// Defaults that the reference documents.
const (
	DefaultPath           = "/etc/pilotfish/pilotfish.hcl"
	DefaultSocket         = "/var/run/pilotfish.sock"
	DefaultStopTimeout    = 10 * time.Second
	DefaultJobStopTimeout = 5 * time.Second
	DefaultBackoffInitial = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthFailures = 3
	MainJob               = "main"
)

// Unlimited is Job.Restarts for restarts = "unlimited".
const Unlimited = -1

// Config is one loaded configuration.
type Config struct {
	// Path names the configuration in messages: the paths as given, joined by ", ".
	Path string `json:"-"`
	// Sources are the paths as given (files and directories); a reload reads them again,
	// listing the directories anew (docs/configuration.md#configuration-in-layers).
	Sources []string `json:"-"`
	// Files are the files read, in order.
	Files         []string      `json:"-"`
	StopTimeout   time.Duration `json:"stop_timeout"`
	ExitOnFailure bool          `json:"exit_on_failure"`
	Control       Control       `json:"control"`
	Logging       Logging       `json:"logging"`
	Telemetry     *Telemetry    `json:"telemetry,omitempty"`
	Consul        *Consul       `json:"consul,omitempty"`
	Jobs          []*Job        `json:"jobs"`
	Watches       []*Watch      `json:"watches,omitempty"`
	Templates     []*Template   `json:"templates,omitempty"`
}

// Job returns the job with the given name, or nil.
func (c *Config) Job(name string) *Job {
	for _, j := range c.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Control is the `control` block.
type Control struct {
	Socket string      `json:"socket"`
	Mode   os.FileMode `json:"mode"`
	Group  string      `json:"group,omitempty"`
}

// Logging is the top-level `logging` block: pilotfish's own log lines.
type Logging struct {
	Level  string `json:"level"`
	Format string `json:"format"`
}

// Telemetry is the `telemetry` block.
type Telemetry struct {
	Listen   string    `json:"listen,omitempty"`
	Register bool      `json:"register,omitempty"`
	Metrics  []*Metric `json:"metrics,omitempty"`
}

// Metric is a custom metric declared in `telemetry { metric "NAME" {...} }`.
type Metric struct {
	Name       string              `json:"name"`
	Type       string              `json:"type"`
	Help       string              `json:"help"`
	Labels     []string            `json:"labels,omitempty"`
	Buckets    []float64           `json:"buckets,omitempty"`
	Objectives map[float64]float64 `json:"objectives,omitempty"`
	Range      hcl.Range           `json:"-"`
}

// Consul is the `consul` block.
type Consul struct {
	Address string     `json:"address,omitempty"`
	Scheme  string     `json:"scheme,omitempty"`
	Token   string     `json:"-"`
	TLS     *ConsulTLS `json:"tls,omitempty"`
}

// ConsulTLS is `consul { tls {...} }`.
type ConsulTLS struct {
	CAFile             string `json:"ca_file,omitempty"`
	CertFile           string `json:"cert_file,omitempty"`
	KeyFile            string `json:"key_file,omitempty"`
	ServerName         string `json:"server_name,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// Watch is a `watch "NAME"` block; its events come from source "watch.NAME". It follows
// exactly one of a service, a KV key or a KV prefix.
type Watch struct {
	Name    string    `json:"name"`
	Service string    `json:"service,omitempty"`
	Key     string    `json:"key,omitempty"`
	Prefix  string    `json:"prefix,omitempty"`
	Tag     string    `json:"tag,omitempty"`
	DC      string    `json:"dc,omitempty"`
	Range   hcl.Range `json:"-"`
}

// Source is the event source name of the watch.
func (w *Watch) Source() string { return events.WatchPrefix + w.Name }

// Job is one `job "NAME"` block after interpolation and defaults.
type Job struct {
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Exec        []string          `json:"exec,omitempty"`
	Dir         string            `json:"dir,omitempty"`
	User        string            `json:"user,omitempty"`
	Group       string            `json:"group,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Restarts    int               `json:"restarts"`
	Backoff     Backoff           `json:"backoff"`
	StopSignal  syscall.Signal    `json:"stop_signal"`
	StopTimeout time.Duration     `json:"stop_timeout"`
	// RestartOn says which exits restart the job: RestartOnAny or RestartOnFailure
	// (docs/jobs.md#restarts-and-backoff).
	RestartOn string `json:"restart_on"`
	// SuccessCodes are the exit codes that count as exitSuccess; nil means [0].
	SuccessCodes []int `json:"success_codes"`
	// Autostart false: the job is stopped at start-up until the API starts it.
	Autostart bool `json:"autostart"`
	// Timeout bounds one run: when it passes the run is stopped (docs/configuration.md#job).
	Timeout time.Duration `json:"timeout,omitempty"`
	Overlap string        `json:"overlap,omitempty"`
	When    *When         `json:"when,omitempty"`
	Health  *Health       `json:"health,omitempty"`
	Service *Service      `json:"service,omitempty"`
	Logging JobLogging    `json:"logging"`
	// Limits are resource limits of the job's processes by name (see Rlimits), soft and
	// hard alike; RlimitUnlimited for "unlimited"
	// (docs/configuration.md#limits-and-oom_score_adj).
	Limits map[string]uint64 `json:"limits,omitempty"`
	// OOMScoreAdj, when set, is the oom_score_adj of the job's processes.
	OOMScoreAdj *int `json:"oom_score_adj,omitempty"`
	// Spec holds the kind's own settings (see Kind.Decode).
	Spec Spec `json:"spec,omitempty"`
	// Main marks the job given on the command line after `--`.
	Main bool `json:"main,omitempty"`

	Range hcl.Range `json:"-"`
}

// RegistrationOnly reports whether the job runs no command: an exec job without `exec`,
// which only registers its service and runs its health probe (a process that something
// else runs; docs/configuration.md#job).
func (j *Job) RegistrationOnly() bool { return j.Kind == "exec" && len(j.Exec) == 0 && !j.Main }

// The restart_on policies.
const (
	RestartOnAny     = "any"
	RestartOnFailure = "failure"
)

// Backoff is the restart delay policy.
type Backoff struct {
	Initial time.Duration `json:"initial"`
	Max     time.Duration `json:"max"`
}

// Overlap policies.
const (
	OverlapSkip    = "skip"
	OverlapAllow   = "allow"
	OverlapRestart = "restart"
)

// When is the job's trigger.
type When struct {
	// Source and Once/Each: one event.
	Source string      `json:"source,omitempty"`
	Once   events.Code `json:"once,omitempty"`
	Each   events.Code `json:"each,omitempty"`
	// Interval: periodic, first run at start-up.
	Interval time.Duration `json:"interval,omitempty"`
	// After: all of these, each once, in any order.
	After []Trigger `json:"after,omitempty"`
	// Any: any of these, every time, coalesced by Debounce.
	Any      []Trigger     `json:"any,omitempty"`
	Debounce time.Duration `json:"debounce,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"`

	Range       hcl.Range `json:"-"`
	SourceRange hcl.Range `json:"-"`
}

// Trigger is one (source, code) pair a job waits for.
type Trigger struct {
	Source string      `json:"source"`
	Code   events.Code `json:"code"`
	Range  hcl.Range   `json:"-"`
}

// Triggers lists every (source, code) the when block listens to.
func (w *When) Triggers() []Trigger {
	switch {
	case w == nil:
		return nil
	case w.Once != "":
		return []Trigger{{Source: w.Source, Code: w.Once, Range: w.SourceRange}}
	case w.Each != "":
		return []Trigger{{Source: w.Source, Code: w.Each, Range: w.SourceRange}}
	case len(w.After) > 0:
		return w.After
	default:
		return w.Any
	}
}

// Repeats reports whether the trigger can start the job more than once.
func (w *When) Repeats() bool {
	return w != nil && (w.Each != "" || w.Interval > 0 || len(w.Any) > 0)
}

// IsHook reports whether t makes the job a hook of t.Source rather than a dependent.
func (t Trigger) IsHook() bool { return t.Code == events.Stopping || t.Code == events.Stopped }

// Health is the job's `health` block. Exactly one of the probe fields is set.
type Health struct {
	Exec      []string      `json:"exec,omitempty"`
	HTTP      string        `json:"http,omitempty"`
	TCP       string        `json:"tcp,omitempty"`
	Port      int           `json:"port,omitempty"`
	Log       string        `json:"log,omitempty"`
	Interval  time.Duration `json:"interval"`
	Timeout   time.Duration `json:"timeout"`
	Grace     time.Duration `json:"grace,omitempty"`
	Failures  int           `json:"failures"`
	Successes int           `json:"successes"`
	// OnFailure is what an unhealthy verdict does besides the event: OnFailureIgnore,
	// OnFailureRestart or OnFailureShutdown (docs/jobs.md#health-probes).
	OnFailure string `json:"on_failure"`
}

// The health.on_failure policies.
const (
	OnFailureIgnore   = "ignore"
	OnFailureRestart  = "restart"
	OnFailureShutdown = "shutdown"
)

// Probe names the kind of probe that is set.
func (h *Health) Probe() string {
	switch {
	case h.Exec != nil:
		return "exec"
	case h.HTTP != "":
		return "http"
	case h.TCP != "":
		return "tcp"
	case h.Port != 0:
		return "port"
	default:
		return "log"
	}
}

// Service is the job's `service` block (Consul registration).
type Service struct {
	Name                    string            `json:"name"`
	ID                      string            `json:"id,omitempty"` // "": NAME-HOSTNAME (docs/consul.md#service-ids)
	Port                    int               `json:"port"`
	Tags                    []string          `json:"tags,omitempty"`
	Meta                    map[string]string `json:"meta,omitempty"`
	Interfaces              []string          `json:"interfaces,omitempty"`
	TTL                     time.Duration     `json:"ttl"`
	DeregisterCriticalAfter time.Duration     `json:"deregister_critical_after,omitempty"`
	EnableTagOverride       bool              `json:"enable_tag_override,omitempty"`
	Range                   hcl.Range         `json:"-"`
}

// JobLogging is the job's `logging` block.
type JobLogging struct {
	Prefix bool    `json:"prefix"`
	Color  string  `json:"color"`
	File   string  `json:"file,omitempty"`
	Rotate *Rotate `json:"rotate,omitempty"`
	// Buffer bounds the tail of the job's output kept in memory (docs/jobs.md#logging).
	Buffer     int64 `json:"buffer"`
	Timestamps bool  `json:"timestamps,omitempty"`
}

// The bounds of a job's `logging { buffer }` (docs/configuration.md).
const (
	DefaultLogBuffer = 256 << 10
	MinLogBuffer     = 64
	MaxLogBuffer     = 1 << 30
)

// Rotate is the size-based rotation of a log file.
type Rotate struct {
	Size     int64 `json:"size"`
	Keep     int   `json:"keep"`
	Compress bool  `json:"compress"`
}
