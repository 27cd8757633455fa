package jobs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/internal/syslogmsg"
)

// syslogDriverFor builds the syslog driver of a one-job configuration.
func syslogDriverFor(t *testing.T, src string, log io.Writer) *syslogDriver {
	t.Helper()
	cfg, diags := config.Parse("test.hcl", []byte(src), config.Options{Kinds: ConfigKinds()})
	if cfg == nil {
		t.Fatal(strings.Join(config.FormatDiagnostics(diags), "\n"))
	}
	rt := &Runtime{Stdout: output.NewSink(io.Discard), Stderr: output.NewSink(io.Discard),
		Log: slog.New(slog.NewTextHandler(log, nil))}
	drv, err := syslogKind{}.NewDriver(cfg.Jobs[0], rt)
	if err != nil {
		t.Fatal(err)
	}
	return drv.(*syslogDriver)
}

// closedAddr is a loopback TCP address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A forward output whose target is down gives up when the job stops: at its stop_timeout,
// or at once on Abandon; what it held is counted as dropped, and nothing is counted twice.
func TestSyslogForwardGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		abandon bool
	}{{"stop_timeout", false}, {"abandon", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuffer
			sock := filepath.Join(t.TempDir(), "log.sock")
			d := syslogDriverFor(t, `
job "log" {
  kind         = "syslog"
  listen       = "unixgram://`+sock+`"
  stop_timeout = "300ms"
  output "fw" {
    forward = "tcp://`+closedAddr(t)+`"
  }
}
`, &log)
			defer d.Close()
			if _, _, err := d.Arm(); err != nil {
				t.Fatal(err)
			}
			p := syslogmsg.NewParser(time.Now)
			const n = 7
			for range n {
				d.handle(p, []byte("<13>Jan  2 03:04:05 host app: hello"))
			}
			if tc.abandon {
				time.AfterFunc(50*time.Millisecond, d.Abandon)
			}
			t0 := time.Now()
			d.Disarm()
			took := time.Since(t0)
			if tc.abandon && took > 250*time.Millisecond || took > 2*time.Second {
				t.Errorf("Disarm took %s", took)
			}
			if got := d.dropped.Load(); got != n {
				t.Errorf("dropped %d, want %d", got, n)
			}
			if w := d.outputs[0].written.Load(); w != 0 {
				t.Errorf("written %d with the target down", w)
			}
			if !strings.Contains(log.String(), "syslog output gave up; queued messages dropped") || !strings.Contains(log.String(), "dropped=7") {
				t.Errorf("no drop report in the log:\n%s", log.String())
			}
		})
	}
}

// A target that accepts and never reads: the write of a batch blocks once the socket
// buffers are full, and the end of the context (a give-up) still ends it at once.
func TestSyslogForwardHungTargetGivesUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held open, never read
		}
	}()
	defer func() {
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	}()
	f := newForwarder("tcp", ln.Addr().String(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = f.Send(ctx, make([]byte, 16<<20)) // more than the socket buffers hold
	if took := time.Since(t0); err == nil || took > 3*time.Second {
		t.Fatalf("Send to a hung target: %v after %s, want the context's end after 300ms", err, took)
	}
}

// Once the target is up, Disarm writes everything queued and drops nothing.
func TestSyslogForwardDrainsWhenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- bytes.Count(b, []byte("hello"))
	}()
	sock := filepath.Join(t.TempDir(), "log.sock")
	d := syslogDriverFor(t, `
job "log" {
  kind   = "syslog"
  listen = "unixgram://`+sock+`"
  output "fw" {
    forward = "tcp://`+ln.Addr().String()+`"
  }
}
`, io.Discard)
	if _, _, err := d.Arm(); err != nil {
		t.Fatal(err)
	}
	p := syslogmsg.NewParser(time.Now)
	for range 5 {
		d.handle(p, []byte("<13>Jan  2 03:04:05 host app: hello"))
	}
	d.Close()
	if n := <-got; n != 5 {
		t.Errorf("the target got %d messages, want 5", n)
	}
	if d.dropped.Load() != 0 || d.outputs[0].written.Load() != 5 {
		t.Errorf("dropped %d, written %d", d.dropped.Load(), d.outputs[0].written.Load())
	}
}
