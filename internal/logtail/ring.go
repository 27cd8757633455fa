package logtail

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// Stream says where a line came from.
type Stream uint8

// The streams of a line. Notice is pilotfish's own word to a follower: lines it lost.
const (
	Stdout Stream = iota
	Stderr
	Notice
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return "pilotfish"
}

// Line is one line of a job's output, without its newline.
type Line struct {
	Time    time.Time
	Job     string
	Stream  Stream
	Message []byte
	// Dropped is, for a Notice, how many lines of Job the follower lost before it.
	Dropped uint64
	seq     uint64 // the line's number in its ring, from 1
}

// A record in the ring is a header — the time (unix nanoseconds) and the message length
// shifted left by two with the stream in the low bits — followed by the message. The
// header counts against the buffer: `buffer` bounds the memory the tail takes.
const header = 12

// Ellipsis ends a line cut to fit a buffer smaller than the line.
const Ellipsis = "…"

// initialSize is a ring's first allocation: most jobs say little, and fifty quiet jobs
// should not cost fifty full buffers.
const initialSize = 4 << 10

// Ring is the tail of one job's output: the newest whole lines that fit in limit bytes.
type Ring struct {
	store *Store // nil for a ring outside a store (tests)
	job   string

	mu    sync.Mutex
	limit int
	buf   []byte // circular; grows up to limit as lines come
	head  int    // offset of the oldest record
	used  int    // bytes of records
	count int    // records
	seq   uint64 // number of the newest line
	last  int64  // time of the newest line: times never go back within a ring
}

// NewRing returns a ring of limit bytes that belongs to no store.
func NewRing(job string, limit int) *Ring {
	return &Ring{job: job, limit: max(limit, MinSize)}
}

// MinSize is the smallest ring: room for a header and a cut line.
const MinSize = 64

// Append stores one line (a copy of msg) read at t, dropping the oldest lines to make
// room, and hands it to the followers of the job. A line longer than the whole ring is
// cut at a character boundary and ends with Ellipsis.
func (r *Ring) Append(t time.Time, s Stream, msg []byte) {
	cut := false
	if room := r.limit - header; len(msg) > room {
		msg, cut = cutLine(msg, room-len(Ellipsis)), true
	}
	n := len(msg)
	if cut {
		n += len(Ellipsis)
	}
	need := header + n

	r.mu.Lock()
	defer r.mu.Unlock()
	ns := max(t.UnixNano(), r.last)
	r.last = ns
	if r.used+need > len(r.buf) && len(r.buf) < r.limit {
		r.resize(min(r.limit, max(2*len(r.buf), r.used+need, initialSize)))
	}
	for r.used+need > len(r.buf) {
		r.dropOldest()
	}
	var h [header]byte
	binary.LittleEndian.PutUint64(h[:8], uint64(ns))
	binary.LittleEndian.PutUint32(h[8:], uint32(n)<<2|uint32(s))
	off := r.put((r.head+r.used)%len(r.buf), h[:])
	off = r.put(off, msg)
	if cut {
		r.put(off, []byte(Ellipsis))
	}
	r.used += need
	r.count++
	r.seq++
	if r.store != nil {
		if fs := r.store.followers.Load(); fs != nil {
			for _, f := range *fs {
				if f.wants(r.job) {
					f.push(r.job, r.seq, ns, s, msg, cut)
				}
			}
		}
	}
}

// cutLine returns the first n bytes of msg at most, not splitting a UTF-8 character.
func cutLine(msg []byte, n int) []byte {
	n = max(n, 0)
	for n > 0 && n < len(msg) && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n]
}

// put copies p into the ring at off, wrapping around, and returns the offset after it.
func (r *Ring) put(off int, p []byte) int {
	n := copy(r.buf[off:], p)
	if n < len(p) {
		copy(r.buf, p[n:])
	}
	return (off + len(p)) % len(r.buf)
}

// get copies len(dst) bytes of the ring at off into dst.
func (r *Ring) get(dst []byte, off int) {
	n := copy(dst, r.buf[off:])
	if n < len(dst) {
		copy(dst[n:], r.buf)
	}
}

// record reads the header at off: the time, the stream and the message length.
func (r *Ring) record(off int) (ns int64, s Stream, n int) {
	var h [header]byte
	r.get(h[:], off)
	v := binary.LittleEndian.Uint32(h[8:])
	return int64(binary.LittleEndian.Uint64(h[:8])), Stream(v & 3), int(v >> 2)
}

func (r *Ring) dropOldest() {
	_, _, n := r.record(r.head)
	r.head = (r.head + header + n) % len(r.buf)
	r.used -= header + n
	r.count--
	if r.count == 0 {
		r.head = 0
	}
}

// resize moves the records, oldest first, into a buffer of size bytes (at least used).
func (r *Ring) resize(size int) {
	nb := make([]byte, size)
	if r.used > 0 {
		r.get(nb[:r.used], r.head)
	}
	r.buf, r.head = nb, 0
}

// setLimit changes the ring's size (a reload changed `buffer`): when it shrinks, the
// oldest lines go and the memory beyond the new size is given back.
func (r *Ring) setLimit(limit int) {
	limit = max(limit, MinSize)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limit == limit {
		return
	}
	r.limit = limit
	for r.used > limit {
		r.dropOldest()
	}
	if len(r.buf) > limit {
		r.resize(limit)
	}
}

// size is the memory the ring holds, and the number of its newest line.
func (r *Ring) size() (int, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buf), r.seq
}

// Lines returns the newest n lines of the ring (every one when n < 0), oldest first.
func (r *Ring) Lines(n int) []Line {
	lines, _ := r.tail(nil, n)
	return lines
}

// tail appends the newest n lines (every one when n < 0), oldest first, to dst, their
// messages copied, and returns the number of the newest line of the ring.
func (r *Ring) tail(dst []Line, n int) ([]Line, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count == 0 || n == 0 {
		return dst, r.seq
	}
	skip := 0
	if n > 0 && n < r.count {
		skip = r.count - n
	}
	off, skipped := r.head, 0
	for range skip {
		_, _, l := r.record(off)
		off = (off + header + l) % len(r.buf)
		skipped += header + l
	}
	keep := r.count - skip
	dst = slices.Grow(dst, keep)
	arena := make([]byte, r.used-skipped-keep*header)
	seq := r.seq - uint64(keep)
	for range keep {
		ns, s, l := r.record(off)
		msg := arena[:l:l]
		arena = arena[l:]
		r.get(msg, (off+header)%len(r.buf))
		seq++
		dst = append(dst, Line{Time: time.Unix(0, ns), Job: r.job, Stream: s, Message: msg, seq: seq})
		off = (off + header + l) % len(r.buf)
	}
	return dst, r.seq
}
