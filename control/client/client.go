package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultSocket is used when neither -socket nor $PILOTFISH_SOCKET says otherwise.
const DefaultSocket = "/var/run/pilotfish.sock"

// ErrUnreachable means no daemon answers on the socket.
var ErrUnreachable = errors.New("pilotfish is not reachable")

// SocketPath picks the socket: the flag value, then $PILOTFISH_SOCKET, then the default.
func SocketPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("PILOTFISH_SOCKET"); p != "" {
		return p
	}
	return DefaultSocket
}

// Client talks to one daemon.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client for the daemon listening on socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Socket is the socket path the client uses.
func (c *Client) Socket() string { return c.socket }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("cannot read the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// request sends one request and turns error answers into *APIError.
func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	resp, err := c.raw(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// raw sends one request; only transport failures are errors.
func (c *Client) raw(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://pilotfish"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.socket, unwrapDial(err))
	}
	return resp, nil
}

func unwrapDial(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Message == "" {
		return &APIError{StatusCode: resp.StatusCode, Kind: KindInternal, Message: strings.TrimSpace(string(b))}
	}
	return &APIError{StatusCode: resp.StatusCode, Kind: eb.Error.Kind, Message: eb.Error.Message, Diagnostics: eb.Diagnostics}
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) (Ping, error) {
	var p Ping
	return p, c.do(ctx, http.MethodGet, "/v1/ping", nil, &p)
}

// Status returns every job and watch.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, name string) (Job, error) {
	var j Job
	return j, c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(name), nil, &j)
}

// Start starts a job now.
func (c *Client) Start(ctx context.Context, name string) (Job, error) {
	return c.jobVerb(ctx, name, "start")
}

// Stop stops a job and waits until it has stopped.
func (c *Client) Stop(ctx context.Context, name string) (Job, error) {
	return c.jobVerb(ctx, name, "stop")
}

// Restart stops a job if it runs and starts it again.
func (c *Client) Restart(ctx context.Context, name string) (Job, error) {
	return c.jobVerb(ctx, name, "restart")
}

func (c *Client) jobVerb(ctx context.Context, name, verb string) (Job, error) {
	var j Job
	return j, c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/"+verb, struct{}{}, &j)
}

// Signal sends a signal ("HUP", "SIGUSR1", "15") to a job's processes.
func (c *Client) Signal(ctx context.Context, name, signal string) error {
	return c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/signal", Signal{Signal: signal}, nil)
}

// Reload re-reads the configuration file.
func (c *Client) Reload(ctx context.Context) (Reload, error) {
	var r Reload
	return r, c.do(ctx, http.MethodPost, "/v1/reload", struct{}{}, &r)
}

// Maintenance switches maintenance mode on or off.
func (c *Client) Maintenance(ctx context.Context, on bool) error {
	verb := "disable"
	if on {
		verb = "enable"
	}
	return c.do(ctx, http.MethodPost, "/v1/maintenance/"+verb, struct{}{}, nil)
}

// PutEnv sets environment values for later job starts and the next reload.
func (c *Client) PutEnv(ctx context.Context, env map[string]string) error {
	return c.do(ctx, http.MethodPost, "/v1/environ", env, nil)
}

// PutMetrics updates custom metrics: counters add, gauges set, histograms and summaries
// observe.
func (c *Client) PutMetrics(ctx context.Context, values map[string]float64) error {
	return c.do(ctx, http.MethodPost, "/v1/metric", values, nil)
}

// PutMetric updates one custom metric, with labels.
func (c *Client) PutMetric(ctx context.Context, m Metric) error {
	return c.do(ctx, http.MethodPost, "/v1/metric", m, nil)
}

// Health returns the daemon's health answer and its HTTP status (200 or 503).
func (c *Client) Health(ctx context.Context) (Health, int, error) {
	var h Health
	resp, err := c.raw(ctx, http.MethodGet, "/v1/health", nil)
	if err != nil {
		return h, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return h, resp.StatusCode, decodeError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, resp.StatusCode, fmt.Errorf("cannot read the health answer: %w", err)
	}
	return h, resp.StatusCode, nil
}

// Shutdown asks the daemon to shut the container down.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/shutdown", struct{}{}, nil)
}

// Metrics returns the Prometheus exposition text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.request(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Events streams bus events to fn: first the replay of the daemon's ring after since (when
// since is not nil), then, if follow is set, new events until ctx ends or fn returns an
// error.
func (c *Client) Events(ctx context.Context, since *uint64, follow bool, fn func(Event) error) error {
	q := url.Values{}
	if since != nil {
		q.Set("since", strconv.FormatUint(*since, 10))
	}
	if !follow {
		q.Set("follow", "false")
	}
	path := "/v1/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
			return fmt.Errorf("bad event from the daemon: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Logs reads GET /v1/logs: the newest n lines (-1: every line kept) of jobs (every job
// when none), oldest first, then, if follow is set, new lines as they come until ctx
// ends or fn returns an error. A follower that fell behind gets a line of stream
// StreamNotice saying how many lines it lost (LogLine.Dropped).
func (c *Client) Logs(ctx context.Context, jobs []string, n int, follow bool, fn func(LogLine) error) error {
	q := url.Values{}
	if len(jobs) > 0 {
		q.Set("jobs", strings.Join(jobs, ","))
	}
	q.Set("n", strconv.Itoa(n))
	if follow {
		q.Set("follow", "true")
	}
	resp, err := c.request(ctx, http.MethodGet, "/v1/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var l LogLine
		if err := dec.Decode(&l); err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("bad log line from the daemon: %w", err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
}
