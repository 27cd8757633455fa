package output

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/internal/logtail"
)

// With JSON set, each line is one JSON object with the job, the stream and the time.
func TestCopierJSONLines(t *testing.T) {
	var buf bytes.Buffer
	c := &Copier{Sink: NewSink(&buf), JSON: JSONFields("web", "stderr"), Prefix: []byte("[web] "), Raw: true, Time: true}
	before := time.Now().Truncate(time.Millisecond)
	c.Copy(strings.NewReader("hello \"you\"\n{\"level\":\"info\"}\nno newline"))
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{`hello "you"`, `{"level":"info"}`, "no newline"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, l := range lines {
		var obj map[string]string
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", l, err)
		}
		if obj["msg"] != want[i] || obj["job"] != "web" || obj["stream"] != "stderr" || len(obj) != 4 {
			t.Errorf("line %q: want msg %q, job web, stream stderr and nothing else", l, want[i])
		}
		tm, err := time.Parse(time.RFC3339Nano, obj["time"])
		if err != nil || tm.Before(before) || tm.After(time.Now()) {
			t.Errorf("time %q: %v (want RFC 3339, now)", obj["time"], err)
		}
	}
}

// With Time set, each line starts with its RFC 3339 time, then the prefix; without a
// prefix (prefix = false) the lines are still whole lines with their time.
func TestCopierTimestamps(t *testing.T) {
	for _, prefix := range []string{"[app] ", ""} {
		var buf bytes.Buffer
		c := &Copier{Sink: NewSink(&buf), Prefix: []byte(prefix), Raw: prefix == "", Time: true}
		c.Copy(strings.NewReader("one\ntwo"))
		for i, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			stamp, rest, _ := strings.Cut(l, " ")
			if _, err := time.Parse(time.RFC3339, stamp); err != nil || len(stamp) != len(TimeFormat)-len("Z07:00")+len(time.Now().Format("Z07:00")) {
				t.Errorf("line %q: the time %q is not RFC 3339 with milliseconds (%v)", l, stamp, err)
			}
			if want := prefix + []string{"one", "two"}[i]; rest != want {
				t.Errorf("line %q: want %q after the time", l, want)
			}
		}
	}
}

// The tail gets every line, in line mode and in raw mode, with its stream; raw output
// stays untouched.
func TestCopierTail(t *testing.T) {
	for _, raw := range []bool{false, true} {
		var buf bytes.Buffer
		ring := logtail.NewRing("j", 4096)
		c := &Copier{Sink: NewSink(&buf), Raw: raw, Tail: ring, Stream: logtail.Stderr}
		in := "a\r\nb\n\nlast"
		c.Copy(strings.NewReader(in))
		if raw && buf.String() != in {
			t.Errorf("raw output changed: %q", buf.String())
		}
		got := ringLines(ring)
		if strings.Join(got, "|") != "a\r|b||last" {
			t.Errorf("raw=%v: tail %q", raw, got)
		}
	}
}

func ringLines(r *logtail.Ring) []string {
	var out []string
	for _, l := range r.Lines(-1) {
		if l.Stream != logtail.Stderr {
			out = append(out, "(wrong stream)")
		}
		out = append(out, string(l.Message))
	}
	return out
}
