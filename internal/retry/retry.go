// Package retry paces the retries toward a peer (a syslog forward target, a webhook, …):
// exponential backoff with jitter, every wait bounded by a context (docs/configuration.md,
// "Limits"). It is the one retry helper; call sites keep no delay arithmetic of their own.
//
// A Backoff belongs to one goroutine (the loop that retries); it holds no lock.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Default pacing toward a peer: from about 100 ms up to about 5 s.
const (
	DefaultInitial = 100 * time.Millisecond
	DefaultMax     = 5 * time.Second
)

// Backoff yields the delays between attempts: the base doubles from Initial up to Max, and
// each delay is drawn at random between three quarters of the base and the base, so that
// peers failing together do not retry in lock-step, also once the base reached Max.
type Backoff struct {
	Initial, Max time.Duration // zero means DefaultInitial, DefaultMax
	base         time.Duration
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Initial, b.Max
	if lo <= 0 {
		lo = DefaultInitial
	}
	if hi <= 0 {
		hi = DefaultMax
	}
	switch {
	case b.base == 0:
		b.base = lo
	case b.base < hi:
		b.base = 2 * b.base
	}
	b.base = min(b.base, max(hi, lo))
	quarter := int64(b.base / 4)
	if quarter <= 0 {
		return b.base
	}
	return b.base - time.Duration(rand.Int64N(quarter+1))
}

// Reset starts again from Initial (the peer answered).
func (b *Backoff) Reset() { b.base = 0 }

// Wait sleeps the next delay; it returns ctx's error at once when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
