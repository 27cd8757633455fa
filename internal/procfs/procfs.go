// Package procfs reads what pilotfish needs to know about processes from /proc/PID/stat:
// parent, process group, CPU time and resident memory, for every process in one pass.
//
// Concurrency: it keeps no state; call it from any goroutine. Who calls it: jobs, for the
// resources of each job's process group (docs/api.md#status) and the process tree of a
// job (the port probe, sd_notify's sender check).
package procfs

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is one process as /proc/PID/stat shows it.
type Proc struct {
	Pid, PPid, Pgrp int
	CPU             time.Duration // utime+stime of all its threads
	ChildCPU        time.Duration // cutime+cstime: of the children it has waited for
	RSS             uint64        // resident memory in bytes
	Start           time.Duration // when it started, after boot (see Uptime)
}

// userHZ is the unit of the times in /proc/PID/stat: USER_HZ is 100 on every Linux
// architecture Go runs on (it is part of the kernel's ABI, whatever CONFIG_HZ is).
const userHZ = 100

const tick = time.Second / userHZ

var pageSize = uint64(os.Getpagesize())

// Scan calls fn for each process in /proc. A process that ends during the scan is left out.
// It reads one small file per process with raw system calls: no allocation per process
// but its path.
func Scan(fn func(Proc)) error {
	dir, err := os.Open("/proc")
	if err != nil {
		return err
	}
	defer dir.Close()
	var buf [1024]byte
	for {
		names, err := dir.Readdirnames(256)
		for _, name := range names {
			if name[0] < '0' || name[0] > '9' {
				continue
			}
			if p, ok := read("/proc/"+name+"/stat", buf[:]); ok {
				fn(p)
			}
		}
		if err != nil || len(names) == 0 {
			return nil // io.EOF: every entry was read
		}
	}
}

// Read returns one process.
func Read(pid int) (Proc, bool) {
	var buf [1024]byte
	return read("/proc/"+strconv.Itoa(pid)+"/stat", buf[:])
}

func read(path string, buf []byte) (Proc, bool) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return Proc{}, false
	}
	n, err := syscall.Read(fd, buf)
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return Proc{}, false
	}
	return Parse(buf[:n])
}

// Parse reads the content of /proc/PID/stat. The command name, in parentheses, may hold
// spaces and parentheses itself: the fields start after the last ')'.
func Parse(b []byte) (Proc, bool) {
	var p Proc
	sp := bytes.IndexByte(b, ' ')
	rp := bytes.LastIndexByte(b, ')')
	if sp <= 0 || rp < sp {
		return p, false
	}
	pid, ok := num(b[:sp])
	if !ok {
		return p, false
	}
	p.Pid = int(pid)
	// Fields after the name, counted from 0 (state): ppid 1, pgrp 2, utime 11, stime 12,
	// cutime 13, cstime 14, starttime 19, rss 21 (proc(5) numbers them 3, 4, 5, 14–17, 22,
	// 24).
	rest := b[rp+1:]
	var f [22]uint64
	for i := 0; i < len(f); i++ {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		field := bytes.TrimRight(rest[:end], "\n")
		rest = rest[end:]
		switch i {
		case 1, 2, 11, 12, 13, 14, 19, 21:
			v, ok := num(field)
			if !ok {
				return Proc{}, false
			}
			f[i] = v
		default:
			if len(field) == 0 {
				return Proc{}, false // a line cut short
			}
		}
	}
	p.PPid, p.Pgrp = int(f[1]), int(f[2])
	p.CPU = time.Duration(f[11]+f[12]) * tick
	p.ChildCPU = time.Duration(f[13]+f[14]) * tick
	p.RSS = f[21] * pageSize
	p.Start = time.Duration(f[19]) * tick
	return p, true
}

// Uptime is the time since boot on the clock of Proc.Start (CLOCK_BOOTTIME, which the
// kernel shifts for a time namespace as it shifts starttime).
func Uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// num parses a decimal field that is never negative.
func num(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
