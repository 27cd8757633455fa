package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// The delays between calls to a peer: from 100 ms up to 5 s (docs/consul.md).
const (
	PeerInitial = 100 * time.Millisecond
	PeerMax     = 5 * time.Second
)

// Policy bounds the delays: the first retry waits between Initial and 2×Initial, each further
// one twice as long, and none more than Max (at the cap, between Max/2 and Max: the jitter
// never goes away).
type Policy struct {
	Initial, Max time.Duration
}

// Backoff counts the failures of one retry loop.
type Backoff struct {
	p     Policy
	fails int
}

// New starts a retry loop's backoff.
func New(p Policy) Backoff { return Backoff{p: p} }

// NewPeer starts a retry loop's backoff toward a peer: PeerInitial to PeerMax.
func NewPeer() Backoff { return New(Policy{Initial: PeerInitial, Max: PeerMax}) }

// Next counts a failure and returns how long to wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	d := b.p.Initial
	for i := 0; i < b.fails && d < b.p.Max/2; i++ {
		d *= 2
	}
	d = min(d, b.p.Max/2)
	b.fails++
	return d + rand.N(d+1)
}

// Reset forgets the failures after a success.
func (b *Backoff) Reset() { b.fails = 0 }

// Failures is the number of failures since the last success.
func (b *Backoff) Failures() int { return b.fails }

// Sleep waits d, or less when ctx ends first; it reports whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
