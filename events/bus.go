package events

import (
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Recv once the subscription has ended.
var ErrClosed = errors.New("subscription closed")

// RingSize is how many recent events the bus keeps for replay.
const RingSize = 1024

// Bus is the one in-process event bus. The zero value is not usable; call NewBus.
//
// Concurrency: one mutex guards the sequence counter, the ring and the subscriber list.
// Publish holds it only to stamp the event and append it to queues; it never waits on a
// subscriber.
type Bus struct {
	now func() time.Time

	mu     sync.Mutex
	seq    uint64
	subs   []*Subscription
	ring   []Event // circular, len(ring) == cap once full
	next   int     // ring write position
	counts map[countKey]uint64
}

type countKey struct {
	source string
	code   Code
}

// NewBus returns an empty bus. now stamps events; nil means time.Now.
func NewBus(now func() time.Time) *Bus {
	if now == nil {
		now = time.Now
	}
	return &Bus{now: now, ring: make([]Event, 0, RingSize), counts: map[countKey]uint64{}}
}

// Publish stamps an event with the next sequence number and queues it for every subscriber
// whose filter accepts it. It never blocks on a subscriber.
func (b *Bus) Publish(code Code, source string, attrs map[string]string) Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev := Event{Seq: b.seq, Time: b.now(), Code: code, Source: source, Attrs: attrs}
	if len(b.ring) < cap(b.ring) {
		b.ring = append(b.ring, ev)
	} else {
		b.ring[b.next] = ev
	}
	b.next = (b.next + 1) % cap(b.ring)
	b.counts[countKey{source, code}]++

	kept := b.subs[:0]
	for _, s := range b.subs {
		if s.offer(ev) {
			kept = append(kept, s)
		}
	}
	for i := len(kept); i < len(b.subs); i++ {
		b.subs[i] = nil
	}
	b.subs = kept
	return ev
}

// Seq returns the sequence number of the last published event (0 before the first).
func (b *Bus) Seq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Since returns the ring's events with a sequence number greater than seq, oldest first.
func (b *Bus) Since(seq uint64) []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sinceLocked(seq, nil)
}

func (b *Bus) sinceLocked(seq uint64, filter func(Event) bool) []Event {
	var out []Event
	n := len(b.ring)
	start := 0
	if n == cap(b.ring) {
		start = b.next
	}
	for i := 0; i < n; i++ {
		ev := b.ring[(start+i)%n]
		if ev.Seq > seq && (filter == nil || filter(ev)) {
			out = append(out, ev)
		}
	}
	return out
}

// Count is the number of events published for one (source, code) pair.
type Count struct {
	Source string
	Code   Code
	N      uint64
}

// Counts returns how many events were published per source and code.
func (b *Bus) Counts() []Count {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Count, 0, len(b.counts))
	for k, n := range b.counts {
		out = append(out, Count{Source: k.source, Code: k.code, N: n})
	}
	return out
}

// Depth is the number of events waiting in one subscriber's queue.
type Depth struct {
	Subscriber string
	Depth      int
}

// Depths reports every live subscriber's queue depth.
func (b *Bus) Depths() []Depth {
	b.mu.Lock()
	subs := append([]*Subscription(nil), b.subs...)
	b.mu.Unlock()
	out := make([]Depth, 0, len(subs))
	for _, s := range subs {
		out = append(out, Depth{Subscriber: s.name, Depth: s.Depth()})
	}
	return out
}

// SubscribeOptions shape a subscription.
type SubscribeOptions struct {
	// Name identifies the subscriber in metrics and logs.
	Name string
	// Filter selects the events to deliver; nil means all. It runs under the bus lock, so it
	// must be quick and must not call the bus.
	Filter func(Event) bool
	// Limit > 0 makes the subscription lossy: when more than Limit events wait in its queue
	// it is dropped (its channel closed, Dropped true). 0 means reliable and unbounded.
	Limit int
	// Replay, when set, first queues the ring's events with Seq > *Replay, with no gap or
	// duplicate between the replayed and the live events.
	Replay *uint64
}

// Subscribe registers a subscriber. Its events queue until taken with Next or Recv, until
// Close is called (or, for a lossy subscription, until it falls too far behind).
func (b *Bus) Subscribe(opts SubscribeOptions) *Subscription {
	s := newSubscription(b, opts)
	b.mu.Lock()
	if opts.Replay != nil {
		s.queue = b.sinceLocked(*opts.Replay, opts.Filter)
		if s.limit > 0 && len(s.queue) > s.limit {
			s.queue = s.queue[len(s.queue)-s.limit:]
		}
		if n := len(s.queue); n > 0 {
			s.last = s.queue[n-1].Seq
		}
	}
	if len(s.queue) > 0 {
		s.ready <- struct{}{} // nobody else can have filled the buffer yet
	}
	b.subs = append(b.subs, s)
	b.mu.Unlock()
	return s
}

func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.subs {
		if x == s {
			last := len(b.subs) - 1
			copy(b.subs[i:], b.subs[i+1:])
			b.subs[last] = nil // the backing array must not keep a gone subscriber alive
			b.subs = b.subs[:last]
			// After a flood of subscribers, give the large array back too.
			if cap(b.subs) > 64 && len(b.subs) < cap(b.subs)/4 {
				b.subs = append([]*Subscription(nil), b.subs...)
			}
			return
		}
	}
}
