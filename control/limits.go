package control

import (
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/internal/errdefs"
)

// Limits that keep the control API answering whatever its clients do (docs/api.md#limits).
const (
	// MaxStreams is how many long-lived answers (event streams, followed logs) may be open
	// at once; one more gets 429 too-many-streams.
	MaxStreams = 64
	// maxConnsCap bounds the open connections even when the file limit is huge.
	maxConnsCap = 1024
)

// streamSlots is the shared cap on streams. Every endpoint that answers for as long as its
// client stays takes a slot with Server.openStream and gives it back when it ends.
type streamSlots chan struct{}

// openStream takes a stream slot, or answers 429 and reports false. The caller must call
// the returned release when its answer ends.
func (s *Server) openStream(w http.ResponseWriter) (release func(), ok bool) {
	select {
	case s.streams <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-s.streams }) }, true
	default:
		writeError(w, errdefs.Errorf(errdefs.ErrTooMany, "%d streams are open already, the most pilotfish serves at once; close one and retry", MaxStreams))
		return nil, false
	}
}

// whenStarted answers 503 starting until Started was called: before every job is
// installed, a reload or a job verb would act on a half-built daemon.
func (s *Server) whenStarted(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.started.Load() {
			writeError(w, errdefs.Errorf(errdefs.ErrStarting, "pilotfish is still starting its jobs; retry in a moment"))
			return
		}
		h(w, r)
	}
}

// Started opens the mutating endpoints: every job is installed.
func (s *Server) Started() { s.started.Store(true) }

// maxConns is the number of open control connections allowed: a quarter of the file limit
// (so that a flood of clients cannot take the descriptors jobs and listeners need), at
// least room for every stream plus some requests, at most maxConnsCap.
func maxConns() int {
	var rl syscall.Rlimit
	n := maxConnsCap
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(4*maxConnsCap) {
		n = int(rl.Cur / 4)
	}
	return max(n, MaxStreams+32)
}

// connLimiter is a listener that keeps at most max connections open. When it is full it
// makes room by closing the connection that has waited longest without a request in
// progress: an idle keep-alive one, or one that has not sent a byte for newGrace. With none
// of those it stops accepting until a connection ends; the kernel's backlog holds the
// newcomers meanwhile. A request in flight is never cut, and a flood of clients can take
// neither the file descriptors that jobs need nor /v1/ping's turn for long.
type connLimiter struct {
	net.Listener
	max     int
	changed chan struct{} // poked when a connection ends or turns idle
	done    chan struct{} // closed by Close

	mu    sync.Mutex
	conns map[net.Conn]connInfo
	free  *time.Timer // gives a flood's memory back once it has gone; nil when none
	once  sync.Once
}

type connInfo struct {
	state http.ConnState
	since time.Time
}

// newGrace is how long a new connection may stay silent before it may be closed to make
// room for another; a real client sends its request at once.
const newGrace = 250 * time.Millisecond

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, changed: make(chan struct{}, 1), done: make(chan struct{}),
		conns: map[net.Conn]connInfo{}}
}

// Accept waits until there is room, then returns the next connection.
func (l *connLimiter) Accept() (net.Conn, error) {
	if err := l.waitRoom(); err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.conns[c] = connInfo{state: http.StateNew, since: time.Now()}
	l.mu.Unlock()
	return c, nil
}

// Close stops accepting, also a waiting Accept.
func (l *connLimiter) Close() error {
	l.once.Do(func() { close(l.done) })
	l.mu.Lock()
	if l.free != nil {
		l.free.Stop()
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// waitRoom returns once fewer than max connections are open, closing one that waits
// (see connLimiter) if it must. Only Accept adds connections, so the room stays.
func (l *connLimiter) waitRoom() error {
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.mu.Unlock()
			return nil
		}
		victim, wake := l.waitingLocked(time.Now())
		if victim != nil {
			delete(l.conns, victim)
		}
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
			continue
		}
		timer := time.NewTimer(wake)
		select {
		case <-l.changed:
		case <-timer.C:
		case <-l.done:
			timer.Stop()
			return net.ErrClosed
		}
		timer.Stop()
	}
}

// waitingLocked picks the connection to close for room: the idle or silent new one that has
// waited longest. With none, it says when a new one will have been silent for newGrace.
func (l *connLimiter) waitingLocked(now time.Time) (net.Conn, time.Duration) {
	var oldest net.Conn
	var at time.Time
	wake := newGrace
	for c, info := range l.conns {
		switch {
		case info.state == http.StateIdle, info.state == http.StateNew && now.Sub(info.since) >= newGrace:
			if oldest == nil || info.since.Before(at) {
				oldest, at = c, info.since
			}
		case info.state == http.StateNew:
			wake = min(wake, newGrace-now.Sub(info.since))
		}
	}
	return oldest, wake
}

// connState is the http.Server's ConnState hook.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; !ok {
		return // closed to make room, or never counted
	}
	switch st {
	case http.StateActive, http.StateIdle:
		l.conns[c] = connInfo{state: st, since: time.Now()}
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
		l.released()
	}
	if st != http.StateActive {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// released gives the memory of clients back once they are gone: what a flood of
// connections, a 1 MB header or a big body took would otherwise stay mapped until the Go
// runtime's scavenger gets to it, which an idle PID 1 may not see for minutes. freeDelay
// after the last connection beyond the streams closed, the heap the runtime keeps but does
// not use is measured, and given back when it is worth a collection. The timer runs only
// after clients came and went: an idle pilotfish never wakes up for it.
func (l *connLimiter) released() {
	if len(l.conns) > MaxStreams {
		return
	}
	if l.free != nil {
		l.free.Reset(freeDelay)
		return
	}
	l.free = time.AfterFunc(freeDelay, func() {
		if idleHeap() >= freeWorth {
			// Two collections: the first only moves pooled buffers (sync.Pool) aside.
			runtime.GC()
			debug.FreeOSMemory()
		}
		l.mu.Lock()
		l.free = nil
		l.mu.Unlock()
	})
}

// freeWorth is the unused heap worth a collection to give back.
const freeWorth = 4 << 20

// idleHeap is the heap memory the runtime holds without using it: free spans not yet
// returned to the OS, and what the last collection found dead.
func idleHeap() uint64 {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(samples)
	free, objects, live := samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Uint64()
	if objects > live {
		free += objects - live
	}
	return free
}

// freeDelay is the quiet time after a flood before its memory is given back.
const freeDelay = time.Second
