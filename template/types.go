package template

import (
	"fmt"
	"regexp"
	"slices"
	"sync"

	"github.com/pilotfish/pilotfish/discovery"
)

// The values templates see, shaped and named like consul-template's so that existing
// templates work (docs/templates.md#what-the-functions-return).

// Service is one healthy instance, as `service` returns it.
type Service struct {
	ID          string
	Name        string
	Node        string
	NodeAddress string
	Address     string // the service's address, or the node's when it has none
	Port        int
	Tags        ServiceTags
	Meta        map[string]string
	ServiceMeta map[string]string // Meta, under consul-template's name
	Status      string            // always "passing": only passing instances are listed
}

// ServiceTags are a service's tags.
type ServiceTags []string

// Contains reports whether the tags hold t: {{ if .Tags.Contains "primary" }}.
func (t ServiceTags) Contains(tag string) bool { return slices.Contains(t, tag) }

// CatalogSnippet is one service of the catalog, as `services` returns it.
type CatalogSnippet struct {
	Name string
	Tags ServiceTags
}

// KeyPair is one key, as `ls` and `tree` return it: Key is relative to the prefix asked
// for, Path is the whole key.
type KeyPair struct {
	Path        string
	Key         string
	Value       string
	Flags       uint64
	CreateIndex uint64
	ModifyIndex uint64
}

func services(list []discovery.Instance) []*Service {
	out := make([]*Service, len(list))
	for i, in := range list {
		meta := in.Meta
		if meta == nil {
			meta = map[string]string{}
		}
		out[i] = &Service{ID: in.ID, Name: in.Service, Node: in.Node, NodeAddress: in.NodeAddress, Address: in.Address,
			Port: in.Port, Tags: ServiceTags(in.Tags), Meta: meta, ServiceMeta: meta, Status: "passing"}
	}
	return out
}

func snippets(list []discovery.CatalogService) []*CatalogSnippet {
	out := make([]*CatalogSnippet, len(list))
	for i, s := range list {
		out[i] = &CatalogSnippet{Name: s.Name, Tags: ServiceTags(s.Tags)}
	}
	return out
}

// The arguments of the catalog functions, as consul-template writes them.
var (
	serviceArg = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:([[:word:]=:\-./]+)\.)?([[:word:]\-/]+)(?:@([[:word:].\-]+))?$`)
	})
	keyArg = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([^@]*)(?:@([[:word:].\-]+))?$`) })
	dcArg  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:@([[:word:].\-]+))?$`) })
)

// serviceQuery reads "name", "tag.name", "name@dc" or "tag.name@dc".
func serviceQuery(s string) (discovery.ViewKey, error) {
	m := serviceArg().FindStringSubmatch(s)
	if m == nil {
		return discovery.ViewKey{}, fmt.Errorf("service %q: write NAME, TAG.NAME, NAME@DC or TAG.NAME@DC", s)
	}
	return discovery.ViewKey{Kind: discovery.ViewService, Name: m[2], Tag: m[1], DC: m[3]}, nil
}

// kvQuery reads "path" or "path@dc".
func kvQuery(kind discovery.ViewKind, s string) (discovery.ViewKey, error) {
	m := keyArg().FindStringSubmatch(s)
	if m == nil || m[1] == "" && kind == discovery.ViewKVKey {
		return discovery.ViewKey{}, fmt.Errorf("key %q: write PATH or PATH@DC", s)
	}
	return discovery.ViewKey{Kind: kind, Name: m[1], DC: m[2]}, nil
}

// servicesQuery reads "" or "@dc".
func servicesQuery(args []string) (discovery.ViewKey, error) {
	s := ""
	if len(args) > 1 {
		return discovery.ViewKey{}, fmt.Errorf("services takes at most one argument, @DC")
	}
	if len(args) == 1 {
		s = args[0]
	}
	m := dcArg().FindStringSubmatch(s)
	if m == nil {
		return discovery.ViewKey{}, fmt.Errorf("services %q: write @DC, or nothing", s)
	}
	return discovery.ViewKey{Kind: discovery.ViewServices, DC: m[1]}, nil
}

// describe names a dependency for messages.
func describe(k discovery.ViewKey) string {
	s := k.Name
	if k.Tag != "" {
		s = k.Tag + "." + s
	}
	if k.DC != "" {
		s += "@" + k.DC
	}
	switch k.Kind {
	case discovery.ViewServices:
		return "services" + s
	case discovery.ViewKVPrefix:
		return fmt.Sprintf("prefix %q", s)
	}
	return fmt.Sprintf("%s %q", k.Kind, s)
}
