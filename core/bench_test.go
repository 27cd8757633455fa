package core

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

func sleepers(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "job \"j%d\" {\n  exec = [\"sleep\", \"100000\"]\n}\n", i)
	}
	return b.String()
}

func startBench(b *testing.B, jobs int) *harness {
	h := start(b, sleepers(jobs))
	h.waitFor("all running", func() bool {
		st, err := h.c.Status(context.Background())
		if err != nil {
			return false
		}
		for _, j := range st.Jobs {
			if j.State != "running" {
				return false
			}
		}
		return len(st.Jobs) == jobs
	})
	return h
}

// latencies runs fn b.N times and reports p50 and p99.
func latencies(b *testing.B, fn func() error) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPing: GET /v1/ping over the socket (goal: p99 under 1 ms).
func BenchmarkPing(b *testing.B) {
	h := startBench(b, 0+1)
	ctx := context.Background()
	latencies(b, func() error { _, err := h.c.Ping(ctx); return err })
}

// BenchmarkStatus50Jobs: GET /v1/status with 50 jobs.
func BenchmarkStatus50Jobs(b *testing.B) {
	h := startBench(b, 50)
	ctx := context.Background()
	latencies(b, func() error { _, err := h.c.Status(ctx); return err })
}

// BenchmarkPing16Clients: requests/s with 16 concurrent clients.
func BenchmarkPing16Clients(b *testing.B) {
	h := startBench(b, 1)
	ctx := context.Background()
	clients := make([]*client.Client, 16)
	for i := range clients {
		clients[i] = client.New(h.c.Socket())
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/16 + 1
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := c.Ping(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*16)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkReloadUnchanged50Jobs: POST /v1/reload of an unchanged 50-job configuration
// (goal: under 20 ms, no process restarted).
func BenchmarkReloadUnchanged50Jobs(b *testing.B) {
	h := startBench(b, 50)
	ctx := context.Background()
	before, _ := h.c.Status(ctx)
	latencies(b, func() error {
		res, err := h.c.Reload(ctx)
		if err == nil && len(res.Changed)+len(res.Added)+len(res.Removed) > 0 {
			err = fmt.Errorf("unchanged reload changed %+v", res)
		}
		return err
	})
	after, _ := h.c.Status(ctx)
	for i := range before.Jobs {
		if before.Jobs[i].Pid != after.Jobs[i].Pid {
			b.Fatalf("job %s restarted", before.Jobs[i].Name)
		}
	}
}

// BenchmarkPutMetric16Clients: custom metric updates per second through the socket.
func BenchmarkPutMetric16Clients(b *testing.B) {
	h := start(b, `
telemetry {
  metric "orders_total" {
    type   = "counter"
    labels = ["kind"]
  }
}
job "idle" {
  exec = ["sleep", "100000"]
}`)
	ctx := context.Background()
	m := client.Metric{Name: "orders_total", Value: 1, Labels: map[string]string{"kind": "web"}}
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/16 + 1
	for i := 0; i < 16; i++ {
		c := client.New(h.c.Socket())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < per; k++ {
				if err := c.PutMetric(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*16)/b.Elapsed().Seconds(), "updates/s")
}
