package output

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// batch is what a copier hands the sink under a flood: 100 prefixed lines.
var batch = bytes.Repeat([]byte("[app] 2026-01-01T00:00:00Z GET /health 200 0.3ms\n"), 100)

// Four jobs per CPU flooding one sink that costs nothing: the sink's own overhead.
func BenchmarkSinkWriteDiscard(b *testing.B) { benchSink(b, NewSink(io.Discard), 4) }

// Four jobs per CPU flooding a pipe that a reader drains: what a real stdout costs.
func BenchmarkSinkWritePipe(b *testing.B) { benchSink(b, pipeSink(b), 4) }

// One job flooding a pipe that a reader drains.
func BenchmarkSinkWritePipeOneJob(b *testing.B) { benchSink(b, pipeSink(b), 1) }

// benchSink writes batches from jobs goroutines per CPU, or from one goroutine (jobs = 1).
func benchSink(b *testing.B, s *Sink, jobs int) {
	b.SetBytes(int64(len(batch)))
	if jobs == 1 {
		for range b.N {
			_, _ = s.Write(batch)
		}
		return
	}
	b.SetParallelism(jobs)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = s.Write(batch)
		}
	})
}

// pipeSink is a sink on a pipe whose other end is read as fast as it can be.
func pipeSink(b *testing.B) *Sink {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	b.Cleanup(func() { w.Close(); r.Close() })
	return NewSink(w)
}
