package syslogmsg

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var fixed = time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	p := NewParser(func() time.Time { return fixed })
	cases := []struct {
		in                    string
		fac, sev              int
		host, prog, pid, text string
	}{
		{"<13>Nov 25 15:00:00 root: hello world", 1, 5, "", "root", "", "hello world"},
		{"<30>Nov 25 15:00:00 nginx[123]: GET / 200\n", 3, 6, "", "nginx", "123", "GET / 200"},
		{"<38>Nov 25 15:00:00 myhost sshd[1]: café ünïcode", 4, 6, "myhost", "sshd", "1", "café ünïcode"},
		{"<165>1 2026-11-25T15:00:00.123Z host app 42 ID47 [x@1 a=\"b\"] structured", 20, 5, "host", "app", "42", "structured"},
		{"<13>1 - - - - - - bare", 1, 5, "", "", "", "bare"},
		{"<14>no header at all, bytes \xff kept", 1, 6, "", "", "", "no header at all, bytes \xff kept"},
		// Control characters in an RFC 3164 text: kept, not the text dropped or cut.
		{"<13>Nov 25 15:00:00 prog: \x1b[31mred\x1b[0m", 1, 5, "", "prog", "", "\x1b[31mred\x1b[0m"},
		{"<13>Nov 25 15:00:00 host prog[1]: a\nb\x00c\x7f", 1, 5, "host", "prog", "1", "a\nb\x00c\x7f"},
		// An empty text is empty, not the end of the tag.
		{"<13>Nov 25 15:00:00 host prog[1]: \n", 1, 5, "host", "prog", "1", ""},
		{"<13>Nov 25 15:00:00 prog:", 1, 5, "", "prog", "", ""},
		{"<13>Nov 25 15:00:00 prog: a: b", 1, 5, "", "prog", "", "a: b"},
	}
	for _, c := range cases {
		m, err := p.Parse([]byte(c.in))
		if err != nil || m.Facility != c.fac || m.Severity != c.sev || m.Hostname != c.host || m.Program != c.prog || m.PID != c.pid || m.Text != c.text {
			t.Errorf("%q: %+v %v", c.in, m, err)
		}
	}
	for _, bad := range []string{"", "plain text", "<>x", "<999>x", "<a>x"} {
		if _, err := p.Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestSelector(t *testing.T) {
	const (
		kern, user, mail, daemon, auth, cron, local0   = 0, 1, 2, 3, 4, 9, 16
		emerg, crit, err, warning, notice, info, debug = 0, 2, 3, 4, 5, 6, 7
	)
	cases := []struct {
		sel string
		yes [][2]int
		no  [][2]int
	}{
		{"", [][2]int{{kern, debug}, {local0, emerg}}, nil},
		{"*.*", [][2]int{{mail, debug}}, nil},
		{"*.info", [][2]int{{user, info}, {mail, emerg}}, [][2]int{{user, debug}}},
		{"*.info;mail.none", [][2]int{{user, info}}, [][2]int{{mail, crit}}},
		{"mail,cron.warning", [][2]int{{mail, err}, {cron, warning}}, [][2]int{{mail, notice}, {user, crit}}},
		{"*.=err", [][2]int{{daemon, err}}, [][2]int{{daemon, crit}, {daemon, warning}}},
		{"*.*;auth.!notice", [][2]int{{auth, info}, {auth, debug}, {user, emerg}}, [][2]int{{auth, notice}, {auth, emerg}}},
		{"*.*;*.!=debug", [][2]int{{auth, info}}, [][2]int{{kern, debug}}},
		{"local0.*", [][2]int{{local0, debug}}, [][2]int{{user, emerg}}},
	}
	for _, c := range cases {
		s, e := ParseSelector(c.sel)
		if e != nil {
			t.Fatalf("%q: %v", c.sel, e)
		}
		for _, fs := range c.yes {
			if !s.Match(fs[0], fs[1]) {
				t.Errorf("%q rejects %s.%s", c.sel, Facilities[fs[0]], Severities[fs[1]])
			}
		}
		for _, fs := range c.no {
			if s.Match(fs[0], fs[1]) {
				t.Errorf("%q accepts %s.%s", c.sel, Facilities[fs[0]], Severities[fs[1]])
			}
		}
	}
	for _, bad := range []string{"mail", "mail.loud", "nosuch.info", "*.=", "*.!"} {
		if _, e := ParseSelector(bad); e == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestFormats(t *testing.T) {
	m := Message{Time: fixed, Facility: 3, Severity: 6, Program: "nginx", PID: "7", Text: "GET / 200 ü"}
	want := map[string]string{
		FormatText:    "2026-11-25T15:00:00.000Z daemon.info nginx[7]: GET / 200 ü\n",
		FormatRFC3164: "<30>Nov 25 15:00:00 box nginx[7]: GET / 200 ü\n",
		FormatRFC5424: "<30>1 2026-11-25T15:00:00Z box nginx 7 - - GET / 200 ü\n",
		FormatJSON:    `{"time":"2026-11-25T15:00:00Z","facility":"daemon","severity":"info","host":"box","program":"nginx","pid":"7","message":"GET / 200 ü"}` + "\n",
	}
	for f, w := range want {
		if got := string(AppendFormat(nil, &m, f, "box")); got != w {
			t.Errorf("%s:\n got %q\nwant %q", f, got, w)
		}
	}
	// What we format, we parse back the same.
	p := NewParser(nil)
	for _, f := range []string{FormatRFC3164, FormatRFC5424} {
		back, err := p.Parse(AppendFormat(nil, &m, f, "box"))
		if err != nil || back.Program != "nginx" || back.PID != "7" || strings.TrimSpace(back.Text) != "GET / 200 ü" || back.Severity != 6 {
			t.Errorf("%s round trip: %+v %v", f, back, err)
		}
	}
}

// TestFormatsOneLine: a message is one line in the line formats, and its RFC 5424 header is
// one a strict parser reads (six digits of fraction at most, printable ASCII fields).
func TestFormatsOneLine(t *testing.T) {
	m := Message{Time: time.Date(2026, 11, 25, 15, 0, 0, 123456789, time.UTC), Facility: 1, Severity: 5,
		Program: "héllo wörld", Text: "a\nb\r\x1b[0m\tc\x7f"}
	want := map[string]string{
		FormatText:    "2026-11-25T15:00:00.123Z user.notice héllo wörld: a#012b#015#033[0m\tc#177\n",
		FormatRFC3164: "<13>Nov 25 15:00:00 box héllo wörld: a#012b#015#033[0m\tc#177\n",
		FormatRFC5424: "<13>1 2026-11-25T15:00:00.123456Z box h__llo_w__rld - - - a#012b#015#033[0m\tc#177\n",
		FormatJSON:    `{"time":"2026-11-25T15:00:00.123456789Z","facility":"user","severity":"notice","host":"box","program":"héllo wörld","message":"a\nb\r\u001b[0m\tc` + "\x7f\"}\n",
	}
	for f, w := range want {
		if got := string(AppendFormat(nil, &m, f, "box")); got != w {
			t.Errorf("%s:\n got %q\nwant %q", f, got, w)
		}
	}
	// A forward output sends the text as it is: octet counting frames it.
	if got := string(Append5424(nil, &m, "box")); !strings.HasSuffix(got, " - - - a\nb\r\x1b[0m\tc\x7f") {
		t.Errorf("forwarded as %q", got)
	}
}

// checkParsed holds for every message read from a datagram: fields in range, nothing of
// the text lost, one line per message in the line formats, valid JSON, and RFC 5424 (what a
// forward output sends) that reads back as the same message.
func checkParsed(t *testing.T, p *Parser, in []byte, m Message) {
	t.Helper()
	if m.Facility < 0 || m.Facility > 23 || m.Severity < 0 || m.Severity > 7 || m.Time.IsZero() {
		t.Fatalf("%q parsed to %+v", in, m)
	}
	if trimmed := strings.TrimRight(string(in), "\n\r\x00"); !strings.HasSuffix(trimmed, m.Text) {
		t.Fatalf("%q: the text %q is not what the datagram ends with", in, m.Text)
	}
	for _, f := range []string{FormatText, FormatRFC3164, FormatRFC5424, FormatJSON} {
		line := AppendFormat(nil, &m, f, "h")
		if i := bytes.IndexByte(line, '\n'); i != len(line)-1 {
			t.Fatalf("%s of %q is not one line: %q", f, in, line)
		}
		if f == FormatJSON && !json.Valid(line) {
			t.Fatalf("json of %q is not JSON: %q", in, line)
		}
	}
	out := Append5424(nil, &m, "h")
	back, err := p.Parse(out)
	if err != nil || back.Facility != m.Facility || back.Severity != m.Severity || back.Text != strings.TrimRight(m.Text, "\n\r\x00") {
		t.Fatalf("%q parsed to %+v, as RFC 5424 %q, back to %+v (%v)", in, m, out, back, err)
	}
}

func FuzzParse3164(f *testing.F) {
	for _, s := range []string{"<13>Nov 25 15:00:00 root: hello", "<30>Nov  5 01:02:03 host app[1]: x", "<0>", "<191>x",
		"<13>Nov 25 15:00:00 prog: \x1b[31mred\x1b[0m", "<13>Nov 25 15:00:00 host prog[1]: a\r\nb\x00c", "<13>app: two\nlines", "<14>\xff\xfe"} {
		f.Add([]byte(s))
	}
	p := NewParser(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := p.Parse(b); err == nil {
			checkParsed(t, p, b, m)
		}
	})
}

func FuzzParse5424(f *testing.F) {
	for _, s := range []string{"<165>1 2026-11-25T15:00:00.123Z host app 42 ID47 [x@1 a=\"b\"] hi", "<13>1 - - - - - -", "<13>1 x",
		"<13>1 - - - - - - a\nb\x1b", "<13>1 2026-11-25T15:00:00Z h \xc3\xa9 - - - x", "<13>1 - - - - - [a@1 b=\"\\\"]\"] \xef\xbb\xbfbom"} {
		f.Add([]byte(s))
	}
	p := NewParser(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := p.Parse(b); err == nil {
			checkParsed(t, p, b, m)
		}
	})
}

// FuzzSelector checks that selectors parse without panic and compose as syslog.conf items
// do: empty items change nothing, a final "*.none" selects nothing and "*.*" everything.
func FuzzSelector(f *testing.F) {
	for _, s := range []string{"*.info;mail.none", "kern,mail.!=err", "", "*.*;auth,authpriv.none", "mail.=warning;daemon.=debug", "local7.!warn"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			return
		}
		if sel.Match(-1, 0) || sel.Match(24, 0) || sel.Match(0, 8) || sel.Match(0, -1) {
			t.Fatalf("%q matches out of range", s)
		}
		if strings.TrimSpace(s) == "" {
			return // selects everything; the items below would narrow it
		}
		same, _ := ParseSelector(";" + s + ";")
		none, err1 := ParseSelector(s + ";*.none")
		all, err2 := ParseSelector(s + ";*.*")
		if same == nil || err1 != nil || err2 != nil {
			t.Fatalf("%q accepted, but not with more items: %v %v", s, err1, err2)
		}
		for fac := range 24 {
			for sev := range 8 {
				if same.Match(fac, sev) != sel.Match(fac, sev) || none.Match(fac, sev) || !all.Match(fac, sev) {
					t.Fatalf("%q: items do not compose at %s.%s", s, Facilities[fac], Severities[sev])
				}
			}
		}
	})
}
