package output

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Several jobs flooding one sink: every line arrives whole, none is lost.
func TestLinesNeverInterleaveOrDrop(t *testing.T) {
	var buf bytes.Buffer
	sink := NewSink(&buf)
	const jobs, lines = 4, 20000
	var wg sync.WaitGroup
	for j := 0; j < jobs; j++ {
		pr, pw := io.Pipe()
		c := &Copier{Sink: sink, Prefix: []byte(fmt.Sprintf("[job%d] ", j))}
		wg.Add(2)
		go func() { defer wg.Done(); c.Copy(pr) }()
		go func(j int) {
			defer wg.Done()
			w := bufio.NewWriterSize(pw, 777) // odd size: writes cut lines in the middle
			for i := 0; i < lines; i++ {
				fmt.Fprintf(w, "line %d of job %d %s\n", i, j, strings.Repeat("x", i%100))
			}
			w.Flush()
			pw.Close()
		}(j)
	}
	wg.Wait()
	next := make([]int, jobs)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var j, i, j2 int
		var x string
		if _, err := fmt.Sscanf(sc.Text(), "[job%d] line %d of job %d %s", &j, &i, &j2, &x); err != nil && !strings.HasSuffix(sc.Text(), fmt.Sprintf("job %d ", j2)) {
			if n, _ := fmt.Sscanf(sc.Text(), "[job%d] line %d of job %d", &j, &i, &j2); n != 3 {
				t.Fatalf("mangled line %q", sc.Text())
			}
		}
		if j != j2 || i != next[j] {
			t.Fatalf("line %q out of order (want line %d of job %d)", sc.Text(), next[j], j)
		}
		next[j]++
	}
	for j, n := range next {
		if n != lines {
			t.Fatalf("job %d: %d lines of %d", j, n, lines)
		}
	}
}

func TestLongLinesAreSplit(t *testing.T) {
	var buf bytes.Buffer
	c := &Copier{Sink: NewSink(&buf), Prefix: []byte("[a] ")}
	long := strings.Repeat("y", MaxLine*2+10)
	c.Copy(strings.NewReader(long + "\nshort"))
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != 4 || len(got[0]) != 4+MaxLine || got[2] != "[a] "+strings.Repeat("y", 10) || got[3] != "[a] short" {
		t.Fatalf("got %d lines: lens %d", len(got), len(got[0]))
	}
}

func TestRawPassThrough(t *testing.T) {
	var buf bytes.Buffer
	var lines []string
	c := &Copier{Sink: NewSink(&buf), Raw: true, OnLine: func(b []byte) { lines = append(lines, string(b)) }}
	in := "prompt: \x00\x01bin\nnext\npartial"
	c.Copy(strings.NewReader(in))
	if buf.String() != in {
		t.Fatalf("raw output changed: %q", buf.String())
	}
	if strings.Join(lines, "|") != "prompt: \x00\x01bin|next|partial" {
		t.Fatalf("lines %q", lines)
	}
}

func TestPrefixColor(t *testing.T) {
	if p := string(Prefix("a", "auto", 0, false)); p != "[a] " {
		t.Fatalf("auto off a tty: %q", p)
	}
	if p := string(Prefix("a", "red", 0, false)); p != "\x1b[31m[a]\x1b[0m " {
		t.Fatalf("red: %q", p)
	}
	if p := string(Prefix("a", "auto", 1, true)); !strings.HasPrefix(p, "\x1b[32m") {
		t.Fatalf("auto on a tty: %q", p)
	}
}

func TestRotation(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sub", "app.log")
			r := &RotatingFile{Path: path, Size: 1000, Keep: 2, Compress: compress, OnError: func(err error) { t.Error(err) }}
			line := strings.Repeat("z", 99) + "\n"
			total := 0
			for i := 0; i < 55; i++ {
				n, err := r.Write([]byte(line))
				if err != nil {
					t.Fatal(err)
				}
				total += n
			}
			r.Close()
			var kept int
			for _, name := range []string{path, r.name(1), r.name(2)} {
				b, err := os.ReadFile(name)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if compress && name != path {
					zr, err := gzip.NewReader(bytes.NewReader(b))
					if err != nil {
						t.Fatal(err)
					}
					b, _ = io.ReadAll(zr)
				}
				if len(b) > 1000 || len(b)%100 != 0 {
					t.Fatalf("%s holds %d bytes", name, len(b))
				}
				kept += len(b)
			}
			if _, err := os.Stat(r.name(3)); !os.IsNotExist(err) {
				t.Fatal("more than keep files kept")
			}
			if kept != 2500 { // 55 lines: 10 + 10 + 5 in the kept files
				t.Fatalf("kept %d bytes", kept)
			}
		})
	}
}

// blockedWriter blocks every Write until release is closed, like a pipe nobody reads.
type blockedWriter struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockedWriter) Write(p []byte) (int, error) {
	b.entered <- struct{}{}
	<-b.release
	return len(p), nil
}

// At the shutdown deadline a sink nobody reads is abandoned: later writes return at once,
// and everything given up is counted — the write stuck in progress and those waiting behind
// it included.
func TestSinkAbandon(t *testing.T) {
	bw := &blockedWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(bw.release)
	s := NewSink(bw)
	go func() { _, _ = s.Write([]byte("a1\na2\n")) }() // stuck inside the writer
	<-bw.entered
	if !s.Busy() {
		t.Fatal("a sink with a write in progress is not busy")
	}
	waiting := make(chan struct{})
	go func() {
		_, _ = s.Write([]byte("b1\n")) // waits for its turn
		close(waiting)
	}()
	waitUntil(t, func() bool { return s.waiting.bytes.Load() == 3 })
	if d := s.Dropped(); d != (Dropped{}) {
		t.Fatalf("dropped %+v before Abandon", d)
	}
	s.Abandon()
	if n, err := s.Write([]byte("c1\nc2\nc3")); n != 8 || err != nil {
		t.Fatalf("a write after Abandon: %d, %v", n, err)
	}
	if d := s.Dropped(); d.Lines != 6 || d.Bytes != 6+3+8 {
		t.Fatalf("dropped %+v, want 6 lines and 17 bytes", d)
	}
	select {
	case <-waiting:
		t.Fatal("the waiting write went through")
	default:
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// pilotfish's own log lines never wait for stderr: they are queued (up to LogQueue bytes),
// written in order, and dropped and counted beyond.
func TestLogWriterNeverBlocks(t *testing.T) {
	bw := &blockedWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	var out bytes.Buffer
	s := NewSink(io.MultiWriter(bw, &out))
	l := NewLogWriter(s)
	line := []byte(strings.Repeat("x", 1023) + "\n")
	_, _ = l.Write(line)
	<-bw.entered // the writer is stuck with the first line
	start := time.Now()
	for range LogQueue/len(line) + 10 {
		_, _ = l.Write(line)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("logging into a stuck stderr took %s", took)
	}
	if l.Flush(time.Now().Add(20 * time.Millisecond)) {
		t.Fatal("Flush reported the lines written while stderr takes nothing")
	}
	if d := l.Dropped(); d.Lines != 10 {
		t.Fatalf("dropped %+v, want the 10 lines beyond the queue", d)
	}
	close(bw.release)
	go func() {
		for range bw.entered {
		}
	}()
	if !l.Flush(time.Now().Add(5 * time.Second)) {
		t.Fatal("Flush did not end once stderr took the lines")
	}
	for i := range 3 {
		fmt.Fprintf(l, "after %d\n", i)
	}
	if !l.Flush(time.Now().Add(5 * time.Second)) {
		t.Fatal("Flush did not end once stderr took the lines")
	}
	if !strings.HasSuffix(out.String(), "after 0\nafter 1\nafter 2\n") {
		t.Fatalf("log lines out of order: %q", tail(out.String()))
	}
}

func tail(s string) string { return s[max(0, len(s)-40):] }

// The copier may write what the pipe still held after the job's output was closed: a
// rotation then compresses before Write returns, so that nothing is left half-compressed
// (path.1.tmp, path.1.gz.part) when pilotfish exits right after.
func TestRotationAfterClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	r := &RotatingFile{Path: path, Size: 1000, Keep: 2, Compress: true, OnError: func(err error) { t.Error(err) }}
	line := strings.Repeat("z", 99) + "\n"
	for range 5 {
		r.Write([]byte(line))
	}
	r.Close()
	for range 20 {
		if _, err := r.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "app.log app.log.1.gz app.log.2.gz" {
		t.Errorf("files right after the last write: %s", got)
	}
}
