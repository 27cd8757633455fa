package containerpilot_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/config/containerpilot"
)

// FuzzRead feeds arbitrary files through the template, the JSON5 reader and the translation:
// none may panic or run long, and every diagnostic names the file.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		everyKey,
		`{ consul: '{{ .C | default "c" }}:8500', jobs: [ {{ range loop 3 }}{ name: 'j{{ . }}', exec: 'x' },{{ end }} ] }`,
		"{\n  jobs: [ { name: 'a', exec: 'a b' }\n { name: 'b' } ]\n}",
		`{ jobs: [ { name: 'a', port: {{ .P }}, health: { exec: ['x'], interval: 1, ttl: '3' }, when: { source: 'SIGHUP', each: 'x' } } ] }`,
		`{{ define "a" }}{{ template "a" }}{{ end }}{{ template "a" }}`,
		`{ telemetry: { metrics: [ { name: 'x', type: 'gauge' } ] }, watches: [ { name: 'w' } ] }`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		env := map[string]string{"P": "80", "C": "consul"}
		for _, convert := range []bool{false, true} {
			var diags []string
			if convert {
				c, d := containerpilot.Convert("f.json5", []byte(src), opts(env))
				diags = config.FormatDiagnostics(d)
				// The converter lays out its file itself: it must be what hclwrite.Format
				// (terraform fmt) would make of it.
				if c != nil && len(c.HCL) > 0 {
					if f := hclwrite.Format(c.HCL); !bytes.Equal(f, c.HCL) {
						t.Fatalf("the converted file is not formatted:\n%s\nformatted:\n%s", c.HCL, f)
					}
				}
			} else {
				_, d := containerpilot.Read("f.json5", []byte(src), opts(env))
				diags = config.FormatDiagnostics(d)
			}
			for _, d := range diags {
				if !strings.HasPrefix(d, "f.json5:") {
					t.Fatalf("a diagnostic without the file: %s", d)
				}
			}
		}
		if took := time.Since(start); took > 4*config.EvalTimeout {
			t.Fatalf("took %s", took)
		}
	})
}
