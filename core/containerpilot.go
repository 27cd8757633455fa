package core

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/config/containerpilot"
)

// Convert is `pilotfish convert`: it writes the ContainerPilot file at path as HCL to out
// (stdout when out is ""), and prints the diagnostics. It returns 0, or 1 when the file is
// not valid (nothing is written then).
func Convert(path, out string, stdout, stderr io.Writer) int {
	src, diags := config.ReadFile(path)
	var conv *containerpilot.Conversion
	if !diags.HasErrors() {
		conv, diags = containerpilot.Convert(path, src, configOptions(newEnviron(os.Environ()).Map()))
	}
	for _, l := range config.FormatDiagnostics(diags) {
		fmt.Fprintln(stderr, l)
	}
	if conv == nil || conv.Config == nil {
		fmt.Fprintf(stderr, "%s: %s; nothing converted\n", path, config.Plural(countErrors(diags), "error"))
		return 1
	}
	if out == "" {
		if _, err := stdout.Write(conv.HCL); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
	} else if err := writeAtomic(out, conv.HCL); err != nil {
		fmt.Fprintf(stderr, "error: cannot write %s: %v\n", out, err)
		return 1
	}
	where := out
	if where == "" {
		where = "stdout"
	}
	msg := fmt.Sprintf("%s: converted to %s (%s, %s)", path, where, config.Plural(len(conv.Config.Jobs), "job"), config.Plural(len(diags)-countErrors(diags), "warning"))
	if len(conv.Rendered) > 0 {
		msg += "; rendered with " + strings.Join(conv.Rendered, ", ")
	}
	fmt.Fprintln(stderr, msg)
	return 0
}

// writeAtomic replaces path with data: a reader never sees half a file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// RenderTemplate is ContainerPilot's -template: the file after its template ran.
func RenderTemplate(path string, stdout, stderr io.Writer) int {
	src, diags := config.ReadFile(path)
	var out []byte
	if !diags.HasErrors() {
		out, diags = containerpilot.Render(path, src, newEnviron(os.Environ()).Map())
	}
	if diags.HasErrors() {
		for _, l := range config.FormatDiagnostics(diags) {
			fmt.Fprintln(stderr, l)
		}
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

// ControlSocket is the control socket a configuration names, for clients that are given the
// configuration rather than the socket (ContainerPilot's -putenv, -reload… flags). A
// ContainerPilot file need only render and parse; an HCL configuration must be valid.
func ControlSocket(paths []string) (string, error) {
	if len(paths) != 1 || !strings.EqualFold(filepath.Ext(paths[0]), ".json5") {
		return ConfigSocket(paths)
	}
	path := paths[0]
	src, diags := config.ReadFile(path)
	if diags.HasErrors() {
		return "", errors.New(strings.Join(config.FormatDiagnostics(diags), "\n"))
	}
	s, diags := containerpilot.Socket(path, src, newEnviron(os.Environ()).Map())
	if diags.HasErrors() {
		return "", errors.New(strings.Join(config.FormatDiagnostics(diags), "\n"))
	}
	return s, nil
}
