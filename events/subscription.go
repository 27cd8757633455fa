package events

import (
	"context"
	"sync"
	"sync/atomic"
)

// Subscription is one subscriber's queue. The publisher appends and pokes Ready; the
// subscriber takes events with Next. Nothing runs in between, so Depth is exact: an event
// is either queued or taken.
type Subscription struct {
	bus    *Bus
	name   string
	filter func(Event) bool
	limit  int

	mu    sync.Mutex
	queue []Event
	head  int
	last  uint64 // Seq of the last event accepted

	ready   chan struct{} // holds a token while events may be queued
	done    chan struct{} // closed by Close or when a lossy subscription is dropped
	once    sync.Once
	dropped atomic.Bool
}

func newSubscription(b *Bus, opts SubscribeOptions) *Subscription {
	return &Subscription{
		bus:    b,
		name:   opts.Name,
		filter: opts.Filter,
		limit:  opts.Limit,
		ready:  make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
}

// Ready receives a token when events were queued; take them all with Next.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Done is closed once the subscription ended (Close, or dropped for falling behind).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Next takes the oldest queued event, if any.
func (s *Subscription) Next() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.queue) {
		return Event{}, false
	}
	ev := s.queue[s.head]
	s.queue[s.head] = Event{}
	s.head++
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	} else if s.head > 1024 && s.head*2 > len(s.queue) {
		s.queue = append([]Event(nil), s.queue[s.head:]...)
		s.head = 0
	}
	return ev, true
}

// Recv waits for the next event. It fails when ctx ends or the subscription ended (after
// the events queued before a Close or drop were taken... a dropped subscription's queue is
// discarded).
func (s *Subscription) Recv(ctx context.Context) (Event, error) {
	for {
		if ev, ok := s.Next(); ok {
			return ev, nil
		}
		select {
		case <-s.ready:
		case <-s.done:
			if ev, ok := s.Next(); ok {
				return ev, nil
			}
			return Event{}, ErrClosed
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Name is the subscriber's name.
func (s *Subscription) Name() string { return s.name }

// Dropped reports whether a lossy subscription was dropped for falling behind.
func (s *Subscription) Dropped() bool { return s.dropped.Load() }

// Depth is the number of events queued and not yet taken.
func (s *Subscription) Depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) - s.head
}

// LastSeq is the sequence number of the last event accepted for this subscriber (0 if
// none). A subscriber that has handled an event with this number is caught up.
func (s *Subscription) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Close unsubscribes.
func (s *Subscription) Close() {
	s.bus.remove(s)
	s.stop()
}

func (s *Subscription) stop() { s.once.Do(func() { close(s.done) }) }

// offer queues ev if the filter accepts it. It is called with the bus lock held and reports
// whether the subscription stays registered.
func (s *Subscription) offer(ev Event) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	if s.filter != nil && !s.filter(ev) {
		return true
	}
	s.mu.Lock()
	if s.limit > 0 && len(s.queue)-s.head >= s.limit {
		s.queue, s.head = nil, 0
		s.mu.Unlock()
		s.dropped.Store(true)
		s.stop()
		return false
	}
	s.queue = append(s.queue, ev)
	s.last = ev.Seq
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
	return true
}
