package jobs

import (
	"slices"
	"testing"

	"github.com/pilotfish/pilotfish/events"
)

// A run's environment is the same with the cached merge as without it, and a putenv (a new
// generation) reaches the next run.
func TestEnvCacheMatchesMerge(t *testing.T) {
	w := buildWorld(t, `job "a" {
  exec = ["true"]
  env = { SHARED = "job", ONLY_JOB = "1", PILOTFISH_EVENT = "from-env" }
}`)
	base := []string{"PATH=/bin", "SHARED=base", "DUP=1", "DUP=2"}
	gen := uint64(1)
	w.rt.Environ = func() []string { return slices.Clone(base) }
	j := w.jobs["a"]
	ev := events.Event{Code: events.Startup, Source: events.Global, Attrs: map[string]string{events.AttrValue: "v"}}
	act := Activation{Env: []string{"PATH=/act", "EXTRA=x"}}
	want := func() []string {
		return mergeEnv(base, j.cfg.Env, map[string]string{"PILOTFISH_JOB": "a", "PILOTFISH_EVENT": "startup",
			"PILOTFISH_EVENT_SOURCE": events.Global, "PILOTFISH_WATCH_VALUE": "v", "PATH": "/act", "EXTRA": "x"})
	}
	w.rt.EnvGen = func() uint64 { return gen }
	for round := range 3 {
		if round == 2 {
			base = append(base, "PUT=1") // putenv
			gen++
		}
		if got := j.env(ev, act); !slices.Equal(got, want()) {
			t.Fatalf("round %d: env\n%q\nwant\n%q", round, got, want())
		}
	}
	w.rt.EnvGen = nil
	if got := j.env(ev, act); !slices.Equal(got, want()) {
		t.Fatalf("without EnvGen: env\n%q\nwant\n%q", got, want())
	}
}
