package output

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// batch is what a copier hands the sink under a flood: 100 prefixed lines.
var batch = bytes.Repeat([]byte("[app] 2026-01-01T00:00:00Z GET /health 200 0.3ms\n"), 100)

// Four jobs flooding one sink that costs nothing: the sink's own overhead.
func BenchmarkSinkWriteDiscard(b *testing.B) {
	s := NewSink(io.Discard)
	b.SetBytes(int64(len(batch)))
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = s.Write(batch)
		}
	})
}

// Four jobs flooding a pipe that a reader drains: what a real stdout costs.
func BenchmarkSinkWritePipe(b *testing.B) {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	go func() { _, _ = io.Copy(io.Discard, r) }()
	defer w.Close()
	s := NewSink(w)
	b.SetBytes(int64(len(batch)))
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = s.Write(batch)
		}
	})
}

// One job flooding a pipe that a reader drains.
func BenchmarkSinkWritePipeOneJob(b *testing.B) {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	go func() { _, _ = io.Copy(io.Discard, r) }()
	defer w.Close()
	s := NewSink(w)
	b.SetBytes(int64(len(batch)))
	for range b.N {
		_, _ = s.Write(batch)
	}
}
