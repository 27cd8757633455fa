package discovery

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// A view is one catalog query followed with blocking queries and shared by everyone who
// follows the same thing: watches and templates that read one service, key or prefix cost
// one query, one connection (docs/templates.md#sharing).

// ViewKind is what a view follows.
type ViewKind string

// The kinds of views.
const (
	ViewService  ViewKind = "service"  // the passing instances of service Name (Tag, DC)
	ViewServices ViewKind = "services" // the catalog's services and their tags (DC)
	ViewKVKey    ViewKind = "key"      // the KV key Name (DC)
	ViewKVPrefix ViewKind = "prefix"   // every KV key that starts with Name (DC)
)

// ViewKinds lists the kinds, for metrics.
var ViewKinds = []ViewKind{ViewService, ViewServices, ViewKVKey, ViewKVPrefix}

// ViewKey names one query; equal keys share one view.
type ViewKey struct {
	Kind ViewKind
	Name string
	Tag  string
	DC   string
}

// ViewData is one answer of a view; it is never modified once handed out.
type ViewData struct {
	Seq       uint64           // counts the answers that changed something, from 1
	Instances []Instance       // ViewService, sorted by identity
	Services  []CatalogService // ViewServices, sorted by name
	Pairs     []KVPair         // ViewKVKey (none or one) and ViewKVPrefix, sorted by key
	keys      []string         // of Instances
}

// view is one followed query. Its follower calls set; subscribers read data.
type view struct {
	key  ViewKey
	f    *follower
	refs int // under Manager.viewsMu

	mu   sync.Mutex
	data *ViewData // nil until the first answer
	subs []*ViewSub
}

// ViewSub is one hold on a view: Close it when done.
type ViewSub struct {
	m      *Manager
	v      *view
	notify func(*ViewData)
	closed bool // under Manager.viewsMu
}

// Follow starts following k, or joins the view that already does. notify is called with
// each answer that changed the data, from the view's goroutine, one call at a time; it must
// not block, and it is never called from within Follow: read Data after Follow for an
// answer the view had already. After the shutdown began, the view never answers.
func (m *Manager) Follow(k ViewKey, notify func(*ViewData)) *ViewSub {
	m.viewsMu.Lock()
	defer m.viewsMu.Unlock()
	v := m.views[k]
	if v == nil {
		v = &view{key: k}
		if !m.viewsClosed {
			m.views[k] = v
			v.f = m.followView(v)
		}
	}
	v.refs++
	s := &ViewSub{m: m, v: v, notify: notify}
	v.mu.Lock()
	v.subs = append(v.subs, s)
	v.mu.Unlock()
	m.syncMonitorLocked()
	return s
}

// Data is the view's latest answer; false until it answered once.
func (s *ViewSub) Data() (*ViewData, bool) {
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	return s.v.data, s.v.data != nil
}

// Close lets go of the view; the last hold stops its query.
func (s *ViewSub) Close() {
	m := s.m
	m.viewsMu.Lock()
	defer m.viewsMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	v := s.v
	v.mu.Lock()
	v.subs = slices.DeleteFunc(v.subs, func(x *ViewSub) bool { return x == s })
	v.mu.Unlock()
	if v.refs--; v.refs > 0 {
		return
	}
	if m.views[v.key] == v {
		delete(m.views, v.key)
	}
	if v.f != nil {
		v.f.stop()
	}
	m.syncMonitorLocked()
}

// Queries counts the catalog queries followed, by kind, "agent" for the agent monitor.
func (m *Manager) Queries() map[string]int {
	m.viewsMu.Lock()
	defer m.viewsMu.Unlock()
	out := map[string]int{"agent": 0}
	for _, k := range ViewKinds {
		out[string(k)] = 0
	}
	for k := range m.views {
		out[string(k.Kind)]++
	}
	if m.monitor != nil {
		out["agent"] = 1
	}
	return out
}

// syncMonitorLocked runs the agent monitor while no view follows anything: a view's queries
// notice an agent restart as well as it does, and each blocking query holds a connection.
func (m *Manager) syncMonitorLocked() {
	switch {
	case len(m.views) > 0 || m.viewsClosed:
		if m.monitor != nil {
			m.monitor.stop()
			m.monitor = nil
		}
	case m.monitor == nil:
		m.monitor = m.follow("agent", "agent monitor", func(ctx context.Context, index uint64, sameConn bool) (uint64, time.Duration, error) {
			next, err := m.b.WaitChange(ctx, index, sameConn)
			return next, monitorPace, err
		})
	}
}

// closeViews stops every view at the shutdown (their connections go to deregistrations).
func (m *Manager) closeViews() {
	m.viewsMu.Lock()
	defer m.viewsMu.Unlock()
	m.viewsClosed = true
	for k, v := range m.views {
		if v.f != nil {
			v.f.stop()
		}
		delete(m.views, k)
	}
	m.syncMonitorLocked()
}

// followView starts the follower of v's query.
func (m *Manager) followView(v *view) *follower {
	k := v.key
	what := string(k.Kind) + " " + k.Name
	switch k.Kind {
	case ViewService:
		q := WatchQuery{Service: k.Name, Tag: k.Tag, DC: k.DC}
		f := m.follow("watch", "watch of "+what, func(ctx context.Context, index uint64, sameConn bool) (uint64, time.Duration, error) {
			list, next, err := m.b.Healthy(ctx, q, index, sameConn)
			if err != nil {
				return 0, 0, err
			}
			if next >= index { // an older answer is asked again (see follower.run)
				v.set(&ViewData{Instances: list})
			}
			return next, pace(len(list)), nil
		})
		f.poll = func(ctx context.Context, index uint64) (uint64, error) {
			_, now, err := m.b.HealthyNow(ctx, q, true)
			if err != nil || now == index {
				return now, err
			}
			list, next, err := m.b.HealthyNow(ctx, q, false)
			if err != nil {
				return 0, err
			}
			if next >= index {
				v.set(&ViewData{Instances: list})
			}
			return next, nil
		}
		return f
	case ViewServices:
		f := m.follow("watch", "watch of the catalog's services", func(ctx context.Context, index uint64, sameConn bool) (uint64, time.Duration, error) {
			list, next, err := m.b.Services(ctx, k.DC, index, sameConn)
			if err != nil {
				return 0, 0, err
			}
			if next >= index {
				v.set(&ViewData{Services: list})
			}
			return next, pace(len(list)), nil
		})
		f.poll = func(ctx context.Context, index uint64) (uint64, error) {
			list, next, err := m.b.ServicesNow(ctx, k.DC)
			if err == nil && next >= index {
				v.set(&ViewData{Services: list})
			}
			return next, err
		}
		return f
	default:
		q := KVQuery{Key: k.Name, DC: k.DC, Recurse: k.Kind == ViewKVPrefix}
		f := m.follow("watch", "watch of "+what, func(ctx context.Context, index uint64, sameConn bool) (uint64, time.Duration, error) {
			list, next, err := m.b.KV(ctx, q, index, sameConn)
			if err != nil {
				return 0, 0, err
			}
			if next >= index {
				v.set(&ViewData{Pairs: list})
			}
			return next, pace(len(list)), nil
		})
		f.poll = func(ctx context.Context, index uint64) (uint64, error) {
			list, next, err := m.b.KVNow(ctx, q)
			if err == nil && next >= index {
				v.set(&ViewData{Pairs: list})
			}
			return next, err
		}
		return f
	}
}

// set takes an answer; when it differs from the last, it becomes the data and every
// subscriber hears of it.
func (v *view) set(d *ViewData) {
	if d.Instances != nil {
		d.keys = make([]string, len(d.Instances))
		for i, in := range d.Instances {
			d.keys[i] = key(in)
		}
		sort.Sort(byKey{d.Instances, d.keys})
	}
	v.mu.Lock()
	if v.data != nil && v.data.same(d) {
		v.mu.Unlock()
		return
	}
	if v.data != nil {
		d.Seq = v.data.Seq
	}
	d.Seq++
	v.data = d
	subs := slices.Clone(v.subs)
	v.mu.Unlock()
	for _, s := range subs {
		s.notify(d)
	}
}

// same reports whether two answers hold the same things: instances with the same identity,
// address, port, tags and meta; services with the same tags; keys with the same values and
// flags (a key written again with its value is no change).
func (d *ViewData) same(o *ViewData) bool {
	return slices.Equal(d.keys, o.keys) && len(d.Instances) == len(o.Instances) &&
		slices.EqualFunc(d.Services, o.Services, func(a, b CatalogService) bool { return a.Name == b.Name && slices.Equal(a.Tags, b.Tags) }) &&
		slices.EqualFunc(d.Pairs, o.Pairs, func(a, b KVPair) bool { return a.Key == b.Key && a.Value == b.Value && a.Flags == b.Flags })
}
