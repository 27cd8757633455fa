package logtail

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }

func messages(lines []Line) []string {
	var out []string
	for _, l := range lines {
		out = append(out, string(l.Message))
	}
	return out
}

// The ring keeps the newest whole lines that fit, oldest first, each with its time and
// stream, and never more bytes than its limit.
func TestRingKeepsNewestLines(t *testing.T) {
	r := NewRing("app", 1024)
	for i := range 1000 {
		s := Stdout
		if i%3 == 0 {
			s = Stderr
		}
		r.Append(at(i), s, fmt.Appendf(nil, "line %04d", i))
	}
	if len(r.buf) > 1024 || r.used > 1024 {
		t.Fatalf("the ring holds %d bytes (%d used), over its limit 1024", len(r.buf), r.used)
	}
	all, seq := r.tail(nil, -1)
	if seq != 1000 {
		t.Errorf("seq %d, want 1000", seq)
	}
	want := 1024 / (header + len("line 0000"))
	if len(all) != want {
		t.Fatalf("%d lines kept, want %d", len(all), want)
	}
	for k, l := range all {
		i := 1000 - len(all) + k
		if got := string(l.Message); got != fmt.Sprintf("line %04d", i) {
			t.Fatalf("line %d is %q, want line %04d", k, got, i)
		}
		if !l.Time.Equal(at(i)) {
			t.Errorf("line %d has time %v, want %v", k, l.Time, at(i))
		}
		if wantS := map[bool]Stream{true: Stderr, false: Stdout}[i%3 == 0]; l.Stream != wantS || l.Job != "app" {
			t.Errorf("line %d: stream %v job %q, want %v app", k, l.Stream, l.Job, wantS)
		}
	}
	last3, _ := r.tail(nil, 3)
	if got := strings.Join(messages(last3), ","); got != "line 0997,line 0998,line 0999" {
		t.Errorf("tail 3 = %s", got)
	}
	if none, _ := r.tail(nil, 0); len(none) != 0 {
		t.Errorf("tail 0 gave %d lines", len(none))
	}
}

// A quiet job's ring stays small; it grows with the output up to the limit.
func TestRingGrowsLazily(t *testing.T) {
	r := NewRing("quiet", 256<<10)
	r.Append(t0, Stdout, []byte("hello"))
	if len(r.buf) > initialSize {
		t.Fatalf("one line took a %d-byte ring", len(r.buf))
	}
	for i := range 100000 {
		r.Append(at(i), Stdout, []byte("0123456789012345678901234567890123456789"))
	}
	if len(r.buf) != 256<<10 {
		t.Fatalf("a full ring holds %d bytes, want %d", len(r.buf), 256<<10)
	}
}

// A line longer than the whole ring is cut at a character boundary and marked.
func TestRingCutsLineLongerThanBuffer(t *testing.T) {
	r := NewRing("big", 100)
	long := strings.Repeat("é", 200) // 2 bytes each
	r.Append(t0, Stdout, []byte("before"))
	r.Append(t0, Stderr, []byte(long))
	lines, _ := r.tail(nil, -1)
	if len(lines) != 1 {
		t.Fatalf("%d lines, want only the cut one: %q", len(lines), messages(lines))
	}
	msg := string(lines[0].Message)
	if !strings.HasSuffix(msg, Ellipsis) || !utf8.ValidString(msg) || !strings.HasPrefix(long, strings.TrimSuffix(msg, Ellipsis)) {
		t.Errorf("cut line %q: want a valid prefix of the line ending with %q", msg, Ellipsis)
	}
	if header+len(msg) > 100 {
		t.Errorf("the cut line takes %d bytes, over the limit", header+len(msg))
	}
	// Empty lines are lines too.
	r.Append(t0, Stdout, nil)
	if lines, _ := r.tail(nil, 1); len(lines) != 1 || len(lines[0].Message) != 0 {
		t.Errorf("an empty line reads back as %q", messages(lines))
	}
}

// Times never go back within a ring (stdout and stderr are read by two goroutines), so
// that sorting by time keeps a job's order.
func TestRingTimesNeverGoBack(t *testing.T) {
	r := NewRing("j", 1024)
	r.Append(at(5), Stdout, []byte("a"))
	r.Append(at(3), Stderr, []byte("b"))
	lines, _ := r.tail(nil, -1)
	if lines[1].Time.Before(lines[0].Time) {
		t.Errorf("times go back: %v then %v", lines[0].Time, lines[1].Time)
	}
}

// A reload that shrinks `buffer` drops the oldest lines and the memory beyond the limit;
// one that grows it keeps every line.
func TestStoreRingResize(t *testing.T) {
	s := NewStore()
	r := s.Ring("app", 4096)
	for i := range 500 {
		r.Append(at(i), Stdout, fmt.Appendf(nil, "line %04d", i))
	}
	if s.Ring("app", 4096) != r {
		t.Fatal("the same job got a new ring")
	}
	s.Ring("app", 512)
	if len(r.buf) > 512 || r.used > 512 {
		t.Fatalf("after shrinking, the ring holds %d bytes", len(r.buf))
	}
	lines, _ := r.tail(nil, -1)
	if len(lines) == 0 || string(lines[len(lines)-1].Message) != "line 0499" {
		t.Errorf("after shrinking: %q", messages(lines))
	}
	before := len(lines)
	s.Ring("app", 8192)
	if lines, _ := r.tail(nil, -1); len(lines) != before {
		t.Errorf("growing lost lines: %d, had %d", len(lines), before)
	}
}

// Last merges the lines of several jobs by time and keeps the newest n of all.
func TestStoreLastMergesByTime(t *testing.T) {
	s := NewStore()
	a, b := s.Ring("a", 4096), s.Ring("b", 4096)
	for i := range 10 {
		r := a
		if i%2 == 1 {
			r = b
		}
		r.Append(at(i), Stdout, fmt.Appendf(nil, "%d", i))
	}
	if got := strings.Join(messages(s.Last([]string{"a", "b"}, 4)), ","); got != "6,7,8,9" {
		t.Errorf("last 4 of a,b = %s, want 6,7,8,9", got)
	}
	if got := strings.Join(messages(s.Last(nil, -1)), ","); got != "0,1,2,3,4,5,6,7,8,9" {
		t.Errorf("every line = %s", got)
	}
	if got := strings.Join(messages(s.Last([]string{"b"}, 2)), ","); got != "7,9" {
		t.Errorf("last 2 of b = %s, want 7,9", got)
	}
	if got := s.Last([]string{"nobody"}, 5); len(got) != 0 {
		t.Errorf("a job without output has lines: %q", messages(got))
	}
}

// Keep forgets the rings of removed jobs and says how much memory they held.
func TestStoreKeepForgetsRemovedJobs(t *testing.T) {
	s := NewStore()
	s.Ring("gone", 64<<10).Append(t0, Stdout, make([]byte, 10000))
	s.Ring("stays", 64<<10).Append(t0, Stdout, []byte("x"))
	if freed := s.Keep([]string{"stays"}); freed < 10000 {
		t.Errorf("Keep freed %d bytes, want at least 10000", freed)
	}
	if got := s.Last(nil, -1); len(got) != 1 || got[0].Job != "stays" {
		t.Errorf("after Keep: %v", got)
	}
}

// A job a reload removes and a later reload adds again: a follower of every job, which had
// seen the old ring's lines, sees the new ring's lines too.
func TestFollowerSeesJobAddedAgain(t *testing.T) {
	s := NewStore()
	r := s.Ring("app", 4096)
	for i := range 5 {
		r.Append(at(i), Stdout, fmt.Appendf(nil, "old %d", i))
	}
	_, f := s.Follow(nil, -1)
	defer f.Close()
	s.Keep(nil)
	s.Ring("app", 4096).Append(at(10), Stdout, []byte("new"))
	if got := f.Take(nil); len(got) != 1 || string(got[0].Message) != "new" {
		t.Errorf("took %q, want the new ring's line", messages(got))
	}
}

// A follower gets the backlog, then each new line once, in order.
func TestFollowerSeesNewLinesOnce(t *testing.T) {
	s := NewStore()
	r := s.Ring("app", 4096)
	for i := range 5 {
		r.Append(at(i), Stdout, fmt.Appendf(nil, "old %d", i))
	}
	backlog, f := s.Follow([]string{"app"}, 2)
	defer f.Close()
	if got := strings.Join(messages(backlog), ","); got != "old 3,old 4" {
		t.Errorf("backlog %s", got)
	}
	r.Append(at(5), Stderr, []byte("new 5"))
	s.Ring("other", 4096).Append(at(6), Stdout, []byte("not followed"))
	select {
	case <-f.Ready():
	default:
		t.Fatal("not ready after a line")
	}
	got := f.Take(nil)
	if len(got) != 1 || string(got[0].Message) != "new 5" || got[0].Stream != Stderr {
		t.Errorf("took %q", messages(got))
	}
	if got := f.Take(nil); len(got) != 0 {
		t.Errorf("took again %q", messages(got))
	}
}

// A follower of every job also sees jobs that appear later.
func TestFollowerOfEveryJobSeesNewJobs(t *testing.T) {
	s := NewStore()
	_, f := s.Follow(nil, 10)
	defer f.Close()
	s.Ring("late", 4096).Append(t0, Stdout, []byte("hi"))
	if got := f.Take(nil); len(got) != 1 || got[0].Job != "late" {
		t.Errorf("took %v", got)
	}
}

// Lines appended while Follow takes the backlog are neither lost nor given twice.
func TestFollowRaceWithAppend(t *testing.T) {
	s := NewStore()
	r := s.Ring("app", 1<<20)
	var wg sync.WaitGroup
	wg.Add(1)
	const total = 20000
	go func() {
		defer wg.Done()
		for i := range total {
			r.Append(at(i), Stdout, fmt.Appendf(nil, "%d", i))
		}
	}()
	backlog, f := s.Follow([]string{"app"}, -1)
	defer f.Close()
	f.mu.Lock()
	f.limit = 1 << 30 // this test is about order, not about a slow reader
	f.mu.Unlock()
	var got []Line
	got = append(got, backlog...)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-f.Ready():
			for _, l := range f.Take(nil) {
				l.Message = append([]byte(nil), l.Message...)
				got = append(got, l)
			}
			continue
		case <-done:
		}
		break
	}
	got = f.Take(got)
	for k, l := range got {
		if want := fmt.Sprint(k); string(l.Message) != want {
			t.Fatalf("line %d is %q: lost or given twice", k, l.Message)
		}
	}
	if len(got) != total {
		t.Fatalf("%d lines, want %d", len(got), total)
	}
}

// A follower that takes nothing never makes Append wait: its queue is bounded, and what
// does not fit is dropped and reported per job.
func TestStuckFollowerDropsAndCounts(t *testing.T) {
	s := NewStore()
	a, b := s.Ring("a", 4096), s.Ring("b", 4096)
	_, f := s.Follow(nil, 0)
	defer f.Close()
	msg := make([]byte, 1000)
	const n = 2000 // 2 MB, far over the follower's limit
	for i := range n {
		a.Append(at(i), Stdout, msg)
		b.Append(at(i), Stdout, msg)
	}
	got := f.Take(nil)
	var lines, notices int
	var dropped uint64
	for _, l := range got {
		if l.Stream == Notice {
			notices++
			dropped += l.Dropped
			if want := fmt.Sprintf("%d lines dropped: this reader fell behind", l.Dropped); string(l.Message) != want {
				t.Errorf("notice %q, want %q", l.Message, want)
			}
			continue
		}
		lines++
	}
	if notices != 2 || uint64(lines)+dropped != 2*n || lines == 0 {
		t.Errorf("%d lines, %d notices for %d dropped; want 2 notices and every line counted", lines, notices, dropped)
	}
	if got[len(got)-1].Stream != Notice {
		t.Errorf("the notices are not after the lines they follow")
	}
	a.Append(at(n), Stdout, []byte("after"))
	if got := f.Take(nil); len(got) != 1 || string(got[0].Message) != "after" {
		t.Errorf("after the notice: %q", messages(got))
	}
}

// A closed follower leaves the store.
func TestFollowerClose(t *testing.T) {
	s := NewStore()
	_, f := s.Follow(nil, 0)
	f.Close()
	f.Close()
	if s.followers.Load() != nil {
		t.Error("a closed follower is still registered")
	}
	s.Ring("a", 4096).Append(t0, Stdout, []byte("x"))
	if got := f.Take(nil); len(got) != 0 {
		t.Errorf("a closed follower got %q", messages(got))
	}
}

// What a line costs the job's output copier: with no follower, and with a follower that
// takes nothing (its queue full, every line counted as dropped).
func BenchmarkAppend(b *testing.B) {
	msg := []byte("app-0000001 GET /api/orders 200 12ms user=42 trace=0123456789abcdef")
	for _, follower := range []bool{false, true} {
		b.Run(fmt.Sprintf("stuck-follower=%v", follower), func(b *testing.B) {
			s := NewStore()
			r := s.Ring("app", 256<<10)
			if follower {
				_, f := s.Follow(nil, 0)
				defer f.Close()
			}
			now := time.Now()
			for b.Loop() {
				r.Append(now, Stdout, msg)
			}
		})
	}
}
