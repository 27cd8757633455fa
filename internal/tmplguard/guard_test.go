package tmplguard

import (
	"errors"
	"io"
	"strings"
	"testing"
	"text/template"
	"time"
)

func run(t *testing.T, text string, l Limits) error {
	t.Helper()
	tm, err := template.New("t").Funcs(Stubs()).Parse(text)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	Instrument(tm)
	tm.Funcs(NewMeter(l, time.Now()).Funcs())
	return tm.Execute(io.Discard, nil)
}

func TestMeterBoundsLoopsCallsAndTime(t *testing.T) {
	l := Limits{Steps: 1000, FuncBytes: 1 << 20, String: 1 << 10, Loop: 100, Time: time.Minute, Depth: 8}
	var limit *LimitError
	for text, want := range map[string]string{
		`{{ range 10000 }}{{ end }}`:                                         "does too much work",
		`{{ define "r" }}{{ template "r" }}{{ end }}{{ template "r" }}`:      "more than 8 deep",
		`{{ range loop 1000 }}{{ end }}`:                                     "at most 100 elements",
		`{{ printf "%2000d" 1 }}`:                                            "larger than 1024 bytes",
		`{{ range split "," "` + strings.Repeat("a,", 200) + `" }}{{ end }}`: "more than 100 parts",
	} {
		err := run(t, text, l)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", text, err, want)
		}
		if strings.Contains(want, "work") || strings.Contains(want, "deep") {
			if !errors.As(err, &limit) {
				t.Errorf("%s: %v is not a LimitError", text, err)
			}
		}
	}
	// Within the limits, template calls that return are not counted as depth.
	if err := run(t, `{{ define "x" }}.{{ end }}{{ range 20 }}{{ template "x" }}{{ end }}`, l); err != nil {
		t.Errorf("twenty calls one after the other: %v", err)
	}
	if err := run(t, `{{ range 10 }}{{ end }}`, Limits{Steps: 1000, FuncBytes: 1 << 20, String: 1 << 10, Loop: 100, Time: -time.Second}); err == nil {
		t.Error("a run past its time went on")
	}
}

func TestTooNestedAndPosition(t *testing.T) {
	if off, ok := TooNested([]byte("ab"+strings.Repeat("{{ if 1 }}", 3)), 2); ok || off != 22 {
		t.Errorf("TooNested = %d %v", off, ok)
	}
	if _, ok := TooNested([]byte(strings.Repeat("{{ if 1 }}{{ end }}", 100)), 2); !ok {
		t.Error("closed blocks counted as nesting")
	}
	_, err := template.New("t").Parse("a\n{{ .X }")
	line, col, msg := Position(err)
	if line != 2 || col != 0 || strings.HasPrefix(msg, "template:") {
		t.Errorf("Position = %d %d %q", line, col, msg)
	}
}
