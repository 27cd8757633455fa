package containerpilot_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/config/containerpilot"
	"github.com/pilotfish/pilotfish/jobs"
)

// realConfigs are the twelve ContainerPilot files of ../shared (beside the checkout).
const realConfigs = "../../../shared/containerpilot-configs"

func opts(env map[string]string) config.Options {
	return config.Options{Env: env, Kinds: jobs.ConfigKinds()}
}

func read(t *testing.T, name string, src []byte, env map[string]string) (*config.Config, []string) {
	t.Helper()
	cfg, diags := containerpilot.Read(name, src, opts(env))
	return cfg, config.FormatDiagnostics(diags)
}

func mustRead(t *testing.T, src string, env map[string]string) (*config.Config, []string) {
	t.Helper()
	cfg, diags := read(t, "cp.json5", []byte(src), env)
	if cfg == nil {
		t.Fatalf("not valid:\n%s", strings.Join(diags, "\n"))
	}
	return cfg, diags
}

// planBody is a plan without its first line (the path) and its warnings, which name the
// file they come from.
func planBody(cfg *config.Config) string {
	p := config.RenderPlan(cfg, jobs.ConfigKinds(), nil)
	p = p[strings.IndexByte(p, '\n')+1:]
	return p[:strings.Index(p, "\nwarnings:")]
}

func configJSON(t *testing.T, cfg *config.Config) string {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkConversion converts src with env and checks that the HCL validates and gives the same
// configuration and plan as the JSON5 read directly.
func checkConversion(t *testing.T, name string, src []byte, env map[string]string, direct *config.Config) *containerpilot.Conversion {
	t.Helper()
	conv, diags := containerpilot.Convert(name, src, opts(env))
	if conv == nil || conv.Config == nil {
		t.Fatalf("convert %s: %s", name, strings.Join(config.FormatDiagnostics(diags), "\n"))
	}
	cfg, hdiags := config.Parse(name+".hcl", conv.HCL, opts(env))
	if cfg == nil {
		t.Fatalf("the converted HCL is not valid:\n%s\n%s", strings.Join(config.FormatDiagnostics(hdiags), "\n"), conv.HCL)
	}
	if got, want := planBody(cfg), planBody(direct); got != want {
		t.Errorf("%s: the plan of the converted HCL differs:\n--- converted\n%s\n--- json5\n%s\n%s", name, got, want, conv.HCL)
	}
	if got, want := configJSON(t, cfg), configJSON(t, direct); got != want {
		t.Errorf("%s: the converted HCL gives another configuration:\n--- converted\n%s\n--- json5\n%s\n%s", name, got, want, conv.HCL)
	}
	return conv
}

// envs are realistic environments for the templated files: with a Consul agent in the
// container and ACME, and without.
var envs = map[string][]map[string]string{
	"01": {{}, {"CONSUL_DEV": "1"}},
	"03": {{"LOG_LEVEL": "DEBUG"}, {"CONSUL_AGENT": "1", "CONSUL": "consul.svc", "SERVICE_NAME": "db"}},
	"04": {{}, {"CONSUL_AGENT": "1", "CONSUL": "consul.svc", "ACME_DOMAIN": "example.com"}},
	"05": {{"PORT": "8080"}, {"PORT": "3000", "CONSUL": "consul.svc"}},
	"06": {{}, {"CONSUL_AGENT": "1", "REPLICASET": "rs0"}},
	"07": {{}, {"CONSUL_AGENT": "1"}},
	"10": {{"CONSUL_URL": "http://consul:8500", "CONSUL_SERVICE_NAME": "lb"},
		{"CONSUL_URL": "consul:8500", "CONSUL_SERVICE_NAME": "edge", "CONSUL_SERVICE_TAGS": "a,b,c"}},
	"11": {{}, {"CONSUL_AGENT": "1", "ADVERTISE_CIDR": "10.0.0.0/8"}},
}

func TestRealConfigurations(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(realConfigs, "*.json5"))
	if len(files) != 12 {
		t.Skipf("the twelve ContainerPilot configurations are not in %s (found %d)", realConfigs, len(files))
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Base(f)[:2]
		list := envs[key]
		if list == nil {
			list = []map[string]string{{}}
		}
		for _, env := range list {
			cfg, diags := read(t, f, src, env)
			if cfg == nil {
				t.Errorf("%s with %v: not valid:\n%s", f, env, strings.Join(diags, "\n"))
				continue
			}
			for _, d := range diags {
				if !strings.HasPrefix(d, f+":") {
					t.Errorf("%s: a diagnostic that does not name the file: %s", f, d)
				}
			}
			checkConversion(t, f, src, env, cfg)
			checkReal(t, key, env, cfg, diags)
		}
	}
}

// checkReal checks what each real file is known for (SOURCES.md beside them).
func checkReal(t *testing.T, key string, env map[string]string, cfg *config.Config, diags []string) {
	t.Helper()
	all := strings.Join(diags, "\n")
	job := func(name string) *config.Job {
		j := cfg.Job(name)
		if j == nil {
			t.Fatalf("%s: no job %q in %v", key, name, jobNames(cfg))
		}
		return j
	}
	switch key {
	case "01":
		c := job("consul")
		want := "-server"
		if env["CONSUL_DEV"] != "" {
			want = "-dev"
		}
		if !strings.Contains(strings.Join(c.Exec, " "), want) || c.Service.Port != 8500 || c.Service.TTL != 25*time.Second || c.Health.Interval != 10*time.Second {
			t.Errorf("01: consul job %+v", c)
		}
		if w := job("preStop").When; w.Source != "consul" || w.Once != "stopping" {
			t.Errorf("01: preStop %+v", w)
		}
	case "02":
		if cfg.Logging.Level != "debug" || len(cfg.Watches) != 2 || job("onchange-hello").When.Source != "watch.hello" {
			t.Errorf("02: %+v %+v", cfg.Logging, cfg.Watches)
		}
		if !strings.Contains(all, "02-hello-world.json5:48:7: warning: a watch's interval") {
			t.Errorf("02: no warning for the watch's interval at its line:\n%s", all)
		}
	case "03":
		name := "mysql"
		if env["SERVICE_NAME"] != "" {
			name = env["SERVICE_NAME"]
		}
		if j := job(name); j.Service == nil || j.Service.Port != 3306 {
			t.Errorf("03: %+v", j)
		}
		if s := job("snapshot-check"); s.Timeout != 10*time.Minute || s.When.Interval != 5*time.Minute {
			t.Errorf("03: snapshot-check %+v", s)
		}
		if (cfg.Job("consul-agent") != nil) != (env["CONSUL_AGENT"] != "") {
			t.Errorf("03: consul-agent with %v: %v", env, jobNames(cfg))
		}
	case "04":
		if j := job("nginx-public"); !j.RegistrationOnly() || j.Service.Port != 80 || j.Health == nil {
			t.Errorf("04: nginx-public %+v", j)
		}
		if j := job("sensor"); j.Timeout != 5*time.Second {
			t.Errorf("04: the sensor's run timeout is %s, want its interval", j.Timeout)
		}
		if env["ACME_DOMAIN"] != "" {
			if !strings.Contains(all, `job "nginx-public-ssl" is given twice (first at line 43)`) {
				t.Errorf("04: no warning for the job given twice:\n%s", all)
			}
			if h := job("nginx-public-ssl").Health.Exec; !strings.Contains(strings.Join(h, " "), "example.com") {
				t.Errorf("04: the last nginx-public-ssl should win: %q", h)
			}
		}
	case "05":
		if j := job("frontend"); strconv.Itoa(j.Service.Port) != env["PORT"] {
			t.Errorf("05: %+v", j)
		}
		if cfg.Telemetry == nil || cfg.Telemetry.Metrics[0].Name != "example_frontend_free_memory" || cfg.Telemetry.Listen != "0.0.0.0:9090" {
			t.Errorf("05: telemetry %+v", cfg.Telemetry)
		}
	case "07":
		if w := job("nats-onchange").When; w.Source != "watch.nats" || w.Once != "changed" {
			t.Errorf("07: %+v", w)
		}
	case "08":
		if h := job("consul").Health; h.Timeout != 5*time.Second || h.Interval != 20*time.Second {
			t.Errorf("08: %+v", h)
		}
	case "09":
		if w := job("app").When; w.Timeout != 60*time.Second || cfg.Logging.Format != "json" {
			t.Errorf("09: %+v", w)
		}
	case "10":
		j := job(env["CONSUL_SERVICE_NAME"])
		if j.Service.DeregisterCriticalAfter != 10*time.Minute || (env["CONSUL_SERVICE_TAGS"] != "") != (len(j.Service.Tags) == 3) {
			t.Errorf("10: %+v", j.Service)
		}
	case "11":
		if strings.Join(job("prometheus").Service.Interfaces, ",") != strings.Join([]string{pick(env["ADVERTISE_CIDR"], "inet"), "inet6"}, ",") {
			t.Errorf("11: %+v", job("prometheus").Service)
		}
	case "12":
		if cfg.StopTimeout != 5*time.Second || job("serviceB").Service.TTL != 103*time.Second || job("serviceB").Health.Timeout != 2*time.Second {
			t.Errorf("12: %+v", cfg)
		}
		if w := job("postStop").When; w.Once != "stopped" || cfg.Watches[0].Tag != "dev" || cfg.Telemetry.Metrics[0].Name != "org_app_zed" {
			t.Errorf("12: %+v", w)
		}
	}
}

var spaces = regexp.MustCompile(` +`)

// hasText reports whether the HCL holds want, whatever the alignment of its = signs.
func hasText(hclText []byte, want string) bool {
	return strings.Contains(spaces.ReplaceAllString(string(hclText), " "), spaces.ReplaceAllString(want, " "))
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func jobNames(cfg *config.Config) []string {
	var out []string
	for _, j := range cfg.Jobs {
		out = append(out, j.Name)
	}
	return out
}

// everyKey uses every key of ContainerPilot 3's documentation.
const everyKey = `{
  consul: {
    address: "consul.example.com:8500",
    scheme: "https",
    token: "{{ .TOKEN }}",
    tls: {
      cafile: "ca.crt",
      clientcert: "client.crt",
      clientkey: "client.key",
      servername: "consul.example.com",
      verify: true,
    }
  },
  logging: { level: "WARN", format: "json", output: "stderr" },
  stopTimeout: 20,
  control: { socket: "/tmp/cp.sock" },
  jobs: [
    {
      name: "app",
      exec: "/bin/app --port {{ .PORT | default "80" }}",
      port: 80,
      interfaces: ["eth0", "eth1[1]", "10.0.0.0/8", "static:192.0.2.7"],
      tags: ["app", "prod"],
      initial_status: "warning",
      consul: { enableTagOverride: true, deregisterCriticalServiceAfter: "10m" },
      health: { exec: ["/usr/bin/curl", "--fail", "http://localhost/"], interval: 5, ttl: 10, timeout: "2s" },
      when: { source: "setup", once: "exitSuccess", timeout: "60s" },
      restarts: "unlimited",
      stopTimeout: "10s",
      logging: { raw: true },
    },
    { name: "setup", exec: ["/bin/setup"], restarts: 2, timeout: "30s" },
    { name: "tick", exec: "/bin/tick", when: { interval: "1500ms" } },
    { name: "reload", exec: "/bin/reload", when: { source: "watch.db", each: "changed" } },
    { name: "drain", exec: "/bin/drain", when: { source: "app", once: "stopping" } },
    { name: "passive", port: 9000, health: { exec: "/bin/check", interval: 10, ttl: 30 } },
  ],
  watches: [ { name: "db", interval: 3, tag: "primary", dc: "dc2" } ],
  telemetry: {
    port: 9100,
    interfaces: ["eth0"],
    tags: ["metrics"],
    metrics: [ { namespace: "shop", subsystem: "orders", name: "total", help: "Orders", type: "counter" } ]
  }
}`

func TestEveryKey(t *testing.T) {
	cfg, diags := mustRead(t, everyKey, map[string]string{"TOKEN": "s3cret", "PORT": "8080"})
	all := strings.Join(diags, "\n")
	if cfg.StopTimeout != 20*time.Second || cfg.Control.Socket != "/tmp/cp.sock" || cfg.Logging.Level != "warn" || cfg.Logging.Format != "json" {
		t.Errorf("top level: %+v", cfg)
	}
	if c := cfg.Consul; c.Address != "consul.example.com:8500" || c.Scheme != "https" || c.Token != "s3cret" || c.TLS.CAFile != "ca.crt" ||
		c.TLS.CertFile != "client.crt" || c.TLS.KeyFile != "client.key" || c.TLS.ServerName != "consul.example.com" || c.TLS.InsecureSkipVerify {
		t.Errorf("consul: %+v %+v", c, c.TLS)
	}
	app := cfg.Job("app")
	if strings.Join(app.Exec, " ") != "/bin/app --port 8080" || app.Restarts != config.Unlimited || app.StopTimeout != 10*time.Second || app.Logging.Prefix {
		t.Errorf("app: %+v", app)
	}
	if s := app.Service; s.Port != 80 || len(s.Interfaces) != 4 || strings.Join(s.Tags, ",") != "app,prod" || s.TTL != 10*time.Second ||
		s.DeregisterCriticalAfter != 10*time.Minute || !s.EnableTagOverride {
		t.Errorf("app service: %+v", s)
	}
	if h := app.Health; h.Interval != 5*time.Second || h.Timeout != 2*time.Second || h.Failures != 1 || h.Exec[0] != "/usr/bin/curl" {
		t.Errorf("app health: %+v", h)
	}
	if w := app.When; w.Source != "setup" || w.Once != "exitSuccess" || w.Timeout != time.Minute {
		t.Errorf("app when: %+v", w)
	}
	if s := cfg.Job("setup"); s.Restarts != 2 || s.Timeout != 30*time.Second {
		t.Errorf("setup: %+v", s)
	}
	if j := cfg.Job("tick"); j.When.Interval != 1500*time.Millisecond || j.Timeout != 1500*time.Millisecond || j.Restarts != 0 {
		t.Errorf("tick: %+v %+v", j, j.When)
	}
	if w := cfg.Job("reload").When; w.Source != "watch.db" || w.Each != "changed" {
		t.Errorf("reload: %+v", w)
	}
	if hooks := cfg.Hooks()["app"]; len(hooks) != 1 || hooks[0] != "drain" {
		t.Errorf("hooks of app: %v", hooks)
	}
	if p := cfg.Job("passive"); !p.RegistrationOnly() || p.Service.Port != 9000 || p.Service.TTL != 30*time.Second {
		t.Errorf("passive: %+v", p)
	}
	if w := cfg.Watches[0]; w.Name != "db" || w.Service != "db" || w.Tag != "primary" || w.DC != "dc2" || w.Source() != "watch.db" {
		t.Errorf("watch: %+v", w)
	}
	if tm := cfg.Telemetry; tm.Listen != "0.0.0.0:9100" || !tm.Register || tm.Metrics[0].Name != "shop_orders_total" || tm.Metrics[0].Type != "counter" || tm.Metrics[0].Help != "Orders" {
		t.Errorf("telemetry: %+v", tm)
	}
	for _, want := range []string{
		"cp.json5:24:7: warning: initial_status has no equivalent",
		"cp.json5:38:28: warning: a watch's interval has no equivalent",
		"cp.json5:41:5: warning: telemetry.interfaces has no equivalent",
		"cp.json5:42:5: warning: telemetry.tags has no equivalent",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	conv := checkConversion(t, "cp.json5", []byte(everyKey), map[string]string{"TOKEN": "s3cret", "PORT": "8080"}, cfg)
	for _, want := range []string{
		`token   = env.TOKEN`,
		`exec = "/bin/app --port ${env("PORT", "80")}"`,
		"# warning: initial_status has no equivalent",
		`timeout  = "1.5s"`,
	} {
		if !hasText(conv.HCL, want) {
			t.Errorf("converted HCL lacks %q:\n%s", want, conv.HCL)
		}
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	src := `{
  consul: "localhost:8500",
  colour: "blue",
  jobs: [
    {
      name: "app",
      exec: "/bin/app",
      helth: { exec: "true" },
      when: { source: "x", once: "exitSuccess", after: 3 },
    },
    { name: "x", exec: "true" },
  ],
  watches: [ { name: "db", polling: 3 } ],
}`
	_, diags := mustRead(t, src, nil)
	all := strings.Join(diags, "\n")
	for _, want := range []string{
		`cp.json5:3:3: warning: unknown key "colour" in the configuration`,
		`cp.json5:8:7: warning: unknown key "helth" in a job`,
		`cp.json5:9:49: warning: unknown key "after" in when`,
		`cp.json5:13:28: warning: unknown key "polling" in a watch`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
}

// TestMalformedFiles checks that every kind of broken file is reported at the line of the
// original file the user has to fix.
func TestMalformedFiles(t *testing.T) {
	cases := []struct {
		name, src string
		env       map[string]string
		want      string
	}{
		{"template syntax", "{\n  consul: \"x:1\",\n  jobs: [\n    { name: \"a\", exec: \"{{ .CMD \" }\n  ]\n}", nil,
			`cp.json5:4:.*: Template error`},
		{"unclosed if", "{\n  jobs: [\n  {{ if .X }}\n    { name: \"a\", exec: \"true\" }\n  ]\n}", nil,
			`cp.json5:\d+:\d+: Template error: .*unexpected EOF`},
		{"function error at run time", "{\n  jobs: [\n    {{ range loop \"many\" }}{{ end }}\n  ]\n}", nil,
			`cp.json5:3:\d+: Template error: .*loop`},
		{"string broken across lines", "{\n  consul: \"x:1\",\n  jobs: [\n    { name: \"a\",\n      exec: \"/bin/app\n --flag\" }\n  ]\n}", nil,
			`cp.json5:5:\d+: Invalid JSON5: .*string literal.*must end on the line`},
		{"missing comma after rendering", "{\n  jobs: [\n    {\n      name: 'a',\n      exec: 'true'\n      {{ if .AGENT }},\n      when: { source: 'b', once: 'healthy' }{{ end }}\n    },\n    { name: 'b', exec: 'true' }\n    {{ if .AGENT }},{{ end }}\n    { name: 'c', exec: 'true' }\n  ]\n}", nil,
			`cp.json5:11:5: Invalid JSON5: invalid character '\{' after array element: is a comma missing after line 9`},
		{"missing comma in the file", "{\n  consul: 'x:1'\n  jobs: []\n}", nil,
			`cp.json5:3:3: Invalid JSON5: .*is a comma missing after line 2`},
		{"unquoted value unset", "{\n  jobs: [\n    {\n      name: 'a',\n      port: {{ .PORT }},\n      exec: 'x' } ]\n}", nil,
			`cp.json5:5:\d+: Invalid JSON5`},
		{"error after an if block", "{\n  consul: 'x:1',\n  jobs: [\n    {{ if .A }}\n    { name: 'one', exec: 'true' },\n    { name: 'two', exec: 'true' },\n    {{ end }}\n    { name: 'app', exec: 'true', when: { source: 'nope', once: 'exitSuccess' } }\n  ]\n}",
			map[string]string{"A": "1"}, `cp.json5:8:\d+: job "app" waits for "nope"`},
		{"bad value", "{\n  jobs: [ { name: 'a', exec: 'x',\n    restarts: 'often' } ]\n}", nil,
			`cp.json5:3:15: restarts must be`},
		{"NUL byte", "{\n  jobs: []\x00\n}", nil, `cp.json5:2:11: Invalid file: .*NUL`},
	}
	for _, c := range cases {
		cfg, diags := read(t, "cp.json5", []byte(c.src), c.env)
		all := strings.Join(diags, "\n")
		if cfg != nil || !regexp.MustCompile(c.want).MatchString(all) {
			t.Errorf("%s: got\n%s\nwant %s", c.name, all, c.want)
		}
	}
}

// recursion is a chain of templates that each call the next twice: 2^n calls.
func recursion(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{{ define "t%d" }}{{ template "t%d" }}{{ template "t%d" }}{{ end }}`, i, i+1, i+1)
	}
	fmt.Fprintf(&b, `{{ define "t%d" }}{{ end }}{ consul: "{{ template "t0" }}" }`, n)
	return b.String()
}

// TestHostileTemplates: a template that would work forever or build huge strings is a
// diagnostic, soon.
func TestHostileTemplates(t *testing.T) {
	cases := map[string]string{
		"nested loops":       `{ jobs: [ {{ range loop 10000 }}{{ range loop 10000 }}{{ range loop 10000 }}{{ end }}{{ end }}{{ end }} ] }`,
		"big loop":           `{ jobs: [ {{ range loop 100000000 }}{{ end }} ] }`,
		"range integer":      `{ jobs: [ {{ range 2000000000 }}{{ end }} ] }`,
		"wide printf":        `{ consul: "{{ printf "%999999999d" 1 }}" }`,
		"doubling":           `{ consul: "{{ $a := printf "%900000s" "" }}` + strings.Repeat(`{{ $a = printf "%s%s" $a $a }}`, 40) + `" }`,
		"template recursion": recursion(30),
		"replace blowup":     `{ consul: "{{ replaceAll "" (printf "%100000s" "") (printf "%100000s" "") }}" }`,
		"deep json":          strings.Repeat("[", 100000),
		"deep template":      strings.Repeat("{{ if 1 }}", 1000),
		"output":             `{ consul: "{{ range loop 10000 }}` + strings.Repeat("x", 1000) + `{{ end }}" }`,
	}
	for name, src := range cases {
		start := time.Now()
		cfg, diags := read(t, "cp.json5", []byte(src), nil)
		if took := time.Since(start); cfg != nil || took > 2*config.EvalTimeout {
			t.Errorf("%s: config %v after %s: %v", name, cfg != nil, took, diags)
		}
		t.Logf("%s: %s: %v", name, time.Since(start), diags)
		if len(diags) == 0 || !strings.HasPrefix(diags[0], "cp.json5:") {
			t.Errorf("%s: %v", name, diags)
		}
	}
}

// TestLoopsWork: ContainerPilot's documented loop builds watches from the environment.
func TestLoopsWork(t *testing.T) {
	src := `{
  consul: 'localhost:8500',
  watches: [
    {{ range $i := loop 0 5 -}}{{ if (env (printf "SERVICE_NAME_%d" $i)) -}}
    {
      name: "{{ (env (printf "SERVICE_NAME_%d" $i)) }}",
      interval: {{ (env (printf "SERVICE_INTERVAL_%d" $i)) | default 10 }}
    },
    {{- end }}{{- end }}
  ],
  jobs: [ {{ range $i, $n := split "," .WORKERS }}{{ if $i }},{{ end }}{ name: 'w{{ $n }}', exec: 'work {{ $n }}' }{{ end }} ],
}`
	env := map[string]string{"SERVICE_NAME_1": "db", "SERVICE_NAME_3": "cache", "SERVICE_INTERVAL_3": "4", "WORKERS": "1,2,3"}
	cfg, _ := mustRead(t, src, env)
	if len(cfg.Watches) != 2 || cfg.Watches[0].Name != "db" || cfg.Watches[1].Name != "cache" || len(cfg.Jobs) != 3 || cfg.Job("w2").Exec[1] != "2" {
		t.Fatalf("%+v %v", cfg.Watches, jobNames(cfg))
	}
	checkConversion(t, "cp.json5", []byte(src), env, cfg)
}

func TestConvertExpressions(t *testing.T) {
	src := `{
  consul: '{{ .CONSUL | default "consul" }}:8500',
  jobs: [
    {
      name: '{{ .NAME | default "app" }}',
      exec: ['/bin/app', '--dc', '{{ .DC }}'],
      port: {{ .PORT }},
      {{ if .EXTRA }}tags: ['extra'],{{ end }}
      health: { exec: 'curl -f http://localhost:{{ .PORT }}/', interval: 5, ttl: 15 },
    },
  ],
}`
	env := map[string]string{"PORT": "8080", "DC": "dc1", "EXTRA": "yes"}
	direct, _ := mustRead(t, src, env)
	conv := checkConversion(t, "cp.json5", []byte(src), env, direct)
	hclText := string(conv.HCL)
	for _, want := range []string{
		`address = "${env("CONSUL", "consul")}:8500"`,
		`job "app" {`, // a label is rendered
		`exec = ["/bin/app", "--dc", env.DC]`,
		`port = env.PORT`,
		`exec     = "curl -f http://localhost:${env.PORT}/"`,
		`tags = ["extra"]`,
		`#   EXTRA="yes"`,
		`#   NAME (unset)`,
	} {
		if !hasText([]byte(hclText), want) {
			t.Errorf("converted HCL lacks %q:\n%s", want, hclText)
		}
	}
	// The converted file follows the environment of each load, as the JSON5 did.
	env2 := map[string]string{"PORT": "9000", "DC": "dc2", "EXTRA": "yes"}
	cfg, diags := config.Parse("c.hcl", conv.HCL, opts(env2))
	if cfg == nil || cfg.Job("app").Service.Port != 9000 || cfg.Job("app").Exec[2] != "dc2" {
		t.Fatalf("%v %v", cfg, diags)
	}
	// A value that would change the file's structure is rendered, not an expression.
	src2 := `{ consul: 'x:1', jobs: [ { name: 'a', exec: 'true', port: {{ .PORT }} } ] }`
	env3 := map[string]string{"PORT": "80, tags: ['x']"}
	direct2, _ := mustRead(t, src2, env3)
	conv2 := checkConversion(t, "cp.json5", []byte(src2), env3, direct2)
	if !strings.Contains(string(conv2.HCL), `port = 80`) || !strings.Contains(string(conv2.HCL), `tags = ["x"]`) {
		t.Errorf("%s", conv2.HCL)
	}
}

func TestExecSplitLikeContainerPilot(t *testing.T) {
	src := `{ jobs: [
  { name: 'a', exec: 'curl --header "Host: x" http://localhost/' },
  { name: 'b', exec: 'sh -c  true' },
  { name: 'c', exec: 'plain words here' },
] }`
	cfg, diags := mustRead(t, src, nil)
	if got := cfg.Job("a").Exec; strings.Join(got, "|") != `curl|--header|"Host:|x"|http://localhost/` {
		t.Errorf("a: %q", got)
	}
	if got := cfg.Job("b").Exec; strings.Join(got, "|") != "sh|-c|true" {
		t.Errorf("b: %q", got)
	}
	all := strings.Join(diags, "\n")
	if !strings.Contains(all, "cp.json5:2:22: warning: exec: ContainerPilot split this command at every space") ||
		!strings.Contains(all, "cp.json5:3:22: warning: exec: ContainerPilot passed an empty argument") {
		t.Errorf("%s", all)
	}
	conv := checkConversion(t, "cp.json5", []byte(src), nil, cfg)
	if !strings.Contains(string(conv.HCL), `exec = "plain words here"`) {
		t.Errorf("%s", conv.HCL)
	}
}

func TestContainerPilotSemantics(t *testing.T) {
	src := `{
  consul: 'localhost:8500',
  jobs: [
    { name: 'once', exec: '/bin/x', restarts: 'never', when: { interval: '5s' } },
    { name: 'thrice', exec: '/bin/x', restarts: 2, when: { interval: '5s' } },
    { name: 'hup', exec: '/bin/x', when: { source: 'SIGHUP' , each: 'SIGHUP' } },
    { exec: '/usr/local/bin/worker --fast' },
  ],
}`
	cfg, diags := mustRead(t, src, nil)
	all := strings.Join(diags, "\n")
	if j := cfg.Job("once"); j.When != nil || j.Timeout != 0 {
		t.Errorf("an interval job with restarts never runs once: %+v", j)
	}
	if j := cfg.Job("thrice"); j.When.Interval != 5*time.Second || j.Restarts != 0 || !strings.Contains(all, "ran the job 3 times in all") {
		t.Errorf("thrice: %+v\n%s", j, all)
	}
	if w := cfg.Job("hup").When; w.Source != "global" || w.Each != "reload" {
		t.Errorf("SIGHUP: %+v", w)
	}
	if cfg.Job("worker") == nil || !strings.Contains(all, `pilotfish names it "worker"`) {
		t.Errorf("unnamed job: %v\n%s", jobNames(cfg), all)
	}
	if cfg.Control.Socket != containerpilot.DefaultSocket {
		t.Errorf("socket %q", cfg.Control.Socket)
	}
	_, diags = read(t, "cp.json5", []byte(`{ jobs: [ { name: 'a', exec: 'x', when: { source: 'SIGUSR2', each: 'x' } } ] }`), nil)
	if !strings.Contains(strings.Join(diags, "\n"), "cp.json5:1:51: a job triggered by SIGUSR2 has no equivalent") {
		t.Errorf("%v", diags)
	}
}

func TestSocketAndRender(t *testing.T) {
	s, diags := containerpilot.Socket("cp.json5", []byte(`{ control: { socket: '{{ .DIR }}/cp.sock' }, jobs: 3 }`), map[string]string{"DIR": "/run"})
	if s != "/run/cp.sock" || diags.HasErrors() {
		t.Errorf("%q %v", s, diags)
	}
	s, _ = containerpilot.Socket("cp.json5", []byte(`{}`), nil)
	if s != containerpilot.DefaultSocket {
		t.Errorf("%q", s)
	}
	out, diags := containerpilot.Render("cp.json5", []byte("{ a: '{{ .X | default \"y\" }}' }{{/* c */}}"), nil)
	if string(out) != "{ a: 'y' }" || diags.HasErrors() {
		t.Errorf("%q %v", out, diags)
	}
}

// TestDiagnosticsPointIntoTheOriginal: a diagnostic of the HCL loader lands on the line of
// the JSON5 the item came from, whatever the template added or removed above it.
func TestDiagnosticsPointIntoTheOriginal(t *testing.T) {
	src := "{\n  {{ if .A }}\n  consul: 'x:1',\n  {{ end }}\n  jobs: [\n    { name: 'a', exec: 'true', port: 80, health: { exec: 'true', interval: 5, ttl: 10 } },\n    { name: 'global', exec: 'true' },\n  ]\n}"
	_, diags := read(t, "cp.json5", []byte(src), nil)
	all := strings.Join(diags, "\n")
	if !strings.Contains(all, "cp.json5:7:5: job name \"global\" is reserved") {
		t.Errorf("%s", all)
	}
	if !strings.Contains(all, "cp.json5:6:") || !strings.Contains(all, "no consul {} block") {
		t.Errorf("%s", all)
	}
	var _ hcl.Diagnostics
}
