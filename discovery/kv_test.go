package discovery

// The KV store, the catalog's services, views shared between followers, and KV watches,
// against a real Consul agent (integration_tests/consulagent).

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

func (e *agentEnv) putKey(t *testing.T, key, value string) {
	t.Helper()
	if _, err := e.api.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (e *agentEnv) deleteKey(t *testing.T, key string) {
	t.Helper()
	if _, err := e.api.KV().Delete(key, nil); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

func TestConsulKVBlockingQuery(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	ctx := consulCtx(t, 20*time.Second)

	// A missing key answers with nothing and an index to wait on.
	q := KVQuery{Key: "app/flags"}
	pairs, idx, err := e.be.KV(ctx, q, 0, false)
	if err != nil || len(pairs) != 0 || idx == 0 {
		t.Fatalf("missing key = %v %d %v, want nothing and an index", pairs, idx, err)
	}
	type answer struct {
		pairs []KVPair
		idx   uint64
		err   error
	}
	got := make(chan answer, 1)
	go func() {
		p, i, err := e.be.KV(ctx, q, idx, false)
		got <- answer{p, i, err}
	}()
	t0 := time.Now()
	e.putKey(t, "app/flags", "on")
	a := <-got
	t.Logf("blocking KV query answered %s after the write", time.Since(t0).Round(time.Millisecond))
	if a.err != nil || len(a.pairs) != 1 || a.pairs[0].Value != "on" || a.pairs[0].Key != "app/flags" || a.idx <= idx {
		t.Fatalf("after the write = %+v", a)
	}

	// A prefix: every key under it, sorted; a key elsewhere is not in it.
	e.putKey(t, "app/b", "2")
	e.putKey(t, "app/a", "1")
	e.putKey(t, "other/x", "x")
	pairs, _, err = e.be.KV(ctx, KVQuery{Key: "app/", Recurse: true}, 0, false)
	if err != nil || len(pairs) != 3 || pairs[0].Key != "app/a" || pairs[1].Key != "app/b" || pairs[2].Value != "on" {
		t.Fatalf("prefix = %+v %v", pairs, err)
	}
	// The same at once on the connection for calls, and a key with characters to escape.
	e.putKey(t, "app/with space?&", "odd")
	pairs, _, err = e.be.KVNow(ctx, KVQuery{Key: "app/with space?&"})
	if err != nil || len(pairs) != 1 || pairs[0].Value != "odd" {
		t.Fatalf("escaped key = %+v %v", pairs, err)
	}
	if _, _, err := e.be.KV(ctx, KVQuery{Key: "x", DC: "nowhere"}, 0, false); err == nil {
		t.Error("a query in an unknown datacenter succeeded")
	}

	e.registerOther(t, "db-0", "db", []string{"b", "a"}, "")
	svcs, _, err := e.be.Services(ctx, "", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range svcs {
		if s.Name == "db" {
			found = strings.Join(s.Tags, ",") == "a,b"
		}
	}
	if !found {
		t.Errorf("services = %+v, want db with tags a,b", svcs)
	}
}

// Followers of one thing share one view and one query; the last to leave stops it, and the
// agent monitor runs only while nothing is followed.
func TestViewsAreSharedAndCounted(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	bus := events.NewBus(nil)
	m := New(Options{Backend: e.be, Bus: bus, Log: slog.New(slog.DiscardHandler), Hostname: "h1"})
	if err := m.Apply(consulCtx(t, 5*time.Second), &config.Config{}, ""); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { m.Close(context.Background()) })
	bus.Publish(events.Startup, events.Global, nil) // the jobs are subscribed: watch events flow
	if q := m.Queries(); q["agent"] != 1 || q["key"] != 0 {
		t.Fatalf("queries with nothing followed = %v, want the agent monitor alone", q)
	}
	var n1, n2 atomic.Int32
	k := ViewKey{Kind: ViewKVKey, Name: "cfg/x"}
	s1 := m.Follow(k, func(*ViewData) { n1.Add(1) })
	s2 := m.Follow(k, func(*ViewData) { n2.Add(1) })
	s3 := m.Follow(ViewKey{Kind: ViewService, Name: "db"}, func(*ViewData) {})
	if q := m.Queries(); q["key"] != 1 || q["service"] != 1 || q["agent"] != 0 {
		t.Fatalf("queries = %v, want one per distinct view and no monitor", q)
	}
	consulEventually(t, 10*time.Second, "the first answer", func() bool { return n1.Load() == 1 && n2.Load() == 1 })
	e.putKey(t, "cfg/x", "1")
	consulEventually(t, 10*time.Second, "the write", func() bool { return n1.Load() == 2 && n2.Load() == 2 })
	d, _ := s2.Data()
	if d.Seq != 2 || len(d.Pairs) != 1 || d.Pairs[0].Value != "1" {
		t.Fatalf("data = %+v", d)
	}
	e.putKey(t, "cfg/x", "1") // the same value again: no change
	e.putKey(t, "cfg/x", "2")
	consulEventually(t, 10*time.Second, "the second write", func() bool { d, _ := s1.Data(); return d.Pairs[0].Value == "2" })
	if d, _ := s1.Data(); d.Seq != 3 {
		t.Errorf("a write of the same value counted as a change: seq %d", d.Seq)
	}
	s1.Close()
	if q := m.Queries(); q["key"] != 1 {
		t.Fatalf("one follower left, queries = %v", q)
	}
	s2.Close()
	s2.Close() // twice is harmless
	s3.Close()
	if q := m.Queries(); q["key"] != 0 || q["service"] != 0 || q["agent"] != 1 {
		t.Fatalf("after every follower left, queries = %v", q)
	}
}

// A KV watch publishes changed on its first answer and on each new value, with the value
// (a JSON object of the keys under a prefix); it follows a restarted agent.
func TestManagerKVWatch(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	e.putKey(t, "app/flags", "v1")
	e.putKey(t, "app/conf/a", "1")
	bus := events.NewBus(nil)
	sub := bus.Subscribe(events.SubscribeOptions{Name: "test", Filter: func(ev events.Event) bool {
		return strings.HasPrefix(ev.Source, events.WatchPrefix)
	}})
	m := New(Options{Backend: e.be, Bus: bus, Log: slog.New(slog.DiscardHandler), Hostname: "h1"})
	cfg := &config.Config{Watches: []*config.Watch{{Name: "flags", Key: "app/flags"}, {Name: "conf", Prefix: "app/conf/"}}}
	if err := m.Apply(consulCtx(t, 5*time.Second), cfg, ""); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { m.Close(context.Background()) })
	// The first answers are held until the startup: the jobs subscribe just before it.
	consulEventually(t, 10*time.Second, "the first answers", func() bool {
		st := m.Watches()
		return len(st) == 2 && st[0].Instances == 1 && st[1].Instances == 1
	})
	if ev, ok := sub.Next(); ok {
		t.Fatalf("%s was published before the startup", ev)
	}
	bus.Publish(events.Startup, events.Global, nil)
	next := func(src string) events.Event {
		t.Helper()
		for {
			ev, err := sub.Recv(consulCtx(t, 15*time.Second))
			if err != nil {
				t.Fatalf("no event from %s: %v", src, err)
			}
			if ev.Code != events.Changed {
				t.Fatalf("a KV watch published %s", ev)
			}
			if ev.Source == src {
				return ev
			}
		}
	}
	if ev := next("watch.flags"); ev.Attrs[events.AttrValue] != "v1" {
		t.Fatalf("first answer = %v", ev.Attrs)
	}
	e.putKey(t, "app/conf/b", "2")
	var obj map[string]string
	for obj["b"] != "2" {
		ev := next("watch.conf")
		if err := json.Unmarshal([]byte(ev.Attrs[events.AttrValue]), &obj); err != nil {
			t.Fatalf("prefix value %q: %v", ev.Attrs[events.AttrValue], err)
		}
	}
	if len(obj) != 2 || obj["a"] != "1" {
		t.Errorf("prefix value = %v, want keys relative to the prefix", obj)
	}
	e.putKey(t, "app/flags", "v2")
	if ev := next("watch.flags"); ev.Attrs[events.AttrValue] != "v2" {
		t.Fatalf("new value = %v", ev.Attrs)
	}
	e.deleteKey(t, "app/flags")
	if ev := next("watch.flags"); ev.Attrs[events.AttrValue] != "" {
		t.Fatalf("deleted key = %v, want an empty value", ev.Attrs)
	}
	st := m.Watches()
	if len(st) != 2 || st[0].Name != "conf" || st[0].Instances != 2 || st[1].Instances != 0 {
		t.Errorf("Watches() = %+v", st)
	}

	// A dev agent forgets its KV store when it restarts; the watch follows the new one.
	e.putKey(t, "app/flags", "v3")
	next("watch.flags")
	e.agent.Restart(t)
	e.putKey(t, "app/flags", "after-restart")
	for {
		if ev := next("watch.flags"); ev.Attrs[events.AttrValue] == "after-restart" {
			break
		}
	}
}
