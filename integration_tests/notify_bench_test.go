package integration

// Benchmark of the notify kind, run with
//
//	go test -run '^$' -bench 'Notify' ./integration_tests/
//
// BenchmarkNotifyReadyToDependent: pilotfish as PID 1 runs a notify job and a job with
// `once = "healthy"` of it. The notify program (Python, raw protocol) stamps the time
// right before it sends READY=1; the dependent's `started` event carries pilotfish's time
// of the start, and the dependent stamps its own first command. Over at least 20 fresh
// runs it reports the p50 and p99 of READY=1 → started event ("p50-ms", "p99-ms") and the
// p50 of READY=1 → the dependent's first command ("p50-exec-ms").

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

func BenchmarkNotifyReadyToDependent(b *testing.B) {
	requirePID1(b)
	runs := max(b.N, 20)
	var toEvent, toExec []time.Duration
	for range runs {
		ev, ex := notifyReadyOnce(b)
		toEvent, toExec = append(toEvent, ev), append(toExec, ex)
	}
	slices.Sort(toEvent)
	slices.Sort(toExec)
	pct := func(d []time.Duration, p float64) float64 {
		i := int(p*float64(len(d)) + 0.5)
		return float64(d[min(max(i-1, 0), len(d)-1)]) / 1e6
	}
	b.ReportMetric(pct(toEvent, 0.5), "p50-ms")
	b.ReportMetric(pct(toEvent, 0.99), "p99-ms")
	b.ReportMetric(pct(toExec, 0.5), "p50-exec-ms")
	b.ReportMetric(float64(len(toEvent)), "runs")
	b.ReportMetric(0, "ns/op")
}

// notifyReadyOnce runs one pilotfish and measures READY=1 → the dependent's start.
func notifyReadyOnce(b *testing.B) (toEvent, toExec time.Duration) {
	b.Helper()
	dir := b.TempDir()
	_, sdprog, ctl := notifyScripts(b, dir)
	k := startPF(b, readyDepConfig(sdprog), opts{Dir: dir, Logs: benchLogs})
	sdprogLine(b, dir, 1, `^start `)
	ready, started, ran := readyToDep(b, k, dir, ctl)
	toEvent, toExec = started.Time.Sub(ready), ran.Sub(ready)
	k.Signal(syscall.SIGTERM) // one pilotfish at a time
	k.Wait(15 * time.Second)
	return toEvent, toExec
}
