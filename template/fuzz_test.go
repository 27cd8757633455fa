package template

import (
	"strings"
	"testing"
)

// FuzzCheck: any text is parsed (or refused with a position inside it) without a panic, and
// what it reads from the catalog names a function at a line of the text.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"",
		"plain text\n",
		`{{ range service "web" }}server {{ .Address }}:{{ .Port }};{{ end }}`,
		`{{ with $x := keyOrDefault "a/b" "c" }}{{ $x | toUpper }}{{ end }}`,
		`{{ define "r" }}{{ template "r" . }}{{ end }}{{ block "b" . }}x{{ end }}`,
		`{{ range $i, $e := split "," (env "X") }}{{ if $i }},{{ end }}{{ $e }}{{ else }}none{{ end }}`,
		`{{ range tree "app/" | explode }}{{ . }}{{ break }}{{ end }}{{/* c */}}`,
		`{{- if and (keyExists "x") (not (eq 1 2)) -}} y {{- end -}}`,
		"{{ if }}", "{{ .X }", "{{ end }}", "{{", "}}", "{{ range 3 }}{{ continue }}{{ end }}",
		strings.Repeat("{{ if 1 }}", 70),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		catalog, err := Check(text)
		lines := strings.Count(text, "\n") + 1
		if err != nil {
			if err.Line < 1 || err.Line > lines+1 || err.Message == "" || strings.HasPrefix(err.Message, "template:") {
				t.Fatalf("error %+v for a text of %d lines", err, lines)
			}
			return
		}
		if catalog != "" && !strings.Contains(catalog, " at line ") {
			t.Fatalf("catalog use %q names no line", catalog)
		}
	})
}
