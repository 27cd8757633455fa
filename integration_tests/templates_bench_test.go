package integration

// Template latency: from a change in Consul (an instance of a service a template reads,
// registered or deregistered through the agent's HTTP API) to the destination rewritten
// (its new text readable), with `wait = "0s"`. consul-template's default path is a
// poll-free blocking query too; the goal is well under 100 ms.
//
//	go test -run '^$' -bench 'Template' ./integration_tests/
//	go test -run '^$' -bench 'TemplateLatency' -benchtime 50x ./integration_tests/
//
// BenchmarkTemplatesSharing renders a hundred templates that read ten services and reports
// the blocking queries they cost (10) and the time until the ten templates of a changed
// service are all rewritten.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/integration_tests/consulagent"
)

// waitText waits (polling every millisecond) until the file at path holds want.
func waitText(tb testing.TB, path, want string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(path); string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			tb.Fatalf("%s still holds %q after 10s, want %q", path, b, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkTemplateLatency measures changes one after the other (burst: each comes while the
// query still pauses after the last answer, 10 ms per instance: docs/consul.md#watches) and
// lone changes (lone: 100 ms apart, past that pause), the common case.
func BenchmarkTemplateLatency(b *testing.B) {
	b.Run("burst", func(b *testing.B) { benchTemplateLatency(b, 0) })
	b.Run("lone", func(b *testing.B) { benchTemplateLatency(b, 100*time.Millisecond) })
}

func benchTemplateLatency(b *testing.B, apart time.Duration) {
	a := consulagent.Start(b)
	c := consulClient(b, a)
	c.registerOther(map[string]any{"ID": "web-0", "Name": "web", "Address": "10.0.0.1", "Port": 80})
	r := startConsulRun(b, opts{Plain: true, Config: consulBlock(a.Addr()) + `
template "web" {
  contents    = "{{ range service \"web\" }}{{ .ID }} {{ end }}"
  destination = "web.conf"
  wait        = "0s"
}
`})
	dest := filepath.Join(r.Dir, "web.conf")
	waitText(b, dest, "web-0 ")
	var files, evs []time.Duration
	up := false
	for b.Loop() {
		if apart > 0 {
			b.StopTimer()
			time.Sleep(apart) // a lone change: the query is back to waiting
			b.StartTimer()
		}
		after := r.lastSeq()
		want := "web-0 web-1 "
		t0 := time.Now()
		if up {
			c.deregisterOther("web-1")
			want = "web-0 "
		} else {
			c.registerOther(map[string]any{"ID": "web-1", "Name": "web", "Address": "10.0.0.2", "Port": 80})
		}
		up = !up
		waitText(b, dest, want)
		files = append(files, time.Since(t0))
		ev := r.waitAfter(5*time.Second, after, "template.web", "changed")
		evs = append(evs, ev.Time.Sub(t0))
	}
	b.ReportMetric(csMS(csPercentile(files, 0.50)), "p50-ms")
	b.ReportMetric(csMS(csPercentile(files, 0.99)), "p99-ms")
	b.ReportMetric(csMS(csPercentile(evs, 0.50)), "event-p50-ms")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkTemplatesSharing(b *testing.B) {
	a := consulagent.Start(b)
	c := consulClient(b, a)
	for s := range 10 {
		c.registerOther(map[string]any{"ID": fmt.Sprintf("svc%d-0", s), "Name": fmt.Sprintf("svc%d", s), "Address": "10.0.0.1", "Port": 80})
	}
	var cfg strings.Builder
	cfg.WriteString(consulBlock(a.Addr()))
	for i := range 100 {
		fmt.Fprintf(&cfg, "template \"t%d\" {\n  contents    = \"{{ range service \\\"svc%d\\\" }}{{ .ID }} {{ end }}\"\n  destination = \"out/t%d.conf\"\n}\n", i, i%10, i)
	}
	r := startConsulRun(b, opts{Plain: true, Config: cfg.String()})
	path := func(i int) string { return filepath.Join(r.Dir, "out", fmt.Sprintf("t%d.conf", i)) }
	for i := range 100 {
		waitText(b, path(i), fmt.Sprintf("svc%d-0 ", i%10))
	}
	var all []time.Duration
	up := false
	for b.Loop() {
		want := "svc3-0 svc3-1 "
		t0 := time.Now()
		if up {
			c.deregisterOther("svc3-1")
			want = "svc3-0 "
		} else {
			c.registerOther(map[string]any{"ID": "svc3-1", "Name": "svc3", "Address": "10.0.0.2", "Port": 80})
		}
		up = !up
		for i := 3; i < 100; i += 10 {
			waitText(b, path(i), want)
		}
		all = append(all, time.Since(t0))
	}
	port := a.Addr()[strings.LastIndexByte(a.Addr(), ':')+1:]
	b.ReportMetric(r.metric("pilotfish_consul_queries", map[string]string{"kind": "service"}), "queries")
	b.ReportMetric(float64(connectionsTo(b, r.PID(), port)), "connections")
	b.ReportMetric(csMS(csPercentile(all, 0.50)), "ten-rewritten-p50-ms")
	b.ReportMetric(csMS(csPercentile(all, 0.99)), "ten-rewritten-p99-ms")
	b.ReportMetric(0, "ns/op")
}
