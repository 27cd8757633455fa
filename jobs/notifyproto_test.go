package jobs

import (
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
}

func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{"READY=1", "STATUS=x\nMAINPID=1", "WATCHDOG=trigger", "BARRIER=1", "EXTEND_TIMEOUT_USEC=9"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseNotify(b)
		if err == nil && (m.MainPID < 0 || m.WatchdogUsec < 0 || m.ExtendTimeout < 0) {
			t.Fatalf("accepted %q as %+v", b, m)
		}
	})
}
