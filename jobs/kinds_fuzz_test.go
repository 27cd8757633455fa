package jobs

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/syslogmsg"
)

// FuzzParseListen: an address accepted for listen or forward names one of the allowed
// schemes and exactly the socket written, nothing left over that would be ignored, and
// reads back the same.
func FuzzParseListen(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:8080", "udp://0.0.0.0:514", "unix:///run/app.sock", "unixgram:///dev/log",
		"tcp://[::1]:80", "tcp://:0", "udp://host:65536", "unix://rel/path", "unix:///a%00b", "tcp://h:1/path?q#f",
		"unix:///run/a.sock?x=1", "tcp://user@h:1", "tcp:h:1", "tcp://h", "TCP://h:1", "unix:///"} {
		f.Add(s)
	}
	schemes := []string{"tcp", "udp", "unix", "unixgram"}
	f.Fuzz(func(t *testing.T, s string) {
		network, address, err := parseListen(s, schemes...)
		if err != nil {
			return
		}
		if !slices.Contains(schemes, network) {
			t.Fatalf("%q: scheme %q", s, network)
		}
		if strings.HasPrefix(network, "unix") {
			if !strings.HasPrefix(address, "/") || strings.ContainsRune(address, 0) {
				t.Fatalf("%q: socket path %q", s, address)
			}
		} else {
			_, port, err := net.SplitHostPort(address)
			if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
				t.Fatalf("%q: address %q", s, address)
			}
		}
		if strings.ContainsAny(s, "?#") {
			t.Fatalf("%q: accepted as %s %q, ignoring its query or fragment", s, network, address)
		}
		again := &url.URL{Scheme: network, Host: address}
		if strings.HasPrefix(network, "unix") {
			again = &url.URL{Scheme: network, Path: address}
		}
		if n, a, err := parseListen(again.String(), schemes...); n != network || a != address || err != nil {
			t.Fatalf("%q is %s %q, which reads back as %s %q (%v)", s, network, address, n, a, err)
		}
	})
}

// FuzzKindConfig decodes configurations with the real kinds (inetd, syslog, cron, webhook,
// notify): no panic, and what a kind accepts is what its driver can open without checking
// again (a listen address, a selector, a regular expression, a schedule).
func FuzzKindConfig(f *testing.F) {
	for _, s := range []string{
		`job "i" {
  kind = "inetd"
  exec = "cat"
  listen = "tcp://127.0.0.1:7000"
  mode = "activate"
  max_connections = 3
}`,
		`job "i" {
  kind = "inetd"
  exec = "cat"
  listen = ""
}`,
		`job "u" {
  kind = "inetd"
  exec = ["cat"]
  listen = "unix:///run/x.sock"
}`,
		`job "s" {
  kind = "syslog"
  listen = ["unixgram:///dev/log", "udp://127.0.0.1:514", "tcp://127.0.0.1:601"]
  output "o" {
    selector = "*.info;mail.none"
    match = "(?i)err"
    program = "nginx"
    forward = "tcp://127.0.0.1:6514"
  }
  output "f" {
    file = "/tmp/x.log"
    rotate = { size = "1MB", keep = 2, compress = true }
    format = "json"
  }
}`,
		`job "c" {
  kind = "cron"
  exec = "true"
  schedule = "*/5 * * * *"
  timezone = "Europe/Paris"
}`,
		`job "w" {
  kind = "webhook"
  url = "http://127.0.0.1:9/hook"
  when { source = "c" once = "exitFailed" }
}
job "c" {
  exec = "false"
}`,
		`job "n" {
  kind = "notify"
  exec = "sleep 1"
  watchdog = "1s"
  ready_timeout = "2s"
}`,
	} {
		f.Add(s)
	}
	// Every example of the docs.
	docs, _ := filepath.Glob("../docs/*.md")
	block := regexp.MustCompile("(?s)```hcl\n(.*?)```")
	for _, d := range append(docs, "../README.md") {
		b, err := os.ReadFile(d)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range block.FindAllSubmatch(b, -1) {
			f.Add(string(m[1]))
		}
	}
	kinds := ConfigKinds()
	f.Fuzz(func(t *testing.T, src string) {
		cfg, diags := config.Parse("fuzz.hcl", []byte(src), config.Options{Kinds: kinds, Env: map[string]string{"HOME": "/root"}})
		if cfg == nil {
			if !diags.HasErrors() {
				t.Fatal("no config and no error")
			}
			return
		}
		for _, j := range cfg.Jobs {
			switch s := j.Spec.(type) {
			case *InetdSpec:
				network, address, err := parseListen(s.Listen, "tcp", "udp", "unix")
				if err != nil || network != s.Network || address != s.Address || s.Address == "" ||
					(s.Mode != ModeAccept && s.Mode != ModeActivate) || s.MaxConnections < 1 {
					t.Fatalf("job %q: accepted %+v (%v)", j.Name, s, err)
				}
			case *SyslogSpec:
				for _, l := range s.Listen {
					if _, _, err := parseListen(l, "unixgram", "udp", "tcp"); err != nil {
						t.Fatalf("job %q: accepted listen %q: %v", j.Name, l, err)
					}
				}
				if len(s.Outputs) == 0 {
					t.Fatalf("job %q: accepted without outputs", j.Name)
				}
				for _, o := range s.Outputs {
					_, selErr := syslogmsg.ParseSelector(o.Selector)
					_, reErr := regexp.Compile(o.Match)
					if selErr != nil || reErr != nil || !slices.Contains([]string{"text", "rfc3164", "rfc5424", "json"}, o.Format) {
						t.Fatalf("job %q: accepted output %+v", j.Name, o)
					}
					if o.Forward != "" {
						if _, _, err := parseListen(o.Forward, "udp", "tcp"); err != nil {
							t.Fatalf("job %q: accepted forward %q: %v", j.Name, o.Forward, err)
						}
					}
				}
			case *CronSpec:
				if _, err := parseSchedule(s); err != nil {
					t.Fatalf("job %q: accepted schedule %q: %v", j.Name, s.Schedule, err)
				}
				if _, err := time.LoadLocation(s.Timezone); err != nil {
					t.Fatalf("job %q: accepted timezone %q: %v", j.Name, s.Timezone, err)
				}
			case *WebhookSpec:
				if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") || s.Timeout <= 0 || s.Retries < 0 {
					t.Fatalf("job %q: accepted %+v", j.Name, s)
				}
			case *NotifySpec:
				if s.Watchdog < 0 || s.ReadyTimeout < 0 {
					t.Fatalf("job %q: accepted %+v", j.Name, s)
				}
			}
		}
		_ = config.RenderPlan(cfg, kinds, config.FormatDiagnostics(diags))
	})
}
