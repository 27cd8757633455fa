package discovery

// Tests of the Consul backend and of the Manager against a real Consul agent
// (integration_tests/consulagent: `make consul` builds it; without the binary these tests
// skip, unless PILOTFISH_REQUIRE_CONSUL=1). What the agent holds is read back through
// Consul's own HTTP API (the official client), never through pilotfish's view of it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/integration_tests/consulagent"
)

// agentEnv is one test's agent, the backend under test and an independent client.
type agentEnv struct {
	agent *consulagent.Agent
	be    *Consul
	api   *api.Client
}

func startTestAgent(t *testing.T) *agentEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Consul agent: not a unit test (-short)")
	}
	a := consulagent.Start(t)
	be, err := NewConsul(&config.Consul{Address: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.DefaultConfig()
	cfg.Address = a.Addr()
	cfg.Transport.DisableKeepAlives = true // a pooled connection would outlive a Restart
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &agentEnv{agent: a, be: be, api: c}
}

func consulCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// consulEventually polls cond every 10 ms until it holds or d passes.
func consulEventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > d {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(t0)
}

// check returns one check of the agent, nil if it has none by that ID.
func (e *agentEnv) check(t *testing.T, id string) *api.AgentCheck {
	t.Helper()
	checks, err := e.api.Agent().Checks()
	if err != nil {
		t.Fatalf("agent checks: %v", err)
	}
	return checks[id]
}

func (e *agentEnv) checkIs(t *testing.T, id, status string) bool {
	c := e.check(t, id)
	return c != nil && c.Status == status
}

// passing lists the IDs of the passing instances of a service.
func (e *agentEnv) passing(t *testing.T, name string) []string {
	t.Helper()
	entries, _, err := e.api.Health().Service(name, "", true, nil)
	if err != nil {
		t.Fatalf("health of %s: %v", name, err)
	}
	var ids []string
	for _, en := range entries {
		ids = append(ids, en.Service.ID)
	}
	return ids
}

func (e *agentEnv) service(t *testing.T, id string) *api.AgentService {
	t.Helper()
	svcs, err := e.api.Agent().Services()
	if err != nil {
		t.Fatalf("agent services: %v", err)
	}
	return svcs[id]
}

func (e *agentEnv) registerOther(t *testing.T, id, name string, tags []string, addr string) {
	t.Helper()
	err := e.api.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: name, Tags: tags, Address: addr, Port: 5432,
		Meta: map[string]string{"role": "db"}})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func (e *agentEnv) deregisterOther(t *testing.T, id string) {
	t.Helper()
	if err := e.api.Agent().ServiceDeregister(id); err != nil {
		t.Fatalf("deregister %s: %v", id, err)
	}
}

// ---------------------------------------------------------------------------------------
// The backend.

func TestConsulRegisterTTLDeregister(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	ctx := consulCtx(t, 30*time.Second)

	reg := Registration{ID: "web-h1", Name: "web", Address: "127.0.0.1", Port: 8080, Tags: []string{"v1", "blue"},
		Meta: map[string]string{"version": "1.2"}, EnableTagOverride: true, TTL: 15 * time.Second,
		DeregisterCriticalAfter: 10 * time.Minute, Status: Passing, Output: "GET /health: 200 OK"}
	if reg.CheckID() != "service:web-h1" {
		t.Fatalf("CheckID = %q, want service:web-h1", reg.CheckID())
	}
	if err := e.be.Register(ctx, reg); err != nil {
		t.Fatalf("Register: %v", err)
	}
	s := e.service(t, "web-h1")
	if s == nil {
		t.Fatal("the agent does not have service web-h1 after Register")
	}
	if s.Service != "web" || s.Address != "127.0.0.1" || s.Port != 8080 || strings.Join(s.Tags, ",") != "v1,blue" ||
		s.Meta["version"] != "1.2" || !s.EnableTagOverride {
		t.Errorf("registered service = %+v", s)
	}
	// Register sets the check's state; its output comes with UpdateTTL (the manager always
	// follows a registration with one).
	c := e.check(t, "service:web-h1")
	if c == nil || c.Status != api.HealthPassing || c.Type != "ttl" || c.ServiceID != "web-h1" {
		t.Fatalf("TTL check after Register = %+v, want a passing TTL check of web-h1", c)
	}
	if err := e.be.UpdateTTL(ctx, reg.CheckID(), Passing, reg.Output); err != nil {
		t.Fatalf("UpdateTTL: %v", err)
	}
	if c := e.check(t, "service:web-h1"); c.Status != api.HealthPassing || c.Output != "GET /health: 200 OK" {
		t.Fatalf("after UpdateTTL passing: %s %q, want the probe's output", c.Status, c.Output)
	}
	if got := e.passing(t, "web"); len(got) != 1 || got[0] != "web-h1" {
		t.Errorf("passing instances = %v", got)
	}

	// The TTL check follows the job's health at once, with the probe's message.
	if err := e.be.UpdateTTL(ctx, reg.CheckID(), Critical, "connection refused"); err != nil {
		t.Fatalf("UpdateTTL critical: %v", err)
	}
	if c := e.check(t, "service:web-h1"); c.Status != api.HealthCritical || c.Output != "connection refused" {
		t.Errorf("after UpdateTTL critical: %s %q", c.Status, c.Output)
	}
	if got := e.passing(t, "web"); len(got) != 0 {
		t.Errorf("a critical instance is still passing: %v", got)
	}
	long := strings.Repeat("x", 10000)
	if err := e.be.UpdateTTL(ctx, reg.CheckID(), Passing, long); err != nil {
		t.Fatalf("UpdateTTL with a long output: %v", err)
	}
	if c := e.check(t, "service:web-h1"); c.Status != api.HealthPassing || len(c.Output) > 4096 || len(c.Output) == 0 {
		t.Errorf("after a 10000-byte output: %s, %d bytes kept", c.Status, len(c.Output))
	}
	if err := e.be.UpdateTTL(ctx, "service:nobody", Passing, ""); !errors.Is(err, ErrUnknownCheck) {
		t.Errorf("UpdateTTL of an unknown check = %v, want ErrUnknownCheck", err)
	}

	// Registering again (Consul keeps an existing check's state) leaves one service and one
	// check.
	reg.Status = Critical
	if err := e.be.Register(ctx, reg); err != nil {
		t.Fatalf("Register again: %v", err)
	}
	if svcs, _ := e.api.Agent().Services(); len(svcs) != 1 {
		t.Errorf("services after registering again = %v", svcs)
	}

	if err := e.be.Deregister(ctx, "web-h1"); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if e.service(t, "web-h1") != nil || e.check(t, "service:web-h1") != nil {
		t.Error("service or check left after Deregister")
	}
	if err := e.be.Deregister(ctx, "web-h1"); err != nil {
		t.Errorf("Deregister of a service the agent does not know = %v, want nil", err)
	}
}

func TestConsulRegisterWithoutOutputAndNoDeregisterAfter(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	ctx := consulCtx(t, 30*time.Second)
	reg := Registration{ID: "bare-h1", Name: "bare", TTL: 2 * time.Second, Status: Critical}
	if err := e.be.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	c := e.check(t, "service:bare-h1")
	if c == nil || c.Status != api.HealthCritical {
		t.Fatalf("check = %+v, want critical", c)
	}
}

func TestConsulHealthyBlockingQuery(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	ctx := consulCtx(t, 60*time.Second)
	q := WatchQuery{Service: "db"}

	list, idx, err := e.be.Healthy(ctx, q, 0, false)
	if err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	if len(list) != 0 || idx == 0 {
		t.Fatalf("first answer = %v at index %d, want nothing at a non-zero index", list, idx)
	}

	type answer struct {
		list []Instance
		idx  uint64
		err  error
		at   time.Time
	}
	ch := make(chan answer, 1)
	go func() {
		// A blocking query may also return when something else moved the index (the agent
		// syncing its node right after start); block again until the set is not empty.
		i := idx
		for {
			l, next, err := e.be.Healthy(ctx, q, i, false)
			if err != nil || len(l) > 0 {
				ch <- answer{l, next, err, time.Now()}
				return
			}
			i = next
		}
	}()
	select {
	case a := <-ch:
		t.Fatalf("the blocking query returned before any change: %+v", a)
	default:
	}
	t0 := time.Now()
	e.registerOther(t, "db-1", "db", []string{"primary"}, "")
	var a answer
	select {
	case a = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking query did not return within 10s of a registration")
	}
	if a.err != nil {
		t.Fatalf("blocking Healthy: %v", a.err)
	}
	t.Logf("blocking query answered %s after the registration", a.at.Sub(t0).Round(time.Millisecond))
	if len(a.list) != 1 || a.idx <= idx {
		t.Fatalf("after a registration: %+v at %d (was %d)", a.list, a.idx, idx)
	}
	in := a.list[0]
	if in.ID != "db-1" || in.Service != "db" || in.Port != 5432 || in.Node == "" || in.Meta["role"] != "db" ||
		len(in.Tags) != 1 || in.Tags[0] != "primary" {
		t.Errorf("instance = %+v", in)
	}
	if in.Address != "127.0.0.1" { // no service address: the node's
		t.Errorf("instance address = %q, want the node's 127.0.0.1", in.Address)
	}

	// Tag filter, tags never null, the service's own address wins.
	e.registerOther(t, "db-2", "db", nil, "192.0.2.9")
	consulEventually(t, 10*time.Second, "db-2 passing", func() bool { return len(e.passing(t, "db")) == 2 })
	all, _, err := e.be.Healthy(ctx, q, 0, false)
	if err != nil || len(all) != 2 {
		t.Fatalf("all db: %+v, %v", all, err)
	}
	for _, in := range all {
		if in.Tags == nil {
			t.Errorf("%s: Tags is nil; the JSON must say []", in.ID)
		}
		if in.ID == "db-2" && in.Address != "192.0.2.9" {
			t.Errorf("db-2 address = %q, want its own 192.0.2.9", in.Address)
		}
	}
	b, _ := json.Marshal(all)
	if !strings.Contains(string(b), `"tags":[]`) || !strings.Contains(string(b), `"id":"db-1"`) {
		t.Errorf("instances JSON = %s", b)
	}
	prim, _, err := e.be.Healthy(ctx, WatchQuery{Service: "db", Tag: "primary"}, 0, false)
	if err != nil || len(prim) != 1 || prim[0].ID != "db-1" {
		t.Errorf("tag primary: %+v, %v", prim, err)
	}

	// A critical instance is not healthy.
	if err := e.api.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "db-3", Name: "db",
		Check: &api.AgentServiceCheck{CheckID: "db3", TTL: "1m", Status: api.HealthCritical}}); err != nil {
		t.Fatal(err)
	}
	all, _, err = e.be.Healthy(ctx, q, 0, false)
	if err != nil || len(all) != 2 {
		t.Errorf("with a critical db-3: %+v, %v (want 2 passing)", all, err)
	}

	// An unknown datacenter is an error, not an empty answer.
	if _, _, err := e.be.Healthy(ctx, WatchQuery{Service: "db", DC: "nowhere"}, 0, false); err == nil {
		t.Error("a query in an unknown datacenter succeeded")
	}

	// Cancelling the context ends a blocking query at once.
	_, idx, _ = e.be.Healthy(ctx, q, 0, false)
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _, err := e.be.Healthy(cctx, q, idx, false)
		ch <- answer{err: err, at: time.Now()}
	}()
	t1 := time.Now()
	cancel()
	select {
	case a := <-ch:
		if a.err == nil {
			t.Error("a cancelled blocking query returned no error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a cancelled blocking query did not return within 2s")
	}
	_ = t1
}

func TestConsulWaitChangeSeesRestart(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	ctx := consulCtx(t, 90*time.Second)
	idx, err := e.be.WaitChange(ctx, 0, false)
	if err != nil || idx == 0 {
		t.Fatalf("WaitChange(0) = %d, %v", idx, err)
	}
	type res struct {
		idx uint64
		err error
	}
	ch := make(chan res, 1)
	go func() {
		i, err := e.be.WaitChange(ctx, idx, false)
		ch <- res{i, err}
	}()
	e.registerOther(t, "other-1", "other", nil, "")
	select {
	case r := <-ch:
		if r.err != nil || r.idx <= idx {
			t.Fatalf("WaitChange after a new service = %d, %v (was %d)", r.idx, r.err, idx)
		}
		idx = r.idx
	case <-time.After(10 * time.Second):
		t.Fatal("WaitChange did not return within 10s of a new service")
	}

	go func() {
		i, err := e.be.WaitChange(ctx, idx, false)
		ch <- res{i, err}
	}()
	e.agent.Kill()
	select {
	case r := <-ch:
		if r.err == nil {
			t.Fatalf("WaitChange returned %d without error while the agent died", r.idx)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitChange did not notice the agent dying within 10s")
	}
	e.agent.Restart(t)
	got, err := e.be.WaitChange(ctx, 0, false)
	if err != nil {
		t.Fatalf("WaitChange after the restart: %v", err)
	}
	if got >= idx {
		t.Logf("note: the restarted agent's index %d is not below the old %d", got, idx)
	}
}

// ---------------------------------------------------------------------------------------
// The manager: job lifecycle → registrations, maintenance, watches, outages.

type mgrEnv struct {
	*agentEnv
	bus  *events.Bus
	m    *Manager
	log  *testLogBuf
	once sync.Once
}

// close closes the manager once (Close must not be called twice).
func (me *mgrEnv) close(ctx context.Context) { me.once.Do(func() { me.m.Close(ctx) }) }

type testLogBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *testLogBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *testLogBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestManager(t *testing.T, e *agentEnv, be Backend, cfg *config.Config, selfPort int) *mgrEnv {
	t.Helper()
	lb := &testLogBuf{}
	bus := events.NewBus(nil)
	m := New(Options{Backend: be, Bus: bus, Log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), Hostname: "h1"})
	self := ""
	if selfPort != 0 {
		self = fmt.Sprintf("127.0.0.1:%d", selfPort)
	}
	if err := m.Apply(consulCtx(t, 10*time.Second), cfg, self); err != nil {
		t.Fatal(err)
	}
	m.Start()
	me := &mgrEnv{agentEnv: e, bus: bus, m: m, log: lb}
	t.Cleanup(func() {
		me.close(context.Background())
		if t.Failed() {
			t.Logf("discovery log:\n%s", lb.String())
		}
	})
	return me
}

func webTestConfig(withHealth bool, ttl time.Duration) *config.Config {
	j := &config.Job{Name: "web", Service: &config.Service{Name: "web", Port: 8080, Tags: []string{"v1"},
		Interfaces: []string{"static:127.0.0.1"}, TTL: ttl}}
	if withHealth {
		j.Health = &config.Health{Interval: time.Second, Failures: 1, Successes: 1}
	}
	return &config.Config{Jobs: []*config.Job{j}}
}

func probeMsg(s string) map[string]string { return map[string]string{events.AttrMessage: s} }

func TestManagerFollowsJobHealth(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	me := newTestManager(t, e, e.be, webTestConfig(true, 15*time.Second), 0)
	if id := me.m.ServiceID("web"); id != "web-h1" {
		t.Fatalf("ServiceID = %q, want NAME-HOSTNAME web-h1", id)
	}

	// Started but not yet healthy: not registered. The healthy event comes next; once the
	// service is there, the started event has been handled long ago (one loop, in order).
	me.bus.Publish(events.Started, "web", nil)
	me.bus.Publish(events.Healthy, "web", probeMsg("probe ok"))
	consulEventually(t, 5*time.Second, "web-h1 passing", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })
	if c := e.check(t, "service:web-h1"); c.Output != "probe ok" {
		t.Errorf("check output = %q, want the probe's message", c.Output)
	}
	s := e.service(t, "web-h1")
	if s.Address != "127.0.0.1" || s.Port != 8080 || len(s.Tags) != 1 {
		t.Errorf("service = %+v", s)
	}

	t0 := time.Now()
	me.bus.Publish(events.Unhealthy, "web", probeMsg("connection refused"))
	d := consulEventually(t, 5*time.Second, "web-h1 critical", func() bool { return e.checkIs(t, "service:web-h1", api.HealthCritical) })
	t.Logf("unhealthy → critical in %s", time.Since(t0).Round(time.Millisecond))
	if d > time.Second {
		t.Errorf("unhealthy took %s to reach the agent", d)
	}
	if c := e.check(t, "service:web-h1"); c.Output != "connection refused" {
		t.Errorf("critical output = %q", c.Output)
	}
	me.bus.Publish(events.Healthy, "web", probeMsg("ok again"))
	consulEventually(t, 5*time.Second, "web-h1 passing again", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })

	me.bus.Publish(events.ExitFailed, "web", map[string]string{events.AttrExitCode: "3"})
	consulEventually(t, 5*time.Second, "critical after the process exited", func() bool { return e.checkIs(t, "service:web-h1", api.HealthCritical) })
	if c := e.check(t, "service:web-h1"); !strings.Contains(c.Output, "exited") {
		t.Errorf("output after exit = %q", c.Output)
	}

	// PreStop returns only once the agent has forgotten the service.
	me.bus.Publish(events.Healthy, "web", probeMsg("ok"))
	consulEventually(t, 5*time.Second, "passing", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })
	me.m.PreStop(consulCtx(t, 5*time.Second), "web")
	if e.service(t, "web-h1") != nil {
		t.Fatal("web-h1 is still registered when PreStop returns")
	}
	// Stopped keeps it away; the next healthy run registers it again.
	me.bus.Publish(events.Stopped, "web", nil)
	me.bus.Publish(events.Started, "web", nil)
	me.bus.Publish(events.Healthy, "web", probeMsg("back"))
	consulEventually(t, 5*time.Second, "registered again", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })

	me.close(consulCtx(t, 5*time.Second))
	if e.service(t, "web-h1") != nil {
		t.Error("Close left web-h1 registered")
	}
	for op, n := range me.m.Errors() {
		if n != 0 {
			t.Errorf("errors counted with a healthy agent: %s %d", op, n)
		}
	}
}

func TestManagerJobWithoutHealthRegistersOnStart(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	me := newTestManager(t, e, e.be, webTestConfig(false, 15*time.Second), 0)
	if e.service(t, "web-h1") != nil {
		t.Fatal("registered before the job started")
	}
	me.bus.Publish(events.Started, "web", nil)
	consulEventually(t, 5*time.Second, "registered on start", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })
	me.bus.Publish(events.ExitSuccess, "web", map[string]string{events.AttrExitCode: "0"})
	consulEventually(t, 5*time.Second, "critical on exit", func() bool { return e.checkIs(t, "service:web-h1", api.HealthCritical) })
}

func TestManagerHeartbeatKeepsShortTTLPassing(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	const ttl = time.Second
	me := newTestManager(t, e, e.be, webTestConfig(true, ttl), 0)
	me.bus.Publish(events.Healthy, "web", probeMsg("ok"))
	consulEventually(t, 5*time.Second, "passing", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })
	// Nothing new happens for 3 TTLs: the heartbeat must keep the check from lapsing.
	end := time.Now().Add(3 * ttl)
	for time.Now().Before(end) {
		if c := e.check(t, "service:web-h1"); c == nil || c.Status != api.HealthPassing {
			t.Fatalf("the TTL check lapsed without a heartbeat: %+v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestManagerMaintenance(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	cfg := webTestConfig(true, 15*time.Second)
	cfg.Jobs = append(cfg.Jobs, &config.Job{Name: "late", Health: &config.Health{Interval: time.Second},
		Service: &config.Service{Name: "late", Interfaces: []string{"static:127.0.0.1"}, TTL: 15 * time.Second}})
	me := newTestManager(t, e, e.be, cfg, 0)
	me.bus.Publish(events.Healthy, "web", probeMsg("ok"))
	consulEventually(t, 5*time.Second, "passing", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })

	// Maintenance: every service leaves Consul.
	me.m.SetMaintenance(consulCtx(t, 5*time.Second), true)
	if e.service(t, "web-h1") != nil {
		t.Fatal("web-h1 is still registered when SetMaintenance(true) returns")
	}
	// Health goes on being followed, but nothing is registered during maintenance, not
	// even a service whose job becomes healthy meanwhile.
	me.bus.Publish(events.Unhealthy, "web", probeMsg("down"))
	me.bus.Publish(events.Healthy, "late", probeMsg("ok"))
	me.bus.Publish(events.Healthy, "web", probeMsg("up again"))
	me.m.SetMaintenance(consulCtx(t, 5*time.Second), true) // a round trip through the loop
	if e.service(t, "web-h1") != nil || e.service(t, "late-h1") != nil {
		t.Fatal("a service was registered during maintenance")
	}

	// Maintenance off: every service is back, as its health allows.
	me.m.SetMaintenance(consulCtx(t, 5*time.Second), false)
	for _, id := range []string{"web-h1", "late-h1"} {
		if !e.checkIs(t, "service:"+id, api.HealthPassing) {
			t.Errorf("%s is not back and passing when SetMaintenance(false) returns", id)
		}
	}
	if c := e.check(t, "service:web-h1"); c == nil || c.Output != "up again" {
		t.Errorf("web-h1 came back with %+v, want the last probe message", c)
	}
}

// reRegisterWithin is how soon after an agent came back its services must be registered
// again: the retry backoff is capped at 5 s, plus a margin for a loaded machine.
const reRegisterWithin = 8 * time.Second

// The TTL is long (a minute) so that the TTL heartbeat (every TTL/2) cannot be what
// registers the service again: the agent monitor must notice the restart by itself.
func TestManagerReRegistersAfterAgentRestart(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	me := newTestManager(t, e, e.be, webTestConfig(true, time.Minute), 0)
	me.bus.Publish(events.Healthy, "web", probeMsg("ok"))
	consulEventually(t, 5*time.Second, "passing", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })
	// Make the old agent's index grow well past where a fresh agent starts.
	for i := range 30 {
		e.registerOther(t, fmt.Sprintf("filler-%d", i), "filler", nil, "")
	}

	e.agent.Restart(t)
	d := consulEventually(t, 30*time.Second, "web-h1 registered again", func() bool {
		return e.checkIs(t, "service:web-h1", api.HealthPassing)
	})
	t.Logf("registered again %s after the restarted agent was ready", d.Round(time.Millisecond))
	if d > reRegisterWithin {
		t.Errorf("registered again only %s after the agent came back, want within %s", d.Round(time.Millisecond), reRegisterWithin)
	}
	if c := e.check(t, "service:web-h1"); c.Output != "ok" {
		t.Errorf("output after re-registration = %q, want the last probe message", c.Output)
	}
	if me.m.Errors()["agent"] == 0 {
		t.Error("the outage was not counted under op agent")
	}
}

func TestManagerAgentAbsentRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	be, err := NewConsul(&config.Consul{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	cfg := webTestConfig(false, 15*time.Second)
	cfg.Watches = []*config.Watch{{Name: "db", Service: "db"}}
	me := newTestManager(t, nil, be, cfg, 0)
	t0 := time.Now()
	me.bus.Publish(events.Started, "web", nil)
	consulEventually(t, 10*time.Second, "3 register errors", func() bool { return me.m.Errors()["register"] >= 3 })
	d := time.Since(t0)
	// Backoff 100 ms, then 200 ms: the third attempt cannot come before 300 ms.
	if d < 250*time.Millisecond {
		t.Errorf("3 register attempts within %s: no backoff", d)
	}
	errs := me.m.Errors()
	if errs["agent"] == 0 || errs["watch"] == 0 {
		t.Errorf("errors = %v, want agent and watch counted too", errs)
	}
	// The agent monitor counts an outage once, not every retry.
	if errs["agent"] != 1 {
		t.Errorf("agent errors = %d, want 1 per outage", errs["agent"])
	}
	ws := me.m.Watches()
	if len(ws) != 1 || ws[0].Name != "db" || ws[0].Healthy || ws[0].Instances != 0 {
		t.Errorf("Watches() during an outage = %+v", ws)
	}
	// Close must not hang on an agent that is not there.
	done := make(chan struct{})
	go func() { me.close(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs without an agent")
	}
}

func TestManagerWatchPublishes(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	e.registerOther(t, "db-0", "db", []string{"replica"}, "")
	consulEventually(t, 10*time.Second, "db-0 passing", func() bool { return len(e.passing(t, "db")) == 1 })
	cfg := &config.Config{Watches: []*config.Watch{{Name: "db", Service: "db"}, {Name: "primary", Service: "db", Tag: "primary"}}}

	bus := events.NewBus(nil)
	sub := bus.Subscribe(events.SubscribeOptions{Name: "test", Filter: func(ev events.Event) bool {
		return strings.HasPrefix(ev.Source, events.WatchPrefix)
	}})
	m := New(Options{Backend: e.be, Bus: bus, Log: slog.New(slog.DiscardHandler), Hostname: "h1"})
	if err := m.Apply(consulCtx(t, 5*time.Second), cfg, ""); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { m.Close(context.Background()) })
	bus.Publish(events.Startup, events.Global, nil) // the jobs are subscribed: watch events flow

	next := func(what string) events.Event {
		t.Helper()
		ev, err := sub.Recv(consulCtx(t, 10*time.Second))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		return ev
	}
	// First answers: changed plus healthy (db) or unhealthy (primary); order between the
	// two watches is free, within one watch changed comes first.
	got := map[string][]string{}
	var dbChanged events.Event
	for range 4 {
		ev := next("initial events")
		got[ev.Source] = append(got[ev.Source], string(ev.Code))
		if ev.Source == "watch.db" && ev.Code == events.Changed {
			dbChanged = ev
		}
	}
	if fmt.Sprint(got["watch.db"]) != "[changed healthy]" || fmt.Sprint(got["watch.primary"]) != "[changed unhealthy]" {
		t.Fatalf("initial events = %v", got)
	}
	var inst []Instance
	if err := json.Unmarshal([]byte(dbChanged.Attrs[events.AttrInstances]), &inst); err != nil || len(inst) != 1 || inst[0].ID != "db-0" {
		t.Fatalf("instances of the first answer = %s (%v)", dbChanged.Attrs[events.AttrInstances], err)
	}

	t0 := time.Now()
	e.registerOther(t, "db-1", "db", []string{"primary"}, "")
	seen := map[string][]string{}
	for len(seen["watch.db"]) < 1 || len(seen["watch.primary"]) < 2 {
		ev := next("events after db-1")
		seen[ev.Source] = append(seen[ev.Source], string(ev.Code))
	}
	t.Logf("registration → changed in %s", time.Since(t0).Round(time.Millisecond))
	if fmt.Sprint(seen["watch.db"]) != "[changed]" || fmt.Sprint(seen["watch.primary"]) != "[changed healthy]" {
		t.Errorf("after db-1 = %v; want db: [changed] (1→2, no healthy edge), primary: [changed healthy]", seen)
	}
	st := m.Watches()
	if len(st) != 2 || st[0] != (WatchStatus{Name: "db", Healthy: true, Instances: 2}) || st[1] != (WatchStatus{Name: "primary", Healthy: true, Instances: 1}) {
		t.Errorf("Watches() = %+v", st)
	}

	e.deregisterOther(t, "db-1")
	e.deregisterOther(t, "db-0")
	seen = map[string][]string{}
	for {
		ev := next("events after deregistering")
		seen[ev.Source] = append(seen[ev.Source], string(ev.Code))
		if ev.Code == events.Unhealthy && ev.Source == "watch.db" {
			break
		}
	}
	if p := seen["watch.primary"]; len(p) < 2 || p[len(p)-1] != "unhealthy" {
		// primary's unhealthy may still be on its way; take it.
		for len(seen["watch.primary"]) < 2 {
			ev := next("primary unhealthy")
			seen[ev.Source] = append(seen[ev.Source], string(ev.Code))
		}
	}
	if fmt.Sprint(seen["watch.primary"]) != "[changed unhealthy]" {
		t.Errorf("primary after deregistering = %v", seen["watch.primary"])
	}
	if c := countEventCode(seen["watch.db"], "unhealthy"); c != 1 {
		t.Errorf("watch.db unhealthy %d times: %v", c, seen["watch.db"])
	}
	if c := countEventCode(seen["watch.db"], "healthy"); c != 0 {
		t.Errorf("watch.db healthy while going down: %v", seen["watch.db"])
	}
}

func countEventCode(list []string, code string) int {
	n := 0
	for _, c := range list {
		if c == code {
			n++
		}
	}
	return n
}

func TestManagerSelfRegistration(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	newTestManager(t, e, e.be, &config.Config{}, 9090)
	consulEventually(t, 5*time.Second, "pilotfish-h1 passing", func() bool { return e.checkIs(t, "service:pilotfish-h1", api.HealthPassing) })
	s := e.service(t, "pilotfish-h1")
	if s.Service != SelfService || s.Port != 9090 {
		t.Errorf("self service = %+v", s)
	}
}

// After an agent restart (fresh state, catalog indexes start over) a watch must resume:
// the instance that vanished with the old agent publishes changed+unhealthy, and a new
// registration publishes changed+healthy, each within seconds.
func TestManagerWatchResumesAfterAgentRestart(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	e.registerOther(t, "db-0", "db", nil, "")
	for i := range 30 { // the old agent's indexes grow well past a fresh agent's
		e.registerOther(t, fmt.Sprintf("filler-%d", i), "filler", nil, "")
	}
	bus := events.NewBus(nil)
	sub := bus.Subscribe(events.SubscribeOptions{Name: "test", Filter: func(ev events.Event) bool { return ev.Source == "watch.db" }})
	m := New(Options{Backend: e.be, Bus: bus, Log: slog.New(slog.DiscardHandler), Hostname: "h1"})
	if err := m.Apply(consulCtx(t, 5*time.Second), &config.Config{Watches: []*config.Watch{{Name: "db", Service: "db"}}}, ""); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { m.Close(context.Background()) })
	bus.Publish(events.Startup, events.Global, nil) // the jobs are subscribed: watch events flow
	want := func(code events.Code, d time.Duration) time.Duration {
		t.Helper()
		t0 := time.Now()
		ctx := consulCtx(t, d)
		for {
			ev, err := sub.Recv(ctx)
			if err != nil {
				t.Fatalf("no watch.db %s within %s", code, d)
			}
			if ev.Code == code {
				return time.Since(t0)
			}
		}
	}
	want(events.Healthy, 10*time.Second)

	e.agent.Restart(t)
	d := want(events.Unhealthy, 30*time.Second)
	t.Logf("watch saw the restarted agent's empty set %s after it was ready", d.Round(time.Millisecond))
	if d > reRegisterWithin {
		t.Errorf("the watch resumed only %s after the agent came back, want within %s", d.Round(time.Millisecond), reRegisterWithin)
	}
	e.registerOther(t, "db-1", "db", nil, "")
	d = want(events.Healthy, 30*time.Second)
	t.Logf("registration on the restarted agent → healthy in %s", d.Round(time.Millisecond))
	if d > 2*time.Second {
		t.Errorf("a registration on the restarted agent reached the watch after %s", d.Round(time.Millisecond))
	}
}
