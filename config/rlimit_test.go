package config

import (
	"strings"
	"testing"
)

func TestLimits(t *testing.T) {
	cfg := mustParse(t, `
job "sidecar" {
  exec = "/bin/app"
  limits {
    nofile  = 65536
    nproc   = "4096"
    core    = 0
    stack   = "8MiB"
    memlock = "unlimited"
    cpu     = 3600
  }
  oom_score_adj = 500
}`, nil)
	j := cfg.Job("sidecar")
	want := map[string]uint64{"nofile": 65536, "nproc": 4096, "core": 0, "stack": 8 << 20, "memlock": RlimitUnlimited, "cpu": 3600}
	if len(j.Limits) != len(want) {
		t.Fatalf("limits %v, want %v", j.Limits, want)
	}
	for k, v := range want {
		if j.Limits[k] != v {
			t.Errorf("limits.%s = %d, want %d", k, j.Limits[k], v)
		}
	}
	if j.OOMScoreAdj == nil || *j.OOMScoreAdj != 500 {
		t.Errorf("oom_score_adj %v", j.OOMScoreAdj)
	}
	if j := mustParse(t, `job "a" { exec = "x" }`, nil).Job("a"); j.Limits != nil || j.OOMScoreAdj != nil {
		t.Errorf("defaults: %v %v", j.Limits, j.OOMScoreAdj)
	}
	if j := mustParse(t, `job "a" {
  exec = "x"
  oom_score_adj = -1000
}`, nil).Job("a"); *j.OOMScoreAdj != -1000 {
		t.Errorf("oom_score_adj = -1000: %d", *j.OOMScoreAdj)
	}
}

func TestLimitErrors(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"negative":        {`limits { nofile = -1 }`, "limits.nofile must be a whole number >= 0"},
		"fraction":        {`limits { nproc = 1.5 }`, "limits.nproc must be a whole number"},
		"size for count":  {`limits { nofile = "64k" }`, "limits.nofile must be a whole number >= 0 or \"unlimited\""},
		"bad size":        {`limits { stack = "8 parsecs" }`, "limits.stack must be a size"},
		"unknown":         {`limits { nofiles = 10 }`, `Did you mean "nofile"?`},
		"bool":            {`limits { core = true }`, "limits.core must be a size"},
		"oom too high":    {`oom_score_adj = 1001`, `"oom_score_adj" must be a whole number from -1000 to 1000`},
		"oom too low":     {`oom_score_adj = -1001`, `"oom_score_adj" must be a whole number from -1000 to 1000`},
		"oom not number":  {`oom_score_adj = "high"`, "oom_score_adj"},
		"two limits":      {"limits { core = 0 }\nlimits { core = 0 }", `only one "limits" block`},
		"no process":      {`kind = "hook"` + "\nlimits { core = 0 }", `runs no process; "limits" apply`},
		"no process, oom": {`kind = "hook"` + "\noom_score_adj = 5", `runs no process; "oom_score_adj"`},
	} {
		t.Run(name, func(t *testing.T) {
			src := "job \"a\" {\n"
			if !strings.Contains(c.src, "hook") {
				src += "exec = \"x\"\n"
			}
			_, diags := parse(t, src+c.src+"\n}\n", nil)
			if !strings.Contains(strings.Join(diags, "\n"), c.want) {
				t.Fatalf("diagnostics %q do not say %q", diags, c.want)
			}
		})
	}
	// A job that runs no command (registration only) has no process to limit.
	_, diags := parse(t, `job "reg" {
  service {
    name = "reg"
    port = 80
  }
  oom_score_adj = 1
}`, nil)
	if !strings.Contains(strings.Join(diags, "\n"), "runs no process") {
		t.Fatalf("registration-only job: %q", diags)
	}
}

func TestRlimitsResolve(t *testing.T) {
	seen := map[int]bool{}
	for _, r := range Rlimits() {
		res, ok := RlimitResource(r.Name)
		if !ok || res != r.Resource || seen[res] {
			t.Errorf("%s: resource %d %v (seen %v)", r.Name, res, ok, seen[res])
		}
		seen[res] = true
	}
	if _, ok := RlimitResource("bogus"); ok {
		t.Error("bogus resolves")
	}
}
