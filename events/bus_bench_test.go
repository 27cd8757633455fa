package events

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkPublish100Subscribers measures events/s delivered to 100 reading subscribers.
func BenchmarkPublish100Subscribers(b *testing.B) {
	bus := NewBus(nil)
	subs := make([]*Subscription, 100)
	done := make(chan struct{}, len(subs))
	for i := range subs {
		subs[i] = bus.Subscribe(SubscribeOptions{Name: fmt.Sprint(i)})
		go func(s *Subscription) {
			for {
				if _, err := s.Recv(context.Background()); err != nil {
					break
				}
			}
			done <- struct{}{}
		}(subs[i])
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bus.Publish(Started, "app", nil)
	}
	for _, s := range subs {
		for s.Depth() > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	for _, s := range subs {
		s.Close()
		<-done
	}
}

// BenchmarkPublishWithStuckSubscriber reports the p99 publish latency while one subscriber
// never reads.
func BenchmarkPublishWithStuckSubscriber(b *testing.B) {
	bus := NewBus(nil)
	stuck := bus.Subscribe(SubscribeOptions{Name: "stuck"})
	defer stuck.Close()
	live := bus.Subscribe(SubscribeOptions{Name: "live"})
	go func() {
		for {
			if _, err := live.Recv(context.Background()); err != nil {
				return
			}
		}
	}()
	defer live.Close()
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		bus.Publish(Started, "app", nil)
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
}
