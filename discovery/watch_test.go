package discovery

import (
	"testing"
	"time"
)

func TestPaceGrowsWithTheAnswerAndStaysRandom(t *testing.T) {
	for _, c := range []struct {
		n        int
		low, top time.Duration
	}{
		{0, 0, 0},
		{2, 20 * time.Millisecond, 30 * time.Millisecond},
		{100, time.Second, 1500 * time.Millisecond},
		{200, 4 * time.Second, 6 * time.Second},
		{1000, paceMax, paceMax * 3 / 2},
	} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := pace(c.n)
			if d < c.low || d > c.top {
				t.Fatalf("pace(%d) = %s, want within [%s, %s]", c.n, d, c.low, c.top)
			}
			seen[d] = true
		}
		if c.n > 0 && len(seen) < 10 {
			t.Errorf("pace(%d) took only %d values: not random", c.n, len(seen))
		}
	}
}
