package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// localVerbs are the verbs that do not talk to a daemon, with their usage and what they do
// (docs/cli.md).
var localVerbs = map[string][2]string{
	"run":        {"pilotfish [run] [-config PATH]... [-- COMMAND [ARG...]]", "Run the configuration's jobs: pilotfish is the container's entrypoint (PID 1)."},
	"validate":   {"pilotfish validate [-config PATH]... [-json]", "Print every error and warning of the configuration; exit 0 valid, 1 invalid."},
	"plan":       {"pilotfish plan [-config PATH]... [-json]", "Print what pilotfish would do: jobs, triggers, hooks, start and shutdown order, warnings."},
	"version":    {"pilotfish version", "Print the version."},
	"help":       {"pilotfish help [VERB]", "Print the usage, or the help of a verb."},
	"convert":    {"pilotfish convert [-o FILE] CONTAINERPILOT.json5", "Print a ContainerPilot v3 configuration as pilotfish HCL."},
	"completion": {"pilotfish completion bash|zsh|fish", "Print a shell completion script (source it, or install it where the shell loads completions)."},
}

// clientAbout says what each client verb does.
var clientAbout = map[string]string{
	"ping":        "Check that pilotfish answers on its control socket.",
	"status":      "Show every job (or one): state, PID, health, restarts, uptime, status.",
	"events":      "Print the recent events of the bus; -f follows new ones.",
	"reload":      "Re-read the configuration and apply the difference.",
	"maintenance": "Turn maintenance mode on or off (services deregistered, /v1/health answers 503).",
	"putenv":      "Set environment variables for the jobs started from now on and for reloads.",
	"putmetric":   "Set or add to a custom metric.",
	"start":       "Start a job now.",
	"stop":        "Stop a job (it stays stopped until started); without JOB, stop the container.",
	"restart":     "Restart a job.",
	"signal":      "Send a signal to a job's process group.",
	"render":      "Print what a template would write now, from the running pilotfish's values.",
	"logs":        "Print the jobs' recent output; -f follows new lines.",
}

// verbs lists every verb, sorted.
func verbs() []string {
	var out []string
	for v := range localVerbs {
		out = append(out, v)
	}
	for v := range clientCommands {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// verbUsage is the usage line of a verb, "" for an unknown verb.
func verbUsage(verb string) string {
	if v, ok := localVerbs[verb]; ok {
		return v[0]
	}
	if c, ok := clientCommands[verb]; ok {
		return strings.TrimSpace(fmt.Sprintf("pilotfish %s [-socket PATH] [-json] %s", verb, c.args))
	}
	return ""
}

// verbFlags is the flag set of a verb, to describe its flags (nil: it takes none).
func verbFlags(verb string) *flag.FlagSet {
	switch verb {
	case "run", "validate", "plan":
		fs, _, _ := configFlags(verb)
		return fs
	case "convert":
		fs, _ := convertFlags()
		return fs
	}
	if _, ok := clientCommands[verb]; ok {
		fs, _ := clientFlags(verb, &clientOpts{})
		return fs
	}
	return nil
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// printVerbHelp is `pilotfish VERB -h`: the usage, what the verb does, its flags.
func printVerbHelp(w io.Writer, verb string) {
	about := clientAbout[verb]
	if v, ok := localVerbs[verb]; ok {
		about = v[1]
	}
	fmt.Fprintf(w, "usage: %s\n", verbUsage(verb))
	if about != "" {
		fmt.Fprintf(w, "\n%s\n", about)
	}
	fs := verbFlags(verb)
	if fs == nil {
		return
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintf(w, "\nflags:\n")
			first = false
		}
		arg, usage := flag.UnquoteUsage(f)
		name := "-" + f.Name
		if arg != "" {
			name += " " + arg
		}
		fmt.Fprintf(w, "  %-16s %s\n", name, usage)
	})
	if _, ok := clientCommands[verb]; ok {
		fmt.Fprintf(w, "\nexit 0 ok, 1 refused, 2 usage, 3 unreachable; see docs/cli.md\n")
	}
}
