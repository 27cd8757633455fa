package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoffDoublesWithJitterUpToMax(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	bases := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	atCap := map[time.Duration]bool{}
	for round := 0; round < 50; round++ {
		b.Reset()
		for i, base := range bases {
			base *= time.Millisecond
			d := b.Next()
			if d > base || d < base*3/4 {
				t.Fatalf("attempt %d: delay %s, want within [%s, %s]", i, d, base*3/4, base)
			}
			if base == time.Second {
				atCap[d] = true
			}
		}
	}
	if len(atCap) < 10 {
		t.Errorf("only %d distinct delays at the cap: retries would run in lock-step", len(atCap))
	}
}

func TestBackoffDefaults(t *testing.T) {
	var b Backoff
	if d := b.Next(); d > DefaultInitial || d < DefaultInitial*3/4 {
		t.Fatalf("first delay %s, want about %s", d, DefaultInitial)
	}
	for range 20 {
		if d := b.Next(); d > DefaultMax {
			t.Fatalf("delay %s beyond %s", d, DefaultMax)
		}
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	b := Backoff{Initial: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}
