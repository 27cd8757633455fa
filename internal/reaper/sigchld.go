//go:build linux && (amd64 || arm64)

package reaper

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sigaction is the kernel's struct sigaction on these architectures.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// sigchldState switches SIGCHLD between SIG_DFL, which the kernel drops without waking a
// thread (children still become zombies: only SIG_IGN and SA_NOCLDWAIT reap by themselves),
// and Go's handler as the runtime installed it. Go's runtime is not told: it believes its
// handler is in place, so os/signal never reinstalls it; a forked child gets SIG_DFL either
// way (docs/jobs.md#pid-1-duties-and-signals).
type sigchldState struct {
	goAct sigaction
	ok    bool
}

func rtSigaction(act, old *sigaction) error {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(syscall.SIGCHLD),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// init saves the current action, Go's handler.
func (s *sigchldState) init() { s.ok = rtSigaction(nil, &s.goAct) == nil }

// set installs Go's handler (goHandler) or SIG_DFL.
func (s *sigchldState) set(goHandler bool) {
	if !s.ok {
		return
	}
	act := sigaction{}
	if goHandler {
		act = s.goAct
	}
	_ = rtSigaction(&act, nil)
}
