package logtail

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Store holds every job's ring, by job name, and the followers.
type Store struct {
	mu    sync.Mutex
	rings map[string]*Ring
	// seq is the largest line number of a forgotten ring: a job a reload adds again numbers
	// its lines after it, so that a follower's skip (Follow) never hides its new lines.
	seq uint64
	// followers is replaced, never changed in place, under mu: Append reads it without
	// a lock.
	followers atomic.Pointer[[]*Follower]
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{rings: map[string]*Ring{}}
}

// Ring returns the job's ring, made on first use; a ring kept from before takes the new
// limit (a reload changed `buffer`) and keeps its lines.
func (s *Store) Ring(job string, limit int) *Ring {
	s.mu.Lock()
	r, ok := s.rings[job]
	if !ok {
		r = NewRing(job, limit)
		r.store, r.seq = s, s.seq
		s.rings[job] = r
	}
	s.mu.Unlock()
	if ok {
		r.setLimit(limit)
	}
	return r
}

// Keep forgets the rings of every job not in jobs (removed by a reload), and returns the
// bytes they held: once their last writer is gone, the memory is free.
func (s *Store) Keep(jobs []string) int {
	s.mu.Lock()
	var gone []*Ring
	for name, r := range s.rings {
		if !slices.Contains(jobs, name) {
			gone = append(gone, r)
			delete(s.rings, name)
		}
	}
	n := 0
	for _, r := range gone {
		size, seq := r.size()
		n += size
		s.seq = max(s.seq, seq)
	}
	s.mu.Unlock()
	return n
}

// rings returns the rings of jobs (every ring when jobs is nil), in the order of jobs or,
// for every ring, by name.
func (s *Store) ringsOf(jobs []string) []*Ring {
	var out []*Ring
	if jobs == nil {
		for _, r := range s.rings {
			out = append(out, r)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].job < out[j].job })
		return out
	}
	for _, name := range jobs {
		if r := s.rings[name]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// Last returns the newest n lines (every line kept when n < 0) of jobs (every job when
// nil), oldest first, merged by time.
func (s *Store) Last(jobs []string, n int) []Line {
	s.mu.Lock()
	rings := s.ringsOf(jobs)
	s.mu.Unlock()
	var lines []Line
	for _, r := range rings {
		lines, _ = r.tail(lines, n)
	}
	return newest(lines, n, len(rings) > 1)
}

// newest sorts lines of several rings by time (each ring's lines are in order, and keep
// it) and keeps the newest n.
func newest(lines []Line, n int, merge bool) []Line {
	if merge {
		sort.SliceStable(lines, func(i, j int) bool { return lines[i].Time.Before(lines[j].Time) })
	}
	if n >= 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// FollowLimit is how many bytes of lines may wait for one follower (each line counts its
// message and lineCost); beyond that, its lines are dropped and counted.
const FollowLimit = 256 << 10

// lineCost is what a queued line costs besides its message.
const lineCost = 48

// Follow returns the newest n lines of jobs (every job, also those a reload adds later,
// when nil), as Last does, and a follower that receives every line appended after them.
// Close the follower when done.
func (s *Store) Follow(jobs []string, n int) ([]Line, *Follower) {
	f := &Follower{store: s, jobs: jobs, limit: FollowLimit, ready: make(chan struct{}, 1), skip: map[string]uint64{}}
	s.mu.Lock()
	old := s.followers.Load()
	var next []*Follower
	if old != nil {
		next = append(next, *old...)
	}
	next = append(next, f)
	s.followers.Store(&next)
	rings := s.ringsOf(jobs)
	s.mu.Unlock()
	var lines []Line
	for _, r := range rings {
		var seq uint64
		lines, seq = r.tail(lines, n)
		// Lines up to seq may also have reached the queue since f was registered.
		f.mu.Lock()
		f.skip[r.job] = seq
		f.mu.Unlock()
	}
	return newest(lines, n, len(rings) > 1), f
}

// Followers is the number of followers.
func (s *Store) Followers() int {
	if fs := s.followers.Load(); fs != nil {
		return len(*fs)
	}
	return 0
}

// Follower receives the new lines of some jobs through a bounded queue. The writers of
// those lines never wait for it: when the queue is full, lines are dropped and counted,
// and Take reports them.
type Follower struct {
	store *Store
	jobs  []string // nil: every job
	limit int
	ready chan struct{}

	mu      sync.Mutex
	queue   []entry
	arena   []byte // the queued messages
	size    int    // bytes counted against limit
	dropped []drop // by job, in the order of the first loss
	skip    map[string]uint64
	closed  bool

	// What the last Take returned: its caller is done with it at the next Take, which
	// gives it to the writers again. Only Take's goroutine touches these.
	lastQueue []entry
	lastArena []byte
}

type entry struct {
	ns       int64
	job      string
	stream   Stream
	seq      uint64
	off, len int
}

type drop struct {
	job string
	n   uint64
}

func (f *Follower) wants(job string) bool {
	return f.jobs == nil || slices.Contains(f.jobs, job)
}

// push queues a copy of one line, or counts it as dropped when the queue is full.
func (f *Follower) push(job string, seq uint64, ns int64, s Stream, msg []byte, cut bool) {
	n := len(msg)
	if cut {
		n += len(Ellipsis)
	}
	f.mu.Lock()
	switch {
	case f.closed:
	case f.size+lineCost+n > f.limit:
		if k := len(f.dropped); k > 0 && f.dropped[k-1].job == job {
			f.dropped[k-1].n++
		} else if i := slices.IndexFunc(f.dropped, func(d drop) bool { return d.job == job }); i >= 0 {
			f.dropped[i].n++
		} else {
			f.dropped = append(f.dropped, drop{job, 1})
		}
	default:
		off := len(f.arena)
		f.arena = append(f.arena, msg...)
		if cut {
			f.arena = append(f.arena, Ellipsis...)
		}
		f.queue = append(f.queue, entry{ns: ns, job: job, stream: s, seq: seq, off: off, len: n})
		f.size += lineCost + n
	}
	f.mu.Unlock()
	if len(f.ready) == 0 { // a stuck reader's signal is pending: skip the channel's lock
		select {
		case f.ready <- struct{}{}:
		default:
		}
	}
}

// Ready is signalled when lines are waiting.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// Take appends the waiting lines to dst, oldest first, and after them one Notice per job
// whose lines were dropped since the last Take: Message "N lines dropped: this reader
// fell behind", Dropped N. The messages stay valid until the next Take. One goroutine
// calls Take.
func (f *Follower) Take(dst []Line) []Line {
	f.mu.Lock()
	queue, arena, drops := f.queue, f.arena, f.dropped
	f.queue, f.arena, f.dropped, f.size = f.lastQueue[:0], f.lastArena[:0], nil, 0
	start := len(dst)
	for _, e := range queue {
		if e.seq <= f.skip[e.job] {
			continue // returned by Follow already
		}
		dst = append(dst, Line{Time: time.Unix(0, e.ns), Job: e.job, Stream: e.stream, Message: arena[e.off : e.off+e.len : e.off+e.len], seq: e.seq})
	}
	f.mu.Unlock()
	f.lastQueue, f.lastArena = queue, arena
	if cap(arena) > 2*f.limit { // grown by one huge line: let it go
		f.lastQueue, f.lastArena = nil, nil
	}
	// Lines of several jobs come in the order their writers took the queue; put them in
	// the order of their times.
	batch := dst[start:]
	sort.SliceStable(batch, func(i, j int) bool { return batch[i].Time.Before(batch[j].Time) })
	now := time.Now()
	for _, d := range drops {
		dst = append(dst, Line{Time: now, Job: d.job, Stream: Notice, Dropped: d.n,
			Message: fmt.Appendf(nil, "%d lines dropped: this reader fell behind", d.n)})
	}
	return dst
}

// Close stops the follower; it receives nothing more.
func (f *Follower) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.queue, f.arena, f.lastQueue, f.lastArena = nil, nil, nil, nil
	f.mu.Unlock()
	s := f.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.followers.Load(); old != nil {
		next := slices.DeleteFunc(slices.Clone(*old), func(g *Follower) bool { return g == f })
		if len(next) == 0 {
			s.followers.Store(nil)
		} else {
			s.followers.Store(&next)
		}
	}
}
