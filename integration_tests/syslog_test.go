package integration

// The syslog kind (docs/kinds.md, docs/metrics.md, docs/guarantees.md#10): pilotfish as PID 1 receives from the real
// logger(1) (unix, UDP, TCP with newline and octet-counted framing, RFC 3164 and 5424),
// Python's logging.handlers.SysLogHandler and raw datagrams, and routes by selector,
// program and match to stdout, files (rotated), and forward targets.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// sysSend sends each message as one datagram to a unixgram or udp address.
func sysSend(t testing.TB, network, addr string, msgs ...string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatalf("send to %s: %v", addr, err)
		}
	}
}

// sysFlood writes n numbered lines (format holds the number, e.g. "line %05d") into
// DIR/msgs.txt and sends them with `logger -f` to the unix socket sock; it returns when
// logger began and how long it took.
func sysFlood(t testing.TB, dir, sock, format string, n int) (began time.Time, took time.Duration) {
	t.Helper()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, format+"\n", i)
	}
	writeFile(t, filepath.Join(dir, "msgs.txt"), in.String(), 0o644)
	began = time.Now()
	runClient(t, 20*time.Second, "", "logger", "-u", sock, "-t", "flood", "-f", filepath.Join(dir, "msgs.txt"))
	return began, time.Since(began)
}

// sysListening waits until the syslog jobs listen (the control socket answers before the
// jobs start).
func sysListening(t testing.TB, k *ctlPF, jobs ...string) {
	t.Helper()
	for _, j := range jobs {
		k.waitJob(10*time.Second, j, func(j client.Job) bool { return j.State == "listening" }, "listening")
	}
}

// waitLines waits until path holds at least n complete lines and returns them.
func waitLines(t testing.TB, d time.Duration, path string, n int) []string {
	t.Helper()
	var lines []string
	waitFor(t, d, func() bool { lines = fileLines(t, path); return len(lines) >= n }, "%d lines in %s (have %d)", n, path, len(lines))
	return lines
}

func sysMode(t testing.TB, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Mode()
}

// sysGuard is added to the syslog tests' configurations: a job that waits for a reload
// keeps pilotfish up even when its liveness check misjudges a syslog job at start-up (the
// bug TestSyslogOnlyConfigStaysUp shows), so that each test fails only for its own subject.
const sysGuard = `
job "guard" {
  exec = "true"
  when {
    source = "global"
    once   = "reload"
  }
}
`

const sysHeaderTime = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d\d:\d\d)`

// docs/kinds.md syslog: the real logger over a unix socket (RFC 3164 and --rfc5424), UDP and
// TCP (newline framing and --octet-count), each in every output format; exact output of every format for known messages;
// bytes that are not ASCII pass intact; the socket is 0666 and its directory untouched.
func TestSyslogClientsAndFormats(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sockDir := filepath.Join(dir, "sock")
	if err := os.Mkdir(sockDir, 0o750); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "log.sock")
	ports := freePorts(t, 2)
	udp := fmt.Sprintf("127.0.0.1:%d", ports[0])
	tcp := fmt.Sprintf("127.0.0.1:%d", ports[1])
	k := startPF(t, `
job "log" {
  kind   = "syslog"
  listen = ["unixgram://`+sock+`", "udp://`+udp+`", "tcp://`+tcp+`"]
  output "console" {
    stdout = true
  }
  output "text" {
    file = "`+dir+`/text.log"
  }
  output "bsd" {
    file   = "`+dir+`/rfc3164.log"
    format = "rfc3164"
  }
  output "ietf" {
    file   = "`+dir+`/rfc5424.log"
    format = "rfc5424"
  }
  output "json" {
    file   = "`+dir+`/json.log"
    format = "json"
  }
}
`+sysGuard, opts{Dir: dir, Env: []string{"TZ=UTC"}})
	sysListening(t, k, "log")
	host, _ := os.Hostname()
	year := time.Now().UTC().Year()

	if j := k.job("log"); j.Kind != "syslog" || j.Pid != 0 {
		t.Errorf("syslog job: kind %q pid %d, want syslog, 0", j.Kind, j.Pid)
	}
	if m := sysMode(t, sock); m.Type() != os.ModeSocket || m.Perm() != 0o666 {
		t.Errorf("%s: mode %v, want a socket with mode 0666", sock, m)
	}
	if m := sysMode(t, sockDir); m.Perm() != 0o750 {
		t.Errorf("the socket's directory went from 0750 to %v", m.Perm())
	}

	// Known messages, sent raw: exact output in every format.
	exact := []struct {
		in                               string
		text, rfc3164, rfc5424, jsonLine string
	}{{
		in:       `<165>1 2024-03-05T06:07:08.123456Z h1 app 77 ID47 [ex@32473 k="v"] héllo wörld 日本`,
		text:     `2024-03-05T06:07:08.123Z local4.notice app[77]: héllo wörld 日本`,
		rfc3164:  `<165>Mar  5 06:07:08 h1 app[77]: héllo wörld 日本`,
		rfc5424:  `<165>1 2024-03-05T06:07:08.123456Z h1 app 77 ID47 - héllo wörld 日本`,
		jsonLine: `{"time":"2024-03-05T06:07:08.123456Z","facility":"local4","severity":"notice","host":"h1","program":"app","pid":"77","message":"héllo wörld 日本"}`,
	}, {
		in:       `<34>Oct 11 22:14:15 mymachine su[12]: 'su root' failed for lonvick on /dev/pts/8`,
		text:     fmt.Sprintf(`%d-10-11T22:14:15.000Z auth.crit su[12]: 'su root' failed for lonvick on /dev/pts/8`, year),
		rfc3164:  `<34>Oct 11 22:14:15 mymachine su[12]: 'su root' failed for lonvick on /dev/pts/8`,
		rfc5424:  fmt.Sprintf(`<34>1 %d-10-11T22:14:15Z mymachine su 12 - - 'su root' failed for lonvick on /dev/pts/8`, year),
		jsonLine: fmt.Sprintf(`{"time":"%d-10-11T22:14:15Z","facility":"auth","severity":"crit","host":"mymachine","program":"su","pid":"12","message":"'su root' failed for lonvick on /dev/pts/8"}`, year),
	}, {
		// What glibc's syslog() writes to /dev/log: no hostname; pilotfish's is used.
		in:       `<30>Jan  2 03:04:05 nginx[4242]: 2024/01/02 03:04:05 [error] 7#7: upstream timed out`,
		text:     fmt.Sprintf(`%d-01-02T03:04:05.000Z daemon.info nginx[4242]: 2024/01/02 03:04:05 [error] 7#7: upstream timed out`, year),
		rfc3164:  `<30>Jan  2 03:04:05 ` + host + ` nginx[4242]: 2024/01/02 03:04:05 [error] 7#7: upstream timed out`,
		rfc5424:  fmt.Sprintf(`<30>1 %d-01-02T03:04:05Z %s nginx 4242 - - 2024/01/02 03:04:05 [error] 7#7: upstream timed out`, year, host),
		jsonLine: fmt.Sprintf(`{"time":"%d-01-02T03:04:05Z","facility":"daemon","severity":"info","host":%q,"program":"nginx","pid":"4242","message":"2024/01/02 03:04:05 [error] 7#7: upstream timed out"}`, year, host),
	}}
	for _, e := range exact {
		sysSend(t, "unixgram", sock, e.in)
	}
	// Bytes that are not UTF-8 (Latin-1 "été", 0xff) stay as they are, except in JSON.
	latin := "<14>Jan  2 03:04:05 legacy: caf\xe9 \xe9t\xe9 \xff end"
	sysSend(t, "unixgram", sock, latin)

	lines := map[string][]string{}
	for _, f := range []string{"text", "rfc3164", "rfc5424", "json"} {
		lines[f] = waitLines(t, 10*time.Second, filepath.Join(dir, f+".log"), len(exact)+1)
	}
	out := k.Stdout.Lines()
	waitFor(t, 5*time.Second, func() bool { out = k.Stdout.Lines(); return len(out) >= len(exact)+1 }, "stdout lines")
	for i, e := range exact {
		for f, want := range map[string]string{"text": e.text, "rfc3164": e.rfc3164, "rfc5424": e.rfc5424, "json": e.jsonLine} {
			if got := lines[f][i]; got != want {
				t.Errorf("format %s of %q:\n got %q\nwant %q", f, e.in, got, want)
			}
		}
		if want := "[log] " + e.text; out[i] != want {
			t.Errorf("stdout line for %q:\n got %q\nwant %q", e.in, out[i], want)
		}
	}
	n := len(exact)
	if got, want := lines["text"][n], fmt.Sprintf("%d-01-02T03:04:05.000Z user.info legacy: caf\xe9 \xe9t\xe9 \xff end", year); got != want {
		t.Errorf("text of a Latin-1 message: %q, want %q (bytes intact)", got, want)
	}
	if got, want := lines["rfc3164"][n], "<14>Jan  2 03:04:05 "+host+" legacy: caf\xe9 \xe9t\xe9 \xff end"; got != want {
		t.Errorf("rfc3164 of a Latin-1 message: %q, want %q", got, want)
	}
	if !strings.HasSuffix(lines["rfc5424"][n], " legacy - - - caf\xe9 \xe9t\xe9 \xff end") {
		t.Errorf("rfc5424 of a Latin-1 message: %q", lines["rfc5424"][n])
	}
	if !json.Valid([]byte(lines["json"][n])) {
		t.Errorf("json of a Latin-1 message is not valid JSON: %q", lines["json"][n])
	}

	// The real clients.
	base := n + 1
	runClient(t, 10*time.Second, "", "logger", "-u", sock, "-t", "unixprog", "-p", "local3.warning", "--id=321", "hello over unix, ünïcödé")
	runClient(t, 10*time.Second, "", "logger", "-u", sock, "--rfc5424", "-t", "ietfprog", "-p", "mail.err", "--msgid", "M1", "hello rfc5424")
	runClient(t, 10*time.Second, "", "logger", "-n", "127.0.0.1", "-P", strconv.Itoa(ports[0]), "-d", "-t", "udpprog", "-p", "daemon.notice", "hello over udp")
	runClient(t, 10*time.Second, "", "logger", "-n", "127.0.0.1", "-P", strconv.Itoa(ports[1]), "-T", "-t", "tcpprog", "-p", "user.debug", "hello over tcp")
	runClient(t, 10*time.Second, "", "logger", "-n", "127.0.0.1", "-P", strconv.Itoa(ports[1]), "-T", "--octet-count", "-t", "octprog", "-p", "local7.alert", "hello octet counted")
	clients := []struct{ text, bsd, ietf, js string }{
		{
			text: ` local3\.warning unixprog\[321\]: hello over unix, ünïcödé$`,
			bsd:  `^<156>\w{3} [ \d]\d \d\d:\d\d:\d\d ` + regexp.QuoteMeta(host) + ` unixprog\[321\]: hello over unix, ünïcödé$`,
			ietf: `^<156>1 \S+ ` + regexp.QuoteMeta(host) + ` unixprog 321 - - hello over unix, ünïcödé$`,
			js:   `"facility":"local3","severity":"warning",.*"program":"unixprog","pid":"321","message":"hello over unix, ünïcödé"`,
		}, {
			text: ` mail\.err ietfprog(\[\d+\])?: hello rfc5424$`,
			bsd:  `^<19>.* ietfprog(\[\d+\])?: hello rfc5424$`,
			ietf: `^<19>1 \d{4}-\S+ \S+ ietfprog \S+ M1 - hello rfc5424$`,
			js:   `"facility":"mail","severity":"err",.*"program":"ietfprog",.*"message":"hello rfc5424"`,
		}, {
			text: ` daemon\.notice udpprog: hello over udp$`,
			bsd:  `^<29>.* udpprog: hello over udp$`,
			ietf: `^<29>1 \S+ \S+ udpprog - - - hello over udp$`,
			js:   `"facility":"daemon","severity":"notice",.*"program":"udpprog","message":"hello over udp"`,
		}, {
			text: ` user\.debug tcpprog: hello over tcp$`,
			bsd:  `^<15>.* tcpprog: hello over tcp$`,
			ietf: `^<15>1 \S+ \S+ tcpprog - - - hello over tcp$`,
			js:   `"facility":"user","severity":"debug",.*"program":"tcpprog","message":"hello over tcp"`,
		}, {
			text: ` local7\.alert octprog: hello octet counted$`,
			bsd:  `^<185>.* octprog: hello octet counted$`,
			ietf: `^<185>1 \S+ \S+ octprog - - - hello octet counted$`,
			js:   `"facility":"local7","severity":"alert",.*"program":"octprog","message":"hello octet counted"`,
		},
	}
	total := base + len(clients)
	for _, f := range []string{"text", "rfc3164", "rfc5424", "json"} {
		lines[f] = waitLines(t, 10*time.Second, filepath.Join(dir, f+".log"), total)
		if len(lines[f]) != total {
			t.Errorf("%s.log has %d lines, want %d:\n%s", f, len(lines[f]), total, strings.Join(lines[f], "\n"))
		}
	}
	// Clients over different sockets may arrive in any order: find each.
	find := func(f, re string) {
		t.Helper()
		rx := regexp.MustCompile(re)
		for _, l := range lines[f][base:] {
			if rx.MatchString(l) {
				return
			}
		}
		t.Errorf("%s.log has no line matching %q:\n%s", f, re, strings.Join(lines[f][base:], "\n"))
	}
	for _, c := range clients {
		find("text", `^`+sysHeaderTime+c.text)
		find("rfc3164", c.bsd)
		find("rfc5424", c.ietf)
		find("json", `^\{"time":"[^"]+",`+c.js+`\}$`)
	}
	for _, l := range lines["json"] {
		if !json.Valid([]byte(l)) {
			t.Errorf("json.log line is not JSON: %q", l)
		}
	}
	k.waitMetric(5*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "json"}, func(v float64) bool { return v == float64(total) })
	for _, o := range []string{"console", "text", "bsd", "ietf"} {
		if v := k.metric("pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": o}); v != float64(total) {
			t.Errorf("pilotfish_syslog_messages_total{output=%s} = %v, want %d", o, v, total)
		}
	}
	if v := k.metric("pilotfish_syslog_parse_errors_total", map[string]string{"job": "log"}); v != 0 {
		t.Errorf("pilotfish_syslog_parse_errors_total = %v, want 0", v)
	}
	if v := k.metric("pilotfish_syslog_dropped_total", map[string]string{"job": "log"}); v != 0 {
		t.Errorf("pilotfish_syslog_dropped_total = %v, want 0", v)
	}
}

// docs/kinds.md syslog with Python's logging.handlers.SysLogHandler, over a unix socket and
// UDP. It sends "<PRI>TAG: MESSAGE\0" with no timestamp or hostname; as RFC 3164 (§4.3.3)
// says, a relay adds those and the TAG (program[pid]) stays the TAG, which is how rsyslog
// and syslog-ng read it. So the program and pid must be known: in every format, and to the
// `program` filter.
func TestSyslogPythonHandler(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	port := freePort(t)
	k := startPF(t, `
job "log" {
  kind   = "syslog"
  listen = ["unixgram://`+sock+`", "udp://127.0.0.1:`+strconv.Itoa(port)+`"]
  output "console" {
    stdout = true
  }
  output "json" {
    file   = "`+dir+`/json.log"
    format = "json"
  }
  output "ietf" {
    file   = "`+dir+`/rfc5424.log"
    format = "rfc5424"
  }
  output "mine" {
    file    = "`+dir+`/pyapp.log"
    program = "pyapp"
  }
}
`+sysGuard, opts{Dir: dir})
	sysListening(t, k, "log")
	out := runClient(t, 10*time.Second, "", python, "-c", `
import logging, logging.handlers, os, sys
log = logging.getLogger("t")
h = logging.handlers.SysLogHandler(address=sys.argv[1], facility="local5")
h.setFormatter(logging.Formatter("pyapp[%(process)d]: %(message)s"))
log.addHandler(h)
log.warning("python over unix")
log.removeHandler(h)
u = logging.handlers.SysLogHandler(address=("127.0.0.1", int(sys.argv[2])), facility="local6")
u.setFormatter(logging.Formatter("pyapp: %(message)s"))
log.addHandler(u)
log.error("python over udp")
print(os.getpid())
`, sock, strconv.Itoa(port))
	pid := strings.TrimSpace(out)
	k.waitMetric(10*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "json"}, func(v float64) bool { return v == 2 })
	k.WaitStdout(5*time.Second, `^\[log\] `+sysHeaderTime+` local5\.warning pyapp\[`+pid+`\]: python over unix$`)
	k.WaitStdout(5*time.Second, `^\[log\] `+sysHeaderTime+` local6\.err pyapp: python over udp$`)
	js := waitLines(t, 5*time.Second, filepath.Join(dir, "json.log"), 2)
	ietf := waitLines(t, 5*time.Second, filepath.Join(dir, "rfc5424.log"), 2)
	wantJSON := []string{
		`"facility":"local5","severity":"warning","host":"[^"]+","program":"pyapp","pid":"` + pid + `","message":"python over unix"`,
		`"facility":"local6","severity":"err","host":"[^"]+","program":"pyapp","message":"python over udp"`,
	}
	wantIETF := []string{
		`^<172>1 \S+ \S+ pyapp ` + pid + ` - - python over unix$`,
		`^<179>1 \S+ \S+ pyapp - - - python over udp$`,
	}
	// The unix and the UDP message arrive on two sockets, read side by side: either may be
	// written first.
	anyMatch := func(lines []string, re *regexp.Regexp) bool {
		return slices.ContainsFunc(lines, re.MatchString)
	}
	for i := range 2 {
		if re := regexp.MustCompile(`^\{"time":"[^"]+",` + wantJSON[i] + `\}$`); !anyMatch(js, re) {
			t.Errorf("json lines %q: none has program pyapp%s and the message alone", js, map[int]string{0: ", pid " + pid}[i])
		}
		if re := regexp.MustCompile(wantIETF[i]); !anyMatch(ietf, re) {
			t.Errorf("rfc5424 lines %q: none has APP-NAME pyapp and the message alone (%s)", ietf, wantIETF[i])
		}
	}
	if v := k.metric("pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "mine"}); v != 2 {
		t.Errorf("the output with program = \"pyapp\" selected %v of the 2 messages of pyapp", v)
	}
}

// sysMsg is one message of the routing test.
type sysMsg struct {
	fac, sev int
	prog     string
	text     string
}

var sysFacilities = map[string]int{"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "authpriv": 10, "local0": 16, "local7": 23}

func sysFacName(f int) string {
	for n, v := range sysFacilities {
		if v == f {
			return n
		}
	}
	return strconv.Itoa(f)
}

var sysSeverities = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// docs/kinds.md selectors: facility and severity lists, `*`, `none`, `=`, `!` and `!=`, items
// applied left to right, plus the program and match filters, alone and combined.
func TestSyslogSelectors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	is := func(m sysMsg, facs ...string) bool {
		return slices.ContainsFunc(facs, func(f string) bool { return sysFacilities[f] == m.fac })
	}
	outputs := []struct {
		name, attrs string
		want        func(m sysMsg) bool
	}{
		{"all", ``, func(sysMsg) bool { return true }},
		{"mail", `selector = "mail.*"`, func(m sysMsg) bool { return is(m, "mail") }},
		{"err", `selector = "*.err"`, func(m sysMsg) bool { return m.sev <= 3 }},
		{"info-nomail", `selector = "*.info;mail.none"`, func(m sysMsg) bool { return m.sev <= 6 && !is(m, "mail") }},
		{"exact", `selector = "mail.=warning;daemon.=debug"`, func(m sysMsg) bool {
			return is(m, "mail") && m.sev == 4 || is(m, "daemon") && m.sev == 7
		}},
		{"not-exact", `selector = "mail.*;mail.!=info"`, func(m sysMsg) bool { return is(m, "mail") && m.sev != 6 }},
		{"below-err", `selector = "mail.*;mail.!err"`, func(m sysMsg) bool { return is(m, "mail") && m.sev > 3 }},
		{"list", `selector = "mail,daemon.crit"`, func(m sysMsg) bool { return is(m, "mail", "daemon") && m.sev <= 2 }},
		{"no-auth", `selector = "*.*;auth,authpriv.none"`, func(m sysMsg) bool { return !is(m, "auth", "authpriv") }},
		{"spaced", `selector = " kern.* ; local0,local7.notice "`, func(m sysMsg) bool {
			return is(m, "kern") || is(m, "local0", "local7") && m.sev <= 5
		}},
		{"panic", `selector = "*.=emerg;*.=alert"`, func(m sysMsg) bool { return m.sev <= 1 }},
		{"program", `program = "nginx"`, func(m sysMsg) bool { return m.prog == "nginx" }},
		{"match", `match = "(?i)time(d)? ?out|refused"`, func(m sysMsg) bool {
			return regexp.MustCompile(`(?i)time(d)? ?out|refused`).MatchString(m.text)
		}},
		{"combo", "selector = \"daemon.*\"\n    program  = \"app\"\n    match    = \"^user \"", func(m sysMsg) bool {
			return is(m, "daemon") && m.prog == "app" && strings.HasPrefix(m.text, "user ")
		}},
		{"nginx-errors", "selector = \"*.err\"\n    program  = \"nginx\"", func(m sysMsg) bool { return m.sev <= 3 && m.prog == "nginx" }},
	}
	var cfg strings.Builder
	cfg.WriteString("job \"log\" {\n  kind   = \"syslog\"\n  listen = \"unixgram://" + sock + "\"\n")
	for _, o := range outputs {
		fmt.Fprintf(&cfg, "  output %q {\n    file   = %q\n    format = \"json\"\n    %s\n  }\n", o.name, filepath.Join(dir, o.name+".log"), o.attrs)
	}
	cfg.WriteString("}\n")
	k := startPF(t, cfg.String()+sysGuard, opts{Dir: dir})
	sysListening(t, k, "log")

	var msgs []sysMsg
	for _, f := range []string{"kern", "mail", "daemon", "auth", "authpriv", "local0", "local7"} {
		for s := range 8 {
			msgs = append(msgs, sysMsg{sysFacilities[f], s, "m", f + "." + sysSeverities[s]})
		}
	}
	msgs = append(msgs,
		sysMsg{3, 3, "nginx", "connect() failed (111: Connection refused)"},
		sysMsg{3, 6, "nginx", "GET / 200"},
		sysMsg{1, 2, "nginx", "worker crashed"},
		sysMsg{3, 6, "app", "user alice logged in"},
		sysMsg{1, 6, "app", "user bob logged in"},
		sysMsg{3, 6, "app", "upstream timed out"},
		sysMsg{3, 6, "app", "a user logged in"},
		sysMsg{3, 3, "nginxx", "not nginx"},
	)
	var raw []string
	for i, m := range msgs {
		raw = append(raw, fmt.Sprintf("<%d>Mar  5 06:07:%02d %s[%d]: %s", m.fac*8+m.sev, i%60, m.prog, 100+i, m.text))
	}
	sysSend(t, "unixgram", sock, raw...)

	for _, o := range outputs {
		var want []string
		for _, m := range msgs {
			if o.want(m) {
				want = append(want, fmt.Sprintf("%s.%s %s: %s", sysFacName(m.fac), sysSeverities[m.sev], m.prog, m.text))
			}
		}
		k.waitMetric(10*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": o.name},
			func(v float64) bool { return v >= float64(len(want)) })
		var got []string
		for _, l := range waitLines(t, 5*time.Second, filepath.Join(dir, o.name+".log"), len(want)) {
			var j struct{ Facility, Severity, Program, Message string }
			if err := json.Unmarshal([]byte(l), &j); err != nil {
				t.Fatalf("%s.log: %q: %v", o.name, l, err)
			}
			got = append(got, fmt.Sprintf("%s.%s %s: %s", j.Facility, j.Severity, j.Program, j.Message))
		}
		if !slices.Equal(got, want) {
			t.Errorf("output %q (%s) got %d messages, want %d:\n got %q\nwant %q", o.name, strings.ReplaceAll(o.attrs, "\n   ", ";"), len(got), len(want), got, want)
		}
	}
	// Everything counted was written, nothing more: the counts are exact.
	for _, o := range outputs {
		n := 0
		for _, m := range msgs {
			if o.want(m) {
				n++
			}
		}
		if v := k.metric("pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": o.name}); v != float64(n) {
			t.Errorf("pilotfish_syslog_messages_total{output=%s} = %v, want %d", o.name, v, n)
		}
	}
}

// docs/kinds.md syslog's default listen, unixgram:///dev/log, with pilotfish as PID 1 of a
// namespace that has a /dev of its own (the host's /dev/log is never touched): a stale
// socket left by an earlier run is replaced, the new one is 0666 and /dev keeps its mode;
// logger and Python's SysLogHandler with their defaults reach it; stdout lines carry the
// job's "[job] " prefix unless logging { prefix = false }; the socket is removed at exit.
func TestSyslogDevLog(t *testing.T) {
	t.Parallel()
	requirePID1(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter is not installed")
	}
	dir := t.TempDir()
	devLog := filepath.Join(dir, "dev", "log") // /dev/log inside the namespace
	if err := os.Mkdir(filepath.Join(dir, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	stale, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: devLog, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	stale.Close() // the file stays: a stale /dev/log
	rawSock := filepath.Join(dir, "raw.sock")
	k := startPF(t, `
job "log" {
  kind = "syslog"
  output "console" {
    stdout = true
  }
  output "file" {
    file = "`+dir+`/all.log"
  }
}
job "bare" {
  kind   = "syslog"
  listen = "unixgram://`+rawSock+`"
  output "console" {
    stdout = true
  }
  logging {
    prefix = false
  }
}
`+sysGuard, opts{Dir: dir, PrivateDev: true})
	sysListening(t, k, "log", "bare")
	if m := sysMode(t, devLog); m.Type() != os.ModeSocket || m.Perm() != 0o666 {
		t.Errorf("/dev/log: mode %v, want a socket with mode 0666", m)
	}
	if m := sysMode(t, filepath.Join(dir, "dev")); m.Perm() != 0o755 {
		t.Errorf("/dev: mode %v, want 0755 as it was", m.Perm())
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(k.PID()) + "/root/dev/log"); err != nil {
		t.Fatalf("no /dev/log in pilotfish's namespace: %v", err)
	}
	pid := strconv.Itoa(k.PID())
	runClient(t, 10*time.Second, "", "nsenter", "-t", pid, "-m", "--", "logger", "-t", "devlogger", "-p", "daemon.warning", "to the default socket")
	runClient(t, 10*time.Second, "", "nsenter", "-t", pid, "-m", "--", python, "-c", `
import logging, logging.handlers
h = logging.handlers.SysLogHandler(address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON)
h.setFormatter(logging.Formatter("pydev: %(message)s"))
log = logging.getLogger("t")
log.addHandler(h)
log.error("python to /dev/log")
`)
	// A non-root user can log too (the socket is 0666).
	runClient(t, 10*time.Second, "", "nsenter", "-t", pid, "-m", "-S", "65534", "-G", "65534", "--", "logger", "-t", "nobodylog", "from nobody")
	sysSend(t, "unixgram", rawSock, "<13>Jan  2 03:04:05 bareprog: no prefix here")

	k.WaitStdout(10*time.Second, `^\[log\] `+sysHeaderTime+` daemon\.warning devlogger: to the default socket$`)
	k.WaitStdout(5*time.Second, `^\[log\] `+sysHeaderTime+` daemon\.err pydev: python to /dev/log$`)
	k.WaitStdout(5*time.Second, `^\[log\] `+sysHeaderTime+` user\.notice nobodylog: from nobody$`)
	k.WaitStdout(5*time.Second, `^\d{4}-01-02T03:04:05\.000(Z|[+-]\d\d:\d\d) user\.notice bareprog: no prefix here$`)
	waitLines(t, 5*time.Second, filepath.Join(dir, "all.log"), 3)
	if m := sysMode(t, filepath.Join(dir, "all.log")); m.Perm()&0o002 != 0 {
		t.Errorf("all.log is world-writable: %v", m)
	}

	k.Signal(syscall.SIGTERM)
	if code := k.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if _, err := os.Lstat(devLog); !os.IsNotExist(err) {
		t.Errorf("/dev/log is still there after pilotfish exited: %v", err)
	}
}

// docs/kinds.md rotate: 20,000 messages into rotate = { size = "256KB", keep = 5 } at a pace
// below the queue bound: none is lost or doubled, no file passes the size, the files are in
// order (.5 oldest), none beyond keep; a compressed output with keep = 2 keeps the newest.
func TestSyslogRotateUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	k := startPF(t, `
job "log" {
  kind   = "syslog"
  listen = "unixgram://`+sock+`"
  output "app" {
    file   = "`+dir+`/logs/app/app.log"
    rotate = { size = "256KB", keep = 5 }
  }
  output "gz" {
    file   = "`+dir+`/gz.log"
    rotate = { size = "64KB", keep = 2, compress = true }
  }
}
`+sysGuard, opts{Dir: dir})
	sysListening(t, k, "log")
	const total = 20000
	c, err := net.Dial("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pad := strings.Repeat("x", 14)
	for i := range total {
		if _, err := fmt.Fprintf(c, "<14>Mar  5 06:07:08 load[1]: m%05d %s", i, pad); err != nil {
			t.Fatal(err)
		}
		if i%2000 == 1999 { // keep the backlog far below the queue bound (8192)
			k.waitMetric(20*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "app"},
				func(v float64) bool { return v >= float64(i+1-2000) })
		}
	}
	k.waitMetric(20*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "app"}, func(v float64) bool { return v == total })
	k.waitMetric(20*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "gz"}, func(v float64) bool { return v == total })
	if v := k.metric("pilotfish_syslog_dropped_total", map[string]string{"job": "log"}); v != 0 {
		t.Fatalf("pilotfish_syslog_dropped_total = %v at a pace below the queue bound", v)
	}

	const size = 256 << 10
	base := filepath.Join(dir, "logs", "app", "app.log")
	if m := sysMode(t, filepath.Dir(base)); m.Perm() != 0o755 {
		t.Errorf("the created log directory has mode %v, want 0755", m.Perm())
	}
	files := []string{}
	for i := 5; i >= 1; i-- {
		files = append(files, fmt.Sprintf("%s.%d", base, i))
	}
	files = append(files, base)
	seen := make([]int, total)
	next, bytesTotal, outOfOrder := 0, 0, 0
	lineRE := regexp.MustCompile(`^` + sysHeaderTime + ` user\.info load\[1\]: m(\d{5}) ` + pad + `$`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%v (rotated files: %v)", err, globNames(base+"*"))
		}
		bytesTotal += len(b)
		if len(b) > size {
			t.Errorf("%s has %d bytes, over the 256KB limit", f, len(b))
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends in the middle of a line", f)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			m := lineRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("%s: unexpected line %q", f, l)
			}
			n, _ := strconv.Atoi(m[1])
			seen[n]++
			if n != next && outOfOrder < 5 {
				outOfOrder++
				t.Errorf("%s: m%05d follows m%05d (files out of order)", f, n, next-1)
			}
			next = n + 1
		}
	}
	if bytesTotal > 6*size-8<<10 {
		t.Fatalf("the test sent %d bytes: more than keep+1 files can hold, so losses would be by design", bytesTotal)
	}
	var missing, doubled []int
	for n, c := range seen {
		switch {
		case c == 0:
			missing = append(missing, n)
		case c > 1:
			doubled = append(doubled, n)
		}
	}
	if len(missing)+len(doubled) > 0 {
		t.Errorf("%d messages missing (first %v), %d doubled (first %v)", len(missing), missing[:min(len(missing), 10)], len(doubled), doubled[:min(len(doubled), 10)])
	}
	if exists(base + ".6") {
		t.Errorf("%s.6 exists with keep = 5", base)
	}

	// The compressed output: path.1.gz, path.2.gz and the current file, in order, ending
	// with the last message; nothing beyond keep.
	gzBase := filepath.Join(dir, "gz.log")
	waitFor(t, 10*time.Second, func() bool { return exists(gzBase+".1.gz") && exists(gzBase+".2.gz") && !exists(gzBase+".1.tmp") },
		"gz.log.1.gz and gz.log.2.gz (have %v)", globNames(gzBase+"*"))
	if exists(gzBase+".3.gz") || exists(gzBase+".3") {
		t.Errorf("more than keep = 2 rotated files: %v", globNames(gzBase+"*"))
	}
	var all []int
	for _, f := range []string{gzBase + ".2.gz", gzBase + ".1.gz", gzBase} {
		var r io.Reader
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		r = fh
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(fh)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			r = zr
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(b) > 64<<10 {
			t.Errorf("%s holds %d bytes uncompressed, over 64KB", f, len(b))
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			m := lineRE.FindStringSubmatch(sc.Text())
			if m == nil {
				t.Fatalf("%s: unexpected line %q", f, sc.Text())
			}
			n, _ := strconv.Atoi(m[1])
			all = append(all, n)
		}
	}
	if len(all) == 0 || all[len(all)-1] != total-1 {
		t.Fatalf("the compressed output does not end with the last message")
	}
	for i := 1; i < len(all); i++ {
		if all[i] != all[i-1]+1 {
			t.Fatalf("the compressed output skips from m%05d to m%05d", all[i-1], all[i])
		}
	}
}

func globNames(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// docs/kinds.md forward: a UDP and a TCP receiver get every selected message as RFC 5424, one
// datagram each over UDP, octet-counted frames ("LEN MSG") over TCP; the original
// sender's hostname, program, pid and msgid are kept.
func TestSyslogForward(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	udpLn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpLn.Close()
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	udpGot := make(chan string, 100)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := udpLn.ReadFrom(buf)
			if err != nil {
				return
			}
			udpGot <- string(buf[:n])
		}
	}()
	tcpGot := make(chan string, 100)
	tcpErr := make(chan error, 1)
	go func() {
		c, err := tcpLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			lenStr, err := br.ReadString(' ')
			if err != nil {
				return
			}
			n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
			if err != nil || n <= 0 {
				tcpErr <- fmt.Errorf("bad octet count %q", lenStr)
				return
			}
			frame := make([]byte, n)
			if _, err := io.ReadFull(br, frame); err != nil {
				tcpErr <- err
				return
			}
			tcpGot <- string(frame)
		}
	}()
	k := startPF(t, `
job "log" {
  kind   = "syslog"
  listen = "unixgram://`+sock+`"
  output "udp" {
    forward  = "udp://`+udpLn.LocalAddr().String()+`"
    selector = "*.*;mail.none"
  }
  output "tcp" {
    forward = "tcp://`+tcpLn.Addr().String()+`"
  }
}
`+sysGuard, opts{Dir: dir, Env: []string{"TZ=UTC"}})
	sysListening(t, k, "log")
	host, _ := os.Hostname()
	sysSend(t, "unixgram", sock,
		`<165>1 2024-03-05T06:07:08.123456Z h1 app 77 ID47 - first ünïcödé`,
		`<19>1 2024-03-05T06:07:09Z h1 mailer - - - second (mail, not over UDP)`,
		`<30>Jan  2 03:04:05 nginx[4242]: third, from a local program`,
	)
	want := []string{
		`<165>1 2024-03-05T06:07:08.123456Z h1 app 77 ID47 - first ünïcödé`,
		`<19>1 2024-03-05T06:07:09Z h1 mailer - - - second (mail, not over UDP)`,
		fmt.Sprintf(`<30>1 %d-01-02T03:04:05Z %s nginx 4242 - - third, from a local program`, time.Now().UTC().Year(), host),
	}
	recv := func(ch chan string, name string) string {
		t.Helper()
		select {
		case s := <-ch:
			return s
		case err := <-tcpErr:
			t.Fatalf("tcp receiver: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s receiver got nothing within 10s", name)
		}
		return ""
	}
	for _, i := range []int{0, 2} {
		if got := recv(udpGot, "udp"); got != want[i] {
			t.Errorf("udp datagram:\n got %q\nwant %q", got, want[i])
		}
	}
	for i := range want {
		if got := recv(tcpGot, "tcp"); got != want[i] {
			t.Errorf("tcp frame:\n got %q\nwant %q", got, want[i])
		}
	}
	k.waitMetric(5*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "udp"}, func(v float64) bool { return v == 2 })
	k.waitMetric(5*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "tcp"}, func(v float64) bool { return v == 3 })
	select {
	case extra := <-udpGot:
		t.Errorf("an extra UDP datagram: %q", extra)
	default:
	}
}

// docs/kinds.md, docs/metrics.md: while a forward target is down, its queue holds 8192 messages, the rest
// are dropped and counted in pilotfish_syslog_dropped_total; the client (logger) never
// blocks; other outputs get everything; once the target is up, the queued messages go out.
func TestSyslogForwardDown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	port := freePort(t) // nothing listens there yet
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	k := startPF(t, `
job "log" {
  kind   = "syslog"
  listen = "unixgram://`+sock+`"
  output "remote" {
    forward = "tcp://`+addr+`"
  }
  output "local" {
    file = "`+dir+`/local.log"
  }
}
`+sysGuard, opts{Dir: dir})
	sysListening(t, k, "log")
	const n, queue, batch = 12000, 8192, 512
	_, took := sysFlood(t, dir, sock, "message %05d", n)
	t.Logf("logger sent %d messages in %s with the forward target down", n, took)
	if took > 5*time.Second {
		t.Errorf("logger took %s: a dead forward target slows the clients down", took)
	}
	k.waitMetric(10*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "local"}, func(v float64) bool { return v == n })
	dropped := k.waitMetric(5*time.Second, "pilotfish_syslog_dropped_total", map[string]string{"job": "log"}, func(v float64) bool { return v > 0 })
	if dropped < n-queue-batch || dropped > n-queue {
		t.Errorf("pilotfish_syslog_dropped_total = %v, want between %d and %d (a queue of %d, plus one batch in flight)", dropped, n-queue-batch, n-queue, queue)
	}
	if len(k.logsOf("syslog output falls behind; dropping messages", "log")) == 0 {
		t.Errorf("the drops were not logged")
	}
	if v := k.metric("pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "remote"}); v != 0 {
		t.Errorf("messages_total{output=remote} = %v while the target is down", v)
	}
	if !k.Running() {
		t.Fatal("pilotfish exited")
	}

	// The target comes up: what was queued is delivered.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s any more: %v", addr, err)
	}
	defer ln.Close()
	expect := n - int(dropped)
	got := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		count := 0
		for count < expect {
			lenStr, err := br.ReadString(' ')
			if err != nil {
				break
			}
			m, _ := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
			if _, err := io.CopyN(io.Discard, br, int64(m)); err != nil {
				break
			}
			count++
		}
		got <- count
	}()
	select {
	case c := <-got:
		if c != expect {
			t.Errorf("the receiver got %d messages after coming up, want the %d queued", c, expect)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("the queued messages were not delivered within 40s")
	}
	k.waitMetric(10*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "remote"}, func(v float64) bool { return v == float64(expect) })
}

// docs/metrics.md: malformed datagrams and lines are counted in pilotfish_syslog_parse_errors_total
// (the first one is logged); pilotfish keeps running and the next good message goes
// through.
func TestSyslogMalformed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	port := freePort(t)
	k := startPF(t, `
job "log" {
  kind   = "syslog"
  listen = ["unixgram://`+sock+`", "tcp://127.0.0.1:`+strconv.Itoa(port)+`"]
  output "file" {
    file = "`+dir+`/out.log"
  }
}
`+sysGuard, opts{Dir: dir})
	sysListening(t, k, "log")
	bad := []string{
		"no priority at all",
		"<999>Jan  2 03:04:05 prog: priority out of range",
		"<abc>not a number",
		"<13",
		"\x00\x01\x02\xff\xfe",
		strings.Repeat("x", 3000),
	}
	sysSend(t, "unixgram", sock, bad...)
	sysSend(t, "unixgram", sock, "<13>Jan  2 03:04:05 good: after the garbage")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("garbage line over tcp\n<13>Jan  2 03:04:05 good: over tcp\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	lines := waitLines(t, 10*time.Second, filepath.Join(dir, "out.log"), 2)
	for _, want := range []string{"good: after the garbage", "good: over tcp"} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, want) }) {
			t.Errorf("out.log lacks %q: %q", want, lines)
		}
	}
	k.waitMetric(5*time.Second, "pilotfish_syslog_parse_errors_total", map[string]string{"job": "log"}, func(v float64) bool { return v == float64(len(bad)+1) })
	if len(lines) != 2 {
		t.Errorf("out.log: %q, want only the two good messages", lines)
	}
	if n := len(k.logsOf("malformed syslog message dropped (further ones are only counted)", "log")); n != 1 {
		t.Errorf("%d log entries about malformed messages, want 1 (the first)", n)
	}
	if !k.Running() || k.job("log").State != "listening" {
		t.Errorf("pilotfish or the syslog job did not survive the garbage")
	}

	// pilotfish stop JOB closes the sockets (the unix socket file goes away); start opens
	// them again.
	if r := k.cli("stop", "log"); r.code != 0 {
		t.Fatalf("pilotfish stop log: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	k.waitJob(5*time.Second, "log", func(j client.Job) bool { return j.State == "stopped" }, "stopped")
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket is still there after stop: %v", err)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Errorf("the TCP listener accepts connections after stop")
	}
	if r := k.cli("start", "log"); r.code != 0 {
		t.Fatalf("pilotfish start log: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	sysListening(t, k, "log")
	sysSend(t, "unixgram", sock, "<13>Jan  2 03:04:05 good: after a restart")
	waitLines(t, 10*time.Second, filepath.Join(dir, "out.log"), 3)
}

// docs/configuration.md: the syslog and notify keys are checked, all errors at once, with positions.
func TestSyslogNotifyValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.hcl"), `job "log" {
  kind   = "syslog"
  listen = ["unixgram:///tmp/x.sock", "ftp://x"]
  output "a" {
    selector = "mail.bogus"
    stdout   = true
  }
  output "b" {
    selector = "foo.info"
    stdout   = true
    file     = "/tmp/x"
  }
  output "c" {
    stdout = true
    rotate = { size = "1MB" }
    format = "xml"
  }
  output "d" {
    match   = "("
    forward = "unix:///x"
  }
}
job "n" {
  kind     = "notify"
  exec     = "true"
  watchdog = "abc"
  health {
    exec = ["true"]
  }
}
job "s2" {
  kind = "syslog"
  exec = "true"
}
job "n2" {
  kind = "notify"
}
`, 0o644)
	r := runCmd(t, dir, "validate", "-config", "bad.hcl")
	if r.code != 1 {
		t.Fatalf("validate: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{
		`bad.hcl:3:`, `ftp://x`,
		`bad.hcl:5:`, `"bogus" is not a severity`,
		`bad.hcl:8:`, `output "b" needs exactly one destination`,
		`bad.hcl:9:`, `"foo" is not a facility`,
		`bad.hcl:15:`, `"rotate" applies to a file output`,
		`bad.hcl:16:`, `"xml"`,
		`bad.hcl:19:`, `not a valid regular expression`,
		`bad.hcl:20:`, `unix:///x`,
		`a notify job reports its health itself`,
		`bad.hcl:26:`, `"abc" is not a duration`,
		`syslog job "s2" needs at least one output`,
		`n2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}

// docs/kinds.md (RFC 3164): the timestamp of an RFC 3164 message has no zone; it is the local
// time of the sender, which in a container is also pilotfish's (TZ). syslog daemons
// (rsyslog, syslog-ng) read it as local time. pilotfish must too: with TZ set, the
// instant must be right in every format that states a zone, and agree with the zone it
// uses for messages without a timestamp.
func TestSyslogRFC3164LocalTime(t *testing.T) {
	t.Parallel()
	const zone = "America/New_York"
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Skipf("no time zone data for %s: %v", zone, err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	k := startPF(t, `
job "log" {
  kind   = "syslog"
  listen = "unixgram://`+sock+`"
  output "json" {
    file   = "`+dir+`/json.log"
    format = "json"
  }
}
`+sysGuard, opts{Dir: dir, Env: []string{"TZ=" + zone}})
	sysListening(t, k, "log")
	sysSend(t, "unixgram", sock, "<14>Jan  2 03:04:05 local: stamped by the sender", "<14>1 - - untimed - - - no time at all")
	lines := waitLines(t, 10*time.Second, filepath.Join(dir, "json.log"), 2)
	var m struct{ Time time.Time }
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	want := time.Date(time.Now().In(loc).Year(), 1, 2, 3, 4, 5, 0, loc)
	if !m.Time.Equal(want) {
		t.Errorf("the RFC 3164 time Jan  2 03:04:05 (TZ=%s) became %s, want %s (%s)", zone, m.Time.Format(time.RFC3339), want.Format(time.RFC3339), lines[0])
	}
	var u struct{ Time string }
	if err := json.Unmarshal([]byte(lines[1]), &u); err == nil {
		t.Logf("a message without a time is stamped %s", u.Time)
	}
}

// docs/kinds.md, docs/metrics.md, docs/jobs.md#logging: a stdout output behind a terminal that reads slowly fills its queue;
// further messages for it are dropped and counted, the clients never wait, and a file
// output of the same job gets every message.
func TestSyslogSlowStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	k := startPF(t, `
job "log" {
  kind   = "syslog"
  listen = "unixgram://`+sock+`"
  output "console" {
    stdout = true
  }
  output "file" {
    file = "`+dir+`/all.log"
  }
}
`+sysGuard, opts{Dir: dir, StdoutRate: 200000})
	sysListening(t, k, "log")
	const n = 15000
	began, took := sysFlood(t, dir, sock, "line %05d", n)
	t.Logf("logger sent %d messages in %s", n, took)
	if took > 5*time.Second {
		t.Errorf("logger took %s against a slow stdout", took)
	}
	k.waitMetric(20*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "log", "output": "file"}, func(v float64) bool { return v == n })
	t.Logf("the file has them all after %s", time.Since(began))
	if d := k.metric("pilotfish_syslog_dropped_total", map[string]string{"job": "log"}); d <= 0 || d > n-8192 {
		t.Errorf("pilotfish_syslog_dropped_total = %v, want some, at most %d (the queue holds 8192)", d, n-8192)
	}
}
