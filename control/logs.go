package control

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/internal/errdefs"
	"github.com/pilotfish/pilotfish/internal/jsonstr"
	"github.com/pilotfish/pilotfish/internal/logtail"
)

// Log stream settings (docs/api.md#get-v1logs).
const (
	// logWrite: a follower whose client takes nothing for this long is disconnected. Until
	// then its queue is bounded and what does not fit is dropped and counted: the jobs
	// never wait for it.
	logWrite = 30 * time.Second
	// logLastWrite bounds the last write of a follow stream when the daemon exits.
	logLastWrite = 50 * time.Millisecond
	// logChunk is how much of a long answer is written at once.
	logChunk = 64 << 10
)

// LogsQuery is what GET /v1/logs asks.
type LogsQuery struct {
	Jobs   []string // nil: every job
	N      int      // lines; -1: every line kept
	Follow bool
}

// ParseLogsQuery reads jobs=a,b (also repeated), n and follow. Anything else, a repeated n
// or follow, or a value that does not parse is refused: a typo ("job=web") must not quietly
// answer every job.
func ParseLogsQuery(q url.Values) (LogsQuery, error) {
	lq := LogsQuery{N: api.DefaultLogLines}
	for key, vs := range q {
		switch {
		case key != "jobs" && key != "n" && key != "follow":
			return lq, errdefs.Errorf(errdefs.ErrInvalid, "unknown query parameter %q: GET /v1/logs takes jobs, n and follow", key)
		case key != "jobs" && len(vs) > 1:
			return lq, errdefs.Errorf(errdefs.ErrInvalid, "%s is given %d times; give it once", key, len(vs))
		}
	}
	for _, v := range q["jobs"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" && !slices.Contains(lq.Jobs, name) {
				lq.Jobs = append(lq.Jobs, name)
			}
		}
	}
	if v := q.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(v, "-"):
			return lq, errdefs.Errorf(errdefs.ErrInvalid, "n=%s is too large; use n=-1 for every line kept", v)
		case err != nil || n < -1:
			return lq, errdefs.Errorf(errdefs.ErrInvalid, "n must be a number of lines (0 or more), or -1 for every line kept; not %q", v)
		}
		lq.N = n
	}
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return lq, errdefs.Errorf(errdefs.ErrInvalid, "follow must be true or false, not %q", v)
		}
		lq.Follow = b
	}
	return lq, nil
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	lq, err := ParseLogsQuery(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	var lines []logtail.Line
	var f *logtail.Follower
	if lq.Follow {
		release, ok := s.openStream(w)
		if !ok {
			return
		}
		defer release()
		if lines, f, err = s.b.FollowLogs(lq.Jobs, lq.N); err == nil {
			defer f.Close()
		}
	} else {
		lines, err = s.b.Logs(lq.Jobs, lq.N)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte, by time.Duration) bool {
		if f != nil {
			_ = rc.SetWriteDeadline(time.Now().Add(by))
		}
		if _, err := w.Write(b); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && by == logWrite {
				s.log.Info("log follower took nothing for too long; disconnected it", "after", logWrite)
			}
			return false
		}
		return true
	}
	out := make([]byte, 0, logChunk+4<<10)
	for _, l := range lines {
		out = AppendLogLine(out, l)
		if len(out) >= logChunk {
			if !write(out, logWrite) {
				return
			}
			out = out[:0]
		}
	}
	if len(out) > 0 && !write(out, logWrite) {
		return
	}
	if f == nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	var batch []logtail.Line
	for {
		by := logWrite
		select {
		case <-f.Ready():
		case <-r.Context().Done():
			// The daemon is exiting (or the client left): what the jobs wrote last, their
			// shutdown lines, still goes out if the client takes it at once.
			by = logLastWrite
		}
		batch = f.Take(batch[:0])
		out = out[:0]
		for _, l := range batch {
			out = AppendLogLine(out, l)
		}
		if len(out) > 0 && (!write(out, by) || rc.Flush() != nil) {
			return
		}
		if by == logLastWrite {
			return
		}
		if cap(out) > 4*logChunk {
			out = nil
		}
	}
}

// AppendLogLine appends one line of GET /v1/logs: the JSON of api.LogLine and a newline.
func AppendLogLine(dst []byte, l logtail.Line) []byte {
	dst = append(dst, `{"time":"`...)
	dst = l.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","job":`...)
	dst = jsonstr.Append(dst, l.Job, false)
	dst = append(dst, `,"stream":"`...)
	dst = append(dst, l.Stream.String()...)
	dst = append(dst, `","message":`...)
	dst = jsonstr.Append(dst, l.Message, false)
	if l.Dropped > 0 {
		dst = append(dst, `,"dropped":`...)
		dst = strconv.AppendUint(dst, l.Dropped, 10)
	}
	return append(dst, "}\n"...)
}
