package integration

// What per-job resources cost (docs/operations.md#what-it-costs):
//
//	go test -run '^$' -bench 'Resources' ./integration_tests/
//
// BenchmarkResourcesStart: a job's start with and without limits, end to end (an inetd job
// in accept mode starts a process per connection; the time is connect → first byte).
// BenchmarkResourcesShim: the start-up of the exec shim alone, wall and CPU time per
// process, against exec'ing the program directly. BenchmarkResourcesStatus50Jobs: GET
// /v1/status with 50 running jobs, each read from /proc (PILOTFISH_BIN=a build without the
// resource fields gives the number to compare with).

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

func BenchmarkResourcesStart(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchAccept(b, 1, "") })
	b.Run("limits", func(b *testing.B) {
		benchAccept(b, 1, "\n  limits {\n    nofile = 1024\n    core   = 0\n  }\n  oom_score_adj = 100")
	})
}

func BenchmarkResourcesShim(b *testing.B) {
	for _, c := range []struct {
		name string
		argv []string
	}{
		{"direct", []string{"/bin/true"}},
		{"shim", []string{plainBin, "__exec", "-rlimit", "nofile:" + strconv.Itoa(syscall.RLIMIT_NOFILE) + ":1024", "--", "/bin/true", "true"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var cpu time.Duration
			ds := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				cmd := exec.Command(c.argv[0], c.argv[1:]...)
				t0 := time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			b.StopTimer()
			slices.Sort(ds)
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func BenchmarkResourcesStatus50Jobs(b *testing.B) {
	var cfg strings.Builder
	for i := range 50 {
		fmt.Fprintf(&cfg, "job \"j%d\" {\n  exec = [\"sleep\", \"100000\"]\n}\n", i)
	}
	_, sock := startCtl(b, opts{NoRace: true, Config: benchLogs + cfg.String()})
	c := client.New(sock)
	ctx := context.Background()
	waitFor(b, 20*time.Second, func() bool {
		st, err := c.Status(ctx)
		if err != nil {
			return false
		}
		for _, j := range st.Jobs {
			if j.Pid == 0 {
				return false
			}
		}
		return len(st.Jobs) == 50
	}, "50 jobs running")
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := c.Status(ctx); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
}
