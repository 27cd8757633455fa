package discovery

import (
	"context"
	"errors"
	"time"
)

// Registration is one service as the catalog should know it.
type Registration struct {
	ID                      string
	Name                    string
	Address                 string
	Port                    int
	Tags                    []string
	Meta                    map[string]string
	EnableTagOverride       bool
	TTL                     time.Duration
	DeregisterCriticalAfter time.Duration
	Status                  string // Passing or Critical: the state the check must show
	Output                  string // the check's output (the probe's message)
}

// CheckID is the ID of a registration's TTL check.
func (r Registration) CheckID() string { return "service:" + r.ID }

// Check states.
const (
	Passing  = "passing"
	Critical = "critical"
)

// MetaInstance is the service meta key that holds the token of the pilotfish that registered
// the service: it tells this instance's registrations from another's under the same ID.
const MetaInstance = "pilotfish_instance"

// Holder is what the agent holds under a service ID.
type Holder struct {
	Exists   bool
	Instance string // its MetaInstance ("" when not registered by pilotfish)
	Lapsed   bool   // its TTL check expired: whoever fed it stopped (killed, frozen, gone)
}

// Instance is one healthy instance of a watched service.
type Instance struct {
	ID      string            `json:"id"`
	Service string            `json:"service"`
	Node    string            `json:"node"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta,omitempty"`
	// NodeAddress is the node's own address (templates' .NodeAddress); Address falls back
	// to it when the service has none.
	NodeAddress string `json:"-"`
}

// KVPair is one key of Consul's KV store.
type KVPair struct {
	Key         string
	Value       string
	Flags       uint64
	CreateIndex uint64
	ModifyIndex uint64
}

// KVQuery selects one key, or with Recurse every key that starts with Key.
type KVQuery struct {
	Key     string
	DC      string
	Recurse bool
}

// CatalogService is one service of the catalog and the tags its instances carry.
type CatalogService struct {
	Name string
	Tags []string
}

// WatchQuery selects the instances a watch follows.
type WatchQuery struct {
	Service string
	Tag     string
	DC      string
}

// ErrUnknownCheck means the agent does not know the check: it was restarted and forgot the
// service, which must be registered again.
var ErrUnknownCheck = errors.New("the agent does not know this check")

// ErrNewConnection means a blocking query found the connection its last answer came on
// closed. The agent may have restarted since, and a new agent's indexes start over: a query
// with an index from before would wait until they pass it. Check the agent, then ask again.
var ErrNewConnection = errors.New("the connection to the agent was closed since the last answer")

// Backend is a service catalog.
type Backend interface {
	Register(ctx context.Context, r Registration) error
	Deregister(ctx context.Context, id string) error
	// UpdateTTL sets a TTL check's state; ErrUnknownCheck if the agent forgot it.
	UpdateTTL(ctx context.Context, checkID, status, output string) error
	// Holder tells what the agent holds under a service ID.
	Holder(ctx context.Context, id string) (Holder, error)
	// Healthy runs a blocking query for the passing instances of q. It returns when they
	// changed since index (0: at once) or after a while, with the index to wait on next.
	// With sameConn it returns ErrNewConnection rather than wait on a new connection.
	Healthy(ctx context.Context, q WatchQuery, index uint64, sameConn bool) ([]Instance, uint64, error)
	// HealthyNow answers at once, on the connection for calls (a watch that polls while the
	// agent is crowded); with indexOnly, with the index only and no instance.
	HealthyNow(ctx context.Context, q WatchQuery, indexOnly bool) ([]Instance, uint64, error)
	// KV runs a blocking query on the KV store (index 0: at once): the pairs q selects,
	// sorted by key, none when the key is missing. sameConn as for Healthy.
	KV(ctx context.Context, q KVQuery, index uint64, sameConn bool) ([]KVPair, uint64, error)
	// KVNow answers at once, on the connection for calls.
	KVNow(ctx context.Context, q KVQuery) ([]KVPair, uint64, error)
	// Services runs a blocking query on the catalog's services of a datacenter ("": the
	// agent's), sorted by name. sameConn as for Healthy.
	Services(ctx context.Context, dc string, index uint64, sameConn bool) ([]CatalogService, uint64, error)
	// ServicesNow answers at once, on the connection for calls.
	ServicesNow(ctx context.Context, dc string) ([]CatalogService, uint64, error)
	// WaitChange blocks until the catalog changes after index, or the agent goes away;
	// sameConn as for Healthy.
	WaitChange(ctx context.Context, index uint64, sameConn bool) (uint64, error)
	// AgentID identifies the agent process: it changes when an agent that keeps no state
	// (dev mode, lost data dir) restarts and forgets the services registered with it.
	AgentID(ctx context.Context) (string, error)
}
