package jobs

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseNotify(t *testing.T) {
	m, err := ParseNotify([]byte("READY=1\nSTATUS=serving 3 clients\nMAINPID=42\nWATCHDOG=1\nWATCHDOG_USEC=2000000\nEXTEND_TIMEOUT_USEC=5000000\nERRNO=2\nFDSTORE=1\n"))
	if err != nil || !m.Ready || *m.Status != "serving 3 clients" || m.MainPID != 42 || !m.Watchdog ||
		m.WatchdogUsec != 2*time.Second || m.ExtendTimeout != 5*time.Second || m.Errno != 2 || len(m.Other) != 1 {
		t.Fatalf("%+v %v", m, err)
	}
	if m, err := ParseNotify([]byte("WATCHDOG=trigger")); err != nil || !m.WatchdogTrigger || m.Watchdog {
		t.Fatalf("%+v %v", m, err)
	}
	if m, err := ParseNotify([]byte("RELOADING=1\nMONOTONIC_USEC=1")); err != nil || !m.Reloading {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"", "\n\n", "READY", "=1", "MAINPID=x", "MAINPID=-1", "WATCHDOG_USEC=abc", "READY=1\x00"} {
		if _, err := ParseNotify([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	// A megabyte of lines (more than a socket delivers): the last of each key wins.
	huge := strings.Repeat("READY=1\nSTATUS=s\nX=1\n", 50000) + "READY=0\nSTATUS=last"
	if m, err := ParseNotify([]byte(huge)); err != nil || m.Ready || *m.Status != "last" || len(m.Other) != 50000 {
		t.Fatalf("huge datagram: %v %v %v", m.Ready, m.Status, err)
	}
}

// FuzzParseNotify: a datagram is accepted only when every line is KEY=VALUE; a later line
// wins over an earlier one; empty lines change nothing; nothing parsed is larger than the
// datagram, however many lines or bytes it has.
func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{"READY=1", "STATUS=x\nMAINPID=1", "WATCHDOG=trigger", "BARRIER=1", "EXTEND_TIMEOUT_USEC=9",
		"READY=1\nREADY=0\nSTATUS=a\nSTATUS=b=c\n\n", "X=1\nY\n", "MAINPID=99999999999999999999", "WATCHDOG_USEC=18446744073709551615",
		"STATUS=\xff\xfe\r\nREADY=1\r", "FDSTORE=1\nFDNAME=a\nNOTIFYACCESS=all"} {
		f.Add([]byte(s))
	}
	f.Add([]byte("READY=1\nSTATUS=" + strings.Repeat("x", maxNotifyMessage)))
	f.Add([]byte(strings.Repeat("READY=1\nSTATUS=s\nX=1\n", 200)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseNotify(b)
		padded, perr := ParseNotify([]byte("\n" + strings.ReplaceAll(string(b), "\n", "\n\n") + "\n"))
		if (err == nil) != (perr == nil) || (err == nil && !reflect.DeepEqual(m, padded)) {
			t.Fatalf("empty lines change %q: %+v %v, padded %+v %v", b, m, err, padded, perr)
		}
		if err != nil {
			return
		}
		if m.MainPID < 0 || m.Errno < 0 || m.WatchdogUsec < 0 || m.ExtendTimeout < 0 || len(m.Other) > len(b) {
			t.Fatalf("accepted %q as %+v", b, m)
		}
		var status *string
		last := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if line == "" {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || k == "" {
				t.Fatalf("accepted %q with the line %q", b, line)
			}
			if k == "STATUS" {
				status = &v
			}
			last[k] = v
		}
		if (status == nil) != (m.Status == nil) || (status != nil && *status != *m.Status) {
			t.Fatalf("%q: status %v, want the last STATUS= line", b, m.Status)
		}
		for k, got := range map[string]bool{"READY": m.Ready, "RELOADING": m.Reloading, "STOPPING": m.Stopping, "BARRIER": m.Barrier, "WATCHDOG": m.Watchdog} {
			if want := last[k] == "1"; got != want {
				t.Fatalf("%q: %s is %v, want the last %s= line", b, k, got, k)
			}
		}
	})
}
