// Package syslogmsg parses syslog messages (RFC 3164, including the host-less form that
// glibc's syslog() writes to /dev/log, and RFC 5424), matches them against syslog.conf
// selectors and formats them again (text, RFC 3164, RFC 5424, JSON). Parsing uses
// github.com/leodido/go-syslog/v4; nothing here keeps state.
package syslogmsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
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
		if sm, err := p.m3164.Parse(b); err == nil && sm != nil {
			fill3164(&m, sm.(*rfc3164.SyslogMessage))
			break
		}
		// No timestamp, as Python's SysLogHandler sends: "<PRI>tag[pid]: text".
		if t := bareTag.FindSubmatch(rest); t != nil {
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

var bareTag = regexp.MustCompile(`^([^\s\[\]:]{1,48})(?:\[(\d{1,10})\])?: ?((?s).*)$`)

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
// hostname.
func AppendFormat(buf []byte, m *Message, format, host string) []byte {
	hostname := m.Hostname
	if hostname == "" {
		hostname = host
	}
	switch format {
	case FormatRFC3164:
		buf = fmt.Appendf(buf, "<%d>%s %s %s", m.Facility*8+m.Severity, m.Time.Format(time.Stamp), orDash(hostname), tag(m))
		buf = append(buf, m.Text...)
	case FormatRFC5424:
		buf = Append5424(buf, m, hostname)
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
		buf = fmt.Appendf(buf, " %s.%s %s", Facilities[m.Facility], Severities[m.Severity], tag(m))
		buf = append(buf, m.Text...)
	}
	return append(buf, '\n')
}

// Append5424 appends m as RFC 5424 without a newline.
func Append5424(buf []byte, m *Message, hostname string) []byte {
	buf = fmt.Appendf(buf, "<%d>1 %s %s %s %s %s - ", m.Facility*8+m.Severity, m.Time.Format(time.RFC3339Nano),
		orDash(hostname), orDash(m.Program), orDash(m.PID), orDash(m.MsgID))
	return append(buf, m.Text...)
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, " ", "_")
}
