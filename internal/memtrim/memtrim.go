// Package memtrim gives back what a long-lived PID 1 keeps resident for no use: the heap
// pilotfish freed, and its mappings of its own binary's pages that start-up touched.
//
// A page of the binary (code, read-only data, the tables the runtime reads to walk stacks)
// is shared, clean page cache: the kernel maps it, and 15 neighbours with it (fault-around),
// at the first touch, and it stays in the process's resident set for good. Start-up touches
// code that never runs again (package initialisers, the configuration parser, every job's
// set-up), so most of the binary stays mapped. Dropping those mappings (madvise
// MADV_DONTNEED on the read-only mappings of the executable) leaves the pages in the page
// cache; what runs later maps them back at a minor fault. Writable mappings are never
// touched: their pages may hold data (docs/operations.md#memory).
//
// Concurrency: Trim may run from any goroutine, at any time; a page another thread is
// executing is mapped back when it faults.
package memtrim

import (
	"bufio"
	"bytes"
	"os"
	"runtime/debug"
	"strconv"

	"golang.org/x/sys/unix"
)

// Trim returns freed heap to the OS and drops the mappings of the binary's read-only pages.
// It returns the bytes of binary mappings it dropped (their resident part is not known).
func Trim() int {
	debug.FreeOSMemory()
	n := 0
	for _, m := range binaryMappings() {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno == 0 {
			n += int(m.end - m.start)
		}
	}
	return n
}

type mapping struct{ start, end uintptr }

// binaryMappings lists the read-only mappings of the executable: those with no "w" and
// "p" (private), whose path is that of /proc/self/exe.
func binaryMappings() []mapping {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := parseMapsLine(sc.Bytes(), exe); ok {
			out = append(out, m)
		}
	}
	return out
}

// parseMapsLine reads "start-end perms offset dev inode path" and keeps the line when it
// maps path read-only and private.
func parseMapsLine(line []byte, path string) (mapping, bool) {
	f := bytes.Fields(line)
	if len(f) < 6 || string(bytes.Join(f[5:], []byte(" "))) != path {
		return mapping{}, false
	}
	perms := f[1]
	if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
		return mapping{}, false
	}
	lo, hi, ok := bytes.Cut(f[0], []byte("-"))
	if !ok {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err1 != nil || err2 != nil || end <= start {
		return mapping{}, false
	}
	return mapping{uintptr(start), uintptr(end)}, true
}
