package config

import (
	"strings"
	"testing"
	"time"
)

func TestServiceIDAndDefaults(t *testing.T) {
	cfg := mustParse(t, `
consul {}
job "a" {
  exec = "x"
  service {}
}
job "b" {
  exec = "x"
  service {
    id                        = "b-${env.N}"
    deregister_critical_after = "0s"
  }
}
`, map[string]string{"N": "1"})
	a, b := cfg.Job("a").Service, cfg.Job("b").Service
	if a.ID != "" || a.DeregisterCriticalAfter != 10*time.Minute {
		t.Fatalf("defaults: id %q (want none: NAME-HOSTNAME at run time), deregister_critical_after %s (want 10m)", a.ID, a.DeregisterCriticalAfter)
	}
	if b.ID != "b-1" || b.DeregisterCriticalAfter != 0 {
		t.Fatalf("id %q, deregister_critical_after %s; want b-1 and off", b.ID, b.DeregisterCriticalAfter)
	}
}

func TestServiceIDErrors(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"empty id": {"consul {}\njob \"a\" {\nexec = \"x\"\nservice {\nid = \"\"\n}\n}", `service id "" must start with a letter or digit`},
		"slash":    {"consul {}\njob \"a\" {\nexec = \"x\"\nservice {\nid = \"a/b\"\n}\n}", `service id "a/b"`},
		"space":    {"consul {}\njob \"a\" {\nexec = \"x\"\nservice {\nid = \"a b\"\n}\n}", `service id "a b"`},
		"too long": {"consul {}\njob \"a\" {\nexec = \"x\"\nservice {\nid = \"" + strings.Repeat("a", 257) + "\"\n}\n}", `at most 256`},
		"shared": {"consul {}\njob \"a\" {\nexec = \"x\"\nservice {\nid = \"one\"\n}\n}\njob \"b\" {\nexec = \"x\"\nservice {\nname = \"b\"\nid = \"one\"\n}\n}",
			`service id "one" of job "b" is also the id of job "a"`},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, diags := parse(t, c.src, nil)
			joined := strings.Join(diags, "\n")
			if cfg != nil || !strings.Contains(joined, c.want) {
				t.Fatalf("want an error containing %q, got %v:\n%s", c.want, cfg != nil, joined)
			}
			if !strings.HasPrefix(joined, "test.hcl:") {
				t.Fatalf("diagnostic without position: %q", joined)
			}
		})
	}
}
