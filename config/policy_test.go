package config

import (
	"slices"
	"strings"
	"testing"
)

// restart_on, success_codes, autostart and health.on_failure: defaults, values, and what
// validation refuses or warns about (docs/configuration.md#job).
func TestPolicies(t *testing.T) {
	cfg := mustParse(t, `
job "plain" {
  exec = "x"
  health {
    tcp = "127.0.0.1:1"
  }
}
job "worker" {
  exec          = "x"
  restarts      = "unlimited"
  restart_on    = "failure"
  success_codes = [0, 3, 255]
  autostart     = false
  health {
    tcp        = "127.0.0.1:9000"
    on_failure = "restart"
  }
}`, nil)
	p := cfg.Job("plain")
	if p.RestartOn != RestartOnAny || !slices.Equal(p.SuccessCodes, []int{0}) || !p.Autostart || p.Health.OnFailure != OnFailureIgnore {
		t.Fatalf("defaults: %+v %+v", p, p.Health)
	}
	w := cfg.Job("worker")
	if w.RestartOn != RestartOnFailure || !slices.Equal(w.SuccessCodes, []int{0, 3, 255}) || w.Autostart || w.Health.OnFailure != OnFailureRestart {
		t.Fatalf("worker: %+v %+v", w, w.Health)
	}
	if !p.Equal(mustParse(t, "job \"plain\" {\nexec = \"x\"\nsuccess_codes = [0]\nrestart_on = \"any\"\nautostart = true\nhealth {\ntcp = \"127.0.0.1:1\"\non_failure = \"ignore\"\n}\n}", nil).Job("plain")) {
		t.Error("the defaults written out make another job: a reload would restart it")
	}
	m, diags := Parse("t.hcl", nil, Options{Kinds: kinds, Main: []string{"sh"}})
	if m == nil {
		t.Fatal(FormatDiagnostics(diags))
	}
	if j := m.Job(MainJob); !j.Autostart || j.RestartOn != RestartOnAny {
		t.Fatalf("main job: %+v", j)
	}
}

func TestPolicyErrors(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"restart_on":          {"job \"a\" {\nexec = \"x\"\nrestart_on = \"always\"\n}", `"restart_on" must be one of "any", "failure"`},
		"on_failure":          {"job \"a\" {\nexec = \"x\"\nhealth {\ntcp = \"h:1\"\non_failure = \"kill\"\n}\n}", `"on_failure" must be one of "ignore", "restart", "shutdown"`},
		"code too big":        {"job \"a\" {\nexec = \"x\"\nsuccess_codes = [0, 256]\n}", `whole numbers from 0 to 255`},
		"negative code":       {"job \"a\" {\nexec = \"x\"\nsuccess_codes = [-1]\n}", `whole numbers from 0 to 255`},
		"fraction":            {"job \"a\" {\nexec = \"x\"\nsuccess_codes = [1.5]\n}", `whole numbers from 0 to 255`},
		"not a list":          {"job \"a\" {\nexec = \"x\"\nsuccess_codes = \"0\"\n}", `success_codes`},
		"empty":               {"job \"a\" {\nexec = \"x\"\nsuccess_codes = []\n}", `at least one exit code`},
		"autostart type":      {"job \"a\" {\nexec = \"x\"\nautostart = \"no\"\n}", `autostart`},
		"no exit code":        {"job \"a\" {\nkind = \"hook\"\nsuccess_codes = [0]\n}", `has no exit code`},
		"nothing to restart":  {"job \"a\" {\nservice {\nport = 1\n}\nhealth {\ntcp = \"h:1\"\non_failure = \"restart\"\n}\n}", `no process to restart`},
		"restart_on no value": {"job \"a\" {\nexec = \"x\"\nrestart_on = \"\"\n}", `"restart_on" must be one of`},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, diags := parse(t, c.src, nil)
			if cfg != nil {
				t.Fatalf("accepted; want an error with %q", c.want)
			}
			if joined := strings.Join(diags, "\n"); !strings.Contains(joined, c.want) || !strings.HasPrefix(joined, "test.hcl:") {
				t.Fatalf("want %q in:\n%s", c.want, joined)
			}
		})
	}
}

func TestPolicyWarnings(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"restart_on never":   {"job \"a\" {\nexec = \"x\"\nrestart_on = \"failure\"\n}", `"restart_on" does nothing`},
		"on_failure never":   {"job \"a\" {\nexec = \"x\"\nhealth {\ntcp = \"h:1\"\non_failure = \"restart\"\n}\n}", `stops the job for good`},
		"codes no command":   {"job \"a\" {\nsuccess_codes = [0, 1]\nservice {\nport = 1\n}\n}", `"success_codes" does nothing`},
		"autostart timeout":  {"job \"b\" { exec = \"x\" }\njob \"a\" {\nexec = \"x\"\nautostart = false\nwhen {\nsource = \"b\"\nonce = \"started\"\ntimeout = \"1m\"\n}\n}", `when.timeout, counted from start-up, never applies`},
		"restart_on no exec": {"job \"a\" {\nrestart_on = \"failure\"\nservice {\nport = 1\n}\n}", `"restart_on" does nothing`},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, diags := parse(t, c.src, nil)
			if cfg == nil {
				t.Fatalf("refused: %v", diags)
			}
			if joined := strings.Join(diags, "\n"); !strings.Contains(joined, "warning: ") || !strings.Contains(joined, c.want) {
				t.Fatalf("want a warning with %q in:\n%s", c.want, joined)
			}
		})
	}
}

// plan shows the policies that differ from the defaults, and nothing for a plain job.
func TestPlanShowsPolicies(t *testing.T) {
	cfg := mustParse(t, `
job "plain" { exec = "x" }
job "worker" {
  exec          = "x"
  restarts      = 3
  restart_on    = "failure"
  success_codes = [0, 3]
  autostart     = false
  health {
    tcp        = "127.0.0.1:9000"
    on_failure = "shutdown"
  }
}`, nil)
	plan := RenderPlan(cfg, kinds, nil)
	want := "autostart = false: stopped until `pilotfish start worker`; restarts only after a failure; success codes [0 3]; when unhealthy: shut down, exit code 1"
	if !strings.Contains(plan, want) || strings.Count(plan, "autostart") != 1 {
		t.Fatalf("plan:\n%s", plan)
	}
}
