package integration

// Benchmarks of the syslog kind, run with
//
//	go test -run '^$' -bench 'Syslog' ./integration_tests/
//
// A Go sender writes N datagrams of ~100 bytes as fast as a blocking unixgram socket
// lets it; the time runs until the output holds N lines (or nothing more arrives for 2 s,
// and then what arrived is reported). Each reports msgs/s and dropped (messages that did
// not arrive). BenchmarkSyslogRsyslogFile measures rsyslogd (imuxsock → omfile) the same
// way on the same machine, when it is installed; BenchmarkSyslogDropPoint raises the
// sending rate step by step until pilotfish_syslog_dropped_total grows.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// benchSender writes numbered ~100-byte RFC 3164 datagrams to a unixgram socket.
type benchSender struct {
	c   *net.UnixConn
	msg []byte
	num int // offset of the 8-digit counter in msg
}

func newBenchSender(tb testing.TB, sock string) *benchSender {
	tb.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		tb.Fatalf("dial %s: %v", sock, err)
	}
	tb.Cleanup(func() { c.Close() })
	head := "<134>Nov 25 15:49:06 bench[4242]: message "
	msg := []byte(head + "00000000 " + string(bytes.Repeat([]byte("x"), 100-len(head)-9)))
	return &benchSender{c: c, msg: msg, num: len(head)}
}

// send writes messages first..first+n-1.
func (s *benchSender) send(tb testing.TB, first, n int) {
	for i := first; i < first+n; i++ {
		v := i
		for p := s.num + 7; p >= s.num; p-- {
			s.msg[p] = byte('0' + v%10)
			v /= 10
		}
		if _, err := s.c.Write(s.msg); err != nil {
			tb.Fatalf("send: %v", err)
		}
	}
}

// lineCounter counts the lines of a growing file, reading only what is new.
type lineCounter struct {
	path string
	f    *os.File
	n    int
	buf  []byte
}

func (l *lineCounter) count() int {
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return 0
		}
		l.f, l.buf = f, make([]byte, 1<<20)
	}
	for {
		k, err := l.f.Read(l.buf)
		l.n += bytes.Count(l.buf[:k], []byte{'\n'})
		if k == 0 || err == io.EOF {
			return l.n
		}
		if err != nil {
			return l.n
		}
	}
}

func (l *lineCounter) close() {
	if l.f != nil {
		l.f.Close()
	}
}

// waitCount waits until the file holds want lines, or until nothing new came for stall;
// it returns the count and when the last line arrived.
func waitCount(path string, want int, stall time.Duration) (int, time.Time) {
	lc := &lineCounter{path: path}
	defer lc.close()
	last, lastAt := -1, time.Now()
	for {
		n := lc.count()
		if n != last {
			last, lastAt = n, time.Now()
		}
		if n >= want || time.Since(lastAt) > stall {
			return n, lastAt
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// measure sends n messages to sock and waits for them in path; it reports msgs/s and the
// messages that did not arrive.
func measure(b *testing.B, sock, path string, n int) (rate float64, lost int) {
	b.Helper()
	s := newBenchSender(b, sock)
	b.ResetTimer()
	began := time.Now()
	s.send(b, 0, n)
	got, at := waitCount(path, n, 2*time.Second)
	b.StopTimer()
	el := at.Sub(began)
	if got == 0 || el <= 0 {
		b.Fatalf("no message arrived in %s", path)
	}
	rate = float64(got) / el.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(float64(n-got), "dropped")
	return rate, n - got
}

// benchSyslog starts pilotfish (not as PID 1: nothing here needs it) with one syslog job
// "bench" listening on DIR/log.sock.
func benchSyslog(b *testing.B, dir, outputs string, stdout *os.File) (*ctlPF, string) {
	b.Helper()
	sock := filepath.Join(dir, "log.sock")
	k := startPF(b, `
job "bench" {
  kind   = "syslog"
  listen = "unixgram://`+sock+`"
`+outputs+`
}
`+sysGuard, opts{Dir: dir, Plain: true, Logs: benchLogs, StdoutFile: stdout})
	sysListening(b, k, "bench")
	return k, sock
}

// BenchmarkSyslogFile: unixgram → a file output (text format).
func BenchmarkSyslogFile(b *testing.B) {
	dir := b.TempDir()
	out := filepath.Join(dir, "out.log")
	k, sock := benchSyslog(b, dir, `  output "file" {
    file = "`+out+`"
  }`, nil)
	measure(b, sock, out, b.N)
	if v := k.metric("pilotfish_syslog_dropped_total", map[string]string{"job": "bench"}); v > 0 {
		b.Logf("pilotfish_syslog_dropped_total = %v", v)
	}
}

// BenchmarkSyslogStdout: unixgram → stdout (with the "[bench] " prefix), pilotfish's
// stdout redirected to a file.
func BenchmarkSyslogStdout(b *testing.B) {
	dir := b.TempDir()
	out := filepath.Join(dir, "stdout.log")
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	_, s := benchSyslog(b, dir, `  output "console" {
    stdout = true
  }`, f)
	measure(b, s, out, b.N)
}

// BenchmarkSyslogRsyslogFile: the same stream into rsyslogd (imuxsock on a socket of the
// test, no rate limit; omfile), started and stopped here.
func BenchmarkSyslogRsyslogFile(b *testing.B) {
	rsyslogd, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/rsyslogd"); err != nil {
			b.Skip("rsyslogd is not installed (apt-get install rsyslog); no comparison")
		}
		rsyslogd = "/usr/sbin/rsyslogd"
	}
	dir := b.TempDir()
	s, out := startRsyslog(b, rsyslogd, dir)
	measure(b, s, out, b.N)
}

// startRsyslog runs rsyslogd in the foreground with a configuration of its own (it never
// touches /dev/log) and stops it at the end of the benchmark.
func startRsyslog(b *testing.B, rsyslogd, dir string) (sock, out string) {
	b.Helper()
	sock, out = filepath.Join(dir, "rs.sock"), filepath.Join(dir, "rs.log")
	conf := filepath.Join(dir, "rsyslog.conf")
	writeFile(b, conf, fmt.Sprintf(`global(workDirectory=%q)
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket=%q RateLimit.Interval="0")
action(type="omfile" file=%q)
`, dir, sock, out), 0o644)
	cmd := exec.Command(rsyslogd, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if !poll(10*time.Second, func() bool { return exists(sock) }) {
		b.Fatalf("rsyslogd did not create %s: %s", sock, errb.String())
	}
	return sock, out
}

// BenchmarkSyslogDropPoint sends at rising rates (each for 0.5 s, paced every
// millisecond) into a file and a stdout output (pilotfish's stdout to /dev/null) and
// reports the first rate at which messages are lost ("drop-msgs/s", 0 if never) and the
// highest rate the sender reached ("max-msgs/s"). Over unixgram a full socket blocks the
// sender (as with any /dev/log), so losses can only be pilotfish_syslog_dropped_total;
// over UDP the kernel drops what the socket cannot hold, before pilotfish sees it.
func BenchmarkSyslogDropPoint(b *testing.B) {
	for _, network := range []string{"unixgram", "udp"} {
		b.Run(network, func(b *testing.B) { benchDropPoint(b, network) })
	}
}

func benchDropPoint(b *testing.B, network string) {
	dir := b.TempDir()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	out := filepath.Join(dir, "out.log")
	listen := "unixgram://" + filepath.Join(dir, "log.sock")
	addr := filepath.Join(dir, "log.sock")
	if network == "udp" {
		addr = fmt.Sprintf("127.0.0.1:%d", freePort(b))
		listen = "udp://" + addr
	}
	k := startPF(b, `
job "bench" {
  kind   = "syslog"
  listen = "`+listen+`"
  output "file" {
    file = "`+out+`"
  }
  output "console" {
    stdout = true
  }
}
`+sysGuard, opts{Dir: dir, Plain: true, Logs: benchLogs, StdoutFile: null})
	sysListening(b, k, "bench")
	c, err := net.Dial(network, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	head := "<134>Nov 25 15:49:06 bench[4242]: message "
	msg := []byte(head + "00000000 " + string(bytes.Repeat([]byte("x"), 100-len(head)-9)))
	dropped := func() float64 { return k.metric("pilotfish_syslog_dropped_total", map[string]string{"job": "bench"}) }
	written := func() float64 {
		return k.metric("pilotfish_syslog_messages_total", map[string]string{"job": "bench", "output": "file"})
	}
	b.ResetTimer()
	next, dropAt, maxRate := 0, 0.0, 0.0
	for _, rate := range []int{25_000, 50_000, 100_000, 200_000, 400_000, 800_000, 0} {
		before, beforeW := dropped(), written()
		began := time.Now()
		sent := 0
		for time.Since(began) < 500*time.Millisecond {
			batch := 1000
			if rate > 0 {
				due := int(time.Since(began).Seconds()*float64(rate)) + rate/1000
				batch = due - sent
				if batch <= 0 {
					time.Sleep(200 * time.Microsecond)
					continue
				}
			}
			for range batch {
				_, _ = c.Write(msg) // UDP: ECONNREFUSED and ENOBUFS are losses too
			}
			next += batch
			sent += batch
		}
		achieved := float64(sent) / time.Since(began).Seconds()
		maxRate = max(maxRate, achieved)
		// Wait until the counters stop moving: every message is written, dropped or lost.
		last, lastAt := -1.0, time.Now()
		for time.Since(lastAt) < 300*time.Millisecond {
			if v := written() + dropped(); v != last {
				last, lastAt = v, time.Now()
			}
			if last >= float64(next) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		d := dropped() - before
		lost := float64(sent) - (written() - beforeW) - d
		b.Logf("%s target %7d msgs/s: sent %7.0f msgs/s, pilotfish_syslog_dropped_total +%v, lost before pilotfish %v", network, rate, achieved, d, lost)
		if (d > 0 || lost > 0) && dropAt == 0 {
			dropAt = achieved
		}
	}
	b.StopTimer()
	b.ReportMetric(dropAt, "drop-msgs/s")
	b.ReportMetric(maxRate, "max-msgs/s")
	b.ReportMetric(0, "ns/op")
}
