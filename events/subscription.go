package events

import (
	"sync"
	"sync/atomic"
)

// Subscription is one subscriber's queue. A goroutine moves queued events to C, so the
// publisher only ever appends.
type Subscription struct {
	bus    *Bus
	name   string
	filter func(Event) bool
	limit  int

	mu       sync.Mutex
	queue    []Event
	head     int
	last     uint64 // Seq of the last event accepted
	inFlight bool   // the pump holds one event it has not delivered yet

	wake    chan struct{}
	out     chan Event
	done    chan struct{}
	once    sync.Once
	dropped atomic.Bool
}

// C delivers the events in order. It is closed after Close or when a lossy subscription is
// dropped.
func (s *Subscription) C() <-chan Event { return s.out }

// Name is the subscriber's name.
func (s *Subscription) Name() string { return s.name }

// Dropped reports whether a lossy subscription was dropped for falling behind.
func (s *Subscription) Dropped() bool { return s.dropped.Load() }

// Depth is the number of events accepted but not yet received from C.
func (s *Subscription) Depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.queue) - s.head
	if s.inFlight {
		n++
	}
	return n
}

// LastSeq is the sequence number of the last event accepted for this subscriber (0 if
// none). A subscriber that has handled an event with this number is caught up.
func (s *Subscription) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Close unsubscribes. Events still queued are discarded.
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
		s.mu.Unlock()
		s.dropped.Store(true)
		s.stop()
		return false
	}
	s.queue = append(s.queue, ev)
	s.last = ev.Seq
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

func (s *Subscription) pop() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.queue) {
		s.inFlight = false
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
	s.inFlight = true
	return ev, true
}

func (s *Subscription) pump() {
	defer close(s.out)
	for {
		ev, ok := s.pop()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.out <- ev:
		case <-s.done:
			return
		}
	}
}
