package integration

// Consul registration, health, maintenance, watches and resilience, through the real
// pilotfish binary and a real Consul agent (integration_tests/consulagent, one per test).
// Everything is checked the way an operator would: through Consul's own HTTP API
// (/v1/agent/services, /v1/agent/checks, /v1/health/service/NAME, /v1/catalog/service/NAME),
// pilotfish's control API and event stream, and files written by the jobs.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
	"github.com/pilotfish/pilotfish/integration_tests/consulagent"
)

// ---------------------------------------------------------------------------------------
// Consul's HTTP API, read directly (not through pilotfish's Consul client).

type consulHTTP struct {
	t    testing.TB
	base string
	c    *http.Client
}

func consulClient(t testing.TB, a *consulagent.Agent) *consulHTTP {
	return &consulHTTP{t: t, base: a.URL(),
		c: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
}

type csCheck struct {
	CheckID, Name, Status, Output, Notes, ServiceID, ServiceName, Type string
}

type csService struct {
	ID, Service, Address string
	Port                 int
	Tags                 []string
	Meta                 map[string]string
	EnableTagOverride    bool
}

type csHealthEntry struct {
	Node    struct{ Node, Address string }
	Service csService
	Checks  []csCheck
}

type csCatalogEntry struct {
	ServiceID, ServiceName, ServiceAddress string
	ServicePort                            int
	ServiceTags                            []string
}

// do sends one request; the body is JSON-encoded unless it is nil.
func (c *consulHTTP) do(method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get decodes a 200 answer into v; any failure is returned (the agent may be restarting).
func (c *consulHTTP) get(path string, v any) error {
	code, b, err := c.do(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

// put must succeed.
func (c *consulHTTP) put(path string, body any) {
	c.t.Helper()
	code, b, err := c.do(http.MethodPut, path, body)
	if err != nil || code != http.StatusOK {
		c.t.Fatalf("consul PUT %s: %d %s %v", path, code, bytes.TrimSpace(b), err)
	}
}

func (c *consulHTTP) checks() map[string]csCheck {
	var m map[string]csCheck
	if c.get("/v1/agent/checks", &m) != nil {
		return nil
	}
	return m
}

func (c *consulHTTP) check(id string) (csCheck, bool) {
	ch, ok := c.checks()[id]
	return ch, ok
}

func (c *consulHTTP) checkStatus(id string) string {
	ch, _ := c.check(id)
	return ch.Status
}

func (c *consulHTTP) services() map[string]csService {
	var m map[string]csService
	if c.get("/v1/agent/services", &m) != nil {
		return nil
	}
	return m
}

// health is /v1/health/service/NAME (only passing instances when passing is set); nil on
// error.
func (c *consulHTTP) health(name string, passing bool) []csHealthEntry {
	path := "/v1/health/service/" + name
	if passing {
		path += "?passing=1"
	}
	var out []csHealthEntry
	if c.get(path, &out) != nil {
		return nil
	}
	return out
}

func (c *consulHTTP) passingIDs(name string) []string {
	var ids []string
	for _, e := range c.health(name, true) {
		ids = append(ids, e.Service.ID)
	}
	return ids
}

func (c *consulHTTP) catalog(name string) ([]csCatalogEntry, error) {
	var out []csCatalogEntry
	err := c.get("/v1/catalog/service/"+name, &out)
	return out, err
}

// registerOther registers a service that is not pilotfish's, as another container would.
func (c *consulHTTP) registerOther(reg map[string]any) {
	c.t.Helper()
	c.put("/v1/agent/service/register", reg)
}

func (c *consulHTTP) deregisterOther(id string) {
	c.t.Helper()
	c.put("/v1/agent/service/deregister/"+id, nil)
}

// ---------------------------------------------------------------------------------------
// pilotfish with a consul block, its control client and its event stream.

// consulBlock is a consul block for the agent at addr.
func consulBlock(addr string) string {
	return "consul {\n  address = " + hclString(addr) + "\n}\n"
}

// startConsulRun starts pilotfish (as PID 1 where possible) with o.Config, JSON debug logs
// and its control socket in the test's directory, waits until it answers and follows its
// events from the very first one.
func startConsulRun(t testing.TB, o opts) *ctlPF {
	t.Helper()
	if !o.Plain && (os.Geteuid() != 0 || !csHaveUnshare()) {
		o.Plain = true
	}
	return startPF(t, o.Config, o)
}

func csHaveUnshare() bool {
	_, err := exec.LookPath("unshare")
	return err == nil
}

// consulErrors reads pilotfish_consul_errors_total by op from /metrics.
func (k *ctlPF) consulErrors() map[string]float64 {
	k.t.Helper()
	text, err := k.c.Metrics(ctxFor(k.t, 5*time.Second))
	if err != nil {
		k.t.Fatalf("metrics: %v", err)
	}
	out := map[string]float64{}
	for _, s := range metricSeries(text, "pilotfish_consul_errors_total") {
		if op := s.labels["op"]; op != "" && len(s.labels) == 1 {
			out[op] = s.value
		}
	}
	return out
}

// csWatchInstance is one element of PILOTFISH_WATCH_INSTANCES.
type csWatchInstance struct {
	ID      string            `json:"id"`
	Service string            `json:"service"`
	Node    string            `json:"node"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta"`
}

func csParseInstances(t testing.TB, s string) []csWatchInstance {
	t.Helper()
	var out []csWatchInstance
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("PILOTFISH_WATCH_INSTANCES is not a JSON array of instances: %v: %q", err, s)
	}
	return out
}

func csInstanceIDs(list []csWatchInstance) string {
	var ids []string
	for _, i := range list {
		ids = append(ids, i.ID)
	}
	return strings.Join(ids, ",")
}

func csHostname(t testing.TB) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// csFirstInet is what interfaces = ["inet"] should pick: the first IPv4 address of an
// interface that is up, not loopback or link-local; "" if there is none.
func csFirstInet() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, i := range ifaces {
		if i.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			return ipn.IP.String()
		}
	}
	return ""
}

// waitConsul polls cond until it holds or d passes, and returns how long it took.
func waitConsul(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return waitFor(t, d, cond, "%s", what)
}

// ---------------------------------------------------------------------------------------
// 1. Registration.

// A job with a health check is registered only once healthy: ID NAME-HOSTNAME, the address
// from `interfaces` (first match wins), port, tags, meta, enable_tag_override, and a TTL
// check service:ID passing with the probe's output. A job without one is registered when it
// starts. Defaults: name = job name, interfaces = ["inet"].
func TestConsulRegistration(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + `
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ` + sh(`test -f "$TESTDIR/ready" && echo "ready-ok" || { echo "not ready yet"; exit 1; }`) + `
    interval = "200ms"
    failures = 1
  }
  service {
    port                      = 8080
    tags                      = ["v1", "blue"]
    meta                      = { version = "1.2", team = "core" }
    enable_tag_override       = true
    interfaces                = ["pfnosuch0", "static:127.0.0.1"]
    deregister_critical_after = "10m"
  }
}
job "plain" {
  exec = ["sleep", "1000"]
  service {
    name       = "plain-public"
    port       = 9001
    interfaces = ["lo:inet"]
  }
}
job "dflt" {
  exec = ["sleep", "1000"]
  service {}
}
`})
	webID := "web-" + host

	// Watch the agent from the start until the job becomes healthy: web must never appear.
	stopWatch := make(chan struct{})
	sawEarly := make(chan string, 1)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			if s, ok := c.services()[webID]; ok {
				sawEarly <- fmt.Sprintf("%+v (check %+v)", s, c.checks()["service:"+webID])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// The job runs, its first probe fails (unhealthy), the other services are registered:
	// discovery works, and web is still absent.
	r.waitAfter(10*time.Second, 0, "web", "unhealthy")
	plainID := "plain-public-" + host
	waitConsul(t, 10*time.Second, "plain-public registered on start", func() bool { return c.checkStatus("service:"+plainID) == "passing" })
	waitConsul(t, 10*time.Second, "dflt registered on start", func() bool { return c.checkStatus("service:dflt-"+host) == "passing" })
	if j := r.statusOf("web"); j.State != "running" || j.Health != "unhealthy" {
		t.Fatalf("web = %+v, want running and unhealthy", j)
	}
	close(stopWatch)
	<-watching
	select {
	case s := <-sawEarly:
		t.Fatalf("web was registered before it was ever healthy: %s", s)
	default:
	}
	if cat, err := c.catalog("web"); err != nil || len(cat) != 0 {
		t.Fatalf("catalog has web before it is healthy: %+v %v", cat, err)
	}

	writeFile(t, filepath.Join(r.Dir, "ready"), "", 0o644)
	d := waitConsul(t, 10*time.Second, "web passing", func() bool { return c.checkStatus("service:"+webID) == "passing" })
	t.Logf("healthy → registered passing in %s", d.Round(time.Millisecond))

	s := c.services()[webID]
	if s.ID != webID || s.Service != "web" || s.Address != "127.0.0.1" || s.Port != 8080 ||
		strings.Join(s.Tags, ",") != "v1,blue" || s.Meta["version"] != "1.2" || s.Meta["team"] != "core" || !s.EnableTagOverride {
		t.Errorf("web registration = %+v", s)
	}
	ch, _ := c.check("service:" + webID)
	if ch.Type != "ttl" || ch.ServiceID != webID || ch.Output != "ready-ok" {
		t.Errorf("web check = %+v, want a TTL check of %s with the probe's output", ch, webID)
	}
	cat, err := c.catalog("web")
	if err != nil || len(cat) != 1 || cat[0].ServiceID != webID || cat[0].ServiceAddress != "127.0.0.1" || cat[0].ServicePort != 8080 {
		t.Errorf("catalog web = %+v %v", cat, err)
	}
	if ids := c.passingIDs("web"); len(ids) != 1 || ids[0] != webID {
		t.Errorf("passing web = %v", ids)
	}

	p := c.services()[plainID]
	if p.Service != "plain-public" || p.Address != "127.0.0.1" || p.Port != 9001 {
		t.Errorf("plain-public registration = %+v (want name from the service block, lo:inet → 127.0.0.1)", p)
	}
	if ch, _ := c.check("service:" + plainID); ch.Output == "" {
		t.Errorf("plain-public check has no output: %+v", ch)
	}
	df := c.services()["dflt-"+host]
	if want := csFirstInet(); df.Service != "dflt" || df.Address != want {
		t.Errorf("dflt registration = %+v, want name dflt and address %q (interfaces default inet)", df, want)
	}
}

// ---------------------------------------------------------------------------------------
// 2. Failing health reaches Consul within one check interval (ContainerPilot waited for the
// TTL to lapse, docs/guarantees.md#9), and recovers.

func TestConsulCriticalWithinOneInterval(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	dir := t.TempDir()
	okFile := filepath.Join(dir, "ok")
	writeFile(t, okFile, "", 0o644)
	const interval = time.Second
	// ttl is the default, 3 × interval: a lapse would take 3 s.
	r := startConsulRun(t, opts{Dir: dir, Config: consulBlock(a.Addr()) + `
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ` + sh(`test -f "$TESTDIR/ok" && echo fine || { echo "no ok file"; exit 1; }`) + `
    interval = "1s"
    failures = 1
  }
  service {
    port       = 8080
    interfaces = ["static:127.0.0.1"]
  }
}
`})
	id := "service:web-" + host
	waitConsul(t, 10*time.Second, "web passing", func() bool { return c.checkStatus(id) == "passing" })

	const margin = 700 * time.Millisecond
	var worst, worstBack, worstPush time.Duration
	for i := range 3 {
		after := r.lastSeq()
		t0 := time.Now()
		if err := os.Remove(okFile); err != nil {
			t.Fatal(err)
		}
		d := waitConsul(t, 5*time.Second, "critical", func() bool { return c.checkStatus(id) == "critical" })
		seen := time.Now()
		if ch, _ := c.check(id); !strings.Contains(ch.Output, "no ok file") {
			t.Errorf("critical output = %q, want the probe's output", ch.Output)
		}
		if ids := c.passingIDs("web"); len(ids) != 0 {
			t.Errorf("web still passing while critical: %v", ids)
		}
		// From the job's unhealthy event to Consul: pilotfish's own share of the delay.
		un := r.waitAfter(5*time.Second, after, "web", "unhealthy")
		push := seen.Sub(un.Time)
		worstPush = max(worstPush, push)
		worst = max(worst, d)

		writeFile(t, okFile, "", 0o644)
		back := waitConsul(t, 5*time.Second, "passing again", func() bool { return c.checkStatus(id) == "passing" })
		worstBack = max(worstBack, back)
		t.Logf("round %d: probe failing → Consul critical in %s (unhealthy event → critical seen ≤ %s); passing again in %s (round took %s)", i+1,
			d.Round(time.Millisecond), push.Round(time.Millisecond), back.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	t.Logf("worst: critical after %s (of which unhealthy → Consul ≤ %s), passing after %s (interval %s, TTL %s)", worst.Round(time.Millisecond),
		worstPush.Round(time.Millisecond), worstBack.Round(time.Millisecond), interval, 3*interval)
	if worstPush > 300*time.Millisecond {
		t.Errorf("pilotfish took up to %s to tell Consul of an unhealthy job", worstPush)
	}
	if worst > interval+margin {
		t.Errorf("critical reached Consul %s after the probe began failing; want ≤ interval %s + %s", worst, interval, margin)
	}
	if worstBack > interval+margin {
		t.Errorf("passing reached Consul %s after the probe recovered; want ≤ interval %s + %s", worstBack, interval, margin)
	}
}

// The process exiting makes the check critical at once (no probe needed); when the job is
// restarted and healthy again, the same service ID turns passing.
func TestConsulProcessExitIsCritical(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + `
job "web" {
  exec     = ["sleep", "1000"]
  restarts = "unlimited"
  backoff  = { initial = "2s", max = "2s" }
  health {
    exec     = ["true"]
    interval = "5s"
  }
  service {
    interfaces = ["static:127.0.0.1"]
  }
}
`})
	id := "service:web-" + host
	waitConsul(t, 10*time.Second, "web passing", func() bool { return c.checkStatus(id) == "passing" })
	pid := r.statusOf("web").Pid
	after := r.lastSeq()
	t0 := time.Now()
	if err := r.c.Signal(ctxFor(r.t, 5*time.Second), "web", "KILL"); err != nil {
		t.Fatal(err)
	}
	d := waitConsul(t, 5*time.Second, "critical after the process died", func() bool { return c.checkStatus(id) == "critical" })
	t.Logf("process killed → critical in %s", d.Round(time.Millisecond))
	if d > time.Second {
		t.Errorf("the exit reached Consul after %s (health interval 5s: it must not wait for a probe)", d)
	}
	if ch, _ := c.check(id); !strings.Contains(ch.Output, "exit") {
		t.Errorf("output after the exit = %q", ch.Output)
	}
	r.waitAfter(10*time.Second, after, "web", "started")
	waitConsul(t, 10*time.Second, "passing after the restart", func() bool { return c.checkStatus(id) == "passing" })
	if j := r.statusOf("web"); j.Pid == pid || j.Restarts != 1 {
		t.Errorf("web after restart = %+v", j)
	}
	if len(c.services()) != 1 {
		t.Errorf("services after a restart = %v, want the one web-%s", c.services(), host)
	}
	_ = t0
}

// ---------------------------------------------------------------------------------------
// 3. Stopping: deregistered before the process gets its signal.

// csStopTrapJob is a job whose TERM handler asks Consul (catalog and agent) whether its own
// service is still there, and records the answers.
func csStopTrapJob(addr string) string {
	return `
job "web" {
  exec = ` + sh(`trap 'curl -sS --max-time 3 "$CONSUL/v1/catalog/service/web" > "$TESTDIR/catalog-at-term.json"; curl -sS --max-time 3 "$CONSUL/v1/agent/services" > "$TESTDIR/agent-at-term.json"; echo done > "$TESTDIR/term-done"; exit 0' TERM; while :; do sleep 0.05; done`) + `
  env  = { CONSUL = "http://` + addr + `" }
  stop_timeout = "8s"
  health {
    exec     = ["true"]
    interval = "200ms"
  }
  service {
    port       = 8080
    interfaces = ["static:127.0.0.1"]
  }
}
job "other" {
  exec = ["sleep", "1000"]
  service {
    interfaces = ["static:127.0.0.1"]
  }
}
`
}

func csCheckGoneAtTerm(t *testing.T, dir, host string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool { return exists(filepath.Join(dir, "term-done")) }, "the TERM handler")
	cat := readFile(t, filepath.Join(dir, "catalog-at-term.json"))
	var entries []csCatalogEntry
	if err := json.Unmarshal([]byte(cat), &entries); err != nil {
		t.Fatalf("the TERM handler could not read the catalog: %v: %q", err, cat)
	}
	if len(entries) != 0 {
		t.Errorf("when the job got SIGTERM, the catalog still had its service: %s", cat)
	}
	agent := readFile(t, filepath.Join(dir, "agent-at-term.json"))
	var svcs map[string]csService
	if err := json.Unmarshal([]byte(agent), &svcs); err != nil {
		t.Fatalf("the TERM handler could not read the agent's services: %v: %q", err, agent)
	}
	if _, ok := svcs["web-"+host]; ok {
		t.Errorf("when the job got SIGTERM, the agent still had web-%s: %s", host, agent)
	}
}

func TestConsulDeregisteredBeforeSignal(t *testing.T) {
	requireCurl(t)
	t.Parallel()
	host := csHostname(t)

	t.Run("pilotfish stop JOB", func(t *testing.T) {
		t.Parallel()
		a := consulagent.Start(t)
		c := consulClient(t, a)
		r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + csStopTrapJob(a.Addr())})
		waitConsul(t, 10*time.Second, "web passing", func() bool { return c.checkStatus("service:web-"+host) == "passing" })
		waitConsul(t, 10*time.Second, "other passing", func() bool { return c.checkStatus("service:other-"+host) == "passing" })
		after := r.lastSeq()
		res := runCmd(t, r.Dir, "stop", "-socket", r.sock, "web")
		if res.code != 0 {
			t.Fatalf("pilotfish stop web: exit %d: %s %s", res.code, res.stdout, res.stderr)
		}
		csCheckGoneAtTerm(t, r.Dir, host)
		if _, ok := c.services()["web-"+host]; ok {
			t.Error("web is registered after it stopped")
		}
		if _, ok := c.services()["other-"+host]; !ok {
			t.Error("stopping web deregistered other too")
		}
		stopping := r.waitAfter(5*time.Second, after, "web", "stopping")
		stopped := r.waitAfter(5*time.Second, after, "web", "stopped")
		if stopped.Seq < stopping.Seq {
			t.Errorf("stopped (%d) before stopping (%d)", stopped.Seq, stopping.Seq)
		}
		// Started again: registered again.
		if _, err := r.c.Start(ctxFor(r.t, 5*time.Second), "web"); err != nil {
			t.Fatal(err)
		}
		waitConsul(t, 10*time.Second, "web registered after start", func() bool { return c.checkStatus("service:web-"+host) == "passing" })
	})

	t.Run("SIGTERM to pilotfish", func(t *testing.T) {
		t.Parallel()
		a := consulagent.Start(t)
		c := consulClient(t, a)
		r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + csStopTrapJob(a.Addr())})
		waitConsul(t, 10*time.Second, "web passing", func() bool { return c.checkStatus("service:web-"+host) == "passing" })
		r.Signal(syscall.SIGTERM)
		if code := r.Wait(20 * time.Second); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		csCheckGoneAtTerm(t, r.Dir, host)
		if svcs := c.services(); len(svcs) != 0 {
			t.Errorf("services left after pilotfish exited: %v", svcs)
		}
	})
}

// ---------------------------------------------------------------------------------------
// 4. Maintenance: Consul's service maintenance mode, never deregistration (docs/guarantees.md#5).

func TestConsulMaintenance(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "healthy"), "", 0o644)
	r := startConsulRun(t, opts{Dir: dir, Config: consulBlock(a.Addr()) + `
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ` + sh(`test -f "$TESTDIR/healthy" && echo up || { echo down; exit 1; }`) + `
    interval = "200ms"
    failures = 1
  }
  service {
    interfaces = ["static:127.0.0.1"]
  }
}
job "late" {
  exec = ["sleep", "1000"]
  health {
    exec     = ` + sh(`test -f "$TESTDIR/late-ready"`) + `
    interval = "200ms"
  }
  service {
    interfaces = ["static:127.0.0.1"]
  }
}
`})
	web, late := "web-"+host, "late-"+host
	waitConsul(t, 10*time.Second, "web passing", func() bool { return c.checkStatus("service:"+web) == "passing" })

	gone := func(id string) bool { _, ok := c.services()[id]; return !ok }
	assertOn := func(how string) {
		t.Helper()
		for _, id := range []string{web, late} {
			if !gone(id) {
				t.Fatalf("%s: %s is still registered; maintenance takes every service out of Consul", how, id)
			}
		}
		if cat, _ := c.catalog("web"); len(cat) != 0 {
			t.Errorf("%s: catalog web = %+v, want it gone", how, cat)
		}
		if ids := c.passingIDs("web"); len(ids) != 0 {
			t.Errorf("%s: passing web = %v, want none", how, ids)
		}
		h, code, err := r.c.Health(ctxFor(r.t, 5*time.Second))
		if err != nil || code != http.StatusServiceUnavailable || !h.Maintenance {
			t.Errorf("%s: /v1/health = %d %+v %v, want 503 with maintenance", how, code, h, err)
		}
		if !r.status().Maintenance {
			t.Errorf("%s: /v1/status says maintenance false", how)
		}
	}
	assertOff := func(how string) {
		t.Helper()
		if gone(web) {
			t.Errorf("%s: web is not registered again", how)
		}
		if r.status().Maintenance {
			t.Errorf("%s: /v1/status says maintenance true", how)
		}
	}

	// API on. The answer comes once Consul has been told.
	after := r.lastSeq()
	if err := r.c.Maintenance(ctxFor(r.t, 5*time.Second), true); err != nil {
		t.Fatal(err)
	}
	assertOn("API enable")
	r.waitAfter(5*time.Second, after, "global", "enterMaintenance")

	// Health is still followed during maintenance, but nothing comes back into Consul: not
	// web turning unhealthy, not late becoming healthy for the first time.
	if err := os.Remove(filepath.Join(dir, "healthy")); err != nil {
		t.Fatal(err)
	}
	r.waitCode(5*time.Second, "web", "unhealthy", 1)
	writeFile(t, filepath.Join(dir, "late-ready"), "", 0o644)
	r.waitCode(5*time.Second, "late", "healthy", 1)
	if !gone(web) || !gone(late) {
		t.Fatalf("a service came back during maintenance: %v", c.services())
	}

	// API off: every service back at once, as its health allows.
	after = r.lastSeq()
	if err := r.c.Maintenance(ctxFor(r.t, 5*time.Second), false); err != nil {
		t.Fatal(err)
	}
	assertOff("API disable")
	r.waitAfter(5*time.Second, after, "global", "exitMaintenance")
	if ids := c.passingIDs("late"); len(ids) != 1 || ids[0] != late {
		t.Errorf("late after maintenance = %v, want passing at once", ids)
	}
	if ids := c.passingIDs("web"); len(ids) != 0 {
		t.Errorf("web passing after maintenance while unhealthy: %v", ids)
	}
	if ch, _ := c.check("service:" + web); ch.Status != "critical" || !strings.Contains(ch.Output, "down") {
		t.Errorf("web check after maintenance = %+v, want critical with the probe's output", ch)
	}
	writeFile(t, filepath.Join(dir, "healthy"), "", 0o644)
	waitConsul(t, 5*time.Second, "web passing after recovery", func() bool { return len(c.passingIDs("web")) == 1 })
	waitFor(t, 5*time.Second, func() bool {
		_, code, _ := r.c.Health(ctxFor(r.t, 5*time.Second))
		return code == http.StatusOK
	}, "/v1/health 200")

	// The CLI.
	after = r.lastSeq()
	if res := runCmd(t, dir, "maintenance", "-socket", r.sock, "on"); res.code != 0 {
		t.Fatalf("pilotfish maintenance on: %d %s %s", res.code, res.stdout, res.stderr)
	}
	assertOn("pilotfish maintenance on")
	r.waitAfter(5*time.Second, after, "global", "enterMaintenance")
	after = r.lastSeq()
	if res := runCmd(t, dir, "maintenance", "-socket", r.sock, "off"); res.code != 0 {
		t.Fatalf("pilotfish maintenance off: %d %s %s", res.code, res.stdout, res.stderr)
	}
	assertOff("pilotfish maintenance off")
	r.waitAfter(5*time.Second, after, "global", "exitMaintenance")
	if n := len(c.passingIDs("web")) + len(c.passingIDs("late")); n != 2 {
		t.Errorf("%d services passing after the CLI's off, want 2", n)
	}

	// SIGUSR1 toggles.
	after = r.lastSeq()
	r.Signal(syscall.SIGUSR1)
	r.waitAfter(5*time.Second, after, "global", "enterMaintenance")
	waitConsul(t, 5*time.Second, "services gone after SIGUSR1", func() bool { return gone(web) && gone(late) })
	assertOn("SIGUSR1")
	after = r.lastSeq()
	r.Signal(syscall.SIGUSR1)
	r.waitAfter(5*time.Second, after, "global", "exitMaintenance")
	waitConsul(t, 5*time.Second, "both passing after the second SIGUSR1", func() bool {
		return len(c.passingIDs("web")) == 1 && len(c.passingIDs("late")) == 1
	})
	assertOff("second SIGUSR1")
}

// ---------------------------------------------------------------------------------------
// 5. Watches.

func TestConsulWatches(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	// Present before pilotfish starts: the first answer publishes it.
	c.registerOther(map[string]any{"ID": "db-0", "Name": "db", "Port": 5432, "Tags": []string{"replica"},
		"Meta": map[string]string{"role": "replica"}})
	waitConsul(t, 10*time.Second, "db-0 passing", func() bool { return len(c.passingIDs("db")) == 1 })

	react := `printf '%s|%s|%s\n' "$PILOTFISH_EVENT_SOURCE" "$PILOTFISH_EVENT" "$PILOTFISH_WATCH_INSTANCES" >> "$TESTDIR/`
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + `
watch "db" {}
watch "primary" {
  service = "db"
  tag     = "primary"
}
watch "dcdb" {
  service = "db"
  dc      = "dc1"
}
job "react" {
  exec = ` + sh(react+`react.log"`) + `
  when {
    source = "watch.db"
    each   = "changed"
  }
}
job "primary-up" {
  exec = ` + sh(react+`primary.log"`) + `
  when {
    source = "watch.primary"
    each   = "healthy"
  }
}
job "dependent" {
  exec = ` + sh(`date +%s%N > "$TESTDIR/dependent"; exec sleep 1000`) + `
  when {
    source  = "watch.db"
    once    = "healthy"
    timeout = "30s"
  }
}
`})

	// The first answer: changed plus healthy (db, dcdb) or unhealthy (primary).
	dbCh := r.waitAfter(10*time.Second, 0, "watch.db", "changed")
	dbH := r.waitAfter(10*time.Second, 0, "watch.db", "healthy")
	prCh := r.waitAfter(10*time.Second, 0, "watch.primary", "changed")
	prU := r.waitAfter(10*time.Second, 0, "watch.primary", "unhealthy")
	r.waitAfter(10*time.Second, 0, "watch.dcdb", "healthy")
	if dbH.Seq < dbCh.Seq || prU.Seq < prCh.Seq {
		t.Errorf("changed must come before healthy/unhealthy: %s", eventNames(r.eventsAfter(0)))
	}
	inst := csParseInstances(t, dbCh.Attrs["instances"])
	if len(inst) != 1 {
		t.Fatalf("first answer instances = %+v", inst)
	}
	i0 := inst[0]
	if i0.ID != "db-0" || i0.Service != "db" || i0.Port != 5432 || i0.Address != "127.0.0.1" || i0.Node == "" ||
		strings.Join(i0.Tags, ",") != "replica" || i0.Meta["role"] != "replica" {
		t.Errorf("instance = %+v", i0)
	}
	waitFor(t, 10*time.Second, func() bool { return exists(filepath.Join(r.Dir, "dependent")) }, "the job waiting for watch.db healthy")
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, filepath.Join(r.Dir, "react.log"))) >= 1 }, "react to run")
	first := fileLines(t, filepath.Join(r.Dir, "react.log"))[0]
	parts := strings.SplitN(first, "|", 3)
	if len(parts) != 3 || parts[0] != "watch.db" || parts[1] != "changed" || csInstanceIDs(csParseInstances(t, parts[2])) != "db-0" {
		t.Errorf("react.log first line = %q, want watch.db|changed|[db-0]", first)
	}
	wantWatches := func(what string, want ...client.Watch) {
		t.Helper()
		var got []client.Watch
		ok := poll(5*time.Second, func() bool {
			got = r.status().Watches
			return fmt.Sprint(got) == fmt.Sprint(want)
		})
		if !ok {
			t.Errorf("%s: /v1/status watches = %+v, want %+v", what, got, want)
		}
	}
	wantWatches("initial", client.Watch{Name: "db", Healthy: true, Instances: 1}, client.Watch{Name: "dcdb", Healthy: true, Instances: 1},
		client.Watch{Name: "primary", Healthy: false, Instances: 0})

	// A primary with a TTL check of its own.
	after := r.lastSeq()
	c.registerOther(map[string]any{"ID": "db-1", "Name": "db", "Address": "192.0.2.50", "Port": 5433, "Tags": []string{"primary"},
		"Check": map[string]any{"CheckID": "db1-ttl", "TTL": "10m", "Status": "passing"}})
	ch := r.waitAfter(10*time.Second, after, "watch.db", "changed")
	r.waitAfter(10*time.Second, after, "watch.primary", "changed")
	prH := r.waitAfter(10*time.Second, after, "watch.primary", "healthy")
	if got := csInstanceIDs(csParseInstances(t, ch.Attrs["instances"])); got != "db-0,db-1" {
		t.Errorf("watch.db instances after db-1 = %s", got)
	}
	if p := csParseInstances(t, prH.Attrs["instances"]); len(p) != 1 || p[0].ID != "db-1" || p[0].Address != "192.0.2.50" || p[0].Port != 5433 {
		t.Errorf("watch.primary instances = %+v", p)
	}
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, filepath.Join(r.Dir, "primary.log"))) >= 1 }, "primary-up to run")
	pl := fileLines(t, filepath.Join(r.Dir, "primary.log"))[0]
	if !strings.HasPrefix(pl, "watch.primary|healthy|") || csInstanceIDs(csParseInstances(t, strings.SplitN(pl, "|", 3)[2])) != "db-1" {
		t.Errorf("primary.log = %q", pl)
	}
	wantWatches("after db-1", client.Watch{Name: "db", Healthy: true, Instances: 2}, client.Watch{Name: "dcdb", Healthy: true, Instances: 2},
		client.Watch{Name: "primary", Healthy: true, Instances: 1})

	// Its check fails: it leaves the passing set.
	after = r.lastSeq()
	c.put("/v1/agent/check/fail/db1-ttl?note=disk+full", nil)
	r.waitAfter(10*time.Second, after, "watch.primary", "unhealthy")
	ch = r.waitAfter(10*time.Second, after, "watch.db", "changed")
	if got := csInstanceIDs(csParseInstances(t, ch.Attrs["instances"])); got != "db-0" {
		t.Errorf("watch.db after db-1 failed = %s", got)
	}

	// The last one goes: changed + unhealthy.
	after = r.lastSeq()
	c.deregisterOther("db-0")
	ch = r.waitAfter(10*time.Second, after, "watch.db", "changed")
	r.waitAfter(10*time.Second, after, "watch.db", "unhealthy")
	if ch.Attrs["instances"] != "[]" {
		t.Errorf("instances of an empty set = %q, want []", ch.Attrs["instances"])
	}
	wantWatches("all gone", client.Watch{Name: "db", Healthy: false, Instances: 0}, client.Watch{Name: "dcdb", Healthy: false, Instances: 0},
		client.Watch{Name: "primary", Healthy: false, Instances: 0})
	waitFor(t, 10*time.Second, func() bool {
		l := fileLines(t, filepath.Join(r.Dir, "react.log"))
		return len(l) > 0 && strings.HasSuffix(l[len(l)-1], "|[]")
	}, "react to see the empty set")

	// Edges only: over the whole run, watch.db was healthy once and unhealthy once.
	all := r.eventsAfter(0)
	if got := strings.Join(eventCodes(all, "watch.db"), ","); got != "changed,healthy,changed,changed,changed,unhealthy" {
		t.Errorf("watch.db events = %s", got)
	}
	if got := strings.Join(eventCodes(all, "watch.primary"), ","); got != "changed,unhealthy,changed,healthy,changed,unhealthy" {
		t.Errorf("watch.primary events = %s", got)
	}
}

// ---------------------------------------------------------------------------------------
// 6. The agent restarts with a fresh state.

// csReRegisterBound is how soon after an agent came back everything must be registered again
// and watches answer again: the retry backoff is capped at 5 s, plus a margin.
const csReRegisterBound = 8 * time.Second

// Services come back, no job restarts, and watches resume. The TTL is set to 30 s so the
// TTL heartbeat (every TTL/2) is not what brings them back.
func TestConsulAgentRestart(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	c.registerOther(map[string]any{"ID": "db-0", "Name": "db", "Port": 5432})
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + `
watch "db" {}
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ["true"]
    interval = "500ms"
  }
  service {
    interfaces = ["static:127.0.0.1"]
    ttl        = "30s"
  }
}
job "plain" {
  exec = ["sleep", "1000"]
  service {
    interfaces = ["static:127.0.0.1"]
    ttl        = "30s"
  }
}
job "react" {
  exec = ` + sh(`printf '%s\n' "$PILOTFISH_WATCH_INSTANCES" >> "$TESTDIR/react.log"`) + `
  when {
    source = "watch.db"
    each   = "changed"
  }
}
`})
	web, plain := "service:web-"+host, "service:plain-"+host
	waitConsul(t, 10*time.Second, "both passing", func() bool { return c.checkStatus(web) == "passing" && c.checkStatus(plain) == "passing" })
	r.waitAfter(10*time.Second, 0, "watch.db", "healthy")
	// Grow the old agent's index well past where a fresh agent starts.
	for i := range 30 {
		c.registerOther(map[string]any{"ID": fmt.Sprintf("filler-%d", i), "Name": "filler"})
	}
	before := map[string]client.Job{}
	for _, j := range r.status().Jobs {
		before[j.Name] = j
	}
	after := r.lastSeq()

	a.Restart(t)
	t0 := time.Now()
	reg := poll(20*time.Second, func() bool { return c.checkStatus(web) == "passing" && c.checkStatus(plain) == "passing" })
	dReg := time.Since(t0)
	if !reg {
		t.Errorf("services not registered again within 20s of the agent's restart (checks: %v)", c.checks())
	} else {
		t.Logf("registered again %s after the restarted agent was ready", dReg.Round(time.Millisecond))
		if dReg > csReRegisterBound {
			t.Errorf("registered again only after %s, want within %s", dReg.Round(time.Millisecond), csReRegisterBound)
		}
	}
	// db-0 vanished with the old agent: the watch must say so.
	_, resumed := r.tryWaitAfter(20*time.Second-time.Since(t0), after, "watch.db", "unhealthy")
	dWatch := time.Since(t0)
	if !resumed {
		t.Errorf("the watch published nothing within %s of the agent's restart (events %s)", dWatch.Round(time.Millisecond), eventNames(r.eventsAfter(after)))
	} else {
		t.Logf("watch published unhealthy %s after the restarted agent was ready", dWatch.Round(time.Millisecond))
		if dWatch > csReRegisterBound {
			t.Errorf("the watch resumed only after %s, want within %s", dWatch.Round(time.Millisecond), csReRegisterBound)
		}
		after2 := r.lastSeq()
		t1 := time.Now()
		c.registerOther(map[string]any{"ID": "db-1", "Name": "db", "Port": 5433})
		ch := r.waitAfter(5*time.Second, after2, "watch.db", "changed")
		r.waitAfter(5*time.Second, after2, "watch.db", "healthy")
		t.Logf("registration on the restarted agent → changed in %s", time.Since(t1).Round(time.Millisecond))
		if got := csInstanceIDs(csParseInstances(t, ch.Attrs["instances"])); got != "db-1" {
			t.Errorf("instances = %s, want db-1", got)
		}
	}
	for _, j := range r.status().Jobs {
		b := before[j.Name]
		if j.Name != "react" && (j.Pid != b.Pid || j.Restarts != b.Restarts || j.Pid == 0) {
			t.Errorf("job %s changed across the agent restart: %+v → %+v", j.Name, b, j)
		}
	}
	if e := r.consulErrors(); e["agent"] < 1 {
		t.Errorf("pilotfish_consul_errors_total = %v, want op=agent counted", e)
	}
}

// ---------------------------------------------------------------------------------------
// 7. Consul absent at start.

// pilotfish starts pointed at a port where no agent listens: jobs run and become healthy,
// errors are counted; then an agent starts on that port and everything appears.
func TestConsulAbsentAtStart(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	a.Stop() // its ports are now free; Restart brings an agent back on the same ones
	c := consulClient(t, a)
	host := csHostname(t)
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + `
watch "db" {}
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ["true"]
    interval = "200ms"
  }
  service {
    interfaces = ["static:127.0.0.1"]
  }
}
job "react" {
  exec = ` + sh(`printf '%s\n' "$PILOTFISH_WATCH_INSTANCES" >> "$TESTDIR/react.log"`) + `
  when {
    source = "watch.db"
    each   = "changed"
  }
}
`})
	r.waitAfter(10*time.Second, 0, "web", "healthy")
	if j := r.statusOf("web"); j.State != "running" || j.Health != "healthy" {
		t.Fatalf("web = %+v, want running and healthy without Consul", j)
	}
	var errs map[string]float64
	waitFor(t, 10*time.Second, func() bool {
		errs = r.consulErrors()
		return errs["register"] > 0 && errs["agent"] > 0 && errs["watch"] > 0
	}, "consul errors counted by op (register, agent, watch)")
	// Let the retries back off for a while: the 6th attempt comes after 100+200+400+800+1600
	// ms. Many more attempts, or attempts sooner, would be a busy loop.
	waitFor(t, 15*time.Second, func() bool { errs = r.consulErrors(); return errs["register"] >= 6 }, "6 failed registrations")
	if took := time.Since(r.start); took < 2*time.Second {
		t.Errorf("6 registration attempts within %s of the start: no backoff", took)
	}
	t.Logf("errors while Consul is absent (%s): %v", time.Since(r.start).Round(time.Millisecond), errs)
	if h, code, err := r.c.Health(ctxFor(r.t, 5*time.Second)); err != nil || code != http.StatusOK {
		t.Errorf("/v1/health without Consul = %d %+v %v, want 200: Consul is not the job's health", code, h, err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "react.log")); err == nil {
		t.Errorf("a watch published without any answer from Consul: %q", readFile(t, filepath.Join(r.Dir, "react.log")))
	}

	launched := time.Now()
	a.Restart(t) // returns once the agent has a leader and serves
	t0 := time.Now()
	d := waitConsul(t, 20*time.Second, "web registered once the agent is up", func() bool { return c.checkStatus("service:web-"+host) == "passing" })
	t.Logf("registered %s after the agent was ready (it took %s to start)", d.Round(time.Millisecond), t0.Sub(launched).Round(time.Millisecond))
	if d > csReRegisterBound {
		t.Errorf("registered only %s after the agent came up, want within %s", d, csReRegisterBound)
	}
	r.waitAfter(20*time.Second-time.Since(t0), 0, "watch.db", "unhealthy")
	r.waitAfter(time.Second, 0, "watch.db", "changed")
	t.Logf("watch's first answer within %s after the agent was ready", time.Since(t0).Round(time.Millisecond))
	if got := r.status().Watches; len(got) != 1 || got[0] != (client.Watch{Name: "db"}) {
		t.Errorf("watches = %+v", got)
	}
	if e := r.consulErrors(); e["register"] < errs["register"] {
		t.Errorf("error counters went down: %v then %v", errs, e)
	}
}

// ---------------------------------------------------------------------------------------
// 8. telemetry { register = true }.

func TestConsulTelemetryRegister(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	port := freePort(t)
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + fmt.Sprintf(`
telemetry {
  listen   = "127.0.0.1:%d"
  register = true
}
job "app" {
  exec = ["sleep", "1000"]
}
`, port)})
	id := "pilotfish-" + host
	waitConsul(t, 10*time.Second, id+" passing", func() bool { return c.checkStatus("service:"+id) == "passing" })
	s := c.services()[id]
	if s.Service != "pilotfish" || s.Port != port {
		t.Errorf("registration = %+v, want service pilotfish on port %d", s, port)
	}
	if ids := c.passingIDs("pilotfish"); len(ids) != 1 || ids[0] != id {
		t.Errorf("passing pilotfish = %v", ids)
	}

	// Whoever discovers it through Consul (Prometheus's consul_sd) scrapes Address:Port.
	t.Run("registered address serves /metrics", func(t *testing.T) {
		addr := s.Address
		if addr == "" {
			addr = "127.0.0.1" // the node's address
		}
		u := "http://" + net.JoinHostPort(addr, strconv.Itoa(s.Port)) + "/metrics"
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(u)
		if err != nil {
			t.Fatalf("telemetry listens on 127.0.0.1:%d but is registered as %s: %v", port, u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", u, resp.Status)
		}
	})

	r.Signal(syscall.SIGTERM)
	r.Wait(20 * time.Second)
	if _, ok := c.services()[id]; ok {
		t.Error("pilotfish's own service is still registered after it exited")
	}
}

// ---------------------------------------------------------------------------------------
// 9. CONSUL_HTTP_ADDR.

func TestConsulHTTPAddrEnv(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cases := []struct {
		name, block string
		env         []string
	}{
		{"envonly", "consul {}\n", []string{"CONSUL_HTTP_ADDR=" + a.Addr()}},
		{"envscheme", "consul {}\n", []string{"CONSUL_HTTP_ADDR=http://" + a.Addr()}},
		{"blockwins", consulBlock(a.Addr()), []string{"CONSUL_HTTP_ADDR=" + dead}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			startConsulRun(t, opts{Env: tc.env, Config: tc.block + `
job "` + tc.name + `" {
  exec = ["sleep", "1000"]
  service {
    interfaces = ["static:127.0.0.1"]
  }
}
`})
			waitConsul(t, 10*time.Second, tc.name+" registered", func() bool { return c.checkStatus("service:"+tc.name+"-"+host) == "passing" })
		})
	}
}

// ---------------------------------------------------------------------------------------
// 10. Without a consul block discovery is off and all else works (docs/configuration.md): a service
// block or telemetry registration is a warning, a trigger on a watch that can never
// answer is an error.

func TestConsulBlockOptional(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, config, want string
		valid              bool
	}{
		{"service", `
job "web" {
  exec = ["sleep", "1"]
  service {
    port = 80
  }
}
`, `warning: job "web" has a service block but there is no consul {} block`, true},
		{"telemetry", `
telemetry {
  listen   = "127.0.0.1:0"
  register = true
}
job "web" {
  exec = ["sleep", "1"]
}
`, `warning: telemetry { register = true } does nothing without a consul {} block`, true},
		{"watch", `
watch "db" {}
job "web" {
  exec = ["sleep", "1"]
  when {
    source = "watch.db"
    once   = "healthy"
  }
}
`, `job "web" waits for "watch.db", which can never happen without Consul`, false},
		{"interfaces", `
consul {}
job "web" {
  exec = ["sleep", "1"]
  service {
    interfaces = ["static:not-an-ip"]
  }
}
`, `static needs an IP address`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "pilotfish.hcl")
			writeFile(t, path, tc.config, 0o644)
			v := runCmd(t, dir, "validate", "-config", path)
			wantValidate := map[bool]int{true: 0, false: 1}[tc.valid]
			if v.code != wantValidate || !strings.Contains(v.stderr+v.stdout, tc.want) {
				t.Errorf("validate: exit %d, output %q; want %d and %q", v.code, v.stderr+v.stdout, wantValidate, tc.want)
			}
			if !regexp.MustCompile(`pilotfish\.hcl:\d+:\d+: `).MatchString(v.stderr + v.stdout) {
				t.Errorf("validate: no FILE:LINE:COL in %q", v.stderr+v.stdout)
			}
			p := start(t, opts{Plain: true, Dir: dir, Config: tc.config})
			wantRun := map[bool]int{true: 0, false: 2}[tc.valid] // the valid ones run their one job and exit
			if code := p.Wait(15 * time.Second); code != wantRun {
				t.Errorf("run: exit %d, want %d", code, wantRun)
			}
			if !strings.Contains(p.Stderr.String(), tc.want) {
				t.Errorf("run: stderr %q does not say %q", p.Stderr.String(), tc.want)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------
// Reload: services follow the new configuration; an unchanged watch keeps running without
// publishing its initial state again (a moved block is not a changed block).

func TestConsulReload(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	c.registerOther(map[string]any{"ID": "db-0", "Name": "db", "Port": 5432})
	jobs := func(port int, tag string, withGone bool) string {
		s := fmt.Sprintf(`
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ["true"]
    interval = "200ms"
  }
  service {
    port       = %d
    tags       = [%q]
    interfaces = ["static:127.0.0.1"]
  }
}
job "react" {
  exec = `+sh(`printf '%%s\n' "$PILOTFISH_WATCH_INSTANCES" >> "$TESTDIR/react.log"`)+`
  when {
    source = "watch.db"
    each   = "changed"
  }
}
`, port, tag)
		if withGone {
			s += `
job "gone" {
  exec = ["sleep", "1000"]
  service {
    interfaces = ["static:127.0.0.1"]
  }
}
`
		}
		return s
	}
	r := startConsulRun(t, opts{Config: consulBlock(a.Addr()) + "watch \"db\" {}\n" + jobs(8080, "v1", true)})
	waitConsul(t, 10*time.Second, "web and gone passing", func() bool {
		return c.checkStatus("service:web-"+host) == "passing" && c.checkStatus("service:gone-"+host) == "passing"
	})
	r.waitAfter(10*time.Second, 0, "watch.db", "healthy")

	// The new file: web's service changed, gone removed, the watch moved down two lines.
	cfg := consulBlock(a.Addr()) + "# the watch moved\n\nwatch \"db\" {}\n" + jobs(8081, "v2", false) +
		"\ncontrol {\n  socket = " + hclString(r.sock) + "\n}\n"
	writeFile(t, filepath.Join(r.Dir, "pilotfish.hcl"), jsonLogs+cfg, 0o644)
	after := r.lastSeq()
	res, err := r.c.Reload(ctxFor(r.t, 10*time.Second))
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	t.Logf("reload: %+v", res)
	waitConsul(t, 10*time.Second, "web on port 8081 with tag v2", func() bool {
		s, ok := c.services()["web-"+host]
		return ok && s.Port == 8081 && strings.Join(s.Tags, ",") == "v2" && c.checkStatus("service:web-"+host) == "passing"
	})
	waitConsul(t, 10*time.Second, "gone deregistered", func() bool {
		_, ok := c.services()["gone-"+host]
		return !ok
	})

	// Barrier: a real change. The first watch.db event after the reload must be it.
	c.registerOther(map[string]any{"ID": "db-1", "Name": "db", "Port": 5433})
	ch := r.waitAfter(10*time.Second, after, "watch.db", "changed")
	if got := csInstanceIDs(csParseInstances(t, ch.Attrs["instances"])); got != "db-0,db-1" {
		t.Errorf("the first watch.db event after the reload is %s with %s, not the new instance: the unchanged watch published its state again (events %s)",
			ch.Code, got, eventNames(r.eventsAfter(after)))
	}
	if codes := eventCodes(r.eventsAfter(after), "watch.db"); len(codes) != 1 {
		t.Errorf("watch.db events since the reload = %v, want only the changed of db-1", codes)
	}
}

// ---------------------------------------------------------------------------------------
// A network outage between pilotfish and a Consul agent that keeps running (no restart, so
// nothing in the catalog changes by itself): what pilotfish could not tell the agent during
// the outage must reach it once the network is back.

// csTCPProxy forwards a loopback port to the agent. pause refuses new connections and cuts
// the open ones; pauseNew refuses new connections and cuts only the idle ones (no request
// waiting for its answer), so that pending blocking queries go on undisturbed, as they do
// when the network fails without resetting connections; resume listens again on the same
// port.
type csTCPProxy struct {
	t      testing.TB
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[*csProxyConn]bool
}

// csProxyConn is one forwarded connection; busy while a request has no answer yet.
type csProxyConn struct {
	in, out net.Conn
	mu      sync.Mutex
	busy    bool
}

func (c *csProxyConn) close() { c.in.Close(); c.out.Close() }

func newCSTCPProxy(t testing.TB, target string) *csTCPProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &csTCPProxy{t: t, addr: ln.Addr().String(), target: target, conns: map[*csProxyConn]bool{}}
	p.ln = ln
	go p.serve(ln)
	t.Cleanup(p.pause)
	return p
}

func (p *csTCPProxy) serve(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		c := &csProxyConn{in: in, out: out}
		p.mu.Lock()
		if p.ln != ln { // paused meanwhile
			p.mu.Unlock()
			c.close()
			return
		}
		p.conns[c] = true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn, request bool) {
			defer func() {
				c.close()
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
			}()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					c.mu.Lock()
					c.busy = request
					c.mu.Unlock()
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		go pipe(out, in, true)
		go pipe(in, out, false)
	}
}

func (p *csTCPProxy) stop(all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.mu.Lock()
		busy := c.busy
		c.mu.Unlock()
		if all || !busy {
			c.close()
			delete(p.conns, c)
		}
	}
}

func (p *csTCPProxy) pause()    { p.stop(true) }
func (p *csTCPProxy) pauseNew() { p.stop(false) }

func (p *csTCPProxy) resume() {
	p.t.Helper()
	var ln net.Listener
	var err error
	if !poll(5*time.Second, func() bool { ln, err = net.Listen("tcp", p.addr); return err == nil }) {
		p.t.Fatalf("cannot listen on %s again: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}

func TestConsulNetworkOutage(t *testing.T) {
	t.Parallel()
	a := consulagent.Start(t)
	c := consulClient(t, a)
	host := csHostname(t)
	px := newCSTCPProxy(t, a.Addr())
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "healthy"), "", 0o644)
	r := startConsulRun(t, opts{Dir: dir, Config: consulBlock(px.addr) + `
job "web" {
  exec = ["sleep", "1000"]
  health {
    exec     = ` + sh(`test -f "$TESTDIR/healthy" && echo up || { echo down; exit 1; }`) + `
    interval = "200ms"
    failures = 1
  }
  service {
    interfaces = ["static:127.0.0.1"]
    ttl        = "1m"
  }
}
`})
	web := "web-" + host
	waitConsul(t, 10*time.Second, "web passing", func() bool { return c.checkStatus("service:"+web) == "passing" })

	t.Run("health change during the outage", func(t *testing.T) {
		px.pause()
		after := r.lastSeq()
		if err := os.Remove(filepath.Join(dir, "healthy")); err != nil {
			t.Fatal(err)
		}
		r.waitAfter(5*time.Second, after, "web", "unhealthy")
		px.resume()
		t0 := time.Now()
		ok := poll(15*time.Second, func() bool { return c.checkStatus("service:"+web) == "critical" })
		if !ok {
			t.Fatalf("web still %q 15s after the network came back; it became unhealthy during the outage", c.checkStatus("service:"+web))
		}
		t.Logf("critical reached Consul %s after the network came back", time.Since(t0).Round(time.Millisecond))
		writeFile(t, filepath.Join(dir, "healthy"), "", 0o644)
		waitConsul(t, 10*time.Second, "web passing again", func() bool { return c.checkStatus("service:"+web) == "passing" })
	})

	// Maintenance switched while new connections to the agent fail, but the pending
	// blocking queries survive (no connection reset, as in many network failures): nothing
	// but the failed maintenance call itself knows that Consul was not told. (When the
	// outage also cuts pilotfish's blocking query on the catalog, the agent monitor resyncs
	// everything afterwards and hides the problem.)
	t.Run("maintenance switched while new connections fail", func(t *testing.T) {
		// Start from maintenance off in Consul too, whatever happened before.
		for _, on := range []bool{true, false} {
			if err := r.c.Maintenance(ctxFor(r.t, 15*time.Second), on); err != nil {
				t.Fatal(err)
			}
		}
		registered := func() bool { _, ok := c.services()[web]; return ok }
		waitConsul(t, 10*time.Second, "web registered and passing", func() bool {
			return registered() && c.checkStatus("service:"+web) == "passing"
		})
		before := r.consulErrors()["deregister"]
		px.pauseNew()
		if err := r.c.Maintenance(ctxFor(r.t, 15*time.Second), true); err != nil {
			t.Fatalf("maintenance on: %v", err)
		}
		if r.consulErrors()["deregister"] <= before {
			// The proxy refuses new connections only; an idle pooled one can still carry
			// the call. Nothing to retry then.
			t.Skipf("the deregistration went through a pooled connection; errors %v", r.consulErrors())
		}
		px.resume()
		t0 := time.Now()
		if !poll(12*time.Second, func() bool { return !registered() }) {
			t.Errorf("maintenance was switched on while Consul could not be reached; 12s after it could again, web is still registered: the failed call was never retried (services %v)",
				c.services())
		} else {
			t.Logf("maintenance on reached Consul %s after the network came back", time.Since(t0).Round(time.Millisecond))
		}

		// Now the way back (docs/guarantees.md#5): on, through a working network; off while new
		// connections fail.
		for _, on := range []bool{false, true} {
			if err := r.c.Maintenance(ctxFor(r.t, 15*time.Second), on); err != nil {
				t.Fatal(err)
			}
		}
		waitConsul(t, 5*time.Second, "maintenance on", func() bool { return !registered() })
		before = r.consulErrors()["register"]
		px.pauseNew()
		if err := r.c.Maintenance(ctxFor(r.t, 15*time.Second), false); err != nil {
			t.Fatalf("maintenance off: %v", err)
		}
		if r.consulErrors()["register"] <= before {
			t.Skipf("the registration went through a pooled connection; errors %v", r.consulErrors())
		}
		px.resume()
		t0 = time.Now()
		if !poll(12*time.Second, func() bool { return len(c.passingIDs("web")) == 1 }) {
			t.Errorf("maintenance was switched off while Consul could not be reached; 12s after it could again, web is still out of service (services %v) — docs/guarantees.md#5",
				c.services())
		} else {
			t.Logf("maintenance off reached Consul %s after the network came back", time.Since(t0).Round(time.Millisecond))
		}
	})
}

// ---------------------------------------------------------------------------------------
// Two jobs cannot share a service name: the ID is NAME-HOSTNAME, so the second registration
// would replace the first, and stopping either job would deregister the other's instance.

func TestConsulDuplicateServiceName(t *testing.T) {
	t.Parallel()
	cfg := `
consul {}
job "a" {
  exec = ["sleep", "1000"]
  service {
    name = "app"
  }
}
job "b" {
  exec = ["sleep", "1000"]
  service {
    name = "app"
  }
}
`
	dir := t.TempDir()
	path := filepath.Join(dir, "pilotfish.hcl")
	writeFile(t, path, cfg, 0o644)
	v := runCmd(t, dir, "validate", "-config", path)
	if v.code != 1 || !strings.Contains(v.stderr+v.stdout, `"app"`) {
		t.Errorf("validate of two jobs registering service \"app\" (both as app-HOSTNAME): exit %d, output %q; want 1 and a message naming the service",
			v.code, strings.TrimSpace(v.stderr+v.stdout))
	}
}

// telemetry { register = true } without a listen address registers nothing: validate must
// say so (an error or at least a warning) instead of accepting it silently.
func TestConsulTelemetryRegisterWithoutListen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "pilotfish.hcl")
	writeFile(t, path, `
consul {}
telemetry {
  register = true
}
job "app" {
  exec = ["sleep", "1"]
}
`, 0o644)
	v := runCmd(t, dir, "validate", "-config", path)
	if out := v.stdout + v.stderr; !strings.Contains(out, "listen") {
		t.Errorf("validate of telemetry { register = true } without listen: exit %d, %q; want a diagnostic about the missing listen (nothing can be registered)",
			v.code, strings.TrimSpace(out))
	}
}
