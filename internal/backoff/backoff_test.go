package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelaysDoubleWithinBoundsAndStayRandomAtTheCap(t *testing.T) {
	p := Policy{Initial: PeerInitial, Max: PeerMax}
	lows := []time.Duration{100, 200, 400, 800, 1600, 2500, 2500, 2500}
	for run := 0; run < 200; run++ {
		b := New(p)
		for i, low := range lows {
			low *= time.Millisecond
			high := min(2*low, p.Max)
			if d := b.Next(); d < low || d > high {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", i+1, d, low, high)
			}
		}
		if b.Failures() != len(lows) {
			t.Fatalf("Failures = %d", b.Failures())
		}
		b.Reset()
		if d := b.Next(); d > 200*time.Millisecond {
			t.Fatalf("after Reset the delay is %s, want the initial one", d)
		}
	}
	// At the cap the delays still differ: instances that failed together spread out.
	b := NewPeer()
	for range 10 {
		b.Next()
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[b.Next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays at the cap: the jitter went away", len(seen))
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep waited out an hour on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep did not report a full wait")
	}
}
