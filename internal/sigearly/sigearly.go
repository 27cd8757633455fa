// Package sigearly catches SIGTERM and SIGINT from the earliest moment pilotfish's own code
// can: it depends on nothing but os/signal, so Go initialises it right after the os
// package, milliseconds before the heavy packages (the configuration language, the Consul
// client, Prometheus) and main. Until a handler exists, a SIGTERM meets the Go runtime's
// default action, which for PID 1 is a silent exit with status 2 (the kernel discards the
// signal the runtime re-raises at itself, and the runtime then exits).
//
// It is the one package that does work at init, for that reason only. The daemon takes
// the channel with Take and adds the rest of its signals to it; every other command hands
// the signals back with Release.
package sigearly

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
)

var caught chan os.Signal

func init() {
	if !mayRun(os.Args[1:]) {
		return
	}
	caught = make(chan os.Signal, 64)
	sigs := []os.Signal{syscall.SIGTERM}
	// An ignored SIGINT stays ignored (docs/jobs.md#pid-1-duties-and-signals); Go leaves it
	// so until someone asks for it.
	if !signal.Ignored(syscall.SIGINT) {
		sigs = append(sigs, syscall.SIGINT)
	}
	signal.Notify(caught, sigs...)
}

// mayRun reports whether the command line may be `pilotfish run` (main decides for sure).
func mayRun(args []string) bool {
	if len(args) == 0 {
		return true
	}
	switch a := args[0]; {
	case a == "run" || a == "--":
		return true
	case a == "-h" || a == "-help" || a == "--help" || a == "-version" || a == "--version":
		return false
	default:
		return strings.HasPrefix(a, "-")
	}
}

// Take returns the channel that has received SIGTERM and SIGINT since start-up, nil when
// this command line could not be `run`.
func Take() chan os.Signal { return caught }

// Release gives SIGTERM and SIGINT back to their default handling, for commands other
// than `run`.
func Release() {
	if caught != nil {
		signal.Stop(caught)
	}
}
