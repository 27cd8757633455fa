package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/pilotfish/pilotfish/config"
)

const (
	// blockingWait is how long a blocking query may wait for a change.
	blockingWait = 5 * time.Minute
	// restIdle is how long the connection for calls other than blocking queries stays open
	// without a call: a burst (register, then the check's state) reuses it, and between
	// heartbeats an instance holds only its blocking queries' connections, so that hundreds
	// of instances behind one address stay within Consul's per-client limit
	// (limits.http_max_conns_per_client, 200 by default).
	restIdle = 2 * time.Second
	// blockIdle is how long a connection of the blocking queries may sit unused: longer than
	// the longest backoff between two queries of a watch.
	blockIdle = 8 * time.Second
	// maxAnswer bounds the answer to a blocking query (a service of 100,000 instances).
	maxAnswer = 512 << 20
)

// Consul is the Backend on a Consul agent's HTTP API. It holds at most two long-lived
// connections to the agent: one for the blocking queries and the agent's identity, asked
// between them (one more for each watch beyond the first), one for everything else
// (docs/consul.md#connections-and-retries).
type Consul struct {
	rest      *api.Client // registrations, checks, the agent's identity: one connection at most
	restConf  *api.Config // their settled configurations, for the requests made by hand
	blockConf *api.Config // blocking queries, each on its own connection
	bufs      sync.Pool   // of *bytes.Buffer: an answer's bytes, reused at the next
}

// NewConsul builds a client from the consul block; CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN and
// the other CONSUL_* variables of Consul's own tools fill what the block leaves out.
func NewConsul(cfg *config.Consul) (*Consul, error) {
	rest, restConf, err := newClient(cfg, func(t *http.Transport) {
		// One connection: calls wait for it in turn (each has its own deadline) rather than
		// open more, and no spare connection is ever dialled to sit idle.
		t.MaxConnsPerHost, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 1, 1, restIdle
	})
	if err != nil {
		return nil, err
	}
	_, blockConf, err := newClient(cfg, func(t *http.Transport) {
		// A blocking query follows the previous one on the same connection, idle between
		// them for a moment (a backoff at most, 5 s). A connection idle longer is a spare
		// opened while every other was busy (the agent's identity asked as the queries
		// started): it is closed rather than held for minutes.
		t.MaxIdleConnsPerHost, t.IdleConnTimeout = 16, blockIdle
	})
	if err != nil {
		return nil, err
	}
	return &Consul{rest: rest, restConf: restConf, blockConf: blockConf}, nil
}

func newClient(cfg *config.Consul, tune func(*http.Transport)) (*api.Client, *api.Config, error) {
	c := api.DefaultConfig() // reads CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, …
	if cfg.Address != "" {
		c.Address = cfg.Address
	}
	if cfg.Scheme != "" {
		c.Scheme = cfg.Scheme
	}
	if cfg.Token != "" {
		c.Token = cfg.Token
	}
	if t := cfg.TLS; t != nil {
		c.TLSConfig = api.TLSConfig{Address: t.ServerName, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, InsecureSkipVerify: t.InsecureSkipVerify}
		if cfg.Scheme == "" && os.Getenv("CONSUL_HTTP_SSL") == "" {
			c.Scheme = "https"
		}
	}
	// No client-wide timeout: blocking queries hold a request open for minutes; every other
	// call carries its own deadline in its context.
	client, err := api.NewClient(c)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot set up the Consul client: %w", err)
	}
	// NewClient settled the transport (for a unix:// address, a new one): tune that one
	// before its first use. No gzip: the agent is near, and compressing every answer of a
	// watched service costs it more than sending it.
	if t, ok := c.HttpClient.Transport.(*http.Transport); ok {
		t.DisableKeepAlives = false
		t.DisableCompression = true
		t.MaxIdleConns = 0
		tune(t)
	}
	return client, c, nil
}

func (c *Consul) Register(ctx context.Context, r Registration) error {
	reg := &api.AgentServiceRegistration{
		ID:                r.ID,
		Name:              r.Name,
		Address:           r.Address,
		Port:              r.Port,
		Tags:              r.Tags,
		Meta:              r.Meta,
		EnableTagOverride: r.EnableTagOverride,
		Check: &api.AgentServiceCheck{
			CheckID: r.CheckID(),
			Name:    "pilotfish health of " + r.Name,
			TTL:     r.TTL.String(),
			Status:  r.Status,
			Notes:   "fed by pilotfish from the job's health check",
		},
	}
	if r.DeregisterCriticalAfter > 0 {
		reg.Check.DeregisterCriticalServiceAfter = r.DeregisterCriticalAfter.String()
	}
	return c.rest.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
}

func (c *Consul) Deregister(ctx context.Context, id string) error {
	err := c.rest.Agent().ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx))
	if isNotFound(err) {
		return nil
	}
	return err
}

func (c *Consul) UpdateTTL(ctx context.Context, checkID, status, output string) error {
	err := c.rest.Agent().UpdateTTLOpts(checkID, truncate(output, 4096), status, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil && (isNotFound(err) || strings.Contains(err.Error(), "does not have associated TTL") || strings.Contains(err.Error(), "Unknown check")) {
		return fmt.Errorf("%w: %v", ErrUnknownCheck, err)
	}
	return err
}

func (c *Consul) Holder(ctx context.Context, id string) (Holder, error) {
	var svc struct{ Meta map[string]string }
	if err := c.getJSON(ctx, "/v1/agent/service/"+url.PathEscape(id), nil, &svc); err != nil {
		if isNotFound(err) {
			return Holder{}, nil
		}
		return Holder{}, err
	}
	h := Holder{Exists: true, Instance: svc.Meta[MetaInstance]}
	var checks map[string]struct{ Status, Output string }
	filter := url.Values{"filter": {`CheckID == "service:` + id + `"`}}
	if err := c.getJSON(ctx, "/v1/agent/checks", filter, &checks); err != nil {
		return Holder{}, err
	}
	for _, chk := range checks {
		h.Lapsed = chk.Status == api.HealthCritical && strings.HasPrefix(chk.Output, "TTL expired")
	}
	return h, nil
}

// CloseIdleConnections closes the idle connections at once (when the agent is crowded).
func (c *Consul) CloseIdleConnections() {
	c.restConf.HttpClient.CloseIdleConnections()
	c.blockConf.HttpClient.CloseIdleConnections()
}

// getJSON is a GET of the rest client, decoded into out.
func (c *Consul) getJSON(ctx context.Context, path string, params url.Values, out any) error {
	buf, _, err := c.get(ctx, c.restConf, path, params, false)
	if err != nil {
		return err
	}
	defer c.bufs.Put(buf)
	if err := json.Unmarshal(buf.Bytes(), out); err != nil {
		return fmt.Errorf("cannot read the answer to %s: %w", path, err)
	}
	return nil
}

func (c *Consul) Healthy(ctx context.Context, q WatchQuery, index uint64, sameConn bool) ([]Instance, uint64, error) {
	buf, next, err := c.blocking(ctx, healthPath(q), healthParams(q), index, sameConn, false)
	if err != nil {
		return nil, 0, err
	}
	return c.instances(q, buf, next)
}

func (c *Consul) HealthyNow(ctx context.Context, q WatchQuery, indexOnly bool) ([]Instance, uint64, error) {
	params := healthParams(q)
	if indexOnly {
		params.Set("filter", `Service.ID == ""`) // no instance matches: the answer is [] and its index
	}
	buf, next, err := c.get(ctx, c.restConf, healthPath(q), params, false)
	if err != nil {
		return nil, 0, err
	}
	return c.instances(q, buf, next)
}

func healthPath(q WatchQuery) string { return "/v1/health/service/" + url.PathEscape(q.Service) }

func healthParams(q WatchQuery) url.Values {
	// Any server may answer (stale). The agent answers blocking queries from one view per
	// service that it keeps up to date however many watch it (its streaming backend): ?cached
	// adds nothing to that, and a first ?cached answer was seen empty (docs/consul.md#watches).
	params := url.Values{"passing": {"1"}, "stale": {""}}
	if q.Tag != "" {
		params.Set("tag", q.Tag)
	}
	if q.DC != "" {
		params.Set("dc", q.DC)
	}
	return params
}

// instances decodes an answer of /v1/health/service and gives its buffer back.
func (c *Consul) instances(q WatchQuery, buf *bytes.Buffer, next uint64) ([]Instance, uint64, error) {
	entries, err := decodeHealth(buf.Bytes()) // copies what it keeps
	c.bufs.Put(buf)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot read the answer about %q: %w", q.Service, err)
	}
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		addr := e.Service.Address
		if addr == "" {
			addr = e.Node.Address
		}
		inst := Instance{ID: e.Service.ID, Service: e.Service.Service, Node: e.Node.Node, Address: addr,
			Port: e.Service.Port, Tags: e.Service.Tags, Meta: e.Service.Meta, NodeAddress: e.Node.Address}
		if inst.Tags == nil {
			inst.Tags = []string{}
		}
		out = append(out, inst)
	}
	return out, next, nil
}

func (c *Consul) WaitChange(ctx context.Context, index uint64, sameConn bool) (uint64, error) {
	buf, next, err := c.blocking(ctx, "/v1/catalog/services", url.Values{}, index, sameConn, false)
	if err == nil {
		c.bufs.Put(buf)
	}
	return next, err
}

// blocking runs one blocking query on the block client and returns its answer and index.
// With sameConn and an index, it refuses to go over a new connection (ErrNewConnection): the
// one the last answer came on is gone, maybe with the agent.
// With notFound, a 404 is an empty answer (a KV key that does not exist), with its index.
func (c *Consul) blocking(ctx context.Context, path string, params url.Values, index uint64, sameConn, notFound bool) (*bytes.Buffer, uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fresh atomic.Bool
	if sameConn && index > 0 {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if !i.Reused {
				fresh.Store(true)
				cancel()
			}
		}})
	}
	if index > 0 {
		params.Set("index", strconv.FormatUint(index, 10))
		params.Set("wait", strconv.FormatInt(blockingWait.Milliseconds(), 10)+"ms")
	}
	buf, next, err := c.get(ctx, c.blockConf, path, params, notFound)
	if fresh.Load() {
		return nil, 0, ErrNewConnection
	}
	return buf, next, err
}

// get sends a GET with conf's client the way the api package would (address, scheme, token,
// basic auth) and returns the answer (in a buffer of c.bufs) and its X-Consul-Index. With
// notFound, a 404 is an empty answer with its index.
func (c *Consul) get(ctx context.Context, conf *api.Config, path string, params url.Values, notFound bool) (*bytes.Buffer, uint64, error) {
	host := conf.Address
	if strings.HasPrefix(host, "/") { // a unix socket: any host will do
		host = "localhost"
	}
	// path is escaped (a name may hold a '/'): RawPath keeps it as it is.
	u := url.URL{Scheme: conf.Scheme, Host: host, RawPath: conf.PathPrefix + path, RawQuery: params.Encode()}
	u.Path, _ = url.PathUnescape(u.RawPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	token := conf.Token
	if token == "" && conf.TokenFile != "" {
		if b, err := os.ReadFile(conf.TokenFile); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	if a := conf.HttpAuth; a != nil {
		req.SetBasicAuth(a.Username, a.Password)
	}
	resp, err := conf.HttpClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	index, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if notFound && resp.StatusCode == http.StatusNotFound && index > 0 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		buf := c.buf()
		return buf, index, nil
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_, _ = io.Copy(io.Discard, resp.Body) // the connection goes back to the pool
		return nil, 0, api.StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	buf := c.buf()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxAnswer)); err != nil {
		c.bufs.Put(buf)
		return nil, 0, fmt.Errorf("cannot read the answer to %s: %w", path, err)
	}
	return buf, index, nil
}

// buf is an empty buffer of c.bufs.
func (c *Consul) buf() *bytes.Buffer {
	buf, _ := c.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	return buf
}

func (c *Consul) AgentID(ctx context.Context) (string, error) {
	// Asked between two blocking queries: on their connection, not the one for calls.
	buf, _, err := c.get(ctx, c.blockConf, "/v1/agent/self", nil, false)
	if err != nil {
		return "", err
	}
	defer c.bufs.Put(buf)
	var self struct {
		Config struct{ NodeID string }
	}
	if err := json.Unmarshal(buf.Bytes(), &self); err != nil {
		return "", fmt.Errorf("cannot read the answer to /v1/agent/self: %w", err)
	}
	return self.Config.NodeID, nil
}

func isNotFound(err error) bool {
	var se api.StatusError
	if err == nil {
		return false
	}
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return true
	}
	return strings.Contains(err.Error(), "404")
}

// isTooMany reports a 429: Consul refuses the connections of an address over its
// limits.http_max_conns_per_client (and its rate limits answer the same).
func isTooMany(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusTooManyRequests
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
