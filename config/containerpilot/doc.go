// Package containerpilot reads ContainerPilot v3 configurations (containerpilot.json5) into
// the same config.Config the HCL loader gives, and writes them as HCL (`pilotfish convert`).
//
// ContainerPilot rendered the whole file as a Go text/template over the environment, then
// parsed it as JSON5. So does Read (template.go, then json5.go, where the JSON5 module
// decides what is valid). The v3 keys are then translated into the HCL items of their
// pilotfish equivalent (v3.go) — with a warning, and a comment in the HCL, for each thing that
// has none — and the HCL is written (hclout.go) and loaded with config.Parse: one loader, one
// Config, whether the user runs the JSON5 or its conversion. Every diagnostic points at the
// line of the original file, through the positions kept from the template's source to the
// rendered text to the HCL.
//
// The file comes from anywhere: the template's work, its output, the nesting of the JSON5
// and every string a template function builds are bounded (template.go, funcs.go).
//
// Nothing here keeps state between calls. Package config calls Read through
// config.Options.Readers (core sets it for *.json5); cmd/pilotfish's `convert` calls Convert
// through core. docs/migrating-from-containerpilot.md is the user's side of this package.
package containerpilot
