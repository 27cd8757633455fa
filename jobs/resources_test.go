package jobs

import (
	"testing"
	"time"
)

// The CPU counter never goes back: a reading that falls behind the last one reports the
// last one, and a run that ends with none left keeps what was reported for it.
func TestCPUNeverGoesBack(t *testing.T) {
	j := &Job{runs: map[uint64]*activeRun{}}
	if got := j.cpuHigh(5 * time.Second); got != 5*time.Second {
		t.Fatalf("first reading %s", got)
	}
	if got := j.cpuHigh(3 * time.Second); got != 5*time.Second {
		t.Fatalf("a lower reading gives %s", got)
	}
	// The run's process was reaped with 4s; its group had used 5s when last read.
	j.addCPU(4 * time.Second)
	if j.cpuDone != 5*time.Second {
		t.Fatalf("after the run: %s, want the 5s reported", j.cpuDone)
	}
	j.addCPU(2 * time.Second)
	if j.cpuDone != 7*time.Second {
		t.Fatalf("after the next run: %s", j.cpuDone)
	}
}
