package core

import (
	"fmt"
	"io"
	"os"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/jobs"
)

// Check is `pilotfish validate` and `pilotfish plan`: it prints the diagnostics (and the
// plan) and returns the exit code, 0 valid or 1 invalid.
func Check(verb, path string, stdout, stderr io.Writer) int {
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
