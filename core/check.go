package core

import (
	"fmt"
	"io"
	"os"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/config/containerpilot"
	"github.com/pilotfish/pilotfish/jobs"
	"github.com/pilotfish/pilotfish/template"
)

// configOptions are the options of every load of the configuration (run, reload, validate,
// plan): the kinds of package jobs, the template parser, and a *.json5 file read as
// ContainerPilot's.
func configOptions(env map[string]string) config.Options {
	return config.Options{Env: env, Kinds: jobs.ConfigKinds(), CheckTemplate: template.Check,
		Readers: map[string]config.Reader{".json5": containerpilot.Read}}
}

// Check is `pilotfish validate` and `pilotfish plan`: it prints the diagnostics (and the
// plan) and returns the exit code, 0 valid or 1 invalid.
func Check(verb, path string, stdout, stderr io.Writer) int {
	cfg, diags := config.Load(path, configOptions(newEnviron(os.Environ()).Map()))
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
