// Command pilotfish is a container's ENTRYPOINT: it runs the container's processes as jobs
// joined by an event bus. See README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/core"
	// The exec shim (pilotfish __exec …, how jobs get limits) runs from its package's
	// init, before the heavy packages initialise, and never reaches main.
	_ "github.com/pilotfish/pilotfish/internal/execshim"
	"github.com/pilotfish/pilotfish/internal/sigearly"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `usage:
  pilotfish [run] [-config PATH]... [-- COMMAND [ARG...]]
  pilotfish validate [-config PATH]... [-json]   all diagnostics; exit 0 valid, 1 invalid
  pilotfish plan [-config PATH]... [-json]       jobs, triggers, start and shutdown order, warnings
  pilotfish version
  pilotfish convert [-o FILE] CONTAINERPILOT.json5   a ContainerPilot v3 file as HCL
  pilotfish completion bash|zsh|fish             a shell completion script

  pilotfish ping | status | events [-f] | logs [-f] [-n N] [JOB...] | reload | maintenance on|off
  pilotfish putenv KEY=VALUE... | putmetric NAME=VALUE...
  pilotfish start|stop|restart JOB | signal JOB SIGNAL | stop
  pilotfish render [-config PATH]... TEMPLATE   what a template would write now
      [-socket PATH] [-json]; exit 0 ok, 1 refused, 2 usage, 3 unreachable

  ContainerPilot's flags: pilotfish [-config FILE] -putenv K=V | -putmetric K=V | -reload |
      -maintenance enable|disable | -ping | -template [-out FILE] | -version

-config names a file or a directory (its *.hcl and *.json files in lexical order), and may be
repeated: all of them form one configuration. It defaults to $PILOTFISH_CONFIG (paths
separated by ':'), then $CONTAINERPILOT, then ` + config.DefaultPath + ` and ` + config.DefaultDir + `/
(those that exist); a file ending in .json5 is a ContainerPilot v3 configuration.
-socket defaults to $PILOTFISH_SOCKET, then /var/run/pilotfish.sock.
pilotfish VERB -h prints the help of a verb.
`

// The main thread is kept for the reaper, which waits for children on it
// (internal/reaper/doc.go); LockOSThread in init is what keeps main on it.
func init() { runtime.LockOSThread() }

func main() {
	core.ServeMainThread(func() { os.Exit(dispatch(os.Args[1:])) })
}

func dispatch(args []string) int {
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
	case "completion":
		return completion(args)
	case "version":
		if len(args) > 0 && isHelp(args[0]) {
			printVerbHelp(os.Stdout, verb)
			return 0
		}
		fmt.Printf("pilotfish %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help":
		if len(args) > 0 && verbUsage(args[0]) != "" {
			printVerbHelp(os.Stdout, args[0])
			return 0
		}
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

// pathsFlag is -config, which may be repeated (docs/configuration.md#configuration-in-layers).
type pathsFlag []string

func (p *pathsFlag) String() string { return strings.Join(*p, " ") }

func (p *pathsFlag) Set(v string) error {
	if v == "" {
		return errors.New("the path is empty")
	}
	*p = append(*p, v)
	return nil
}

// configFlags are the flags of run, validate and plan.
func configFlags(verb string) (fs *flag.FlagSet, paths *pathsFlag, asJSON *bool) {
	fs = flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	paths = &pathsFlag{}
	fs.Var(paths, "config", "a configuration `PATH`: a file, or a directory of *.hcl and *.json files; may be repeated")
	asJSON = new(bool)
	if verb != "run" {
		fs.BoolVar(asJSON, "json", false, "print the result as JSON")
	}
	return fs, paths, asJSON
}

// parseFlags parses args, answering -h and --help with the verb's help on stdout: done is
// true when the command is over, with its exit code.
func parseFlags(fs *flag.FlagSet, verb string, args []string) (done bool, code int) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return false, 0
	case errors.Is(err, flag.ErrHelp):
		printVerbHelp(os.Stdout, verb)
		return true, 0
	}
	fmt.Fprintf(os.Stderr, "error: %v\nusage: %s\n", err, verbUsage(verb))
	return true, exitUsage
}

func configCommand(verb string, args []string) int {
	fs, paths, asJSON := configFlags(verb)
	if done, code := parseFlags(fs, verb, args); done {
		return code
	}
	optional := len(*paths) == 0 && os.Getenv("PILOTFISH_CONFIG") == "" && os.Getenv("CONTAINERPILOT") == ""
	if len(*paths) == 0 {
		*paths = defaultConfigPaths()
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
		return core.Run(core.Options{ConfigPaths: *paths, ConfigOptional: optional, Main: main, Env: os.Environ(),
			Stdout: os.Stdout, Stderr: os.Stderr, Version: version, Signals: sigearly.Take()})
	}
	return core.Check(verb, *paths, *asJSON, os.Stdout, os.Stderr)
}

// defaultConfigPaths is $PILOTFISH_CONFIG (a list separated by ':'), then $CONTAINERPILOT
// (ContainerPilot's, so an image that sets it runs unchanged), then the default paths.
func defaultConfigPaths() []string {
	if p := cpConfigPaths(); len(p) > 0 {
		return p
	}
	return config.DefaultPaths()
}

// convert is `pilotfish convert [-o FILE] CONTAINERPILOT.json5`.
func convert(args []string) int {
	fs, out := convertFlags()
	var pos []string
	for { // flags before or after the file
		if done, code := parseFlags(fs, "convert", args); done {
			return code
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

func convertFlags() (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, fs.String("o", "", "write the HCL to `FILE` (default: stdout)")
}
