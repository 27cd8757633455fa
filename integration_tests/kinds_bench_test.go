package integration

// Benchmarks of the inetd and cron kinds against the real binary (as PID 1):
//
//	go test -run '^$' -bench 'Inetd|Cron' ./integration_tests/
//	PILOTFISH_BENCH_CRON_RUNS=60 go test -run '^$' -bench CronDrift ./integration_tests/
//
// inetd accept mode: connections per second (one client, and four at once) and the time
// from connect to the child's first byte. inetd activate mode: the same time when the
// program must be started for the connection (cold) and when it already runs and loops on
// accept (warm). cron: how far the `started` log lines of an `@every 1s` job are from the
// whole-second grid the schedule is due on.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startBench starts pilotfish with cfg and waits until it has started its jobs.
func startBench(b *testing.B, cfg string) *instance {
	b.Helper()
	p := start(b, opts{Config: benchLogs + cfg})
	p.WaitStarted()
	return p
}

// activatedSrc is a socket-activated server in Go (stdlib only): it checks the LISTEN_*
// variables, answers "x\n" to each connection on fd 3, and with the argument "once" exits
// after the first.
const activatedSrc = `package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) || os.Getenv("LISTEN_FDS") != "1" {
		fmt.Fprintln(os.Stderr, "not socket-activated")
		os.Exit(2)
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	once := len(os.Args) > 1 && os.Args[1] == "once"
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.Write([]byte("x\n"))
		c.Close()
		if once {
			return
		}
	}
}
`

// buildActivated builds activatedSrc into the benchmark's temporary directory.
func buildActivated(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(activatedSrc), 0o644); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "activated")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	cmd.Dir = dir
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, o)
	}
	return out
}

// firstByte connects, and returns the time from the start of the dial to the first byte
// read; it then reads to the end and closes.
func firstByte(addr string) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadByte(); err != nil {
		return 0, fmt.Errorf("no byte: %w", err)
	}
	d := time.Since(t0)
	_, _ = io.Copy(io.Discard, r)
	return d, nil
}

// reportLatency reports conns/s over the timed part and the p50/p99 of ds in ms.
func reportLatency(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		i := int(p * float64(len(ds)-1))
		return float64(ds[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(len(ds))/s, "conns/s")
	}
	b.ReportMetric(0, "ns/op") // the per-op time is conns/s upside down; keep the table short
}

// benchAccept measures an inetd job in accept mode that runs /bin/echo per connection;
// extra is added to the job's block.
func benchAccept(b *testing.B, clients int, extra string) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(b))
	startBench(b, `
job "bench" {
  kind   = "inetd"
  listen = "tcp://`+addr+`"
  exec   = ["/bin/echo", "x"]`+extra+`
}
`)
	if _, err := firstByte(addr); err != nil { // warm up
		b.Fatal(err)
	}
	var mu sync.Mutex
	var ds []time.Duration
	var failed error
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range clients {
		n := b.N / clients
		if c < b.N%clients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, n)
			for range n {
				d, err := firstByte(addr)
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
				local = append(local, d)
			}
			mu.Lock()
			ds = append(ds, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
	reportLatency(b, ds)
}

// inetd accept mode, one client after the other: a process per connection.
func BenchmarkInetdAcceptSequential(b *testing.B) { benchAccept(b, 1, "") }

// inetd accept mode, four clients at once.
func BenchmarkInetdAcceptConcurrent4(b *testing.B) { benchAccept(b, 4, "") }

// inetd activate mode, cold: every connection has to start the program (it exits after
// one connection). Each connection is made once the previous program has exited and the
// socket is re-armed (waiting for that is not timed).
func BenchmarkInetdActivateCold(b *testing.B) {
	bin := buildActivated(b)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(b))
	p := startBench(b, `
job "cold" {
  kind   = "inetd"
  mode   = "activate"
  listen = "tcp://`+addr+`"
  exec   = ["`+bin+`", "once"]
}
`)
	exited := func() int { return strings.Count(p.Stderr.String(), `"msg":"exited","job":"cold"`) }
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		d, err := firstByte(addr)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d)
		b.StopTimer()
		if !p.Stderr.waitUntil(10*time.Second, func(string) bool { return exited() >= i+1 }) {
			b.Fatalf("the activated program did not exit after connection %d", i+1)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportLatency(b, ds)
}

// inetd activate mode, warm: the program runs and loops on accept; pilotfish is not on
// the path of a connection any more.
func BenchmarkInetdActivateWarm(b *testing.B) {
	bin := buildActivated(b)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(b))
	startBench(b, `
job "warm" {
  kind   = "inetd"
  mode   = "activate"
  listen = "tcp://`+addr+`"
  exec   = ["`+bin+`"]
}
`)
	if _, err := firstByte(addr); err != nil { // starts the program
		b.Fatal(err)
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		d, err := firstByte(addr)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d)
	}
	b.StopTimer()
	reportLatency(b, ds)
}

// cron: an `@every 1s` job for N runs (PILOTFISH_BENCH_CRON_RUNS, default 10). The
// schedule is due on whole seconds; the drift of run k is its `started` log time minus
// (the first run's second + k s). Reports the mean and max drift in ms. One measurement
// whatever b.N (it takes N seconds).
func BenchmarkCronDrift(b *testing.B) {
	runs := 10
	if v := os.Getenv("PILOTFISH_BENCH_CRON_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			b.Fatalf("PILOTFISH_BENCH_CRON_RUNS=%q: want a number ≥ 2", v)
		}
		runs = n
	}
	p := startBench(b, `
job "tick" {
  kind     = "cron"
  schedule = "@every 1s"
  exec     = ["true"]
}
`)
	b.ResetTimer()
	p.WaitLogN(time.Duration(runs+5)*time.Second, runs, is("started", "tick"), "the cron runs")
	b.StopTimer()
	var starts []time.Time
	for _, e := range p.Logs() {
		if is("started", "tick")(e) {
			starts = append(starts, e.time())
		}
	}
	starts = starts[:runs]
	grid := starts[0].Truncate(time.Second)
	var sum, maxDrift time.Duration
	for k, s := range starts {
		d := s.Sub(grid.Add(time.Duration(k) * time.Second))
		if d < 0 {
			d = -d
		}
		sum += d
		maxDrift = max(maxDrift, d)
	}
	b.ReportMetric(float64(sum)/float64(runs)/float64(time.Millisecond), "mean-drift-ms")
	b.ReportMetric(float64(maxDrift)/float64(time.Millisecond), "max-drift-ms")
	b.ReportMetric(float64(runs), "runs")
	b.ReportMetric(0, "ns/op")
}
