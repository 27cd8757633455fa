package integration

// Consul at fleet scale (docs/consul.md#a-fleet-on-one-agent), through the binary and a real
// agent: service IDs that never collide silently, backoff when the agent refuses connections
// (429), at most two connections, and deregistration at SIGTERM from every state of the
// registration loop. The timing goals of a hundred instances are measured by
// `make bench-fleet`, not here.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/integration_tests/consulagent"
)

// consulFrom is a client of the agent that connects from another loopback address, so that
// it takes none of the connections the agent allows pilotfish's address (127.0.0.1).
func consulFrom(t testing.TB, a *consulagent.Agent) *consulHTTP {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	return &consulHTTP{t: t, base: a.URL(), c: &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: d.DialContext}}}
}

// holdConns takes every connection the agent allows 127.0.0.1 (limits.http_max_conns_per_client)
// and holds it idle, taking each one that frees up too, until release: meanwhile every other
// connection from there gets a 429.
func holdConns(t testing.TB, addr string) (release func()) {
	t.Helper()
	return holdSome(t, addr, -1)
}

// holdSome is holdConns with at most n connections held (-1: no bound); with a bound, it
// returns once it holds them.
func holdSome(t testing.TB, addr string, n int) (release func()) {
	t.Helper()
	stop, done, full := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n >= 0 && len(held) >= n {
				if len(held) == n {
					select {
					case <-full:
					default:
						close(full)
					}
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			// A refused connection gets the 429 at once; an accepted one waits for a request.
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, _ := c.Read(make([]byte, 1)); n > 0 {
				c.Close()
				time.Sleep(20 * time.Millisecond)
				continue
			}
			_ = c.SetReadDeadline(time.Time{})
			held = append(held, c)
		}
	}()
	if n >= 0 {
		select {
		case <-full:
		case <-time.After(10 * time.Second):
			t.Fatalf("could not hold %d connections to the agent", n)
		}
	}
	var once bool
	release = func() {
		if !once {
			once = true
			close(stop)
			<-done
		}
	}
	t.Cleanup(release)
	return release
}

// waitRefused waits until a new connection from 127.0.0.1 gets Consul's 429.
func waitRefused(t testing.TB, a *consulagent.Agent) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, 5*time.Second, func() bool {
		resp, err := c.Get(a.URL() + "/v1/status/leader")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusTooManyRequests
	}, "the agent to refuse connections from 127.0.0.1")
}

// limitedAgent is an agent that allows n connections per client address.
func limitedAgent(t testing.TB, n int) *consulagent.Agent {
	return consulagent.StartWith(t, consulagent.Options{Config: fmt.Sprintf("limits {\n  http_max_conns_per_client = %d\n}\n", n)})
}

// csWebJob is a job "web" with a health check and a service; its TTL is short, so that a
// registration is checked again (a heartbeat) soon.
func csWebJob(extra string) string {
	return `
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ["true"]
    interval = "200ms"
  }
  service {
    interfaces = ["static:127.0.0.1"]
    ttl        = "2s"
` + extra + `
  }
}
`
}

// rawStderr lists pilotfish's stderr lines that are not its JSON log.
func rawStderr(p *instance) []string {
	var out []string
	for _, l := range p.Stderr.Lines() {
		if strings.TrimSpace(l) != "" && !json.Valid([]byte(l)) {
			out = append(out, l)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------
// Service IDs.

// Two containers with one host name (host networking, a fixed `hostname:`) register under two
// IDs, NAME-HOSTNAME and NAME-HOSTNAME-SUFFIX, and both stay registered; each deregisters only
// its own. They start at the same moment, so both may find NAME-HOSTNAME free: the check at
// the first heartbeat after a registration moves the one replaced off it.
func TestConsulSameHostNameDistinctIDs(t *testing.T) {
	t.Parallel()
	requirePID1(t)
	a := consulagent.Start(t)
	c := consulClient(t, a)
	cfg := consulBlock(a.Addr()) + csWebJob("")
	started := make(chan *ctlPF, 2)
	for range 2 {
		go func() { started <- startConsulRun(t, opts{Config: cfg, Hostname: "twin"}) }()
	}
	p1, p2 := <-started, <-started
	// nil when the agent did not answer.
	ids := func() []string {
		var out []csHealthEntry
		if c.get("/v1/health/service/web?passing=1", &out) != nil {
			return nil
		}
		list := []string{}
		for _, e := range out {
			list = append(list, e.Service.ID)
		}
		return list
	}
	distinct := func(l []string) bool { return len(l) == 2 && l[0] != l[1] }
	waitConsul(t, 20*time.Second, "two passing instances of web", func() bool { return distinct(ids()) })
	// A registration is checked again 6 s after it was made (at a heartbeat, every second):
	// past that, both stay, under the same IDs.
	settled := time.Now().Add(8 * time.Second)
	waitFor(t, 20*time.Second, func() bool { return time.Now().After(settled) && distinct(ids()) }, "the registrations to be checked")
	first := ids()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if got := ids(); got != nil && strings.Join(got, ",") != strings.Join(first, ",") {
			t.Fatalf("passing instances of web went from %v to %v: one replaced the other", first, got)
		}
	}
	got := ids()
	if len(got) != 2 || got[0] == got[1] || !strings.HasPrefix(got[0], "web-twin") || !strings.HasPrefix(got[1], "web-twin") {
		t.Fatalf("passing instances of web = %v, want web-twin and web-twin-SUFFIX", got)
	}
	owners := map[string]bool{}
	for _, id := range got {
		s := c.services()[id]
		owners[s.Meta["pilotfish_instance"]] = true
	}
	if len(owners) != 2 || owners[""] {
		t.Fatalf("the two registrations carry instance tokens %v, want two distinct ones", owners)
	}
	warned := 0
	for _, p := range []*ctlPF{p1, p2} {
		warned += p.CountLogs(func(e logEntry) bool {
			return strings.Contains(e.msg(), "another") && strings.Contains(e.msg(), "instance")
		})
	}
	if warned == 0 {
		t.Errorf("neither instance logged that it registered under another ID")
	}
	t.Logf("IDs %v", got)

	// Each deregisters only its own.
	csTermLeaves(t, p1, c, 1) // the other's
	csTermLeaves(t, p2, c, 0)
}

// `service { id }` sets the ID. One that another live instance holds is never overwritten:
// pilotfish logs an error and retries (with backoff) until it is free, then registers.
func TestConsulExplicitID(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	c.registerOther(map[string]any{"ID": "app-1", "Name": "app", "Port": 9999, "Meta": map[string]string{"owner": "someone else"}})
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + `
job "web" {
  exec = ["sleep", "1000"]
  service {
    name       = "app"
    id         = "app-1"
    port       = 8080
    interfaces = ["static:127.0.0.1"]
  }
}
`})
	r.WaitLog(10*time.Second, func(e logEntry) bool {
		return e.msg() == "cannot register: the service id is taken; retrying until it is free"
	},
		"the error about the taken id")
	waitFor(t, 10*time.Second, func() bool { return r.consulErrors()["register"] >= 2 }, "registration retried")
	if s := c.services()["app-1"]; s.Port != 9999 || s.Meta["owner"] != "someone else" {
		t.Fatalf("the other instance's app-1 was overwritten: %+v", s)
	}
	c.deregisterOther("app-1")
	t0 := time.Now()
	waitConsul(t, 10*time.Second, "app-1 registered by pilotfish", func() bool {
		s, ok := c.services()["app-1"]
		return ok && s.Port == 8080 && c.checkStatus("service:app-1") == "passing"
	})
	t.Logf("registered %s after the id became free", time.Since(t0).Round(time.Millisecond))
	csTermLeaves(t, r, c, 0)
}

// ---------------------------------------------------------------------------------------
// 429: the agent refuses connections beyond its per-address limit.

// While every connection pilotfish opens gets a 429, its calls back off exponentially (from
// 100 ms to 5 s, with jitter): a handful of attempts in several seconds, not a storm. That
// holds for the first registration, and for the TTL updates of a registered service (which
// used to retry every few milliseconds). Once connections are let through again, everything
// is registered and the watch answers. Go's own complaint about an unsolicited 429 never
// reaches stderr raw.
func TestConsulBacksOffOn429(t *testing.T) {
	t.Parallel()
	requirePID1(t)
	// ttl 10s: a heartbeat every 5 s, so that the connection for calls closes in between.
	cfg := func(a *consulagent.Agent) string {
		return consulBlock(a.Addr()) + strings.Replace(csWebJob(""), `"2s"`, `"10s"`, 1) + "watch \"db\" {}\n"
	}
	// Backoff from 100 ms, doubling, with jitter that only lengthens: the 5th attempt of a
	// retry loop comes at least 100+200+400+800 ms after the first. A retry every 10-40 ms
	// would get there within a fraction of a second.
	fiveFailures := func(t *testing.T, r *ctlPF, op string) {
		t.Helper()
		var first time.Time
		if !poll(30*time.Second, func() bool {
			n := r.consulErrors()[op]
			if n >= 1 && first.IsZero() {
				first = time.Now()
			}
			return n >= 5
		}) {
			t.Fatalf("not 5 refused %s calls after 30s: %v\n%s", op, r.consulErrors(), tail(r.Stderr.String(), 40))
		}
		if d := time.Since(first); d < 1200*time.Millisecond {
			t.Errorf("5 refused %s calls within %s: no backoff", op, d.Round(time.Millisecond))
		}
		errs := r.consulErrors()
		t.Logf("errors while every connection is refused: %v", errs)
		// The watch gives its turn to the registration while the agent refuses it (it yields
		// its connection): it tries as seldom or less.
		if errs["watch"] > 10 || errs["agent"] > 2 {
			t.Errorf("refused calls %v: the watch or the agent monitor retried without backoff", errs)
		}
	}
	end := func(t *testing.T, r *ctlPF, c *consulHTTP) {
		t.Helper()
		if raw := rawStderr(r.instance); len(raw) > 0 {
			t.Errorf("raw lines on stderr (not pilotfish's log): %q", raw)
		}
		csTermLeaves(t, r, c, 1) // db-0
	}

	t.Run("first registration", func(t *testing.T) {
		t.Parallel()
		a := limitedAgent(t, 4)
		c := consulFrom(t, a)
		c.registerOther(map[string]any{"ID": "db-0", "Name": "db", "Port": 5432})
		release := holdConns(t, a.Addr())
		waitRefused(t, a)
		r := startConsulRun(t, opts{Config: cfg(a)})
		r.waitAfter(10*time.Second, 0, "web", "healthy")
		fiveFailures(t, r, "register")
		release()
		t1 := time.Now()
		waitConsul(t, 15*time.Second, "web registered and passing once connections are allowed", func() bool {
			return len(c.passingIDs("web")) == 1
		})
		r.waitAfter(15*time.Second, 0, "watch.db", "healthy")
		t.Logf("registered and watching %s after the agent let connections through", time.Since(t1).Round(time.Millisecond))
		end(t, r, c)
	})

	t.Run("heartbeats", func(t *testing.T) {
		t.Parallel()
		a := limitedAgent(t, 4)
		c := consulFrom(t, a)
		_, port, _ := net.SplitHostPort(a.Addr())
		c.registerOther(map[string]any{"ID": "db-0", "Name": "db", "Port": 5432})
		r := startConsulRun(t, opts{Config: cfg(a)})
		waitConsul(t, 10*time.Second, "web passing", func() bool { return len(c.passingIDs("web")) == 1 })
		release := holdConns(t, a.Addr())
		waitFor(t, 10*time.Second, func() bool { return connsTo(t, r.hostPID(1), port) <= 1 }, "pilotfish's idle connection to close")
		waitRefused(t, a)
		fiveFailures(t, r, "ttl")
		release()
		waitConsul(t, 15*time.Second, "web passing again", func() bool {
			return len(c.passingIDs("web")) == 1 && r.consulErrors()["ttl"] > 0
		})
		end(t, r, c)
	})
}

// With one connection left for it, pilotfish keeps its registration right and its watch
// following: once refused, the watch gives up its blocking query and asks every few seconds
// whether anything changed (a tiny answer), so that the one connection serves the calls too.
func TestConsulWatchPollsWhileCrowded(t *testing.T) {
	t.Parallel()
	requirePID1(t)
	const limit = 4
	a := limitedAgent(t, limit)
	c := consulFrom(t, a)
	_, port, _ := net.SplitHostPort(a.Addr())
	c.registerOther(map[string]any{"ID": "db-0", "Name": "db", "Port": 5432})
	holdSome(t, a.Addr(), limit-1)
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + csWebJob("") + "watch \"db\" {}\n"})
	waitConsul(t, 20*time.Second, "web registered and passing with one connection", func() bool { return len(c.passingIDs("web")) == 1 })
	r.waitAfter(20*time.Second, 0, "watch.db", "healthy")
	if r.consulErrors()["register"]+r.consulErrors()["ttl"]+r.consulErrors()["watch"] == 0 {
		t.Skip("the agent never refused pilotfish a connection; nothing to see")
	}
	after := r.lastSeq()
	t0 := time.Now()
	c.registerOther(map[string]any{"ID": "db-1", "Name": "db", "Port": 5433})
	ev := r.waitAfter(15*time.Second, after, "watch.db", "changed")
	t.Logf("a change reached the crowded watch in %s", time.Since(t0).Round(time.Millisecond))
	if got := csInstanceIDs(csParseInstances(t, ev.Attrs["instances"])); got != "db-0,db-1" {
		t.Errorf("instances = %s, want db-0,db-1", got)
	}
	most := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		most = max(most, connsTo(t, r.hostPID(1), port))
	}
	if most > 1 {
		t.Errorf("a crowded pilotfish held %d connections at once, want 1", most)
	}
	waitConsul(t, 10*time.Second, "web still passing", func() bool { return len(c.passingIDs("web")) == 1 })
	t.Logf("errors: %v", r.consulErrors())
	csTermLeaves(t, r, c, 2) // db-0 and db-1
}

// ---------------------------------------------------------------------------------------
// Connections.

// A pilotfish holds at most two connections to its agent: one for the blocking query (with
// one watch; the agent monitor's without any), one for the rest, and between calls only the
// first. One more watch adds one.
func TestConsulAtMostTwoConnections(t *testing.T) {
	t.Parallel()
	requirePID1(t)
	a := consulagent.Start(t)
	c := consulClient(t, a)
	_, port, _ := net.SplitHostPort(a.Addr())
	for _, tc := range []struct {
		name    string
		watches string
		max     int
	}{
		{"no watch", "", 2},
		{"one watch", `watch "db" {}` + "\n", 2},
		{"two watches", `watch "db" {}` + "\n" + `watch "cache" {}` + "\n", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			telemetry := fmt.Sprintf("telemetry {\n  listen   = \"127.0.0.1:%d\"\n  register = true\n}\n", freePort(t))
			r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + telemetry + tc.watches + csWebJob("") + `
job "plain" {
  exec = ["sleep", "1000"]
  service {
    interfaces = ["static:127.0.0.1"]
    ttl        = "2s"
  }
}
`})
			host := r.hostPID(1)
			waitConsul(t, 10*time.Second, "three services passing", func() bool {
				n := 0
				for _, ch := range c.checks() {
					if ch.Status == "passing" && strings.HasPrefix(ch.CheckID, "service:") {
						n++
					}
				}
				return n >= 3
			})
			// Heartbeats every second, changes on the watched service: sample for 4 s.
			most := 0
			for i := 0; i < 40; i++ {
				if i%10 == 5 && tc.watches != "" {
					c.registerOther(map[string]any{"ID": fmt.Sprintf("db-%d", i), "Name": "db", "Port": 5432})
				}
				most = max(most, connsTo(t, host, port))
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("at most %d connections to the agent", most)
			if most > tc.max {
				t.Errorf("pilotfish held %d connections to its agent at once, want at most %d", most, tc.max)
			}
			r.SignalWait(syscall.SIGTERM, 15*time.Second)
		})
	}
}

// connsTo counts pid's established TCP connections to port (in /proc/net/tcp, matched to
// the process by its sockets' inodes).
func connsTo(t testing.TB, pid int, port string) int {
	t.Helper()
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf(":%04X", p)
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			// sl local rem st ... inode(9)
			if len(fl) > 9 && strings.HasSuffix(fl[2], want) && fl[3] == "01" && inodes[fl[9]] {
				n++
			}
		}
		f.Close()
	}
	return n
}

// ---------------------------------------------------------------------------------------
// Deregistration at SIGTERM, whatever the registration loop is doing.

func TestConsulDeregistersFromEveryState(t *testing.T) {
	t.Parallel()
	requirePID1(t)

	// The agent is gone: pilotfish gives up on it within the shutdown budget.
	t.Run("agent down", func(t *testing.T) {
		t.Parallel()
		a := consulagent.Start(t)
		c := consulClient(t, a)
		r := startConsulRun(t, opts{Config: "stop_timeout = \"6s\"\n" + consulBlock(a.Addr()) + csWebJob("")})
		waitConsul(t, 10*time.Second, "web passing", func() bool { return len(c.passingIDs("web")) == 1 })
		a.Kill()
		code, took := r.SignalWait(syscall.SIGTERM, 15*time.Second)
		t.Logf("exited %d %s after SIGTERM", code, took.Round(time.Millisecond))
		if code != 0 || took > 7*time.Second {
			t.Errorf("exit %d after %s, want 0 within stop_timeout + 1s (7s)", code, took.Round(time.Millisecond))
		}
		csNoResyncAfterShutdown(t, r)
	})

	// The agent restarted (forgetting everything) just before SIGTERM: whatever pilotfish was
	// doing — noticing, registering again — nothing of it is left after it exits.
	for _, delay := range []time.Duration{0, 300 * time.Millisecond, time.Second} {
		t.Run(fmt.Sprintf("agent restarted %s before SIGTERM", delay), func(t *testing.T) {
			t.Parallel()
			a := consulagent.Start(t)
			c := consulClient(t, a)
			r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + csWebJob("") + "watch \"web\" {}\n"})
			waitConsul(t, 10*time.Second, "web passing", func() bool { return len(c.passingIDs("web")) == 1 })
			a.Restart(t)
			time.Sleep(delay) // the moment of the SIGTERM is the point: no condition to wait for
			csTermLeaves(t, r, c, 0)
			csNoResyncAfterShutdown(t, r)
		})
	}

	// The agent refuses connections (429) while pilotfish registers for the first time, or
	// while it has a health change to send: at SIGTERM the retries go on within the budget,
	// and as soon as the agent lets a connection through, the registration is taken back.
	for _, tc := range []struct{ name, state string }{
		{"first registration refused", "registering"},
		{"health change refused", "registered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const limit = 4
			a := limitedAgent(t, limit)
			c := consulFrom(t, a)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "healthy"), "", 0o644)
			var release func()
			if tc.state == "registering" {
				release = holdConns(t, a.Addr())
				waitRefused(t, a)
			}
			r := startConsulRun(t, opts{Dir: dir, Config: consulBlock(a.Addr()) + `
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ` + sh(`test -f "$TESTDIR/healthy"`) + `
    interval = "200ms"
    failures = 1
  }
  service {
    interfaces = ["static:127.0.0.1"]
    ttl        = "1m"
  }
}
`})
			if tc.state == "registered" {
				waitConsul(t, 10*time.Second, "web passing", func() bool { return len(c.passingIDs("web")) == 1 })
				release = holdConns(t, a.Addr())
				// Once pilotfish's idle connection for calls has closed, it is held too.
				_, port, _ := net.SplitHostPort(a.Addr())
				waitFor(t, 10*time.Second, func() bool { return connsTo(t, r.hostPID(1), port) <= 1 }, "pilotfish's idle connection to close")
				waitRefused(t, a)
				after := r.lastSeq()
				if err := os.Remove(filepath.Join(dir, "healthy")); err != nil {
					t.Fatal(err)
				}
				r.waitAfter(5*time.Second, after, "web", "unhealthy")
			}
			if !poll(10*time.Second, func() bool { e := r.consulErrors(); return e["register"]+e["ttl"] > 0 }) {
				t.Fatalf("no refused call counted: %v\n%s", r.consulErrors(), tail(r.Stderr.String(), 30))
			}
			// SIGTERM now; the agent lets connections through a moment later.
			r.Signal(syscall.SIGTERM)
			time.Sleep(500 * time.Millisecond) // part of the scenario: the agent is still crowded
			release()
			r.Wait(15 * time.Second)
			if left := c.services(); len(left) != 0 {
				t.Fatalf("after SIGTERM the agent holds %v", left)
			}
			if raw := rawStderr(r.instance); len(raw) > 0 {
				t.Errorf("raw lines on stderr: %q", raw)
			}
		})
	}
}

// csTermLeaves sends SIGTERM, waits for exit code 0 and checks that the agent holds left
// services then.
func csTermLeaves(t *testing.T, r *ctlPF, c *consulHTTP, left int) {
	t.Helper()
	if code, _ := r.SignalWait(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if got := c.services(); len(got) != left {
		t.Fatalf("after SIGTERM the agent holds %v, want %d services", got, left)
	}
}

// csNoResyncAfterShutdown fails if pilotfish set out to register everything again once its
// shutdown began.
func csNoResyncAfterShutdown(t *testing.T, r *ctlPF) {
	t.Helper()
	shutdown := false
	for _, e := range r.Logs() {
		switch {
		case e.msg() == "shutting down":
			shutdown = true
		case shutdown && e.msg() == "catalog agent is back; registering services again":
			t.Errorf("after the shutdown began: %s", e)
		}
	}
}
