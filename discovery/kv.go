package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// The KV store and the catalog's list of services, as the views of templates and KV watches
// read them (docs/templates.md).

func (c *Consul) KV(ctx context.Context, q KVQuery, index uint64, sameConn bool) ([]KVPair, uint64, error) {
	buf, next, err := c.blocking(ctx, kvPath(q.Key), kvParams(q), index, sameConn, true)
	if err != nil {
		return nil, 0, err
	}
	return c.pairs(q, buf, next)
}

func (c *Consul) KVNow(ctx context.Context, q KVQuery) ([]KVPair, uint64, error) {
	buf, next, err := c.get(ctx, c.restConf, kvPath(q.Key), kvParams(q), true)
	if err != nil {
		return nil, 0, err
	}
	return c.pairs(q, buf, next)
}

// kvPath escapes each segment of a key, keeping its slashes.
func kvPath(key string) string {
	segs := strings.Split(strings.TrimPrefix(key, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/v1/kv/" + strings.Join(segs, "/")
}

func kvParams(q KVQuery) url.Values {
	params := url.Values{"stale": {""}}
	if q.Recurse {
		params.Set("recurse", "")
	}
	if q.DC != "" {
		params.Set("dc", q.DC)
	}
	return params
}

// pairs decodes an answer of /v1/kv and gives its buffer back.
func (c *Consul) pairs(q KVQuery, buf *bytes.Buffer, next uint64) ([]KVPair, uint64, error) {
	defer c.bufs.Put(buf)
	out := []KVPair{}
	if buf.Len() == 0 { // the key is missing (404)
		return out, next, nil
	}
	var entries []struct {
		Key                      string
		Value                    []byte // base64 in JSON
		Flags                    uint64
		CreateIndex, ModifyIndex uint64
	}
	if err := json.Unmarshal(buf.Bytes(), &entries); err != nil {
		return nil, 0, fmt.Errorf("cannot read the answer about key %q: %w", q.Key, err)
	}
	for _, e := range entries {
		out = append(out, KVPair{Key: e.Key, Value: string(e.Value), Flags: e.Flags, CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, next, nil
}

func (c *Consul) Services(ctx context.Context, dc string, index uint64, sameConn bool) ([]CatalogService, uint64, error) {
	buf, next, err := c.blocking(ctx, "/v1/catalog/services", servicesParams(dc), index, sameConn, false)
	if err != nil {
		return nil, 0, err
	}
	return c.services(buf, next)
}

func (c *Consul) ServicesNow(ctx context.Context, dc string) ([]CatalogService, uint64, error) {
	buf, next, err := c.get(ctx, c.restConf, "/v1/catalog/services", servicesParams(dc), false)
	if err != nil {
		return nil, 0, err
	}
	return c.services(buf, next)
}

func servicesParams(dc string) url.Values {
	params := url.Values{"stale": {""}}
	if dc != "" {
		params.Set("dc", dc)
	}
	return params
}

// services decodes an answer of /v1/catalog/services and gives its buffer back.
func (c *Consul) services(buf *bytes.Buffer, next uint64) ([]CatalogService, uint64, error) {
	defer c.bufs.Put(buf)
	var m map[string][]string
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		return nil, 0, fmt.Errorf("cannot read the catalog's services: %w", err)
	}
	out := make([]CatalogService, 0, len(m))
	for name, tags := range m {
		if tags == nil {
			tags = []string{}
		}
		sort.Strings(tags)
		out = append(out, CatalogService{Name: name, Tags: tags})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, next, nil
}
