package config

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/events"
)

// testKind stands in for package jobs' exec kind: no extra keys, emits process events.
type testKind struct{ exec ExecRule }

func (testKind) Schema() *hcl.BodySchema { return &hcl.BodySchema{} }
func (k testKind) ExecRule() ExecRule    { return k.exec }
func (testKind) Decode(d *Decoder, j *Job, c *hcl.BodyContent) {
	if j.Overlap == "" {
		j.Overlap = OverlapRestart
	}
}
func (testKind) Emits(*Job) []events.Code {
	return []events.Code{events.Started, events.ExitSuccess, events.ExitFailed}
}

var kinds = map[string]Kind{"exec": testKind{}, "hook": testKind{exec: ExecForbidden}}

func parse(t *testing.T, src string, env map[string]string) (*Config, []string) {
	t.Helper()
	// Not the time budget: a loaded machine must not make these fail (TestEvaluationTime).
	cfg, diags := Parse("test.hcl", []byte(src), Options{Env: env, Kinds: kinds, evalTimeout: time.Minute})
	return cfg, FormatDiagnostics(diags)
}

func mustParse(t *testing.T, src string, env map[string]string) *Config {
	t.Helper()
	cfg, diags := parse(t, src, env)
	if cfg == nil {
		t.Fatalf("unexpected errors:\n%s", strings.Join(diags, "\n"))
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, `job "app" { exec = "/bin/app" }`, nil)
	if cfg.StopTimeout != 10*time.Second || cfg.Control.Socket != DefaultSocket || cfg.Control.Mode != 0o600 {
		t.Fatalf("top-level defaults: %+v", cfg)
	}
	j := cfg.Job("app")
	if j.Kind != "exec" || j.Restarts != 0 || j.StopSignal != syscall.SIGTERM || j.StopTimeout != 5*time.Second ||
		j.Backoff.Initial != 500*time.Millisecond || j.Backoff.Max != 30*time.Second || !j.Logging.Prefix || j.Logging.Color != "auto" {
		t.Fatalf("job defaults: %+v", j)
	}
}

func TestFullJob(t *testing.T) {
	cfg := mustParse(t, `
stop_timeout = "20s"
exit_on_failure = true
control {
  socket = "/tmp/x.sock"
  mode   = "0660"
}
logging {
  level  = "DEBUG"
  format = "json"
}
job "db" {
  exec = ["postgres", "-D", "/data"]
  health {
    tcp      = "127.0.0.1:5432"
    interval = "1s"
    grace    = "3s"
  }
}
job "app" {
  exec         = "/bin/app --port ${env.PORT} --name 'my app'"
  dir          = "/srv"
  user         = "nobody"
  env          = { MODE = "prod", DSN = "host=db user=app password=a=b" }
  restarts     = 5
  backoff      = { initial = "100ms", max = "2s" }
  stop_signal  = "INT"
  stop_timeout = 3
  when {
    source  = "db"
    once    = "healthy"
    timeout = "1m"
  }
  logging {
    prefix = false
    color  = "green"
    file   = "/tmp/app.log"
    rotate = { size = "1MB", keep = 2, compress = true }
  }
}
job "tick" {
  exec     = "date"
  restarts = "unlimited"
  when {
    interval = "30s"
  }
}
job "both" {
  exec = "true"
  when {
    after   = { db = "healthy", app = "started" }
    timeout = "2m"
  }
}
job "coalesce" {
  exec = "true"
  when {
    any      = { db = "unhealthy", "app" = "exitFailed" }
    debounce = "1s"
  }
}
job "drain" {
  exec = "true"
  when {
    source = "app"
    each   = "stopping"
  }
}
`, map[string]string{"PORT": "8080"})
	if cfg.StopTimeout != 20*time.Second || !cfg.ExitOnFailure || cfg.Control.Mode != 0o660 || cfg.Logging.Level != "debug" || cfg.Logging.Format != "json" {
		t.Fatalf("top level: %+v", cfg)
	}
	app := cfg.Job("app")
	want := []string{"/bin/app", "--port", "8080", "--name", "my app"}
	if strings.Join(app.Exec, "|") != strings.Join(want, "|") {
		t.Fatalf("exec %q", app.Exec)
	}
	if app.Env["DSN"] != "host=db user=app password=a=b" {
		t.Fatalf("env value cut: %q", app.Env["DSN"])
	}
	if app.Restarts != 5 || app.Backoff.Initial != 100*time.Millisecond || app.StopSignal != syscall.SIGINT || app.StopTimeout != 3*time.Second {
		t.Fatalf("app: %+v", app)
	}
	if app.When.Source != "db" || app.When.Once != events.Healthy || app.When.Timeout != time.Minute {
		t.Fatalf("when: %+v", app.When)
	}
	if app.Logging.Prefix || app.Logging.Rotate.Size != 1<<20 || app.Logging.Rotate.Keep != 2 || !app.Logging.Rotate.Compress {
		t.Fatalf("logging: %+v %+v", app.Logging, app.Logging.Rotate)
	}
	if cfg.Job("tick").Restarts != Unlimited || cfg.Job("tick").When.Interval != 30*time.Second {
		t.Fatalf("tick: %+v", cfg.Job("tick"))
	}
	if a := cfg.Job("both").When.After; len(a) != 2 || a[0] != (Trigger{Source: "db", Code: events.Healthy, Range: a[0].Range}) || a[1].Source != "app" {
		t.Fatalf("after: %+v", a)
	}
	if a := cfg.Job("coalesce").When; len(a.Any) != 2 || a.Debounce != time.Second {
		t.Fatalf("any: %+v", a)
	}
	if h := cfg.Hooks()["app"]; len(h) != 1 || h[0] != "drain" {
		t.Fatalf("hooks: %v", cfg.Hooks())
	}
	deps := cfg.Dependencies()
	if strings.Join(deps["both"], ",") != "app,db" || len(deps["drain"]) != 0 {
		t.Fatalf("deps: %v", deps)
	}
	order := cfg.StartOrder()
	if strings.Join(order[0], ",") != "db,tick,drain" || strings.Join(order[1], ",") != "app" || strings.Join(order[2], ",") != "both,coalesce" {
		t.Fatalf("start order: %v", order)
	}
	stop := cfg.ShutdownOrder()
	if strings.Join(stop[0], ",") != "tick,both,coalesce" || strings.Join(stop[1], ",") != "app" || strings.Join(stop[2], ",") != "db,drain" {
		t.Fatalf("shutdown order: %v", stop)
	}
}

func TestEnvFunctionAndStdlib(t *testing.T) {
	cfg := mustParse(t, `
job "a" {
  exec = ["echo", env("MISSING", "fallback"), upper(env.NAME), env("EQ")]
}`, map[string]string{"NAME": "x", "EQ": "A=b=c"})
	if got := strings.Join(cfg.Job("a").Exec, "|"); got != "echo|fallback|X|A=b=c" {
		t.Fatalf("exec %q", got)
	}
}

// docs/guarantees.md#6: values containing '=' and spaces survive intact.
func TestValuesWithEqualsSurvive(t *testing.T) {
	cfg := mustParse(t, `
job "a" {
  exec = ["/bin/app", env.OPTS]
  env  = { A = "b=c", B = "${env.OPTS}" }
}`, map[string]string{"OPTS": "--x=1 --y=2"})
	j := cfg.Job("a")
	if j.Exec[1] != "--x=1 --y=2" || j.Env["A"] != "b=c" || j.Env["B"] != "--x=1 --y=2" {
		t.Fatalf("values changed: %q %v", j.Exec, j.Env)
	}
}

// An unset ${env.NAME} is "" with a warning, as a shell would have it.
func TestUnsetEnvIsEmpty(t *testing.T) {
	cfg, diags := parse(t, `
job "a" {
  exec = "/bin/app --port ${env.PORT} --x"
}`, map[string]string{"OTHER": "1"})
	if cfg == nil || strings.Join(cfg.Job("a").Exec, "|") != "/bin/app|--port|--x" {
		t.Fatalf("config %v, diags %v", cfg, diags)
	}
	if len(diags) != 1 || !strings.Contains(diags[0], "test.hcl:3:29: warning: environment variable PORT is not set") {
		t.Fatalf("diags %v", diags)
	}
}

func TestJSONSyntax(t *testing.T) {
	cfg, diags := Parse("c.json", []byte(`{
  "stop_timeout": "3s",
  "job": {
    "db":  {"exec": ["db"], "health": {"exec": ["true"]}},
    "app": {"exec": "app --x 'a b'", "when": {"source": "db", "once": "healthy"}}
  }
}`), Options{Kinds: kinds})
	if cfg == nil {
		t.Fatal(FormatDiagnostics(diags))
	}
	if cfg.StopTimeout != 3*time.Second || strings.Join(cfg.Job("app").Exec, "|") != "app|--x|a b" || cfg.Job("app").When.Once != events.Healthy {
		t.Fatalf("json: %+v", cfg.Job("app"))
	}
}

// Every error comes at once, each with FILE:LINE:COL.
func TestAllErrorsAtOnce(t *testing.T) {
	_, diags := parse(t, `
job "a" {
  exec     = "x"
  restart  = 3
  stop_timeout = "5 parsecs"
  restarts = true
}
job "b" {
  exec = 42
  when {
    source = "nosuch"
    once   = "healthy"
  }
}
job "c" {
  exec = "c"
  when {
    source = "a"
    once   = "healthy"
  }
}
`, nil)
	want := []string{
		`test.hcl:4:3: Unsupported argument`,
		`test.hcl:5:18: Invalid duration`,
		`test.hcl:6:14: "restarts" must be`,
		`test.hcl:11:14: job "b" waits for "nosuch"`,
		`test.hcl:18:14: job "c" waits for a.healthy, which can never happen`,
	}
	joined := strings.Join(diags, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing %q in:\n%s", w, joined)
		}
	}
}

func TestErrors(t *testing.T) {
	cases := map[string]struct{ src, want string }{
		"syntax":          {`job "a" { exec = [ }`, "test.hcl:1:"},
		"unknown block":   {`jobs "a" {}`, `Unsupported block type`},
		"missing exec":    {`job "a" {}`, `needs "exec"`},
		"exec forbidden":  {"job \"a\" {\nkind = \"hook\"\nexec = \"x\"\n}", `runs no command`},
		"unknown kind":    {`job "a" {` + "\n" + `kind = "nope"` + "\n" + `}`, `"nope" is not a job kind`},
		"empty exec":      {`job "a" { exec = "" }`, `must name a program`},
		"unclosed quote":  {`job "a" { exec = "echo 'x" }`, `single quote is not closed`},
		"dup job":         {"job \"a\" { exec = \"x\" }\njob \"a\" { exec = \"y\" }", `defined twice`},
		"bad name":        {`job "a b" { exec = "x" }`, `must start with a letter`},
		"reserved name":   {`job "global" { exec = "x" }`, `reserved`},
		"two forms":       {"job \"a\" {\nexec = \"x\"\nwhen {\ninterval = \"1s\"\nsource = \"b\"\neach = \"started\"\n}\n}", `exactly one of`},
		"once and each":   {"job \"b\" { exec = \"x\" }\njob \"a\" {\nexec = \"x\"\nwhen {\nsource = \"b\"\nonce = \"started\"\neach = \"started\"\n}\n}", `exactly one of "once" or "each"`},
		"bad code":        {"job \"b\" { exec = \"x\" }\njob \"a\" {\nexec = \"x\"\nwhen {\nsource = \"b\"\nonce = \"ready\"\n}\n}", `"ready" is not an event code`},
		"self trigger":    {"job \"a\" {\nexec = \"x\"\nwhen {\nsource = \"a\"\neach = \"exitFailed\"\n}\n}", `own events`},
		"cycle":           {"job \"a\" {\nexec = \"x\"\nwhen {\nsource = \"b\"\nonce = \"started\"\n}\n}\njob \"b\" {\nexec = \"x\"\nwhen {\nsource = \"a\"\nonce = \"started\"\n}\n}", `trigger cycle: a → b → a`},
		"timer nobody":    {"job \"b\" { exec = \"x\" }\njob \"a\" {\nexec = \"x\"\nwhen {\nsource = \"b\"\nonce = \"timerExpired\"\n}\n}", `needs a when.timeout`},
		"global code":     {"job \"a\" {\nexec = \"x\"\nwhen {\nsource = \"global\"\nonce = \"started\"\n}\n}", `can never happen`},
		"unknown watch":   {"job \"a\" {\nexec = \"x\"\nwhen {\nsource = \"watch.db\"\neach = \"changed\"\n}\n}", `no watch "db"`},
		"watch no consul": {"watch \"db\" {}\njob \"a\" {\nexec = \"x\"\nwhen {\nsource = \"watch.db\"\neach = \"changed\"\n}\n}", `can never happen without Consul`},
		"world socket":    {"control {\nmode = \"0666\"\n}", `must not be reachable by others`},
		"bad signal":      {"job \"a\" {\nexec = \"x\"\nstop_signal = \"SIGNOPE\"\n}", `not a signal name`},
		"unset env var":   {`job "a" { exec = "${env.NOPE}" }`, `must name a program`},
		"two probes":      {"job \"a\" {\nexec = \"x\"\nhealth {\nhttp = \"http://x\"\ntcp = \"x:1\"\n}\n}", `exactly one probe`},
		"bad regex":       {"job \"a\" {\nexec = \"x\"\nhealth {\nlog = \"(\"\n}\n}", `not a valid regular expression`},
		"backoff key":     {"job \"a\" {\nexec = \"x\"\nbackoff = { start = \"1s\" }\n}", `has no key "start"`},
		"bad size":        {"job \"a\" {\nexec = \"x\"\nlogging {\nfile = \"/tmp/x\"\nrotate = { size = \"big\" }\n}\n}", `not a size`},
		"two whens":       {"job \"a\" {\nexec = \"x\"\nwhen {\ninterval = \"1s\"\n}\nwhen {\ninterval = \"2s\"\n}\n}", `only one "when" block`},
		"debounce once":   {"job \"b\" { exec = \"x\" }\njob \"a\" {\nexec = \"x\"\nwhen {\nsource = \"b\"\nonce = \"started\"\ndebounce = \"1s\"\n}\n}", `"debounce" applies to`},
		"bad metric":      {"telemetry {\nmetric \"9bad\" {\ntype = \"counter\"\n}\n}", `not a valid Prometheus metric name`},
		"metric type":     {"telemetry {\nmetric \"ok\" {\ntype = \"meter\"\n}\n}", `"type" must be one of`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, diags := parse(t, c.src, nil)
			if cfg != nil {
				t.Fatalf("accepted; want error containing %q", c.want)
			}
			joined := strings.Join(diags, "\n")
			if !strings.Contains(joined, c.want) {
				t.Fatalf("want %q in:\n%s", c.want, joined)
			}
			for _, d := range diags {
				if !strings.HasPrefix(d, "test.hcl:") {
					t.Fatalf("diagnostic without position: %q", d)
				}
			}
		})
	}
}

func TestMainJob(t *testing.T) {
	cfg, diags := Parse("t.hcl", []byte(`
job "after-main" {
  exec = "x"
  when {
    source = "main"
    once   = "started"
  }
}`), Options{Kinds: kinds, Main: []string{"sh", "-c", "exit 3"}})
	if cfg == nil {
		t.Fatal(FormatDiagnostics(diags))
	}
	m := cfg.Job(MainJob)
	if m == nil || !m.Main || strings.Join(m.Exec, " ") != "sh -c exit 3" {
		t.Fatalf("main job: %+v", m)
	}
	_, diags = Parse("t.hcl", []byte(`job "main" { exec = "x" }`), Options{Kinds: kinds, Main: []string{"sh"}})
	if !diags.HasErrors() {
		t.Fatal("a job named main alongside -- COMMAND was accepted")
	}
}

func TestWarnings(t *testing.T) {
	cfg, diags := parse(t, "stop_timeout = \"2s\"\njob \"a\" {\nexec = \"x\"\nstop_timeout = \"5s\"\n}", nil)
	if cfg == nil || len(diags) != 1 || !strings.Contains(diags[0], "warning: job \"a\" has stop_timeout 5s") {
		t.Fatalf("warnings: %v", diags)
	}
	plan := RenderPlan(cfg, kinds, diags)
	if !strings.Contains(plan, "start order:") || !strings.Contains(plan, "warning:") {
		t.Fatal(plan)
	}
}

func TestSplitWords(t *testing.T) {
	cases := map[string][]string{
		`a b  c`:                {"a", "b", "c"},
		`a "b c" d`:             {"a", "b c", "d"},
		`'it''s' x`:             {"its", "x"},
		`"say \"hi\"" \$HOME`:   {`say "hi"`, "$HOME"},
		`a\ b`:                  {"a b"},
		`--opt=a=b "--x=1 2"`:   {"--opt=a=b", "--x=1 2"},
		`''`:                    {""},
		"  \t":                  nil,
		`sh -c 'echo $1; exit'`: {"sh", "-c", "echo $1; exit"},
	}
	for in, want := range cases {
		got, err := SplitWords(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := SplitWords(bad); err == nil {
			t.Errorf("SplitWords(%q) accepted", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"50MB": 50 << 20, "10k": 10 << 10, "1GiB": 1 << 30, "4096": 4096, "1.5M": 3 << 19} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
}

func TestRegistrationOnlyJob(t *testing.T) {
	cfg := mustParse(t, `
consul {}
job "web" {
  service {
    port = 80
  }
  health {
    tcp = "127.0.0.1:80"
  }
}
job "after" {
  exec = "true"
  when {
    source = "web"
    once   = "healthy"
  }
}`, nil)
	j := cfg.Job("web")
	if !j.RegistrationOnly() || len(j.Exec) != 0 || j.Service == nil || j.Health == nil {
		t.Fatalf("job without exec: %+v", j)
	}
	if got := Emits(kinds, j); strings.Contains(joinCodes(got), "exitSuccess") || !strings.Contains(joinCodes(got), "healthy") {
		t.Errorf("a job that runs nothing emits %v", got)
	}
	if plan := RenderPlan(cfg, kinds, nil); !strings.Contains(plan, "runs no command") {
		t.Errorf("plan does not say the job runs nothing:\n%s", plan)
	}
	for src, want := range map[string]string{
		`job "a" {}`: `job "a" needs "exec"`,
		`job "a" {
  service {}
  health {
    port = 80
  }
}`: "cannot watch a port or a log",
		`job "a" {
  service {}
  timeout = "5s"
}`: `"timeout" bounds a run`,
		`job "a" {
  kind = "hook"
  timeout = "5s"
}`: "a hook job runs no command",
		`job "a" {
  exec = "true"
  timeout = "0s"
}`: `"timeout" must be longer than zero`,
	} {
		if _, diags := parse(t, src, nil); !strings.Contains(strings.Join(diags, "\n"), want) {
			t.Errorf("%s\n=> %v, want %q", src, diags, want)
		}
	}
}

func TestRunTimeout(t *testing.T) {
	cfg := mustParse(t, `
job "task" {
  exec    = "/bin/task"
  timeout = "90s"
  when {
    interval = "5m"
  }
}`, nil)
	if j := cfg.Job("task"); j.Timeout != 90*time.Second {
		t.Fatalf("timeout %s", j.Timeout)
	}
	if plan := RenderPlan(cfg, kinds, nil); !strings.Contains(plan, "each run stopped after 1m30s") {
		t.Errorf("plan does not show the timeout:\n%s", plan)
	}
}

// A job with autostart = false and no trigger is not shown as starting at startup.
func TestPlanWhenAutostartFalse(t *testing.T) {
	c := mustParse(t, "job \"a\" {\n  exec = \"x\"\n  autostart = false\n}\njob \"b\" {\n  exec = \"x\"\n}\n", nil)
	if got := planWhen(c.Jobs[0]); got != "when started by hand" {
		t.Errorf("autostart = false: %q", got)
	}
	if got := planWhen(c.Jobs[1]); got != "at startup" {
		t.Errorf("default: %q", got)
	}
}
