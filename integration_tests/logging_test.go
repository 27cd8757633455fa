package integration

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docs/jobs.md#logging: job output goes to pilotfish's stdout/stderr with a "[job] " prefix.
func TestLogPrefix(t *testing.T) {
	t.Parallel()
	// Text logs: with format = "json" the job lines are JSON objects (TestLogsJSONLines).
	cfg := `
job "j" {
  exec = ` + sh(`echo hello; echo oops >&2; printf 'no newline at the end'`) + `
}
job "red" {
  exec = ["echo", "in colour"]
  logging {
    color = "red"
  }
}
`
	p := start(t, opts{Config: cfg})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out, errs := p.Stdout.String(), p.Stderr.String()
	for _, want := range []string{"[j] hello\n", "[j] no newline at the end"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// color = "auto" (the default) colours only on a terminal; a colour name always does.
	if strings.Contains(out, "\x1b[") && !strings.Contains(out, "\x1b[31m[red]") {
		t.Errorf("stdout is coloured although it is not a terminal:\n%q", out)
	}
	if !strings.Contains(out, "\x1b[31m[red]\x1b[0m in colour\n") {
		t.Errorf("stdout lacks the red prefix of job red:\n%q", out)
	}
	if !strings.Contains(errs, "[j] oops\n") {
		t.Errorf("stderr lacks %q:\n%s", "[j] oops", errs)
	}
	if strings.Contains(out, "oops") || strings.Contains(errs, "hello") {
		t.Errorf("stdout and stderr are mixed up")
	}
}

// docs/jobs.md#logging: `prefix = false` passes bytes through untouched.
func TestLogPrefixFalsePassthrough(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "raw" {
  exec = ` + sh(`printf 'raw\001bytes\r\n  indented\npartial'; printf 'err\001\r\n' >&2`) + `
  logging {
    prefix = false
  }
}
`
	p := start(t, opts{Config: cfg})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out, errs := p.Stdout.String(), p.Stderr.String()
	if want := "raw\x01bytes\r\n  indented\npartial"; !strings.HasPrefix(out, want) || strings.Contains(out, "[raw]") {
		t.Errorf("stdout %q, want the job's bytes untouched: %q", out, want)
	}
	if !strings.Contains(errs, "err\x01\r\n") || strings.Contains(errs, "[raw]") {
		t.Errorf("stderr %q lacks the job's untouched bytes %q", errs, "err\x01\r\n")
	}
}

// docs/jobs.md#logging: two jobs flooding output lose no line and never share one.
func TestLogFloodNoInterleaving(t *testing.T) {
	t.Parallel()
	const n = 100000
	flood := func(name string) string {
		return fmt.Sprintf(`
job "%[1]s" {
  exec = ["seq", "-f", "%[1]s-%%06g-0123456789abcdefghijklmnopqrstuvwxyz", "1", "%[2]d"]
}
`, name, n)
	}
	p := start(t, opts{Config: jsonLogs + flood("a") + flood("b")})
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	re := regexp.MustCompile(`^\[([ab])\] ([ab])-(\d{6})-0123456789abcdefghijklmnopqrstuvwxyz$`)
	next := map[string]int{"a": 1, "b": 1}
	bad := 0
	for _, l := range p.Stdout.Lines() {
		m := re.FindStringSubmatch(l)
		if m == nil || m[1] != m[2] {
			if bad++; bad <= 5 {
				t.Errorf("malformed or interleaved line: %.120q", l)
			}
			continue
		}
		k, _ := strconv.Atoi(m[3])
		if k != next[m[1]] {
			if bad++; bad <= 5 {
				t.Errorf("job %s: line %d after line %d (lost or reordered)", m[1], k, next[m[1]]-1)
			}
		}
		next[m[1]] = k + 1
	}
	for _, j := range []string{"a", "b"} {
		if next[j]-1 != n {
			t.Errorf("job %s: last line %d, want %d", j, next[j]-1, n)
		}
	}
	if bad > 0 {
		t.Errorf("%d bad lines", bad)
	}
}

// docs/jobs.md#logging: lines over 64 KiB are split, each piece with the prefix, nothing lost.
func TestLongLineIsSplit(t *testing.T) {
	t.Parallel()
	const size = 200 << 10
	cfg := jsonLogs + `
job "long" {
  exec = ["` + python + `", "-c", "import sys; sys.stdout.write('x' * ` + strconv.Itoa(size) + ` + '\\n' + 'after\\n')"]
}
`
	p := start(t, opts{Config: cfg})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	lines := p.Stdout.Lines()
	total, pieces := 0, 0
	for i, l := range lines {
		if !strings.HasPrefix(l, "[long] ") {
			t.Fatalf("line %d has no prefix: %.60q", i, l)
		}
		body := strings.TrimPrefix(l, "[long] ")
		if body == "after" {
			if i != len(lines)-1 {
				t.Errorf("\"after\" is not the last line")
			}
			continue
		}
		if strings.Trim(body, "x") != "" {
			t.Fatalf("line %d holds something other than the long line: %.60q", i, body)
		}
		if len(body) > 64<<10 {
			t.Errorf("piece %d is %d bytes, more than 64 KiB", pieces, len(body))
		}
		total += len(body)
		pieces++
	}
	t.Logf("a %d-byte line came out as %d pieces", size, pieces)
	if total != size {
		t.Errorf("%d bytes of the long line came out, want %d", total, size)
	}
	if pieces < 4 {
		t.Errorf("the %d-byte line came out in %d pieces, want it split at 64 KiB (>= 4 pieces)", size, pieces)
	}
	if !strings.HasSuffix(p.Stdout.String(), "[long] after\n") {
		t.Errorf("the line after the long one is missing")
	}
}

// docs/configuration.md: `logging { file, rotate }` keeps a size-rotated, compressed copy of the output.
func TestLogFileRotation(t *testing.T) {
	t.Parallel()
	const n = 10000
	cfg := jsonLogs + `
job "w" {
  exec = ["seq", "-f", "line-%06g-padding-padding-padding-padding", "1", "` + strconv.Itoa(n) + `"]
  logging {
    file   = "${env.TESTDIR}/logs/w.log"
    rotate = { size = "64KB", keep = 2, compress = true }
  }
}
`
	p := start(t, opts{Config: cfg})
	if code := p.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	logs := filepath.Join(p.Dir, "logs")
	entries, err := os.ReadDir(logs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("log dir: %v", names)
	// Oldest first: w.log.2.gz, w.log.1.gz, w.log.
	var all []string
	for _, name := range []string{"w.log.2.gz", "w.log.1.gz", "w.log"} {
		b, err := readMaybeGzip(filepath.Join(logs, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(b) > 64<<10 {
			t.Errorf("%s holds %d bytes, more than the rotate size of 64 KiB", name, len(b))
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Errorf("%s does not end with a whole line", name)
		}
		all = append(all, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	if strings.Join(names, " ") != "w.log w.log.1.gz w.log.2.gz" {
		t.Errorf("log files %v, want exactly w.log w.log.1.gz w.log.2.gz (%d bytes of output, rotate at 64 KiB, keep = 2, compressed)", names, n*44)
	}
	// The kept files are the tail of the output, whole lines, unprefixed, in order.
	last := n
	for i := len(all) - 1; i >= 0; i-- {
		if want := fmt.Sprintf("line-%06d-padding-padding-padding-padding", last); all[i] != want {
			t.Fatalf("kept line %d is %q, want %q", i, all[i], want)
		}
		last--
	}
	t.Logf("the kept files hold lines %d..%d", last+1, n)
	if got := countLines(p.Stdout.String(), regexp.MustCompile(`^\[w\] line-`)); got != n {
		t.Errorf("stdout has %d lines of w, want %d (the file is a copy)", got, n)
	}
}

func readMaybeGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !strings.HasSuffix(path, ".gz") {
		return io.ReadAll(f)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// docs/jobs.md#logging: a slow terminal slows the job down; it must not lose its lines, not even the
// last ones still in flight when the job (and with it pilotfish) ends.
func TestSlowTerminalLosesNoLines(t *testing.T) {
	t.Parallel()
	const n = 10000 // 440 kB, read at 100 kB/s
	cfg := jsonLogs + `
job "a" {
  exec = ["seq", "-f", "a-%06g-0123456789abcdefghijklmnopqrstuvwxyz", "1", "` + strconv.Itoa(n) + `"]
}
`
	p := start(t, opts{Config: cfg, StdoutRate: 100 << 10})
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	lines := p.Stdout.Lines()
	last := 0
	for _, l := range lines {
		var k int
		if _, err := fmt.Sscanf(l, "[a] a-%06d-", &k); err != nil || k != last+1 {
			t.Fatalf("after line %d comes %.80q", last, l)
		}
		last = k
	}
	if last != n {
		t.Fatalf("only %d of %d lines reached the slow stdout; %d were lost when pilotfish exited", last, n, n-last)
	}
}
