package integration

// docs/notify.md and docs/syslog.md: every HCL block is a valid configuration, and the
// runnable examples do what the pages say.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// docBlock is one fenced code block of a page.
type docBlock struct {
	name string // from a "<!-- example: NAME -->" line right before the block
	line int
	body string
}

// docBlocks returns the ```lang blocks of a page.
func docBlocks(t testing.TB, path, lang string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read %s: %v", path, err)
	}
	lines := strings.Split(string(b), "\n")
	marker := regexp.MustCompile(`^<!-- example: (\S+) -->$`)
	var out []docBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```"+lang {
			continue
		}
		blk := docBlock{line: i + 1}
		if i > 0 {
			if m := marker.FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				blk.name = m[1]
			}
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		blk.body = strings.Join(body, "\n") + "\n"
		out = append(out, blk)
	}
	return out
}

// docExample returns the body of the block marked NAME.
func docExample(t testing.TB, path, name string) string {
	t.Helper()
	for _, b := range docBlocks(t, path, "hcl") {
		if b.name == name {
			return b.body
		}
	}
	t.Fatalf("%s has no example %q", path, name)
	return ""
}

// Every ```hcl block of the two pages passes `pilotfish validate`.
func TestSyslogNotifyDocsValidate(t *testing.T) {
	t.Parallel()
	for _, page := range []string{"../docs/notify.md", "../docs/syslog.md"} {
		blocks := docBlocks(t, page, "hcl")
		if len(blocks) < 2 {
			t.Errorf("%s has %d HCL examples", page, len(blocks))
		}
		for _, b := range blocks {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "example.hcl"), b.body, 0o644)
			if r := runCmd(t, dir, "validate", "-config", "example.hcl"); r.code != 0 {
				t.Errorf("%s:%d: the example does not validate (exit %d):\n%s%s", page, b.line, r.code, r.stdout, r.stderr)
			}
		}
	}
}

// docs/syslog.md, the complete example: /dev/log (a private one), stdout by selector, a
// rotated file of nginx's warnings, authentication in RFC 5424.
func TestSyslogDocExample(t *testing.T) {
	t.Parallel()
	requirePID1(t)
	dir := t.TempDir()
	cfg := strings.ReplaceAll(docExample(t, "../docs/syslog.md", "syslog-devlog"), "/var/log/", dir+"/var/log/")
	k := startPF(t, cfg, opts{Dir: dir, PrivateDev: true})
	k.waitCode(10*time.Second, "daemons", "exitSuccess", 1)
	ts := sysHeaderTime
	k.WaitStdout(10*time.Second, `^\[syslog\] `+ts+` local7\.err nginx: connect\(\) failed \(111: Connection refused\) while connecting to upstream$`)
	k.WaitStdout(10*time.Second, `^\[syslog\] `+ts+` local7\.info nginx: 127\.0\.0\.1 - - "GET / HTTP/1\.1" 200 612$`)
	errLog := filepath.Join(dir, "var/log/nginx/error.log")
	lines := waitLines(t, 10*time.Second, errLog, 1)
	authLines := waitLines(t, 10*time.Second, filepath.Join(dir, "var/log/auth.log"), 1)
	k.waitMetric(5*time.Second, "pilotfish_syslog_messages_total", map[string]string{"job": "syslog", "output": "console"}, func(v float64) bool { return v == 2 })
	if len(lines) != 1 || !regexp.MustCompile(`^`+ts+` local7\.err nginx: connect\(\) failed`).MatchString(lines[0]) {
		t.Errorf("error.log: %q, want only nginx's error", lines)
	}
	if m := sysMode(t, filepath.Dir(errLog)); m.Perm() != 0o755 {
		t.Errorf("the created directory %s has mode %v", filepath.Dir(errLog), m.Perm())
	}
	host, _ := os.Hostname()
	if len(authLines) != 1 || !regexp.MustCompile(`^<85>1 \S+ `+regexp.QuoteMeta(host)+` sshd - - - Accepted publickey for root from 10\.0\.0\.7$`).MatchString(authLines[0]) {
		t.Errorf("auth.log: %q", authLines)
	}
	for _, l := range k.Stdout.Lines() {
		if strings.Contains(l, "sshd") {
			t.Errorf("an authpriv message on stdout: %q", l)
		}
	}
	t.Logf("stdout:\n%s\nerror.log:\n%s\nauth.log:\n%s", k.Stdout.String(), strings.Join(lines, "\n"), strings.Join(authLines, "\n"))
}

// docs/notify.md, the complete example: systemd-notify with a status before readiness, a
// dependent started by READY=1, a Python daemon with a watchdog and a reload on SIGHUP;
// and the forking example.
func TestNotifyDocExamples(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/systemd-notify"); err != nil {
		t.Skip("systemd-notify is not installed")
	}
	t.Run("daemons", func(t *testing.T) {
		t.Parallel()
		k := startPF(t, docExample(t, "../docs/notify.md", "notify-daemons"))
		k.waitJob(10*time.Second, "db", func(j client.Job) bool { return j.Status == "loading data" }, "loading data")
		k.waitCode(10*time.Second, "web", "healthy", 1)
		if j := k.job("web"); j.Status != "serving" {
			t.Errorf("web: status %q, want serving", j.Status)
		}
		ready := k.waitCode(10*time.Second, "db", "healthy", 1)
		if d := ready.Time.Sub(k.waitCode(5*time.Second, "db", "started", 1).Time); d < 1900*time.Millisecond {
			t.Errorf("db was ready %s after its start; it loads for 2s", d)
		}
		k.WaitStdout(5*time.Second, `^\[api\] db is ready$`)
		if j := k.job("db"); j.Status != "accepting connections" || j.Health != "healthy" {
			t.Errorf("db: %+v", j)
		}
		if r := k.cli("signal", "web", "HUP"); r.code != 0 {
			t.Fatalf("pilotfish signal web HUP: %d %s%s", r.code, r.stdout, r.stderr)
		}
		k.waitJob(5*time.Second, "web", func(j client.Job) bool { return j.Status == "serving (reloaded)" }, "reloaded")
		// More than a watchdog interval (2s) passes while the keep-alives come.
		if poll(2500*time.Millisecond, func() bool { return len(k.codes("web", "unhealthy")) > 0 }) {
			t.Errorf("web became unhealthy although it feeds its watchdog")
		}
	})
	t.Run("forking", func(t *testing.T) {
		t.Parallel()
		cfg := docExample(t, "../docs/notify.md", "notify-forking") + "\njob \"keeper\" {\n  exec = \"sleep 1000\"\n}\n"
		k := startPF(t, cfg)
		k.waitCode(10*time.Second, "forking", "healthy", 1)
		j := k.waitJob(5*time.Second, "forking", func(j client.Job) bool { return strings.HasPrefix(j.Status, "daemon ") }, "status daemon PID")
		pid, _ := strconv.Atoi(strings.TrimPrefix(j.Status, "daemon "))
		j = k.waitJob(5*time.Second, "forking", func(j client.Job) bool { return j.Pid == pid }, "the daemon's PID")
		if j.State != "running" {
			t.Errorf("forking: %+v", j)
		}
		if r := k.cli("stop", "forking"); r.code != 0 {
			t.Fatalf("pilotfish stop forking: %d %s%s", r.code, r.stdout, r.stderr)
		}
		k.waitJob(5*time.Second, "forking", func(j client.Job) bool { return j.State == "stopped" }, "stopped")
		waitFor(t, 5*time.Second, func() bool { return k.hostPID(pid) == 0 }, "the daemon to be gone")
	})
}
