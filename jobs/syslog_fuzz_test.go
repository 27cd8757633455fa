package jobs

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/internal/syslogmsg"
)

// endless yields its prefix, then the byte fill until limit bytes were read in all.
type endless struct {
	prefix []byte
	fill   byte
	limit  int
	read   int
}

func (e *endless) Read(p []byte) (int, error) {
	if e.read >= e.limit {
		return 0, io.EOF
	}
	p = p[:min(len(p), e.limit-e.read)]
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = e.fill
	}
	e.read += len(p)
	return len(p), nil
}

// FuzzReadFrames feeds a TCP stream to the framing of a syslog listener (octet counting or
// newlines, see docs/syslog.md): it never panics, never hands on a frame over the limit or
// an empty line, frames are pieces of the stream in order, and a stream that never frames
// anything (endless digits, an endless line) is given up after a bounded read.
func FuzzReadFrames(f *testing.F) {
	for _, s := range []string{
		"<13>Nov 25 15:00:00 root: hello\n<14>x\n",
		"31 <13>Nov 25 15:00:00 root: hello12 <165>1 - - -",
		"5 <13>a\n<13>b\n", "0 x", "-1 x", "65536 x", "65537 x", "99999999999999999999 x", "1x",
		"\n\n\r\n", "9", "1", "3 <1>",
	} {
		f.Add([]byte(s))
	}
	p := syslogmsg.NewParser(func() time.Time { return time.Unix(0, 0) })
	f.Fuzz(func(t *testing.T, stream []byte) {
		rest := stream
		readFrames(bytes.NewReader(stream), p, func(_ *syslogmsg.Parser, frame []byte) {
			if len(frame) == 0 || len(frame) > maxSyslogMessage {
				t.Fatalf("frame of %d bytes, limit %d", len(frame), maxSyslogMessage)
			}
			i := bytes.Index(rest, frame)
			if i < 0 {
				t.Fatalf("frame %q is not a later piece of the stream", frame)
			}
			rest = rest[i+len(frame):]
		})
		// The stream goes on with an endless line: it is cut into frames at the limit.
		long := &endless{prefix: stream, fill: 'x', limit: len(stream) + 3*maxSyslogMessage}
		readFrames(long, p, func(_ *syslogmsg.Parser, frame []byte) {
			if len(frame) == 0 || len(frame) > maxSyslogMessage {
				t.Fatalf("frame of %d bytes, limit %d", len(frame), maxSyslogMessage)
			}
		})
		// Or with an octet count that never ends: the connection is given up once the
		// buffer is full, long before the client stops.
		digits := &endless{prefix: stream, fill: '7', limit: len(stream) + 16*maxSyslogMessage}
		readFrames(digits, p, func(*syslogmsg.Parser, []byte) {})
		if max := len(stream) + 4*maxSyslogMessage; digits.read > max {
			t.Fatalf("read %d bytes of an endless octet count, more than %d", digits.read, max)
		}
	})
}

// FuzzSyslogDatagram takes the whole path of a datagram in a syslog job: parse (RFC 5424 or
// 3164, detected), select, format in every format, forward. Every output is one line
// (docs/syslog.md: "each message is one line"), JSON is valid, and what a forward output
// sends reads back through a listener's framing as the same message.
func FuzzSyslogDatagram(f *testing.F) {
	for _, s := range []string{
		"<13>Nov 25 15:00:00 root: hello",
		"<30>Jan  2 03:04:05 nginx[4242]: upstream timed out",
		"<165>1 2024-03-05T06:07:08.123456Z h1 app 77 ID47 [ex@32473 k=\"v\"] héllo wörld 日本",
		"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed",
		"<13>app: two\nlines", "<13>1 - - - - - -", "<191>x", "<0>", "<13>\xff\xfe", "<14>tag[12]: \x00x\x00\n",
		"<13>Nov 25 15:00:00 host prog[1]: a\r\nb",
	} {
		f.Add([]byte(s), "*.info;mail.none")
	}
	f.Add([]byte("<13>x"), "")
	f.Add([]byte("<13>x"), "kern,mail.!=err")
	now := time.Date(2026, 11, 25, 16, 20, 31, 0, time.UTC)
	p := syslogmsg.NewParser(func() time.Time { return now })
	fwd := &forwarder{network: "tcp"}
	f.Fuzz(func(t *testing.T, datagram []byte, selector string) {
		m, err := p.Parse(datagram)
		if err != nil {
			return
		}
		if m.Facility < 0 || m.Facility > 23 || m.Severity < 0 || m.Severity > 7 || m.Time.IsZero() {
			t.Fatalf("%q parsed to %+v", datagram, m)
		}
		if sel, err := syslogmsg.ParseSelector(selector); err == nil {
			sel.Match(m.Facility, m.Severity)
		}
		for _, format := range []string{syslogmsg.FormatText, syslogmsg.FormatRFC3164, syslogmsg.FormatRFC5424, syslogmsg.FormatJSON} {
			line := syslogmsg.AppendFormat(nil, &m, format, "myhost")
			if i := bytes.IndexByte(line, '\n'); i != len(line)-1 {
				t.Fatalf("%s of %q is not one line: %q", format, datagram, line)
			}
			if format == syslogmsg.FormatJSON && !json.Valid(line) {
				t.Fatalf("json of %q is not JSON: %q", datagram, line)
			}
		}
		frame := fwd.append(nil, &m, "myhost")
		var got [][]byte
		readFrames(bytes.NewReader(frame), p, func(_ *syslogmsg.Parser, b []byte) { got = append(got, append([]byte(nil), b...)) })
		if len(frame) <= maxSyslogMessage {
			host := m.Hostname
			if host == "" {
				host = "myhost"
			}
			want := syslogmsg.Append5424(nil, &m, host)
			if len(got) != 1 || !bytes.Equal(got[0], want) {
				t.Fatalf("forwarded %q, read back %q", frame, got)
			}
			back, err := p.Parse(got[0])
			if err != nil || back.Facility != m.Facility || back.Severity != m.Severity ||
				strings.TrimSpace(back.Text) != strings.TrimSpace(m.Text) {
				t.Fatalf("forwarded %+v, parsed back %+v (%v)", m, back, err)
			}
		}
	})
}
