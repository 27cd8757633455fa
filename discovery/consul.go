package discovery

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/pilotfish/pilotfish/config"
)

// blockingWait is how long a blocking query may wait for a change.
const blockingWait = 5 * time.Minute

// Consul is the Backend on a Consul agent's HTTP API.
type Consul struct {
	c *api.Client
}

// NewConsul builds a client from the consul block; CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN and
// the other CONSUL_* variables of Consul's own tools fill what the block leaves out.
func NewConsul(cfg *config.Consul) (*Consul, error) {
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
		return nil, fmt.Errorf("cannot set up the Consul client: %w", err)
	}
	return &Consul{c: client}, nil
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
	return c.c.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
}

func (c *Consul) Deregister(ctx context.Context, id string) error {
	err := c.c.Agent().ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx))
	if isNotFound(err) {
		return nil
	}
	return err
}

func (c *Consul) UpdateTTL(ctx context.Context, checkID, status, output string) error {
	err := c.c.Agent().UpdateTTLOpts(checkID, truncate(output, 4096), status, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil && (isNotFound(err) || strings.Contains(err.Error(), "does not have associated TTL") || strings.Contains(err.Error(), "Unknown check")) {
		return fmt.Errorf("%w: %v", ErrUnknownCheck, err)
	}
	return err
}

func (c *Consul) Healthy(ctx context.Context, q WatchQuery, index uint64) ([]Instance, uint64, error) {
	opts := (&api.QueryOptions{Datacenter: q.DC, WaitIndex: index, WaitTime: blockingWait}).WithContext(ctx)
	entries, meta, err := c.c.Health().Service(q.Service, q.Tag, true, opts)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		addr := e.Service.Address
		if addr == "" && e.Node != nil {
			addr = e.Node.Address
		}
		inst := Instance{ID: e.Service.ID, Service: e.Service.Service, Address: addr, Port: e.Service.Port,
			Tags: e.Service.Tags, Meta: e.Service.Meta}
		if inst.Tags == nil {
			inst.Tags = []string{}
		}
		if e.Node != nil {
			inst.Node = e.Node.Node
		}
		out = append(out, inst)
	}
	return out, meta.LastIndex, nil
}

func (c *Consul) WaitChange(ctx context.Context, index uint64) (uint64, error) {
	_, meta, err := c.c.Catalog().Services((&api.QueryOptions{WaitIndex: index, WaitTime: blockingWait}).WithContext(ctx))
	if err != nil {
		return 0, err
	}
	return meta.LastIndex, nil
}

func (c *Consul) AgentID(ctx context.Context) (string, error) {
	var self struct {
		Config struct{ NodeID string }
	}
	if _, err := c.c.Raw().Query("/v1/agent/self", &self, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return "", err
	}
	return self.Config.NodeID, nil
}

func isNotFound(err error) bool {
	var se api.StatusError
	if err == nil {
		return false
	}
	if asStatus(err, &se) && se.Code == http.StatusNotFound {
		return true
	}
	return strings.Contains(err.Error(), "404")
}

func asStatus(err error, se *api.StatusError) bool {
	s, ok := err.(api.StatusError)
	if ok {
		*se = s
	}
	return ok
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
