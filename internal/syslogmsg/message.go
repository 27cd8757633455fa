package syslogmsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// Message is one syslog message.
type Message struct {
	Time     time.Time
	Facility int // 0..23
	Severity int // 0 (emerg) .. 7 (debug)
	Hostname string
	Program  string
	PID      string
	MsgID    string
	Text     string
}

// ErrMalformed is a message that cannot be read: no <PRI> header.
var ErrMalformed = errors.New("malformed syslog message")

// Parser parses messages. It is not safe for concurrent use.
type Parser struct {
	m3164, m5424 syslog.Machine
	now          func() time.Time
}

// NewParser returns a parser; now stamps messages that carry no time.
func NewParser(now func() time.Time) *Parser {
	if now == nil {
		now = time.Now
	}
	return &Parser{
		// Timestamps without a zone are local time (TZ), as syslog daemons read them.
		m3164: rfc3164.NewMachine(rfc3164.WithBestEffort(), rfc3164.WithYear(rfc3164.CurrentYear{}),
			rfc3164.WithLocaleTimezone(time.Local), rfc3164.WithLenientDay()),
		m5424: rfc5424.NewMachine(rfc5424.WithBestEffort()),
		now:   now,
	}
}

// Parse reads one message (trailing newlines and NULs removed). Bytes that are not ASCII
// are kept as they came.
func (p *Parser) Parse(b []byte) (Message, error) {
	b = bytes.TrimRight(b, "\n\r\x00")
	pri, rest, ok := priority(b)
	if !ok {
		return Message{}, ErrMalformed
	}
	m := Message{Facility: pri / 8, Severity: pri % 8}
	switch {
	case len(rest) > 2 && rest[0] == '1' && rest[1] == ' ':
		if sm, err := p.m5424.Parse(b); sm != nil && (err == nil || sm.(*rfc5424.SyslogMessage).Message != nil) {
			fill5424(&m, sm.(*rfc5424.SyslogMessage))
			break
		}
		m.Text = string(rest)
	default:
		if p.parse3164(&m, b) {
			break
		}
		// No timestamp, as Python's SysLogHandler sends: "<PRI>tag[pid]: text".
		if t := bareTag().FindSubmatch(rest); t != nil {
			m.Program, m.PID, m.Text = string(t[1]), string(t[2]), string(t[3])
			break
		}
		m.Text = string(rest) // a PRI and free text: keep it whole
	}
	if m.Time.IsZero() {
		m.Time = p.now()
	}
	return m, nil
}

// parse3164 runs the RFC 3164 machine. The machine drops the whole text at a control
// character (ESC, DEL, NUL…) and cuts it at a newline, so it reads a copy where they are
// replaced, and the text is then taken from b as it came. A control character in the
// header makes it unparsable.
func (p *Parser) parse3164(m *Message, b []byte) bool {
	in, ctl := b, controlIndex(b)
	if ctl < len(b) {
		in = bytes.Clone(b)
		for i := ctl; i < len(in); i++ {
			if isControl(in[i]) {
				in[i] = '.'
			}
		}
	}
	sm, err := p.m3164.Parse(in)
	if err != nil || sm == nil {
		return false
	}
	s := sm.(*rfc3164.SyslogMessage)
	text := str(s.Message)
	if !bytes.HasSuffix(in, []byte(text)) {
		return false
	}
	start := len(in) - len(text)
	// For an empty text the machine gives the end of the tag ("1]: " of "prog[1]: "): the
	// text starts after the tag.
	if app := str(s.Appname); app != "" {
		tag := app
		if pid := str(s.ProcID); pid != "" {
			tag += "[" + pid + "]"
		}
		tag += ":"
		if i := bytes.Index(in, []byte(tag)); i >= 0 && start < i+len(tag) {
			start = i + len(tag)
			if start < len(in) && in[start] == ' ' {
				start++
			}
		}
	}
	if start > ctl {
		return false
	}
	fill3164(m, s)
	m.Text = string(b[start:])
	return true
}

func isControl(c byte) bool { return (c < ' ' && c != '\t') || c == 0x7f }

// controlIndex is the index of the first control character but tab in b, or len(b).
func controlIndex[T string | []byte](b T) int {
	for i := 0; i < len(b); i++ {
		if isControl(b[i]) {
			return i
		}
	}
	return len(b)
}

var bareTag = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([^\s\[\]:]{1,48})(?:\[(\d{1,10})\])?: ?((?s).*)$`) })

// priority reads "<N>" with 0 <= N <= 191.
func priority(b []byte) (int, []byte, bool) {
	if len(b) < 3 || b[0] != '<' {
		return 0, nil, false
	}
	end := bytes.IndexByte(b[:min(len(b), 5)], '>')
	if end < 2 {
		return 0, nil, false
	}
	n, err := strconv.Atoi(string(b[1:end]))
	if err != nil || n < 0 || n > 191 {
		return 0, nil, false
	}
	return n, b[end+1:], true
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func fill3164(m *Message, s *rfc3164.SyslogMessage) {
	if s.Timestamp != nil {
		m.Time = *s.Timestamp
	}
	m.Hostname, m.Program, m.PID, m.Text = str(s.Hostname), str(s.Appname), str(s.ProcID), str(s.Message)
}

func fill5424(m *Message, s *rfc5424.SyslogMessage) {
	if s.Timestamp != nil {
		m.Time = *s.Timestamp
	}
	m.Hostname, m.Program, m.PID, m.MsgID, m.Text = str(s.Hostname), str(s.Appname), str(s.ProcID), str(s.MsgID), str(s.Message)
}

// Facility and severity names, by number.
var (
	Facilities = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
		"authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3",
		"local4", "local5", "local6", "local7"}
	Severities = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
)

// Formats of an output.
const (
	FormatText    = "text"
	FormatRFC3164 = "rfc3164"
	FormatRFC5424 = "rfc5424"
	FormatJSON    = "json"
)

// AppendFormat appends m in the given format and a newline to buf; host fills an empty
// hostname. A message is one line whatever it holds: in the formats but json, control
// characters but tab are written #ooo (octal), as rsyslog does (docs/syslog.md).
func AppendFormat(buf []byte, m *Message, format, host string) []byte {
	hostname := m.Hostname
	if hostname == "" {
		hostname = host
	}
	switch format {
	case FormatRFC3164:
		buf = fmt.Appendf(buf, "<%d>%s %s ", m.Facility*8+m.Severity, m.Time.Format(time.Stamp), field(hostname, 255))
		buf = appendEscaped(buf, tag(m))
		buf = appendEscaped(buf, m.Text)
	case FormatRFC5424:
		buf = append5424Header(buf, m, hostname)
		buf = appendEscaped(buf, m.Text)
	case FormatJSON:
		b, _ := json.Marshal(struct {
			Time     time.Time `json:"time"`
			Facility string    `json:"facility"`
			Severity string    `json:"severity"`
			Host     string    `json:"host,omitempty"`
			Program  string    `json:"program,omitempty"`
			PID      string    `json:"pid,omitempty"`
			Message  string    `json:"message"`
		}{m.Time, Facilities[m.Facility], Severities[m.Severity], hostname, m.Program, m.PID, m.Text})
		buf = append(buf, b...)
	default:
		buf = m.Time.AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00")
		buf = fmt.Appendf(buf, " %s.%s ", Facilities[m.Facility], Severities[m.Severity])
		buf = appendEscaped(buf, tag(m))
		buf = appendEscaped(buf, m.Text)
	}
	return append(buf, '\n')
}

// Append5424 appends m as RFC 5424 without a newline, its text unchanged (a forward output
// frames each message, so it may hold newlines).
func Append5424(buf []byte, m *Message, hostname string) []byte {
	return append(append5424Header(buf, m, hostname), m.Text...)
}

// rfc5424Time is RFC 3339 with at most six digits of fraction, all RFC 5424 allows.
const rfc5424Time = "2006-01-02T15:04:05.999999Z07:00"

func append5424Header(buf []byte, m *Message, hostname string) []byte {
	return fmt.Appendf(buf, "<%d>1 %s %s %s %s %s - ", m.Facility*8+m.Severity, m.Time.Format(rfc5424Time),
		field(hostname, 255), field(m.Program, 48), field(m.PID, 128), field(m.MsgID, 32))
}

// appendEscaped appends s with its control characters but tab written #ooo.
func appendEscaped(buf []byte, s string) []byte {
	for {
		i := controlIndex(s)
		buf = append(buf, s[:i]...)
		if i == len(s) {
			return buf
		}
		c := s[i]
		buf = append(buf, '#', '0'+c>>6, '0'+c>>3&7, '0'+c&7)
		s = s[i+1:]
	}
}

func tag(m *Message) string {
	switch {
	case m.Program == "":
		return ""
	case m.PID != "":
		return m.Program + "[" + m.PID + "]: "
	}
	return m.Program + ": "
}

// field is a header field as RFC 5424 allows it: "-" when empty, at most max printable
// ASCII characters (others, the space too, become "_").
func field(s string, max int) string {
	if s == "" {
		return "-"
	}
	b := []byte(s[:min(len(s), max)])
	for i, c := range b {
		if c <= ' ' || c > '~' {
			b[i] = '_'
		}
	}
	return string(b)
}
