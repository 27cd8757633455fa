package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestScanLevels(t *testing.T) {
	for _, c := range []struct {
		name, src string
		json      bool
		want      int // levels counted; -1: refused
	}{
		{name: "flat", src: "a = 1\nb = \"x\"\n", want: 0},
		{name: "block", src: "job \"a\" {\n  exec = \"x\"\n}\n", want: 1},
		{name: "one-line block", src: "job \"a\" { exec = \"x\" }\n", want: 1},
		{name: "nested blocks", src: "a {\n b {\n  c {\n  }\n }\n}\n", want: 3},
		{name: "list", src: "a = [[1], [2, [3]]]\n", want: 3},
		{name: "object and call", src: "a = { b = f(1) }\n", want: 2},
		{name: "brackets in strings", src: "a = \"[[[[{{{(((\"\nb = \"${x}]]]\"\n", want: 1},
		{name: "brackets in comments", src: "# [[[[\n// {{{{\n/* (((( */\na = 1\n", want: 0},
		{name: "unterminated block comment is code", src: "a = 1 /* [[[\n", want: 5},
		{name: "brackets in a heredoc", src: "a = <<EOT\n[[[[ {{{{\n  EOT\nb = [1]\n", want: 1},
		{name: "heredoc marker must be alone", src: "a = <<EOT\nEOT x\n[[[[\nEOT\n", want: 0},
		{name: "interpolation", src: "a = \"${[1]}\"\n", want: 2},
		{name: "escaped interpolation", src: "a = \"$${[[[[\"\n", want: 0},
		{name: "nested strings", src: "a = \"${\"${\"${x}\"}\"}\"\n", want: 3},
		{name: "template if", src: "a = \"%{if x}%{if y}z%{endif}%{endif}\"\n", want: 3},
		{name: "operator chain", src: "a = 1 + 2 + 3\n", want: 2},
		{name: "chains end with the item", src: "a = 1 + 2\nb = 3 + 4\nc = [1 + 2, 3 + 4]\n", want: 2},
		{name: "unary", src: "a = !!!!x\n", want: 4},
		{name: "index chain", src: "a = b[c][d]\n", want: 3},
		{name: "dashes in names", src: "a-b-c = d-e-f\n", want: 0},
		{name: "exponent", src: "a = 1e-5\n", want: 0},
		{name: "crlf", src: "a {\r\n  b = [1]\r\n}\r\n", want: 2},
		{name: "json", src: `{"a": [[1], {"b": [2]}]}`, json: true, want: 4},
		{name: "json brackets in strings", src: `{"a": "[[[[{{{{"}`, json: true, want: 1},
		{name: "json template", src: `{"a": "${[[1]]}"}`, json: true, want: 4},
		{name: "json escaped template", src: `{"a": "\u0024{[[1]]}"}`, json: true, want: 4},
		{name: "deep", src: "a = " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), want: -1},
		{name: "deep blocks", src: strings.Repeat("a {\n", MaxDepth+1), want: -1},
		{name: "long chain", src: "a = 1" + strings.Repeat(" + 1", MaxDepth+1), want: -1},
		{name: "deep templates", src: "a = \"" + strings.Repeat("%{if x}", MaxDepth+1) + "\"", want: -1},
		{name: "deep json", src: strings.Repeat("[", MaxDepth+1), json: true, want: -1},
		{name: "deep json template", src: `{"a": "${` + strings.Repeat("(", MaxDepth) + `}"}`, json: true, want: -1},
		// HCL's parser skips a } in the middle of an item and stays in the block.
		{name: "broken braces add up", src: strings.Repeat("a {\nb }\n", MaxDepth+1), want: -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			scan := scanNative
			if c.json {
				scan = scanJSON
			}
			levels, err := scan([]byte(c.src))
			switch {
			case c.want < 0 && (err == nil || err.limit != overDepth):
				t.Fatalf("not refused: %d levels, %v", levels, err)
			case c.want >= 0 && err != nil:
				t.Fatalf("refused: %s", err.detail([]byte(c.src)))
			case c.want >= 0 && levels != c.want:
				t.Fatalf("%d levels, want %d", levels, c.want)
			}
		})
	}
}

// A file that would overflow HCL's stack is refused before parsing, with its position.
func TestDeepFilesRefused(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"brackets", "job \"a\" {\n  exec = " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n}\n", "test.hcl:2:73: Configuration nested too deeply"},
		{"negations", "job \"a\" {\n  exec = " + strings.Repeat("!", 1000000) + "true\n}\n", "test.hcl:2:73: Configuration nested too deeply"},
		{"sums", "x = 1" + strings.Repeat("+1", 1000000) + "\n", "test.hcl:1:134: Configuration nested too deeply"},
		{"json", `{"job": {"a": {"exec": ` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "}}}", "test.json:1:85: Configuration nested too deeply"},
		{"json template", `{"job": {"a": {"exec": "${` + strings.Repeat("[", 100000) + `}"}}}`, "test.json:1:87: Configuration nested too deeply"},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := "test.hcl"
			if strings.HasPrefix(c.name, "json") {
				name = "test.json"
			}
			cfg, diags := Parse(name, []byte(c.src), Options{Kinds: kinds})
			lines := FormatDiagnostics(diags)
			if cfg != nil || len(lines) != 1 || !strings.HasPrefix(lines[0], c.want) {
				t.Fatalf("got %q, want one %q", lines, c.want)
			}
		})
	}
}

func TestFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.hcl")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, diags := Load([]string{big}, Options{Kinds: kinds})
	if lines := FormatDiagnostics(diags); len(lines) != 1 || !strings.Contains(lines[0], "larger than 4 MiB (10485760 bytes)") {
		t.Fatalf("got %q", lines)
	}

	// Exactly the limit is fine.
	src := "job \"a\" { exec = \"x\" }\n#"
	src += strings.Repeat("x", MaxFileSize-len(src))
	ok := filepath.Join(dir, "ok.hcl")
	if err := os.WriteFile(ok, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if src, diags := readConfig(ok); diags.HasErrors() || len(src) != MaxFileSize {
		t.Fatalf("refused: %q", FormatDiagnostics(diags))
	} else if diags := checkSource(ok, src, false); diags.HasErrors() {
		t.Fatalf("refused: %q", FormatDiagnostics(diags))
	}
	// One byte more is not, also from a reader that does not tell its size.
	if err := os.WriteFile(ok, []byte(src+"x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, diags := Load([]string{ok}, Options{Kinds: kinds}); !diags.HasErrors() {
		t.Fatal("a file one byte over the limit was accepted")
	}
	if cfg, _ := parseFromPipe(t, src+"x"); cfg != nil {
		t.Fatal("a pipe one byte over the limit was accepted")
	}
}

func parseFromPipe(t *testing.T, src string) (*Config, []string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = w.WriteString(src + strings.Repeat("#", 1<<20)) // more than read
		w.Close()
	}()
	defer r.Close()
	cfg, diags := Load([]string{"/dev/fd/" + strconv.Itoa(int(r.Fd()))}, Options{Kinds: kinds})
	return cfg, FormatDiagnostics(diags)
}

func TestTokenAndCopyLimits(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"tokens", "x = [" + strings.Repeat("1,", MaxTokens/2) + "]\n", "Configuration file too long"},
		{"heredoc lines", "x = <<EOT\n" + strings.Repeat(strings.Repeat("y", 80)+"\n", 5000) + "EOT\n", "Strings too long"},
		{"lone dollars", "x = \"" + strings.Repeat("$", 100000) + "\"\n", "Strings too long"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, diags := parse(t, c.src, nil)
			if len(diags) != 1 || !strings.Contains(diags[0], c.want) {
				t.Fatalf("got %q", diags)
			}
		})
	}
	// An ordinary long heredoc is fine.
	mustParse(t, "job \"a\" {\n  exec = <<EOT\n"+strings.Repeat("echo line\n", 1000)+"EOT\n}\n", nil)
}

// Expressions that would compute something huge are refused while they evaluate.
func TestEvaluationLimits(t *testing.T) {
	big := `join("", [for i in range(600) : "` + strings.Repeat("x", 1024) + `"])` // 600 KiB
	for _, c := range []struct{ name, expr, want string }{
		{"nested for", `join("", flatten([for i in range(1000) : [for j in range(1000) : "twenty characters..."]]))`, "a for expression making more than 4096 elements"},
		{"long string", `"${` + big + `}${` + big + `}"`, "a string of 1228800 bytes, over the limit of 1 MiB"},
		{"joined strings", `join("", [` + big + `, ` + big + `])`, "the result would be a string of 1228800 bytes or more"},
		{"join separator", `join(` + big + `, ["a", "b", "c"])`, "the result would be a string of"},
		{"format width", `format("%099999999d", 1)`, "the result would be a string of"},
		{"format reuse", `format("%[1]s%[1]s", ` + big + `)`, "the result would be a string of"},
		{"formatlist", `formatlist("%09999999d", [1, 2])`, "the result would be a string of"},
		{"indent", `indent(99999999, "a\nb")`, "the result would be a string of"},
		{"replace", `replace("` + strings.Repeat("a", 2000) + `", "a", "` + strings.Repeat("b", 1000) + `")`, "the result would be a string of"},
		{"regex replace", `replace("` + strings.Repeat("a", 2000) + `", "/(a)/", "$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1")`, "the result would be a string of"},
		{"split", `split("", "` + strings.Repeat("a", 5000) + `")`, "the result would hold 5000 elements or more"},
		{"regexall", `regexall("a", "` + strings.Repeat("a", 5000) + `")`, "the result would hold 4097 elements or more"},
		{"jsonencode", `jsonencode([for i in range(1000) : "` + strings.Repeat("\\u0001", 200) + `"])`, "the result would be a string of"},
		{"jsondecode depth", `jsondecode("` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `")`, "the JSON nests more than 64 levels"},
		{"jsondecode size", `jsondecode("[` + strings.Repeat("1,", 5000) + `1]")`, "the result would hold"},
		{"parseint", `parseint("` + strings.Repeat("9", 400) + `", 10)`, "a number of 400 digits is too large"},
		{"huge number", `"${1e400}"`, "a number too large or too small to be written out"},
		{"tiny number", `"${1e-100000000}"`, "a number too large or too small to be written out"},
		{"repeated references", `[for s in [` + big + `] : [for i in range(200) : s]]`, "the expressions compute more than 64 MiB of values"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, json := range []bool{false, true} {
				name, src := "test.hcl", "job \"a\" {\n  exec = \"x\"\n  dir = "+c.expr+"\n}\n"
				if json {
					name, src = "test.json", `{"job": {"a": {"exec": "x", "dir": "${`+jsonEscape(c.expr)+`}"}}}`
				}
				cfg, diags := Parse(name, []byte(src), Options{Kinds: kinds, evalTimeout: time.Minute})
				lines := FormatDiagnostics(diags)
				if cfg != nil || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
					t.Fatalf("%s: got %q, want one error with %q", name, lines, c.want)
				}
				if !strings.HasPrefix(lines[0], name+":") || !strings.Contains(lines[0], "docs/configuration.md#limits") {
					t.Fatalf("%s: no position or no pointer to the limits: %q", name, lines[0])
				}
			}
		})
	}
}

func jsonEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// Evaluation that takes too long, or is cancelled, stops at the next expression.
func TestEvaluationTime(t *testing.T) {
	slow := "job \"a\" {\n  exec = \"x\"\n  dir = join(\"\", [for i in range(1000) : join(\"\", [for j in range(1000) : \"abc\"])])\n}\n"
	opts := Options{Kinds: kinds, evalTimeout: 50 * time.Millisecond}
	_, diags := Parse("test.hcl", []byte(slow), opts)
	lines := FormatDiagnostics(diags)
	// At line 3, where evaluation stopped (or at 1:1 if a loaded machine parsed for longer).
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "test.hcl:") || !strings.Contains(lines[0], "evaluation stopped after 50ms") {
		t.Fatalf("got %q", lines)
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("pilotfish is shutting down"))
	_, diags = Parse("test.hcl", []byte(slow), Options{Kinds: kinds, Context: ctx})
	if lines := FormatDiagnostics(diags); len(lines) != 1 || !strings.Contains(lines[0], "the load was cancelled: pilotfish is shutting down") {
		t.Fatalf("got %q", lines)
	}
}

// The guard changes nothing for files within the limits.
func TestGuardKeepsValues(t *testing.T) {
	cfg := mustParse(t, `
job "a" {
  exec = [for w in split(" ", "a b c") : upper(w) if w != "b"]
  env = {
    LIST = join(",", [for i in range(3) : format("%02d", i)])
    OBJ  = jsonencode({ for k, v in { x = 1, y = 2 } : k => v * 2 })
    TPL  = "%{ for x in ["p", "q"] }${x}.%{ endfor }"
    SPL  = length([{ a = [1, 2] }, { a = [3] }][*].a)
    DIST = jsonencode(distinct([["x"], ["y"], ["x"], ["x", "y"]]))
    MANY = length(distinct(flatten([for i in range(4) : [for j in range(1000) : "${i}-${j % 500}"]])))
  }
}
`, nil)
	j := cfg.Jobs[0]
	if got := strings.Join(j.Exec, " "); got != "A C" {
		t.Errorf("exec = %q", got)
	}
	want := map[string]string{"LIST": "00,01,02", "OBJ": `{"x":2,"y":4}`, "TPL": "p.q.", "SPL": "2",
		"DIST": `[["x"],["y"],["x","y"]]`, "MANY": "2000"}
	for k, v := range want {
		if j.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, j.Env[k], v)
		}
	}
}

func BenchmarkScanNative(b *testing.B) {
	src, err := os.ReadFile("testdata/full.hcl")
	if err != nil {
		b.Fatal(err)
	}
	src = []byte(strings.Repeat(string(src), 100))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := scanNative(src); err != nil {
			b.Fatal(err.detail(src))
		}
	}
}

// The limits a user relies on are stated in docs/configuration.md#limits with the values
// the code enforces.
func TestLimitsDocumented(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(doc), "\n## Limits\n")
	if i < 0 {
		t.Fatal("docs/configuration.md has no Limits section")
	}
	section := string(doc[i:])
	section = section[:strings.Index(section[1:], "\n## ")+1]
	for _, want := range []string{
		fmt.Sprintf("| file size | %d MiB (%s bytes)", MaxFileSize>>20, thousands(MaxFileSize)),
		fmt.Sprintf("| nesting | %d levels", MaxDepth),
		fmt.Sprintf("| tokens | %s names", thousands(MaxTokens)),
		fmt.Sprintf("| string joining | %d MiB of copying", MaxTemplateCopy>>20),
		fmt.Sprintf("| a string | %d MiB (%s bytes)", MaxString>>20, thousands(MaxString)),
		fmt.Sprintf("| a list, tuple, map or object | %s elements", thousands(MaxElements)),
		fmt.Sprintf("| all values | %d MiB", MaxEvalBytes>>20),
		fmt.Sprintf("| time | %d seconds for a whole load", int(EvalTimeout.Seconds())),
	} {
		if !strings.Contains(section, want) {
			t.Errorf("the Limits section does not say %q", want)
		}
	}
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// A syntax error that leaves levels counted is reported as HCL reports it.
func TestDeepBecauseOfSyntaxError(t *testing.T) {
	src := "job \"a\" {\n  exec = \"x\" }\n" + strings.Repeat("job \"b\" { exec = \"y\" }\n", MaxDepth+1)
	_, diags := parse(t, src, nil)
	if len(diags) != 1 || !strings.HasPrefix(diags[0], "test.hcl:2:") || strings.Contains(diags[0], "nested too deeply") {
		t.Fatalf("got %q, want HCL's own error on line 2", diags)
	}
}

// Validation of a file with thousands of mistakes stays linear: "did you mean" is looked
// for a few times, and a few trigger cycles are reported, each in a line of bounded length.
func TestValidationBounded(t *testing.T) {
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "job \"job%d\" {\n  exec = \"x\"\n  when {\n    source = \"jobb%d\"\n    once   = \"started\"\n  }\n}\n", i, i)
	}
	_, diags := parse(t, b.String(), nil)
	if len(diags) != 2000 {
		t.Fatalf("%d diagnostics, want one per job", len(diags))
	}
	if n := strings.Count(strings.Join(diags, "\n"), "did you mean"); n != maxSuggestions {
		t.Errorf("%d suggestions, want %d", n, maxSuggestions)
	}

	b.Reset()
	for i := range 2000 {
		fmt.Fprintf(&b, "job \"j%d\" {\n  exec = \"x\"\n  when {\n    any = { j%d = \"started\", j0 = \"started\" }\n  }\n}\n", i, (i+1)%2000)
	}
	_, diags = parse(t, b.String(), nil)
	cycles := 0
	for _, d := range diags {
		if strings.Contains(d, "trigger cycle") {
			cycles++
			if len(d) > 300 {
				t.Errorf("diagnostic %q", d)
			}
		}
	}
	if cycles != maxCycles {
		t.Fatalf("%d cycles reported, want %d: %q", cycles, maxCycles, diags[:min(3, len(diags))])
	}
}

// HCL reads "\xda\"" as one character: without the UTF-8 check the depth scanner would take
// the quote for the start of a string and miss every bracket after it.
func TestInvalidUTF8Refused(t *testing.T) {
	src := []byte("x = 1\ny = \xda\"" + strings.Repeat("[", 10*MaxDepth) + "\n")
	diags := checkSource("f.hcl", src, false)
	if !diags.HasErrors() || diags[0].Summary != "Invalid UTF-8" || diags[0].Subject.Start.Line != 2 || diags[0].Subject.Start.Column != 5 {
		t.Fatalf("diags = %v", diags)
	}
	if d := checkSource("f.hcl", []byte("x = \"é ✓\"\n"), false); d.HasErrors() {
		t.Fatalf("valid UTF-8 refused: %v", d)
	}
}
