package control

import (
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
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
		writeJSON(w, http.StatusTooManyRequests, client.ErrorBody{Error: client.ErrorDetail{Kind: client.KindTooManyStreams,
			Message: fmt.Sprintf("%d streams are open already, the most pilotfish serves at once; close one and retry", MaxStreams)}})
		return nil, false
	}
}

// whenStarted answers 503 starting until Started was called: before every job is
// installed, a reload or a job verb would act on a half-built daemon.
func (s *Server) whenStarted(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.started.Load() {
			writeJSON(w, http.StatusServiceUnavailable, client.ErrorBody{Error: client.ErrorDetail{Kind: client.KindStarting,
				Message: "pilotfish is still starting its jobs; retry in a moment"}})
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

// connLimiter is a listener that keeps at most max connections open. When one more
// arrives it closes the connection that has waited longest without a request in progress
// (idle keep-alive, or not a full request yet), or else the newcomer: a request in flight
// is never cut, and a flood of silent clients cannot lock out /v1/ping.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]connInfo
	peak  int // most connections open at once since the last flood ended
}

type connInfo struct {
	active bool // a request is being answered
	since  time.Time
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, conns: map[net.Conn]connInfo{}}
}

// Accept returns the next connection, making room for it first.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var victim net.Conn
		if len(l.conns) >= l.max {
			victim = l.oldestWaitingLocked()
			if victim != nil {
				delete(l.conns, victim)
			}
		}
		full := len(l.conns) >= l.max
		if !full {
			l.conns[c] = connInfo{since: time.Now()}
			l.noteOpenLocked()
		}
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
		}
		if full {
			c.Close()
			continue
		}
		return c, nil
	}
}

func (l *connLimiter) oldestWaitingLocked() net.Conn {
	var oldest net.Conn
	var at time.Time
	for c, info := range l.conns {
		if !info.active && (oldest == nil || info.since.Before(at)) {
			oldest, at = c, info.since
		}
	}
	return oldest
}

// connState is the http.Server's ConnState hook.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; !ok {
		return // evicted, or never counted
	}
	switch st {
	case http.StateActive:
		l.conns[c] = connInfo{active: true, since: time.Now()}
	case http.StateIdle:
		l.conns[c] = connInfo{since: time.Now()}
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
		l.released()
	}
}

// floodSize is the number of connections open at once that counts as a flood.
const floodSize = 4 * MaxStreams

// noteOpenLocked records the number of open connections.
func (l *connLimiter) noteOpenLocked() { l.peak = max(l.peak, len(l.conns)) }

// released gives the memory of a flood back once it is gone: the heap that thousands of
// connections took would otherwise stay mapped until the next garbage collection, which an
// idle PID 1 may not need for a long time.
func (l *connLimiter) released() {
	if l.peak >= floodSize && len(l.conns) <= MaxStreams {
		l.peak = len(l.conns)
		go debug.FreeOSMemory()
	}
}
