// Command pilotfish is a container's ENTRYPOINT: it runs the container's processes as jobs
// joined by an event bus. See README.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/core"
	"github.com/pilotfish/pilotfish/internal/sigearly"
	"github.com/pilotfish/pilotfish/jobs"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `usage:
  pilotfish [run] [-config PATH] [-- COMMAND [ARG...]]
  pilotfish validate [-config PATH]      all diagnostics; exit 0 valid, 1 invalid
  pilotfish plan [-config PATH]          jobs, triggers, start and shutdown order, warnings
  pilotfish version
  pilotfish convert [-o FILE] CONTAINERPILOT.json5   a ContainerPilot v3 file as HCL

  pilotfish ping | status | events [-f] | logs [-f] [-n N] [JOB...] | reload | maintenance on|off
  pilotfish putenv KEY=VALUE... | putmetric NAME=VALUE...
  pilotfish start|stop|restart JOB | signal JOB SIGNAL | stop
  pilotfish render [-config PATH] TEMPLATE   what a template would write now
      [-socket PATH] [-json]; exit 0 ok, 1 refused, 2 usage, 3 unreachable

  ContainerPilot's flags: pilotfish [-config FILE] -putenv K=V | -putmetric K=V | -reload |
      -maintenance enable|disable | -ping | -template [-out FILE] | -version

-config defaults to $PILOTFISH_CONFIG, then $CONTAINERPILOT, then ` + config.DefaultPath + `;
a file ending in .json5 is a ContainerPilot v3 configuration.
-socket defaults to $PILOTFISH_SOCKET, then /var/run/pilotfish.sock.
`

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) > 0 && args[0] == jobs.PidShim {
		return pidShim(args[1:])
	}
	verb := "run"
	switch {
	case len(args) == 0:
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
		verb = "help"
	case args[0] == "-version" || args[0] == "--version":
		verb = "version"
	case args[0] != "--" && (args[0] == "" || args[0][0] != '-'):
		verb, args = args[0], args[1:]
	case isContainerPilotCall(args):
		verb = "containerpilot" // pilotfish -putenv K=V, -reload…: ContainerPilot's flags
	default:
		if v, rest, ok := clientFlagsFirst(args); ok {
			verb, args = v, rest // pilotfish -socket PATH status
		}
	}
	if verb != "run" {
		sigearly.Release()
	}
	switch verb {
	case "run", "validate", "plan":
		return configCommand(verb, args)
	case "convert":
		return convert(args)
	case "containerpilot":
		return containerPilot(args)
	case "version":
		fmt.Printf("pilotfish %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help":
		fmt.Print(usage)
		return 0
	}
	if cmd, ok := clientCommands[verb]; ok {
		return runClient(verb, cmd, args)
	}
	fmt.Fprintf(os.Stderr, "error: unknown command %q\n%s", verb, usage)
	return 2
}

// clientFlagsFirst recognises client flags written before the verb.
func clientFlagsFirst(args []string) (string, []string, bool) {
	var flags []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		switch {
		case a == "json":
			flags = append(flags, args[i])
		case a == "socket" && i+1 < len(args):
			flags = append(flags, args[i], args[i+1])
			i++
		case strings.HasPrefix(a, "socket=") || strings.HasPrefix(a, "json="):
			flags = append(flags, args[i])
		default:
			if _, ok := clientCommands[args[i]]; ok && len(flags) > 0 {
				return args[i], append(flags, args[i+1:]...), true
			}
			return "", nil, false
		}
	}
	return "", nil, false
}

func configCommand(verb string, args []string) int {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	path := fs.String("config", defaultConfigPath(), "configuration file")
	optional := os.Getenv("PILOTFISH_CONFIG") == "" && os.Getenv("CONTAINERPILOT") == ""
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	var main []string
	if len(rest) > 0 {
		consumed := len(args) - len(rest)
		if verb != "run" || consumed == 0 || args[consumed-1] != "--" {
			fmt.Fprintf(os.Stderr, "error: unexpected arguments %q (a command to run goes after --)\n", rest)
			return 2
		}
		main = rest
	} else if len(args) > 0 && args[len(args)-1] == "--" {
		fmt.Fprintln(os.Stderr, "error: -- must be followed by a command")
		return 2
	}
	if verb == "run" {
		fs.Visit(func(f *flag.Flag) { optional = optional && f.Name != "config" })
		return core.Run(core.Options{ConfigPath: *path, ConfigOptional: optional, Main: main, Env: os.Environ(),
			Stdout: os.Stdout, Stderr: os.Stderr, Version: version, Signals: sigearly.Take()})
	}
	return core.Check(verb, *path, os.Stdout, os.Stderr)
}

// defaultConfigPath is $PILOTFISH_CONFIG, then $CONTAINERPILOT (ContainerPilot's, so an
// image that sets it runs unchanged), then the default path.
func defaultConfigPath() string {
	if p := cpConfigPath(); p != "" {
		return p
	}
	return config.DefaultPath
}

// convert is `pilotfish convert [-o FILE] CONTAINERPILOT.json5`.
func convert(args []string) int {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("o", "", "write the HCL to this file (default: stdout)")
	var pos []string
	for { // flags before or after the file
		if err := fs.Parse(args); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\nusage: pilotfish convert [-o FILE] CONTAINERPILOT.json5\n", err)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintln(os.Stderr, "usage: pilotfish convert [-o FILE] CONTAINERPILOT.json5")
		return 2
	}
	return core.Convert(pos[0], *out, os.Stdout, os.Stderr)
}

// pidShim sets the named variables to its own PID and execs the program, which keeps the
// PID: LISTEN_PID and WATCHDOG_PID must name the program's PID, known only after fork.
func pidShim(args []string) int {
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "error: usage: pilotfish "+jobs.PidShim+" VAR[,VAR] PATH ARGV0 [ARGS...]")
		return 2
	}
	vars := strings.Split(args[0], ",")
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(vars, k) {
			env = append(env, kv)
		}
	}
	for _, v := range vars {
		env = append(env, v+"="+strconv.Itoa(os.Getpid()))
	}
	err := syscall.Exec(args[1], args[2:], env)
	fmt.Fprintf(os.Stderr, "error: cannot run %s: %v\n", args[1], err)
	return 127
}
