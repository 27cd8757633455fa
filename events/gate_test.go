package events

import "testing"

func TestGateHoldsUntilTheNextStartup(t *testing.T) {
	bus := NewBus(nil)
	sub := bus.Subscribe(SubscribeOptions{Name: "t", Filter: func(ev Event) bool { return ev.Source == "watch.x" }})
	g := NewGate(bus)
	g.Publish(Changed, "watch.x", nil) // open: at once
	if ev, ok := sub.Next(); !ok || ev.Code != Changed {
		t.Fatalf("an open gate held %v", ev)
	}
	old := bus.Publish(Startup, Global, nil)
	g.Hold()
	g.Publish(Changed, "watch.x", map[string]string{"n": "1"})
	g.Publish(Healthy, "watch.x", nil)
	g.Release(old.Seq) // a startup from before Hold opens nothing
	if ev, ok := sub.Next(); ok {
		t.Fatalf("published before the startup: %v", ev)
	}
	st := bus.Publish(Startup, Global, nil)
	g.Release(st.Seq)
	a, _ := sub.Next()
	b, _ := sub.Next()
	if a.Code != Changed || a.Attrs["n"] != "1" || b.Code != Healthy || a.Seq <= st.Seq {
		t.Fatalf("released %v then %v after startup %d", a, b, st.Seq)
	}
	g.Publish(Unhealthy, "watch.x", nil)
	if ev, ok := sub.Next(); !ok || ev.Code != Unhealthy {
		t.Fatalf("the gate stayed closed: %v", ev)
	}
}
