package procfs

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	line := "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560 500 0 0 0 250 130 7 3 20 -5 1 0 123 10000000 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	p, ok := Parse([]byte(line))
	if !ok {
		t.Fatal("not parsed")
	}
	want := Proc{Pid: 4242, PPid: 1, Pgrp: 4240, CPU: 3800 * time.Millisecond, ChildCPU: 100 * time.Millisecond, RSS: 2560 * pageSize, Start: 1230 * time.Millisecond}
	if p != want {
		t.Fatalf("got %+v, want %+v", p, want)
	}
	for _, bad := range []string{"", "x", "12 (sh) S", "12 (sh) S 1 2", "abc (sh) S 1 2 3 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1 1"} {
		if _, ok := Parse([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A child of this test that burns CPU and touches memory shows both, and its group.
func TestScanSeesAChild(t *testing.T) {
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var got Proc
	deadline := time.Now().Add(20 * time.Second)
	for got.CPU < 50*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("the busy child shows %+v", got)
		}
		found := false
		if err := Scan(func(p Proc) {
			if p.Pid == cmd.Process.Pid {
				got, found = p, true
			}
		}); err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Fatal("the child is not in the scan")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if up := Uptime(); got.Start <= 0 || got.Start > up || up-got.Start > time.Minute {
		t.Errorf("the child started at %s after boot, now is %s", got.Start, up)
	}
	if got.PPid != os.Getpid() || got.Pgrp != cmd.Process.Pid || got.RSS == 0 {
		t.Fatalf("got %+v", got)
	}
	if one, ok := Read(cmd.Process.Pid); !ok || one.Pgrp != got.Pgrp {
		t.Fatalf("Read: %+v %v", one, ok)
	}
}

func BenchmarkScan(b *testing.B) {
	n := 0
	for i := 0; i < b.N; i++ {
		n = 0
		_ = Scan(func(Proc) { n++ })
	}
	b.ReportMetric(float64(n), "procs")
}
