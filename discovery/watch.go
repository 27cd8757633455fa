package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/backoff"
)

const (
	// pacePerInstance spaces a watch's answers by the size of the last one: one answer costs
	// the agent and pilotfish in proportion to the instances it lists, so a burst of changes
	// (a fleet starting: N registrations, each seen by N watchers) costs each watcher a few
	// answers, not one per change. A lone change still comes at once. Beyond paceFleet
	// instances the pause grows with their square: when a fleet watches itself, the answers
	// of one change cost N², and this keeps the whole fleet's cost per second flat. The pause
	// is stretched by up to half at random, so that watchers woken by one change do not all
	// ask again at the same moment.
	pacePerInstance = 10 * time.Millisecond
	paceFleet       = 100
	paceMax         = 10 * time.Second
	// monitorPace spaces the agent monitor's queries: it only looks for agent restarts.
	monitorPace = time.Second
	// crowdedPoll is how often a watch asks whether its service changed while the agent is
	// crowded (see follower.run).
	crowdedPoll = 3 * time.Second
)

// WatchStatus is one watch in /v1/status.
type WatchStatus struct {
	Name      string
	Healthy   bool
	Instances int
}

// watcher follows one service, KV key or KV prefix through its view and publishes from
// source watch.NAME: changed, healthy and unhealthy for a service, changed for a key or
// prefix.
type watcher struct {
	cfg *config.Watch
	m   *Manager
	sub *ViewSub

	mu   sync.Mutex
	data *ViewData // the last answer published, nil before the first
}

// applyWatches starts and stops watches to match ws (on the loop).
func (m *Manager) applyWatches(ws []*config.Watch) {
	want := map[string]*config.Watch{}
	if !m.closing {
		for _, w := range ws {
			want[w.Name] = w
		}
	}
	for name, w := range m.watchers {
		if c, ok := want[name]; !ok || !c.Equal(w.cfg) {
			w.stop()
			delete(m.watchers, name)
		}
	}
	for name, c := range want {
		if _, ok := m.watchers[name]; ok {
			continue
		}
		w := &watcher{cfg: c, m: m}
		w.sub = m.Follow(watchView(c), w.update)
		if d, ok := w.sub.Data(); ok { // a template follows it already
			w.update(d)
		}
		m.watchers[name] = w
	}
	m.viewsMu.Lock()
	m.syncMonitorLocked() // with no watch and no template, the agent monitor runs
	m.viewsMu.Unlock()
	list := make([]*watcher, 0, len(m.watchers))
	for _, w := range m.watchers {
		list = append(list, w)
	}
	m.mu.Lock()
	m.watchList = list
	m.mu.Unlock()
}

// watchView is the view a watch follows.
func watchView(c *config.Watch) ViewKey {
	switch {
	case c.Key != "":
		return ViewKey{Kind: ViewKVKey, Name: c.Key, DC: c.DC}
	case c.Prefix != "":
		return ViewKey{Kind: ViewKVPrefix, Name: c.Prefix, DC: c.DC}
	}
	return ViewKey{Kind: ViewService, Name: c.Service, Tag: c.Tag, DC: c.DC}
}

// pace is the pause after an answer of n instances (see pacePerInstance).
func pace(n int) time.Duration {
	d := time.Duration(n) * pacePerInstance
	if n > paceFleet {
		d = d * time.Duration(n) / paceFleet
	}
	d = min(d, paceMax)
	return d + rand.N(d/2+1)
}

// Watches returns the state of every watch. It never waits for the registration loop.
func (m *Manager) Watches() []WatchStatus {
	m.mu.Lock()
	list := m.watchList
	m.mu.Unlock()
	out := make([]WatchStatus, 0, len(list))
	for _, w := range list {
		w.mu.Lock()
		n := 0
		if w.data != nil {
			n = len(w.data.Instances) + len(w.data.Pairs)
		}
		out = append(out, WatchStatus{Name: w.cfg.Name, Healthy: n > 0, Instances: n})
		w.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (w *watcher) stop() { w.sub.Close() }

// follower runs one blocking query after another on its own goroutine, each from the
// index of the last answer, until stopped. query returns the next index and how long to wait
// before asking again.
type follower struct {
	m     *Manager
	op    string // failed queries are counted under it
	what  string // for logs
	query func(ctx context.Context, index uint64, sameConn bool) (uint64, time.Duration, error)
	// poll, if not nil, asks at once whether anything changed since index and takes the
	// news if so; it stands in for query while the agent is crowded.
	poll   func(ctx context.Context, index uint64) (uint64, error)
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *Manager) follow(op, what string, query func(context.Context, uint64, bool) (uint64, time.Duration, error)) *follower {
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{m: m, op: op, what: what, query: query, cancel: cancel, done: make(chan struct{})}
	go f.run(ctx)
	return f
}

func (f *follower) stop() {
	f.cancel()
	<-f.done
}

// run asks, waits for the answer, and asks again. Failures back off (docs/consul.md). After
// one, or an answer that may come from an agent going away, the agent's identity is checked
// before the next query: a restarted agent's indexes start over, and a query with an index
// from before would wait until the new agent's index passes it. A restart between two
// queries answers nothing, but it closes the connection: a query that would go over a new one
// (ErrNewConnection) checks the agent first.
//
// While the agent is crowded (it refused a connection with a 429 lately), a follower holds no
// connection: a watch polls, every crowdedPoll, with a question whose answer is tiny (the
// index) and asks for the instances only when it moved; the agent monitor rests. Indexes of
// the two ways of asking need not agree, so a change of way starts from scratch.
func (f *follower) run(ctx context.Context) {
	defer close(f.done)
	var index, gen uint64
	bo := backoff.NewPeer()
	failing, yielded, polling := false, false, false
	check := !f.m.agentKnown()
	for ctx.Err() == nil {
		if until, ych := f.m.yielding(); time.Now().Before(until) {
			t := time.NewTimer(time.Until(until))
			select {
			case <-t.C:
			case <-ych: // the yield ended early, or was extended
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		if crowded := f.m.crowded(); crowded != polling {
			polling, index = crowded, 0
			if crowded {
				f.m.releaseIdle() // this follower's connection, if it is idle
			}
		}
		if polling {
			f.pollOnce(ctx, &index, &bo)
			continue
		}
		unsure, checked := false, check
		if check {
			g, err := f.m.checkAgent(ctx)
			switch {
			case err == nil:
				check = false
				if g != gen {
					gen, index = g, 0
				}
			case isTooMany(err):
				// There, and busy: go on from the index, check again later.
			default:
				unsure, index = true, 0 // ask from scratch, and slowly, until the agent answers
			}
		}
		// A yield that begins while the query waits ends it (and frees its connection).
		qctx, qcancel := context.WithCancel(ctx)
		go func() {
			for {
				until, ych := f.m.yielding()
				if time.Now().Before(until) {
					qcancel()
					return
				}
				select {
				case <-ych:
				case <-qctx.Done():
					return
				}
			}
		}()
		next, pace, err := f.query(qctx, index, !checked && !failing && !yielded)
		yielded = qctx.Err() != nil
		qcancel()
		if ctx.Err() != nil {
			return
		}
		if yielded {
			continue
		}
		if errors.Is(err, ErrNewConnection) {
			check = true
			continue
		}
		if err != nil {
			f.m.countError(f.op)
			if isTooMany(err) {
				f.m.markCrowded() // the agent is there: the index still holds
			} else {
				check = true
			}
			if !failing {
				f.m.log.Warn(f.what+" failed; retrying", "err", err)
			}
			failing = true
			backoff.Sleep(ctx, bo.Next())
			continue
		}
		if failing {
			f.m.log.Info(f.what + " works again")
		}
		failing = false
		switch {
		case next < index:
			// The agent restarted, or a server behind in replication answered (stale):
			// ask again from scratch.
			check, index = true, 0
			continue
		case next == index:
			check = true // the wait ended, or the agent answered as it shut down
		}
		index = next
		if unsure {
			pace = max(pace, bo.Next())
		} else {
			bo.Reset()
		}
		if pace > 0 {
			backoff.Sleep(ctx, pace)
		}
	}
}

// pollOnce makes one poll (or, for the agent monitor, rests) and waits for the next.
func (f *follower) pollOnce(ctx context.Context, index *uint64, bo *backoff.Backoff) {
	wait := crowdedPoll + rand.N(crowdedPoll/2)
	if f.poll != nil {
		next, err := f.poll(ctx, *index)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			f.m.countError(f.op)
			if isTooMany(err) {
				f.m.markCrowded()
			}
			wait = max(wait, bo.Next())
		case next < *index:
			*index = 0 // a server behind, or a new agent: the next poll fetches it all
			bo.Reset()
		default:
			*index = next
			bo.Reset()
		}
	}
	backoff.Sleep(ctx, wait)
}

// update publishes an answer of the view that this watch has not published yet. For a
// service, the first answer publishes changed plus healthy or unhealthy; later ones changed,
// and healthy/unhealthy on 0 ↔ >0. For a KV key or prefix, each answer publishes changed
// with the value (docs/consul.md#kv-watches).
func (w *watcher) update(d *ViewData) {
	w.mu.Lock()
	defer w.mu.Unlock() // publishing never blocks; the lock keeps two answers in order
	prev := w.data
	if prev != nil && d.Seq <= prev.Seq {
		return // published already (the view answered while the watch joined it)
	}
	w.data = d
	src := w.cfg.Source()
	if w.cfg.IsKV() {
		attrs := map[string]string{}
		if v, ok := w.value(d.Pairs); ok {
			attrs[events.AttrValue] = v
		}
		w.m.gate.Publish(events.Changed, src, attrs)
		return
	}
	b, _ := json.Marshal(d.Instances)
	attrs := map[string]string{events.AttrInstances: string(b)}
	w.m.gate.Publish(events.Changed, src, attrs)
	switch {
	case len(d.Instances) > 0 && (prev == nil || len(prev.Instances) == 0):
		w.m.gate.Publish(events.Healthy, src, attrs)
	case len(d.Instances) == 0 && (prev == nil || len(prev.Instances) > 0):
		w.m.gate.Publish(events.Unhealthy, src, attrs)
	}
}

// maxValue bounds the value a KV watch hands to jobs in PILOTFISH_WATCH_VALUE: the kernel
// refuses to start a program with an environment string over 128 KiB.
const maxValue = 128<<10 - len("PILOTFISH_WATCH_VALUE=") - 1

// value is what a triggered job gets in PILOTFISH_WATCH_VALUE: the key's value ("" when it
// is missing), or for a prefix a JSON object of every key under it (relative to the prefix)
// and its value. A value no environment can hold (a NUL byte, over maxValue) is left out,
// with a warning.
func (w *watcher) value(pairs []KVPair) (string, bool) {
	var v string
	if w.cfg.Key != "" {
		if len(pairs) > 0 {
			v = pairs[0].Value
		}
	} else {
		obj := make(map[string]string, len(pairs))
		for _, p := range pairs {
			rel := strings.TrimPrefix(strings.TrimPrefix(p.Key, w.cfg.Prefix), "/")
			if rel == "" || strings.HasSuffix(p.Key, "/") {
				continue // the prefix itself, or a "folder"
			}
			obj[rel] = p.Value
		}
		b, _ := json.Marshal(obj)
		v = string(b)
	}
	switch {
	case strings.IndexByte(v, 0) >= 0:
		w.m.log.Warn("the value holds a NUL byte, which no environment variable can hold; triggered jobs get no PILOTFISH_WATCH_VALUE", "watch", w.cfg.Name)
		return "", false
	case len(v) > maxValue:
		w.m.log.Warn("the value is too large for an environment variable; triggered jobs get no PILOTFISH_WATCH_VALUE", "watch", w.cfg.Name, "bytes", len(v), "max", maxValue)
		return "", false
	}
	return v, true
}

// byKey sorts instances by their keys.
type byKey struct {
	list []Instance
	keys []string
}

func (s byKey) Len() int           { return len(s.list) }
func (s byKey) Less(i, j int) bool { return s.keys[i] < s.keys[j] }
func (s byKey) Swap(i, j int) {
	s.list[i], s.list[j] = s.list[j], s.list[i]
	s.keys[i], s.keys[j] = s.keys[j], s.keys[i]
}

// key identifies an instance's identity and reachable form: a change of address, port,
// tags or meta is a change.
func key(i Instance) string {
	meta := make([]string, 0, len(i.Meta))
	for k, v := range i.Meta {
		meta = append(meta, k+"="+v)
	}
	sort.Strings(meta)
	return strings.Join([]string{i.Node, i.ID, i.Address, strconv.Itoa(i.Port), strings.Join(i.Tags, ","), strings.Join(meta, ",")}, "|")
}
