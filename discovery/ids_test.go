package discovery

// The rule for service IDs (docs/consul.md#service-ids) against a real agent: another live
// instance's registration under the default ID is never replaced, one whose check lapsed
// is taken over, and two instances that took one ID at the same moment end up apart.

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/pilotfish/pilotfish/events"
)

// registerAs registers id as another pilotfish instance would, with a TTL check.
func (e *agentEnv) registerAs(t *testing.T, id, instance string, ttl time.Duration, status string) {
	t.Helper()
	err := e.api.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "web", Port: 9999,
		Meta:  map[string]string{MetaInstance: instance},
		Check: &api.AgentServiceCheck{CheckID: "service:" + id, TTL: ttl.String(), Status: status}})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func TestManagerKeepsOffALiveInstancesID(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	e.registerAs(t, "web-h1", "someone-else", time.Minute, api.HealthPassing)
	me := newTestManager(t, e, e.be, webTestConfig(true, 15*time.Second), 0)
	me.bus.Publish(events.Healthy, "web", probeMsg("ok"))
	mine := "web-h1-" + me.m.suffix()
	consulEventually(t, 5*time.Second, mine+" passing", func() bool { return e.checkIs(t, "service:"+mine, api.HealthPassing) })
	if s := e.service(t, "web-h1"); s == nil || s.Meta[MetaInstance] != "someone-else" || s.Port != 9999 {
		t.Fatalf("the other instance's web-h1 was touched: %+v", s)
	}
	if s := e.service(t, mine); s.Meta[MetaInstance] != me.m.Instance() {
		t.Fatalf("%s carries instance %q, want %q", mine, s.Meta[MetaInstance], me.m.Instance())
	}
	me.close(consulCtx(t, 5*time.Second))
	if e.service(t, mine) != nil || e.service(t, "web-h1") == nil {
		t.Fatalf("Close must take its own registration only")
	}
}

func TestManagerTakesOverALapsedID(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	// A container killed hard: its check was not fed and lapsed.
	e.registerAs(t, "web-h1", "killed", time.Second, api.HealthPassing)
	consulEventually(t, 10*time.Second, "the old check to lapse", func() bool {
		c := e.check(t, "service:web-h1")
		return c != nil && c.Status == api.HealthCritical
	})
	me := newTestManager(t, e, e.be, webTestConfig(true, 15*time.Second), 0)
	me.bus.Publish(events.Healthy, "web", probeMsg("ok"))
	consulEventually(t, 5*time.Second, "web-h1 passing, ours", func() bool {
		s := e.service(t, "web-h1")
		return s != nil && s.Meta[MetaInstance] == me.m.Instance() && e.checkIs(t, "service:web-h1", api.HealthPassing)
	})
}

// Two instances found web-h1 free at the same moment and both registered it; the second
// replaced the first. The first notices at a heartbeat after verifyAfter and moves to an ID
// of its own, leaving the other's alone.
func TestManagerMovesOffAnIDTakenAtTheSameMoment(t *testing.T) {
	t.Parallel()
	e := startTestAgent(t)
	me := newTestManager(t, e, e.be, webTestConfig(true, 2*time.Second), 0)
	me.bus.Publish(events.Healthy, "web", probeMsg("ok"))
	consulEventually(t, 5*time.Second, "web-h1 passing", func() bool { return e.checkIs(t, "service:web-h1", api.HealthPassing) })
	e.registerAs(t, "web-h1", "twin", time.Minute, api.HealthPassing) // the twin's registration lands
	mine := "web-h1-" + me.m.suffix()
	d := consulEventually(t, verifyAfter+5*time.Second, mine+" passing", func() bool { return e.checkIs(t, "service:"+mine, api.HealthPassing) })
	t.Logf("moved off %s after it was taken", d.Round(time.Millisecond))
	if s := e.service(t, "web-h1"); s == nil || s.Meta[MetaInstance] != "twin" {
		t.Fatalf("the twin's web-h1 was touched: %+v", s)
	}
	me.close(consulCtx(t, 5*time.Second))
	if e.service(t, mine) != nil || e.service(t, "web-h1") == nil {
		t.Fatalf("Close must take its own registration only")
	}
}
