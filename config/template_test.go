package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeChecker stands for package template's parser: "{{ bad" is a syntax error at its line
// and column, "service" reads the catalog.
func fakeChecker(text string) (string, *TemplateError) {
	for i, line := range strings.Split(text, "\n") {
		if c := strings.Index(line, "{{ bad"); c >= 0 {
			return "", &TemplateError{Line: i + 1, Column: c + 1, Message: "bad action"}
		}
		if strings.Contains(line, "service") {
			return "service at line " + string(rune('0'+i+1)), nil
		}
	}
	return "", nil
}

func parseT(t *testing.T, src string) (*Config, []string) {
	t.Helper()
	cfg, diags := Parse("test.hcl", []byte(src), Options{Kinds: kinds, CheckTemplate: fakeChecker})
	return cfg, FormatDiagnostics(diags)
}

// refused checks that each source is refused with an error that holds want.
func refused(t *testing.T, cases map[string]struct{ src, want string }) {
	t.Helper()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, diags := parseT(t, c.src)
			joined := strings.Join(diags, "\n")
			if cfg != nil || !strings.Contains(joined, c.want) {
				t.Fatalf("want an error with %q; got config %v and:\n%s", c.want, cfg != nil, joined)
			}
		})
	}
}

func TestTemplateBlock(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "up.ctmpl")
	if err := os.WriteFile(src, []byte("{{ range service \"web\" }}{{ end }}"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := parseT(t, `
consul {}
template "up" {
  source      = "`+src+`"
  destination = "`+dir+`/out/up.conf"
  perms       = "0600"
  wait        = "250ms"
}
template "env" {
  contents    = <<EOT
port={{ env "PORT" }}
EOT
  destination = "rel/env.conf"
}
job "reload" {
  exec = "true"
  when {
    source = "template.up"
    each   = "changed"
  }
}`)
	if cfg == nil {
		t.Fatal(diags)
	}
	if len(cfg.Templates) != 2 {
		t.Fatalf("templates = %+v", cfg.Templates)
	}
	up, env := cfg.Templates[0], cfg.Templates[1]
	wd, _ := os.Getwd()
	if up.File != src || up.Text == "" || up.Destination != dir+"/out/up.conf" || up.Perms != 0o600 || up.Wait != 250*time.Millisecond || up.Source() != "template.up" || up.ReadsCatalog() == "" {
		t.Errorf("up = %+v", up)
	}
	if env.File != "" || env.Text != "port={{ env \"PORT\" }}\n" || env.Destination != filepath.Join(wd, "rel/env.conf") || env.Perms != 0 || env.ReadsCatalog() != "" {
		t.Errorf("env = %+v", env)
	}
	if !up.Equal(up) || up.Equal(env) || (*Template)(nil).Equal(up) || !(*Template)(nil).Equal(nil) {
		t.Error("Equal")
	}
	c2 := *up
	c2.Text += " "
	if up.Equal(&c2) {
		t.Error("Equal ignores the text: a change of the source file would not reload the template")
	}
}

func TestTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.tmpl")
	if err := os.WriteFile(big, make([]byte, MaxTemplateSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad.tmpl")
	if err := os.WriteFile(badFile, []byte("line 1\n  {{ bad }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.tmpl")
	if err := os.WriteFile(good, []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ src, want string }{
		"no text":        {"template \"t\" {\ndestination = \"/tmp/x\"\n}", `needs its text`},
		"both":           {"template \"t\" {\nsource = \"x\"\ncontents = \"y\"\ndestination = \"/tmp/x\"\n}", `test.hcl:3:1: template "t" sets both`},
		"no destination": {"template \"t\" {\ncontents = \"y\"\n}", `"destination" is required`},
		"missing source": {"template \"t\" {\nsource = \"" + dir + "/nope\"\ndestination = \"/tmp/x\"\n}", `test.hcl:2:10: template "t": cannot read its source`},
		"big source":     {"template \"t\" {\nsource = \"" + big + "\"\ndestination = \"/tmp/x\"\n}", `larger than 1048576 bytes`},
		"dir source":     {"template \"t\" {\nsource = \"" + dir + "\"\ndestination = \"/tmp/x\"\n}", `it is a directory`},
		"perms 0":        {"template \"t\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\nperms = \"0000\"\n}", `unreadable`},
		"bad perms":      {"template \"t\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\nperms = \"rw\"\n}", `not an octal file mode`},
		"bad wait":       {"template \"t\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\nwait = \"soon\"\n}", `not a duration`},
		"dup name":       {"template \"t\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\n}\ntemplate \"t\" {\ncontents = \"y\"\ndestination = \"/tmp/y\"\n}", `defined twice`},
		"dup dest":       {"template \"a\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\n}\ntemplate \"b\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\n}", `template "b" writes /tmp/x, which template "a" writes too`},
		"dest is source": {"template \"a\" {\nsource = \"" + good + "\"\ndestination = \"/tmp/x\"\n}\ntemplate \"b\" {\ncontents = \"y\"\ndestination = \"" + good + "\"\n}", `template "b" would write over the source of template "a"`},
		"dest dir":       {"template \"a\" {\ncontents = \"y\"\ndestination = \"" + dir + "\"\n}", `is a directory`},
		"inline syntax":  {"template \"t\" {\ncontents = <<EOT\nfirst\n  {{ bad }}\nEOT\ndestination = \"/tmp/x\"\n}", `test.hcl:4:3: template "t": bad action`},
		"quoted syntax":  {"template \"t\" {\n  contents = \"x {{ bad }}\"\ndestination = \"/tmp/x\"\n}", `test.hcl:2:17: template "t": bad action`},
		"file syntax":    {"template \"t\" {\nsource = \"" + badFile + "\"\ndestination = \"/tmp/x\"\n}", badFile + `:2:3: template "t": bad action`},
		"needs consul":   {"template \"t\" {\ncontents = \"{{ service \\\"web\\\" }}\"\ndestination = \"/tmp/x\"\n}", `template "t" reads the catalog (service at line 1), but there is no consul {} block`},
		"no template":    {"template \"up\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\n}\njob \"a\" {\nexec = \"x\"\nwhen {\nsource = \"template.upp\"\neach = \"changed\"\n}\n}", `job "a" waits for "template.upp", but there is no template "upp"; did you mean "template.up"?`},
		"template code":  {"template \"up\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\n}\njob \"a\" {\nexec = \"x\"\nwhen {\nsource = \"template.up\"\neach = \"healthy\"\n}\n}", `"template.up" emits only changed`},
		"reserved":       {"job \"template.x\" {\nexec = \"x\"\n}", `reserved for event sources`},
		"bad tmpl name":  {"template \"a b\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\n}", `template name "a b" must start`},
		"unknown key":    {"template \"t\" {\ncontents = \"y\"\ndestination = \"/tmp/x\"\nleft_delim = \"[[\"\n}", `Unsupported argument`},
	}
	refused(t, cases)
}

func TestKVWatches(t *testing.T) {
	cfg, diags := parseT(t, `
consul {}
watch "flags" {
  key = "app/flags"
  dc  = "dc2"
}
watch "conf" {
  prefix = "app/conf/"
}
watch "web" {}
job "a" {
  exec = "x"
  when {
    source = "watch.flags"
    each   = "changed"
  }
}`)
	if cfg == nil {
		t.Fatal(diags)
	}
	flags, conf, web := cfg.Watches[0], cfg.Watches[1], cfg.Watches[2]
	if flags.Key != "app/flags" || flags.Service != "" || flags.DC != "dc2" || !flags.IsKV() || len(flags.Codes()) != 1 {
		t.Errorf("flags = %+v", flags)
	}
	if conf.Prefix != "app/conf/" || conf.Service != "" || !conf.IsKV() {
		t.Errorf("conf = %+v", conf)
	}
	if web.Service != "web" || web.IsKV() || len(web.Codes()) != 3 {
		t.Errorf("web = %+v", web)
	}
	if !flags.Equal(flags) || flags.Equal(conf) || (*Watch)(nil).Equal(flags) {
		t.Error("Equal")
	}

	cases := map[string]struct{ src, want string }{
		"key and service":   {"consul {}\nwatch \"w\" {\nservice = \"x\"\nkey = \"k\"\n}", `test.hcl:4:1: watch "w" sets both "service" and "key"`},
		"key and prefix":    {"consul {}\nwatch \"w\" {\nprefix = \"p\"\nkey = \"k\"\n}", `sets both "key" and "prefix"`},
		"tag on key":        {"consul {}\nwatch \"w\" {\nkey = \"k\"\ntag = \"t\"\n}", `"tag" applies to a watch of a service`},
		"empty key":         {"consul {}\nwatch \"w\" {\nkey = \"\"\n}", `"key" must not be empty`},
		"empty prefix":      {"consul {}\nwatch \"w\" {\nprefix = \"\"\n}", `"prefix" must not be empty`},
		"kv without consul": {"watch \"w\" {\nkey = \"k\"\n}", `test.hcl:1:1: watch "w" follows a key of Consul's KV store, but there is no consul {} block`},
		"healthy of a key":  {"consul {}\nwatch \"w\" {\nkey = \"k\"\n}\njob \"a\" {\nexec = \"x\"\nwhen {\nsource = \"watch.w\"\nonce = \"healthy\"\n}\n}", `"watch.w" emits only changed`},
	}
	refused(t, cases)
}
