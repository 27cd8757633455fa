package core

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
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

// CheckReport is what `pilotfish validate -json` prints, and `plan -json` with its plan
// (docs/cli.md#json-output).
type CheckReport struct {
	Valid        bool             `json:"valid"`
	Files        []string         `json:"files"`
	Jobs         int              `json:"jobs"`
	ErrorCount   int              `json:"error_count"`
	WarningCount int              `json:"warning_count"`
	Diagnostics  []DiagnosticJSON `json:"diagnostics"`
	Plan         *config.Plan     `json:"plan,omitempty"`
}

// DiagnosticJSON is one error or warning of the configuration.
type DiagnosticJSON struct {
	Severity string `json:"severity"` // "error" or "warning"
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	// Message is the line printed without -json: FILE:LINE:COL: summary: detail.
	Message string     `json:"message"`
	Range   *RangeJSON `json:"range,omitempty"`
}

// RangeJSON is where a diagnostic points, the file named as it was given.
type RangeJSON struct {
	Filename string  `json:"filename"`
	Start    PosJSON `json:"start"`
	End      PosJSON `json:"end"`
}

// PosJSON is a position in a file: line and column from 1, byte offset from 0.
type PosJSON struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

func diagnosticsJSON(diags hcl.Diagnostics) []DiagnosticJSON {
	out := make([]DiagnosticJSON, 0, len(diags))
	for _, d := range diags {
		dj := DiagnosticJSON{Severity: "error", Summary: d.Summary, Detail: d.Detail, Message: config.FormatDiagnostic(d)}
		if d.Severity == hcl.DiagWarning {
			dj.Severity = "warning"
		}
		if r := d.Subject; r != nil {
			dj.Range = &RangeJSON{Filename: r.Filename,
				Start: PosJSON{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
				End:   PosJSON{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte}}
		}
		out = append(out, dj)
	}
	return out
}

// Check is `pilotfish validate` and `pilotfish plan`: it prints the diagnostics (and the
// plan), as text or as JSON, and returns the exit code, 0 valid or 1 invalid.
func Check(verb string, paths []string, asJSON bool, stdout, stderr io.Writer) int {
	cfg, diags := config.Load(paths, configOptions(newEnviron(os.Environ()).Map()))
	name := strings.Join(paths, ", ")
	errs := countErrors(diags)
	if asJSON {
		r := CheckReport{Valid: cfg != nil, Files: []string{}, ErrorCount: errs, WarningCount: len(diags) - errs,
			Diagnostics: diagnosticsJSON(diags)}
		if files, _ := config.ListFiles(paths); files != nil {
			r.Files = files
		}
		if cfg != nil {
			r.Files, r.Jobs = cfg.Files, len(cfg.Jobs)
			if verb == "plan" {
				r.Plan = config.NewPlan(cfg, jobs.ConfigKinds())
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
		if cfg == nil {
			return 1
		}
		return 0
	}
	lines := config.FormatDiagnostics(diags)
	if cfg == nil {
		for _, l := range lines {
			fmt.Fprintln(stderr, l)
		}
		fmt.Fprintf(stderr, "%s: %s\n", name, config.Plural(errs, "error"))
		return 1
	}
	if verb == "plan" {
		fmt.Fprint(stdout, config.RenderPlan(cfg, jobs.ConfigKinds(), lines))
		return 0
	}
	for _, l := range lines {
		fmt.Fprintln(stderr, l)
	}
	files := ""
	if len(cfg.Files) > 1 {
		files = config.Plural(len(cfg.Files), "file") + ", "
	}
	fmt.Fprintf(stdout, "%s: valid (%s%s, %s)\n", name, files, config.Plural(len(cfg.Jobs), "job"), config.Plural(len(diags)-errs, "warning"))
	return 0
}
