package integration

// Job logs against the real binary (built without -race), as PID 1:
//
//	go test -run '^$' -bench 'Logs|LogFollower' ./integration_tests/
//
// BenchmarkLogsTail1000: GET /v1/logs?n=1000 from a full 256 KiB tail, the whole answer
// read (goal: under 5 ms). BenchmarkLogFollowerCost: a job writing 200,000 lines as fast as
// it can, alone and with a follower that reads nothing, one after the other; it reports both
// times and their ratio (goal: no measurable cost, the ratio within noise of 1).

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unixClient is an HTTP client with keep-alive connections to the control socket.
func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}, Timeout: 10 * time.Second}
}

func BenchmarkLogsTail1000(b *testing.B) {
	devnull := devNull(b)
	k := startPF(b, keeper+`
job "app" {
  exec = ["seq", "-f", "app-%07g GET /api/orders 200 12ms user=42 trace=0123456789abcdef", "1", "50000"]
}
`, opts{NoRace: true, StdoutFile: devnull, Logs: benchLogs})
	waitTail(b, k.sock, "app", "app-0050000 GET /api/orders 200 12ms user=42 trace=0123456789abcdef")
	hc := unixClient(k.sock)
	get := func() int {
		resp, err := hc.Get("http://pilotfish/v1/logs?n=1000")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET /v1/logs?n=1000: %d %v", resp.StatusCode, err)
		}
		return strings.Count(string(body), "\n")
	}
	if n := get(); n != 1000 {
		b.Fatalf("%d lines, want 1000", n)
	}
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		get()
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100])/1e6, "p99-ms")
}

func BenchmarkLogFollowerCost(b *testing.B) {
	const total = 200000
	devnull := devNull(b)
	dir := b.TempDir()
	took := filepath.Join(dir, "took")
	k := startPF(b, keeper+floodJob(total, took), opts{Dir: dir, NoRace: true, StdoutFile: devnull, Logs: benchLogs})
	runs := 0
	waitRun := func() float64 {
		runs++
		var lines []string
		waitFor(b, 60*time.Second, func() bool {
			b, _ := os.ReadFile(took)
			lines = strings.Fields(string(b))
			return len(lines) >= runs
		}, "flood run %d to end", runs)
		s, _ := strconv.ParseFloat(lines[runs-1], 64)
		waitTail(b, k.sock, "flood", "flood-0200000")
		return s
	}
	start := func() {
		if r := k.cli("start", "flood"); r.code != 0 {
			b.Fatalf("pilotfish start flood: %d %s", r.code, r.stderr)
		}
	}
	waitRun() // the run at start-up warms up
	var alone, followed []float64
	for b.Loop() {
		start()
		alone = append(alone, waitRun())
		f := followRaw(b, k.sock, "jobs=flood&n=0&follow=true")
		start()
		followed = append(followed, waitRun())
		f.conn.Close()
	}
	slices.Sort(alone)
	slices.Sort(followed)
	a, f := alone[len(alone)/2], followed[len(followed)/2]
	b.ReportMetric(a*1e3, "alone-ms")
	b.ReportMetric(f*1e3, "followed-ms")
	b.ReportMetric(f/a, "ratio")
}
