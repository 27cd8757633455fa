package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/backoff"
)

// webhookKind sends an HTTP request describing the event that triggered it.
type webhookKind struct{}

// WebhookSpec is the webhook kind's part of a job's configuration.
type WebhookSpec struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers,omitempty"`
	Timeout time.Duration     `json:"timeout"`
	Retries int               `json:"retries"`
}

// Equal reports whether other is the same webhook spec.
func (s *WebhookSpec) Equal(other config.Spec) bool {
	o, ok := other.(*WebhookSpec)
	return ok && s.URL == o.URL && s.Method == o.Method && maps.Equal(s.Headers, o.Headers) &&
		s.Timeout == o.Timeout && s.Retries == o.Retries
}

// Webhook defaults.
const (
	DefaultWebhookTimeout = 10 * time.Second
	DefaultWebhookRetries = 2
)

func (webhookKind) Schema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "url", Required: true}, {Name: "method"},
		{Name: "headers"}, {Name: "timeout"}, {Name: "retries"}}}
}
func (webhookKind) ExecRule() config.ExecRule { return config.ExecForbidden }
func (webhookKind) Emits(*config.Job) []events.Code {
	return processCodes
}

func (webhookKind) Decode(d *config.Decoder, j *config.Job, c *hcl.BodyContent) {
	spec := &WebhookSpec{Method: http.MethodPost, Timeout: DefaultWebhookTimeout, Retries: DefaultWebhookRetries}
	d.String(c.Attributes, "url", &spec.URL)
	if d.String(c.Attributes, "method", &spec.Method) {
		spec.Method = strings.ToUpper(spec.Method)
		d.OneOf(c.Attributes, "method", spec.Method, "GET", "POST", "PUT", "PATCH", "DELETE")
	}
	d.StringMap(c.Attributes, "headers", &spec.Headers)
	d.Duration(c.Attributes, "timeout", &spec.Timeout)
	d.Int(c.Attributes, "retries", 0, 100, &spec.Retries)
	j.Spec = spec
	if j.Overlap == "" {
		j.Overlap = config.OverlapAllow
	}
	if a := c.Attributes["url"]; a != nil {
		if u, err := url.Parse(spec.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.Errorf(a.Expr.Range(), "%q is not an http:// or https:// URL", spec.URL)
		}
	}
	if j.Health != nil {
		d.Errorf(j.Range, "a webhook job has no process to check; remove its health block")
	}
	if !j.Autostart {
		d.Errorf(j.Range, "a webhook job sends a request each time it is started, by its trigger or by hand, so it cannot wait stopped; remove autostart = false")
	}
	if j.User != "" || j.Group != "" || j.Dir != "" {
		d.Warnf(j.Range, "user, group and dir do not apply to a webhook job")
	}
}

func (webhookKind) NewDriver(job *config.Job, rt *Runtime) (Driver, error) {
	return &webhookDriver{job: job, rt: rt, spec: job.Spec.(*WebhookSpec), client: &http.Client{}}, nil
}

type webhookDriver struct {
	job    *config.Job
	rt     *Runtime
	spec   *WebhookSpec
	client *http.Client
}

func (d *webhookDriver) Arm() (<-chan Activation, State, error) { return nil, "", nil }
func (d *webhookDriver) Disarm()                                {}
func (d *webhookDriver) Concurrent() bool                       { return true }
func (d *webhookDriver) Close()                                 { d.client.CloseIdleConnections() }

// WebhookBody is the JSON a webhook sends.
type WebhookBody struct {
	Code     string    `json:"code"`
	Source   string    `json:"source"`
	Job      string    `json:"job"`
	Status   string    `json:"status"`
	Time     time.Time `json:"time"`
	Seq      uint64    `json:"seq,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
}

func (d *webhookDriver) Start(req RunRequest) (Run, error) {
	ev := req.Event
	body := WebhookBody{Code: string(ev.Code), Source: ev.Source, Job: d.job.Name, Time: ev.Time, Seq: ev.Seq}
	if body.Time.IsZero() {
		body.Time = time.Now()
	}
	if d.rt.Lookup != nil {
		body.Status = d.rt.Lookup(ev.Source)
	}
	if s, ok := ev.Attrs[events.AttrExitCode]; ok {
		if n, err := strconv.Atoi(s); err == nil {
			body.ExitCode = &n
		}
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { req.Exit(d.call(ctx, payload)) }()
	return &callRun{cancel: cancel}, nil
}

// call sends the request, retrying network errors and 5xx answers with backoff (from about
// 100 ms, doubling up to 5 s, with jitter). Stopping the run (ctx) ends it at once,
// whatever attempt or wait it is in: a webhook never holds a stop or a shutdown.
func (d *webhookDriver) call(ctx context.Context, payload []byte) Result {
	bo := backoff.NewPeer()
	var last error
	for attempt := 0; attempt <= d.spec.Retries; attempt++ {
		if attempt > 0 {
			delay := bo.Next()
			d.rt.Log.Warn("webhook failed; retrying", "job", d.job.Name, "attempt", attempt+1, "in", delay.Round(time.Millisecond), "err", last)
			if !backoff.Sleep(ctx, delay) {
				return Result{Code: 1, Err: ctx.Err()}
			}
		}
		status, err := d.once(ctx, payload)
		if err == nil {
			d.rt.Log.Info("webhook delivered", "job", d.job.Name, "url", d.spec.URL, "status", status)
			return Result{}
		}
		last = err
		if ctx.Err() != nil || status >= 400 && status < 500 {
			break // a client error will not get better
		}
	}
	d.rt.Log.Error("webhook failed", "job", d.job.Name, "url", d.spec.URL, "err", last)
	return Result{Code: 1, Err: last}
}

func (d *webhookDriver) once(ctx context.Context, payload []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.spec.Timeout)
	defer cancel()
	var body io.Reader
	if d.spec.Method != http.MethodGet {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, d.spec.Method, d.spec.URL, body)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "pilotfish")
	for k, v := range d.spec.Headers {
		req.Header.Set(k, v)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s", d.spec.Method, d.spec.URL, resp.Status)
	}
	return resp.StatusCode, nil
}

// callRun is a run with no process: an HTTP call.
type callRun struct {
	cancel context.CancelFunc
}

func (r *callRun) Pid() int                    { return 0 }
func (r *callRun) Signal(syscall.Signal) error { r.cancel(); return nil }
