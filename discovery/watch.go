package discovery

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// WatchStatus is one watch in /v1/status.
type WatchStatus struct {
	Name      string
	Healthy   bool
	Instances int
}

// watcher follows one service with blocking queries and publishes changed, healthy and
// unhealthy from source watch.NAME.
type watcher struct {
	cfg    *config.Watch
	m      *Manager
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	seen      bool
	instances []Instance
}

func (m *Manager) applyWatches(ws []*config.Watch) {
	want := map[string]*config.Watch{}
	for _, w := range ws {
		want[w.Name] = w
	}
	for name, w := range m.watchers {
		if c, ok := want[name]; !ok || c.Service != w.cfg.Service || c.Tag != w.cfg.Tag || c.DC != w.cfg.DC {
			w.stop()
			delete(m.watchers, name)
		}
	}
	for name, c := range want {
		if _, ok := m.watchers[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := &watcher{cfg: c, m: m, cancel: cancel, done: make(chan struct{})}
		m.watchers[name] = w
		go w.run(ctx)
	}
	list := make([]*watcher, 0, len(m.watchers))
	for _, w := range m.watchers {
		list = append(list, w)
	}
	m.mu.Lock()
	m.watchList = list
	m.mu.Unlock()
}

// Watches returns the state of every watch. It never waits for the registration loop.
func (m *Manager) Watches() []WatchStatus {
	m.mu.Lock()
	list := m.watchList
	m.mu.Unlock()
	out := make([]WatchStatus, 0, len(list))
	for _, w := range list {
		w.mu.Lock()
		out = append(out, WatchStatus{Name: w.cfg.Name, Healthy: len(w.instances) > 0, Instances: len(w.instances)})
		w.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	q := WatchQuery{Service: w.cfg.Service, Tag: w.cfg.Tag, DC: w.cfg.DC}
	var index uint64
	delay := retryInitial
	failing := false
	for ctx.Err() == nil {
		list, next, err := w.m.b.Healthy(ctx, q, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.m.countError("watch")
			if !failing {
				w.m.log.Warn("watch query failed; retrying", "watch", w.cfg.Name, "err", err)
			}
			failing, index = true, 0 // the agent may come back with lower indexes
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			delay = min(2*delay, retryMax)
			continue
		}
		if failing {
			w.m.log.Info("watch query works again", "watch", w.cfg.Name)
		}
		failing, delay = false, retryInitial
		if next < index || w.m.agentRestarted(ctx) {
			// The agent restarted: this answer may come from the old one, and the new one's
			// indexes start over. Ask again from scratch.
			w.m.resyncSoon()
			if index != 0 {
				index = 0
				continue
			}
		}
		index = next
		w.update(list)
	}
}

// update publishes what changed: the first answer always publishes changed plus healthy or
// unhealthy; later ones changed when the set differs, healthy/unhealthy on 0 ↔ >0.
func (w *watcher) update(list []Instance) {
	sort.Slice(list, func(i, j int) bool { return key(list[i]) < key(list[j]) })
	w.mu.Lock()
	first := !w.seen
	prev := w.instances
	same := !first && slices.EqualFunc(prev, list, func(a, b Instance) bool { return key(a) == key(b) })
	w.seen, w.instances = true, list
	w.mu.Unlock()
	if same {
		return
	}
	b, _ := json.Marshal(list)
	attrs := map[string]string{events.AttrInstances: string(b)}
	src := w.cfg.Source()
	w.m.bus.Publish(events.Changed, src, attrs)
	switch {
	case len(list) > 0 && (first || len(prev) == 0):
		w.m.bus.Publish(events.Healthy, src, attrs)
	case len(list) == 0 && (first || len(prev) > 0):
		w.m.bus.Publish(events.Unhealthy, src, attrs)
	}
}

// key identifies an instance's identity and reachable form: a change of address, port,
// tags or meta is a change.
func key(i Instance) string {
	meta := make([]string, 0, len(i.Meta))
	for k, v := range i.Meta {
		meta = append(meta, k+"="+v)
	}
	sort.Strings(meta)
	return strings.Join([]string{i.Node, i.ID, i.Address, itoa(i.Port), strings.Join(i.Tags, ","), strings.Join(meta, ",")}, "|")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
