package events

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func recv(t *testing.T, s *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := s.Recv(ctx)
	if err != nil {
		t.Fatalf("%s: %v", s.Name(), err)
	}
	return ev
}

func TestOrderAndFilter(t *testing.T) {
	b := NewBus(nil)
	all := b.Subscribe(SubscribeOptions{Name: "all"})
	defer all.Close()
	onlyApp := b.Subscribe(SubscribeOptions{Name: "app", Filter: func(e Event) bool { return e.Source == "app" }})
	defer onlyApp.Close()

	b.Publish(Startup, Global, nil)
	b.Publish(Started, "app", nil)
	b.Publish(Started, "db", nil)
	b.Publish(Healthy, "app", nil)

	var got []string
	for i := 0; i < 4; i++ {
		got = append(got, recv(t, all).String())
	}
	want := []string{"global.startup", "app.started", "db.started", "app.healthy"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("all got %v want %v", got, want)
	}
	if e := recv(t, onlyApp); e.Code != Started || e.Seq != 2 {
		t.Fatalf("app got %v seq %d", e, e.Seq)
	}
	if e := recv(t, onlyApp); e.Code != Healthy || e.Seq != 4 {
		t.Fatalf("app got %v seq %d", e, e.Seq)
	}
}

// A subscriber that never reads must not block publishers or other subscribers, and loses
// nothing: once it reads, every event is there in order (docs/guarantees.md#1).
func TestStuckSubscriberDoesNotBlock(t *testing.T) {
	b := NewBus(nil)
	stuck := b.Subscribe(SubscribeOptions{Name: "stuck"})
	defer stuck.Close()
	live := b.Subscribe(SubscribeOptions{Name: "live"})
	defer live.Close()

	const n = 10000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			b.Publish(Started, "app", nil)
		}
	}()
	for i := 1; i <= n; i++ {
		if e := recv(t, live); e.Seq != uint64(i) {
			t.Fatalf("live got seq %d want %d", e.Seq, i)
		}
	}
	<-done
	if d := stuck.Depth(); d != n {
		t.Fatalf("stuck depth %d want %d", d, n)
	}
	for i := 1; i <= n; i++ {
		if e := recv(t, stuck); e.Seq != uint64(i) {
			t.Fatalf("stuck got seq %d want %d", e.Seq, i)
		}
	}
}

func TestLossySubscriberIsDropped(t *testing.T) {
	b := NewBus(nil)
	s := b.Subscribe(SubscribeOptions{Name: "sse", Limit: 10})
	for i := 0; i < 100; i++ {
		b.Publish(Started, "app", nil)
	}
	if !s.Dropped() {
		t.Fatal("lossy subscriber that never read was not dropped")
	}
	if _, err := s.Recv(context.Background()); err != ErrClosed {
		t.Fatalf("dropped subscription: %v", err)
	}
	for _, d := range b.Depths() {
		if d.Subscriber == "sse" {
			t.Fatal("dropped subscriber still registered")
		}
	}
}

func TestReplayHasNoGap(t *testing.T) {
	b := NewBus(nil)
	for i := 0; i < 5; i++ {
		b.Publish(Started, "app", nil)
	}
	since := uint64(2)
	s := b.Subscribe(SubscribeOptions{Name: "r", Replay: &since})
	defer s.Close()
	b.Publish(Stopped, "app", nil)
	for want := uint64(3); want <= 6; want++ {
		if e := recv(t, s); e.Seq != want {
			t.Fatalf("got seq %d want %d", e.Seq, want)
		}
	}
}

func TestRingWraps(t *testing.T) {
	b := NewBus(nil)
	for i := 0; i < RingSize+10; i++ {
		b.Publish(Started, "app", nil)
	}
	evs := b.Since(0)
	if len(evs) != RingSize {
		t.Fatalf("ring holds %d want %d", len(evs), RingSize)
	}
	if evs[0].Seq != 11 || evs[len(evs)-1].Seq != RingSize+10 {
		t.Fatalf("ring spans %d..%d", evs[0].Seq, evs[len(evs)-1].Seq)
	}
	if got := b.Since(RingSize + 8); len(got) != 2 {
		t.Fatalf("since near end: %d events", len(got))
	}
}

func TestCloseStopsDelivery(t *testing.T) {
	b := NewBus(nil)
	s := b.Subscribe(SubscribeOptions{Name: "x"})
	b.Publish(Started, "a", nil)
	s.Close()
	b.Publish(Started, "a", nil)
	if s.Depth() != 1 {
		t.Fatalf("depth %d", s.Depth())
	}
	if len(b.Depths()) != 0 {
		t.Fatal("closed subscription still registered")
	}
}

func TestConcurrentPublishersKeepOneOrder(t *testing.T) {
	b := NewBus(nil)
	s1 := b.Subscribe(SubscribeOptions{Name: "1"})
	s2 := b.Subscribe(SubscribeOptions{Name: "2"})
	defer s1.Close()
	defer s2.Close()
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				b.Publish(Started, fmt.Sprint(p), nil)
			}
		}(p)
	}
	wg.Wait()
	for i := 0; i < 2000; i++ {
		a, c := recv(t, s1), recv(t, s2)
		if a.Seq != c.Seq || a.Seq != uint64(i+1) {
			t.Fatalf("order differs: %d vs %d at %d", a.Seq, c.Seq, i)
		}
	}
	var total uint64
	for _, c := range b.Counts() {
		total += c.N
	}
	if total != 2000 {
		t.Fatalf("counts total %d", total)
	}
}
