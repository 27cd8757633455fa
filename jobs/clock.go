package jobs

import "time"

// Clock is what schedules read time from; tests replace it to jump the wall clock.
type Clock interface {
	Now() time.Time
	// After fires once d has passed on the monotonic clock.
	After(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
