package syslogmsg

import (
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

func FuzzParse3164(f *testing.F) {
	for _, s := range []string{"<13>Nov 25 15:00:00 root: hello", "<30>Nov  5 01:02:03 host app[1]: x", "<0>", "<191>x"} {
		f.Add([]byte(s))
	}
	p := NewParser(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := p.Parse(b)
		if err == nil && (m.Facility < 0 || m.Facility > 23 || m.Severity < 0 || m.Severity > 7) {
			t.Fatalf("%q parsed to %+v", b, m)
		}
		if err == nil {
			_ = AppendFormat(nil, &m, FormatJSON, "h")
		}
	})
}

func FuzzParse5424(f *testing.F) {
	for _, s := range []string{"<165>1 2026-11-25T15:00:00.123Z host app 42 ID47 [x@1 a=\"b\"] hi", "<13>1 - - - - - -", "<13>1 x"} {
		f.Add([]byte(s))
	}
	p := NewParser(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := p.Parse(b)
		if err == nil {
			if m.Facility > 23 || m.Severity > 7 {
				t.Fatalf("%q parsed to %+v", b, m)
			}
			_ = AppendFormat(nil, &m, FormatRFC5424, "h")
		}
	})
}

func FuzzSelector(f *testing.F) {
	for _, s := range []string{"*.info;mail.none", "kern,mail.!=err", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if sel, err := ParseSelector(s); err == nil {
			sel.Match(0, 0)
		}
	})
}
