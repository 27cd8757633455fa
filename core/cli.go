package core

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/jobs"
)

const usage = `usage:
  pilotfish [run] [-config PATH] [-- COMMAND [ARG...]]
  pilotfish validate [-config PATH]      all diagnostics; exit 0 valid, 1 invalid
  pilotfish plan [-config PATH]          jobs, triggers, start and shutdown order, warnings
  pilotfish version

-config defaults to $PILOTFISH_CONFIG, then ` + config.DefaultPath + `.
`

// Main dispatches the command line and returns the exit code.
func Main(args []string, version string) int {
	verb := "run"
	if len(args) > 0 && args[0] != "--" && (len(args[0]) == 0 || args[0][0] != '-') {
		verb, args = args[0], args[1:]
	}
	switch verb {
	case "run", "validate", "plan":
		return configCommand(verb, args, version)
	case "version", "-version", "--version":
		fmt.Printf("pilotfish %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "error: unknown command %q\n%s", verb, usage)
	return 2
}

func configCommand(verb string, args []string, version string) int {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	path := fs.String("config", defaultConfigPath(), "configuration file")
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
		return Run(Options{ConfigPath: *path, Main: main, Env: os.Environ(), Stdout: os.Stdout, Stderr: os.Stderr, Version: version})
	}
	return check(verb, *path, os.Stdout, os.Stderr)
}

func defaultConfigPath() string {
	if p := os.Getenv("PILOTFISH_CONFIG"); p != "" {
		return p
	}
	return config.DefaultPath
}

// check is `validate` and `plan`.
func check(verb, path string, stdout, stderr io.Writer) int {
	cfg, diags := config.Load(path, config.Options{Env: newEnviron(os.Environ()).Map(), Kinds: jobs.ConfigKinds()})
	lines := config.FormatDiagnostics(diags)
	if cfg == nil {
		for _, l := range lines {
			fmt.Fprintln(stderr, l)
		}
		fmt.Fprintf(stderr, "%s: %d errors\n", path, countErrors(diags))
		return 1
	}
	if verb == "plan" {
		fmt.Fprint(stdout, config.RenderPlan(cfg, jobs.ConfigKinds(), lines))
		return 0
	}
	for _, l := range lines {
		fmt.Fprintln(stderr, l)
	}
	fmt.Fprintf(stdout, "%s: valid (%d jobs, %d warnings)\n", path, len(cfg.Jobs), len(diags)-countErrors(diags))
	return 0
}
