package template

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/discovery"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/tmplguard"
)

func TestCheckReportsSyntaxErrorsWithTheirPosition(t *testing.T) {
	for name, c := range map[string]struct {
		text      string
		line, col int
		msg       string
	}{
		"stray end":        {"a\nb {{ .X }}{{ end }}\nc", 2, 0, "unexpected {{end}}"},
		"unknown function": {"x\n\n{{ nosuch 1 }}", 3, 0, `function "nosuch" not defined`},
		"missing end":      {"{{ range service \"web\" }}\n{{ .Address }}", 2, 0, "unexpected EOF"},
		"too nested":       {"\n  " + strings.Repeat("{{ if 1 }}", maxNesting+1), 2, 3 + 10*maxNesting, "more than 64 levels"},
	} {
		_, err := Check(c.text)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if err.Line != c.line || c.col != 0 && err.Column != c.col || !strings.Contains(err.Message, c.msg) {
			t.Errorf("%s: %d:%d %q, want %d:%d %q", name, err.Line, err.Column, err.Message, c.line, c.col, c.msg)
		}
		if strings.Contains(err.Message, "template:") {
			t.Errorf("%s: the message repeats Go's prefix: %q", name, err.Message)
		}
	}
}

func TestCheckSaysWhatReadsTheCatalog(t *testing.T) {
	for text, want := range map[string]string{
		`{{ env "HOME" }} {{ "x" | toUpper }}`:                                       "",
		"a\n{{ range service \"web\" }}{{ .Address }}{{ end }}":                      "service at line 2",
		`{{ define "x" }}{{ key "a/b" }}{{ end }}{{ template "x" }}`:                 "key at line 1",
		"{{ with $x := keyOrDefault \"a\" \"b\" }}{{ $x }}{{ end }}\n{{ services }}": "keyOrDefault at line 1",
		`{{ if false }}{{ ls "x" | len }}{{ end }}`:                                  "ls at line 1",
	} {
		got, err := Check(text)
		if err != nil || got != want {
			t.Errorf("Check(%q) = %q, %v; want %q", text, got, err, want)
		}
	}
}

// fakeRun runs text with fixed catalog values and environment.
func fakeRun(t *testing.T, text string, data map[discovery.ViewKey]*discovery.ViewData, env map[string]string) (string, *run, error) {
	t.Helper()
	p, perr := parseText(text)
	if perr != nil {
		t.Fatalf("parse %q: %v", text, perr)
	}
	r := &run{Meter: tmplguard.NewMeter(limits, time.Now()), env: env, used: map[discovery.ViewKey]bool{},
		envRead: map[string]envValue{}, notSafe: map[discovery.ViewKey]bool{},
		lookup: func(k discovery.ViewKey) (*discovery.ViewData, bool) { d, ok := data[k]; return d, ok }}
	out, err := p.execute(r)
	return string(out), r, err
}

var (
	webKey  = discovery.ViewKey{Kind: discovery.ViewService, Name: "web"}
	webData = &discovery.ViewData{Seq: 1, Instances: []discovery.Instance{
		{ID: "web-1", Service: "web", Node: "n1", NodeAddress: "10.0.0.1", Address: "10.0.0.11", Port: 8080, Tags: []string{"v1", "primary"}, Meta: map[string]string{"zone": "a"}},
		{ID: "web-2", Service: "web", Node: "n2", NodeAddress: "10.0.0.2", Address: "10.0.0.2", Port: 8081, Tags: []string{"v1"}},
	}}
	kvData = map[discovery.ViewKey]*discovery.ViewData{
		webKey: webData,
		{Kind: discovery.ViewKVKey, Name: "app/name"}:  {Seq: 1, Pairs: []discovery.KVPair{{Key: "app/name", Value: "shop"}}},
		{Kind: discovery.ViewKVKey, Name: "app/empty"}: {Seq: 1, Pairs: []discovery.KVPair{{Key: "app/empty", Value: ""}}},
		{Kind: discovery.ViewKVKey, Name: "app/none"}:  {Seq: 1, Pairs: []discovery.KVPair{}},
		{Kind: discovery.ViewKVPrefix, Name: "app/"}: {Seq: 1, Pairs: []discovery.KVPair{
			{Key: "app/", Value: ""}, {Key: "app/a", Value: "1"}, {Key: "app/dir/", Value: ""}, {Key: "app/dir/b", Value: "2"}}},
		{Kind: discovery.ViewKVPrefix, Name: "empty/"}: {Seq: 1, Pairs: []discovery.KVPair{}},
		{Kind: discovery.ViewServices}:                 {Seq: 1, Services: []discovery.CatalogService{{Name: "consul", Tags: []string{}}, {Name: "web", Tags: []string{"primary", "v1"}}}},
	}
)

func TestFunctions(t *testing.T) {
	env := map[string]string{"PORT": "8080", "EMPTY": "", "LIST": "a,b,c"}
	for text, want := range map[string]string{
		// The catalog.
		`{{ range service "web" }}{{ .ID }} {{ .Name }} {{ .Node }} {{ .NodeAddress }} {{ .Address }}:{{ .Port }} {{ join "," .Tags }} {{ .Meta.zone }}{{ .ServiceMeta.zone }} {{ .Status }};{{ end }}`: "web-1 web n1 10.0.0.1 10.0.0.11:8080 v1,primary aa passing;web-2 web n2 10.0.0.2 10.0.0.2:8081 v1  passing;",
		`{{ range service "web" }}{{ if .Tags.Contains "primary" }}{{ .ID }}{{ end }}{{ end }}`:                                                                                                         "web-1",
		`{{ len (service "web") }} {{ len (service "") }}`:               "2 0",
		`{{ range services }}{{ .Name }}[{{ join " " .Tags }}]{{ end }}`: "consul[]web[primary v1]",
		`{{ key "app/name" }} {{ keyOrDefault "app/none" "dflt" }} {{ keyOrDefault "app/empty" "e" }} {{ keyExists "app/name" }} {{ keyExists "app/none" }}`: "shop dflt e true false",
		`{{ range ls "app/" }}{{ .Key }}={{ .Value }} {{ end }}`:                                                                  "a=1 ",
		`{{ range tree "app/" }}{{ .Key }}={{ .Value }}({{ .Path }}) {{ end }}`:                                                   "a=1(app/a) dir/b=2(app/dir/b) ",
		`{{ range $k, $v := tree "app/" | explode }}{{ $k }}{{ end }}`:                                                            "adir",
		`{{ range $top, $m := tree "app/" | byKey }}{{ $top }}:{{ range $k, $p := $m }}{{ $k }}={{ $p.Value }}{{ end }}{{ end }}`: "dir:b=2",
		`{{ range $tag, $list := service "web" | byTag }}{{ $tag }}={{ len $list }} {{ end }}`:                                    "primary=1 v1=2 ",
		`{{ range $port, $list := service "web" | byPort }}{{ $port }} {{ end }}`:                                                 "8080 8081 ",
		// The environment.
		`{{ env "PORT" }}|{{ env "NOPE" }}|{{ envOrDefault "NOPE" "d" }}|{{ envOrDefault "EMPTY" "d" }}`: "8080||d|",
		// Strings, in consul-template's argument order.
		`{{ split "," (env "LIST") | join ";" }}`:                                                                                             "a;b;c",
		`{{ "  Hi There " | trimSpace | toLower }} {{ "x" | toUpper }} {{ "hello world" | toTitle }}`:                                         "hi there X Hello World",
		`{{ "--x--" | trim "-" }} {{ "prefix.x" | trimPrefix "prefix." }} {{ "x.suffix" | trimSuffix ".suffix" }}`:                            "x x x",
		`{{ "abc" | contains "b" }} {{ split "," "a,b" | contains "b" }} {{ split "," "a,b" | contains "z" }} {{ in (split "," "a,b") "a" }}`: "true true false true",
		`{{ containsAny (split "," "x,b") (split "," "a,b") }} {{ containsAll (split "," "x,b") (split "," "a,b") }}`:                         "true false",
		`{{ replaceAll "." "_" "a.b.c" }} {{ regexReplaceAll "[0-9]+" "N" "a1b22" }} {{ regexMatch "^a" "abc" }}`:                             "a_b_c aNbN true",
		`{{ indent 2 "a\nb" }}|{{ "k=v,x=y" | splitToMap "," "=" | toJSON }}`:                                                                 "  a\n  b|{\"k\":\"v\",\"x\":\"y\"}",
		// Encodings and numbers.
		`{{ service "web" | len | add 1 }} {{ 10 | subtract 3 }} {{ 3 | multiply 4 }} {{ 9 | divide 2 }} {{ 9 | modulo 2 }} {{ maximum 2 5 }} {{ minimum 2 5 }} {{ "1.5" | add 1 }}`: "3 7 12 4 1 5 2 2.5",
		`{{ "<a>" | toJSON }} {{ "<a>" | toUnescapedJSON }} {{ parseJSON "{\"a\":[1,2]}" | toJSON }}`:                                                                                `"\u003ca\u003e" "<a>" {"a":[1,2]}`,
		`{{ "x" | base64Encode }} {{ "eA==" | base64Decode }} {{ "x" | sha256Hex | printf "%.8s" }} {{ parseInt "42" | add 1 }} {{ parseBool "true" }}`:                              "eA== x 2d711642 43 true",
		`{{ range loop 3 }}{{ . }}{{ end }} {{ range loop 5 7 }}{{ . }}{{ end }}`:                                                                                                    "012 56",
		`{{ define "row" }}<{{ . }}>{{ end }}{{ range split "," "a,b" }}{{ template "row" . }}{{ end }}{{ executeTemplate "row" "c" }}`:                                              "<a><b><c>",
	} {
		got, _, err := fakeRun(t, text, kvData, env)
		if err != nil || got != want {
			t.Errorf("%s\n  = %q, %v\n want %q", text, got, err, want)
		}
	}
}

func TestRunTimeErrors(t *testing.T) {
	for text, want := range map[string]string{
		`{{ key "app/none" }}`:                            `key "app/none" does not exist`,
		`{{ range service "web" }}{{ .Adress }}{{ end }}`: "can't evaluate field Adress",
		`{{ service "web" "any" }}`:                       "passing instances only",
		`{{ service "bad name!" }}`:                       "TAG.NAME",
		`{{ mustEnv "NOPE" }}`:                            "NOPE is empty",
		`{{ 1 | divide 0 }}`:                              "division by zero",
	} {
		_, _, err := fakeRun(t, text, kvData, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", text, err, want)
		}
	}
}

func TestMissingValuesAreWaitedFor(t *testing.T) {
	_, r, err := fakeRun(t, `{{ key "nope" }}{{ range service "db" }}{{ end }}{{ safeLs "empty/" }}`, kvData, nil)
	if err != nil || len(r.missing) != 2 || describe(r.missing[0]) != `key "nope"` || describe(r.missing[1]) != `service "db"` {
		t.Fatalf("missing = %v (%v)", r.missing, err)
	}
	if len(r.notSafe) != 1 {
		t.Errorf("safeLs of an empty prefix does not hold the render back: %v", r.notSafe)
	}
	if len(r.used) != 3 {
		t.Errorf("used = %v", r.used)
	}
}

// Hostile templates end with an error, soon, whatever they try.
func TestHostileTemplatesAreBounded(t *testing.T) {
	cases := map[string]string{
		"nested loops":   `{{ range loop 100000 }}{{ range loop 100000 }}{{ range loop 100000 }}{{ end }}{{ end }}{{ end }}`,
		"range integer":  `{{ range 2000000000 }}{{ end }}`,
		"recursion":      `{{ define "r" }}{{ template "r" }}{{ end }}{{ template "r" }}`,
		"exec recursion": `{{ define "r" }}{{ executeTemplate "r" }}{{ end }}{{ template "r" }}`,
		"wide printf":    `{{ printf "%999999999d" 1 }}`,
		"doubling":       `{{ $a := printf "%900000s" "" }}` + strings.Repeat(`{{ $a = printf "%s%s" $a $a }}`, 40),
		"output":         `{{ range loop 100000 }}` + strings.Repeat("x", 1000) + `{{ end }}`,
		"indent":         `{{ indent 10000000 "a" }}`,
	}
	for name, text := range cases {
		start := time.Now()
		_, _, err := fakeRun(t, text, kvData, nil)
		took := time.Since(start)
		if err == nil || took > 2*limits.Time {
			t.Errorf("%s: err %v after %s", name, err, took)
		}
		t.Logf("%s: %s: %v", name, took.Round(time.Millisecond), err)
	}
}

// testEnv is an environment that putenv changes.
type testEnv struct {
	mu sync.Mutex
	m  map[string]string
}

func (e *testEnv) get() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.m)
}

func (e *testEnv) set(k, v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[k] = v
}

// newEnvEngine is an engine without Consul over env.
func newEnvEngine(t *testing.T, env map[string]string) (*Engine, *events.Bus, *events.Subscription, *testEnv) {
	t.Helper()
	bus := events.NewBus(nil)
	sub := bus.Subscribe(events.SubscribeOptions{Name: "test", Filter: func(ev events.Event) bool {
		return strings.HasPrefix(ev.Source, events.TemplatePrefix)
	}})
	te := &testEnv{m: env}
	e := New(Options{Bus: bus, Log: slog.New(slog.DiscardHandler), Env: te.get})
	t.Cleanup(e.Close)
	return e, bus, sub, te
}

func tmplCfg(dir, name, text string) *config.Template {
	return &config.Template{Name: name, Text: text, Destination: filepath.Join(dir, name+".conf")}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// An environment-only template is written before Apply returns; its changed waits for the
// next startup; a reload that keeps it does not write it again, nor publish.
func TestEnvTemplateRendersInApply(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"PORT": "8080"}
	e, bus, sub, te := newEnvEngine(t, env)
	c := tmplCfg(dir, "app", "port={{ env \"PORT\" }}\n")
	e.Apply([]*config.Template{c})
	if got := readFile(t, c.Destination); got != "port=8080\n" {
		t.Fatalf("after Apply the file holds %q", got)
	}
	if st, err := os.Stat(c.Destination); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v %v", st.Mode(), err)
	}
	if _, ok := sub.Next(); ok {
		t.Fatal("changed was published before the startup")
	}
	bus.Publish(events.Startup, events.Global, nil)
	ev, err := sub.Recv(ctxT(t))
	if err != nil || ev.Source != "template.app" || ev.Code != events.Changed {
		t.Fatalf("after startup: %v %v", ev, err)
	}
	e.Apply([]*config.Template{tmplCfg(dir, "app", "port={{ env \"PORT\" }}\n")}) // a reload, unchanged
	bus.Publish(events.Startup, events.Global, nil)
	e.EnvChanged() // nothing it read changed
	if s := e.Status(); len(s) != 1 || !s[0].Rendered || s[0].Renders != 1 || s[0].Errors != 0 {
		t.Errorf("status = %+v", s)
	}
	// A putenv of a value it read renders it again; its changed is the only one since the
	// first (the reload and the putenv of nothing it read published nothing).
	te.set("PORT", "9090")
	e.EnvChanged()
	ev, err = sub.Recv(ctxT(t))
	if err != nil || ev.Source != "template.app" {
		t.Fatalf("after putenv: %v %v", ev, err)
	}
	if got := readFile(t, c.Destination); got != "port=9090\n" {
		t.Errorf("after putenv the file holds %q", got)
	}
	if ev, ok := sub.Next(); ok {
		t.Errorf("one more event: %v", ev)
	}
	if s := e.Status(); s[0].Renders != 2 {
		t.Errorf("renders = %d, want 2 (start-up, putenv)", s[0].Renders)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTemplateKeepsTheFileOnError(t *testing.T) {
	dir := t.TempDir()
	e, bus, _, _ := newEnvEngine(t, map[string]string{})
	c := tmplCfg(dir, "app", `{{ mustEnv "NEEDED" }}`)
	if err := os.WriteFile(c.Destination, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Apply([]*config.Template{c})
	bus.Publish(events.Startup, events.Global, nil)
	if got := readFile(t, c.Destination); got != "old" {
		t.Errorf("a failed render replaced the file: %q", got)
	}
	s := e.Status()
	if s[0].Errors != 1 || !strings.Contains(s[0].LastError, "NEEDED") || s[0].Rendered {
		t.Errorf("status = %+v", s[0])
	}
	if _, err := e.Render("app"); err == nil || !strings.Contains(err.Error(), "NEEDED") {
		t.Errorf("Render = %v", err)
	}
	if _, err := e.Render("nope"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Render of an unknown template = %v", err)
	}
}

func TestWriteFailuresAreCounted(t *testing.T) {
	// A file where the directory should be makes the write fail, for root too.
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e, _, _, _ := newEnvEngine(t, map[string]string{})
	c := &config.Template{Name: "x", Text: "x", Destination: filepath.Join(blocker, "x.conf")}
	e.Apply([]*config.Template{c})
	s := e.Status()
	if s[0].Errors < 1 || s[0].Rendered || s[0].LastError == "" {
		t.Errorf("status = %+v", s[0])
	}
}

func TestWriteFileReplacesAtomicallyOnlyOnChange(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f.conf")
	wrote, err := writeFile(p, []byte("a"), 0)
	if err != nil || !wrote {
		t.Fatalf("new file: %v %v", wrote, err)
	}
	st1, _ := os.Stat(p)
	if wrote, err = writeFile(p, []byte("a"), 0); err != nil || wrote {
		t.Fatalf("same text: %v %v", wrote, err)
	}
	if wrote, err = writeFile(p, []byte("a"), 0o600); err != nil || !wrote {
		t.Fatalf("new perms: %v %v", wrote, err)
	}
	st2, _ := os.Stat(p)
	if st2.Mode().Perm() != 0o600 || os.SameFile(st1, st2) {
		t.Errorf("mode %v, same inode %v: want 0600 in a new file", st2.Mode(), os.SameFile(st1, st2))
	}
	// A link is followed: the file it names is replaced, the link stays.
	link := filepath.Join(dir, "link.conf")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := writeFile(link, []byte("b"), 0); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 || readFile(t, p) != "b" {
		t.Error("the link was replaced instead of its file")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sub"))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if _, err := writeFile(dir, []byte("x"), 0); err == nil {
		t.Error("a directory was taken for a file")
	}
}
