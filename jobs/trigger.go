package jobs

import (
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

type triggerKey struct {
	source string
	code   events.Code
}

// trigger holds what a job has seen of the events it waits for. It is owned by the job's
// loop.
type trigger struct {
	when      *config.When
	keys      map[triggerKey]bool // every (source, code) the job listens to
	remaining map[triggerKey]bool // after: not seen yet
	primed    map[triggerKey]bool // levels that held when the job was created by a reload
	startup   bool                // startup has been seen
	fired     bool                // a once/after/at-startup trigger has fired
}

func newTrigger(w *config.When) *trigger {
	t := &trigger{when: w, keys: map[triggerKey]bool{}, remaining: map[triggerKey]bool{}, primed: map[triggerKey]bool{}}
	for _, tr := range w.Triggers() {
		k := triggerKey{tr.Source, tr.Code}
		t.keys[k] = true
		if len(w.After) > 0 {
			t.remaining[k] = true
		}
	}
	return t
}

// wants is the subscription filter. It runs under the bus lock and only reads immutable
// fields.
func (t *trigger) wants(ev events.Event) bool {
	return t.keys[triggerKey{ev.Source, ev.Code}] || (ev.Source == events.Global && ev.Code == events.Startup)
}

// hookOnly reports whether k is a stopping/stopped trigger, the only kind honoured during
// shutdown.
func hookOnly(k triggerKey) bool { return k.code == events.Stopping || k.code == events.Stopped }

// match tells what ev means for the job: fire now, or (for debounced triggers) restart the
// debounce timer.
func (t *trigger) match(ev events.Event, shuttingDown bool) (fire, debounce bool) {
	k := triggerKey{ev.Source, ev.Code}
	if !t.keys[k] || (shuttingDown && !hookOnly(k)) {
		return false, false
	}
	w := t.when
	switch {
	case w.Once != "":
		// A hook's once counts per run of the job it hooks: it fires at every stop
		// (docs/events.md, "Hooks").
		if t.fired && !hookOnly(k) {
			return false, false
		}
		t.fired = true
		return true, false
	case len(w.After) > 0:
		delete(t.remaining, k)
		if len(t.remaining) > 0 || t.fired {
			return false, false
		}
		t.fired = true
		return true, false
	default: // each, any
		if w.Debounce > 0 {
			return false, true
		}
		return true, false
	}
}

// firePrimed applies primed levels at startup and reports whether they satisfy a once or
// after trigger, with the event the run is to see as its trigger: the once event, or the
// last of the after events.
func (t *trigger) firePrimed() (events.Event, bool) {
	w := t.when
	if len(t.primed) == 0 || t.fired || (w.Once == "" && len(w.After) == 0) {
		return events.Event{}, false
	}
	for k := range t.primed {
		delete(t.remaining, k)
	}
	if w.Once != "" && !t.primed[triggerKey{w.Source, w.Once}] || len(w.After) > 0 && len(t.remaining) > 0 {
		return events.Event{}, false
	}
	t.fired = true
	if w.Once != "" {
		return events.Event{Code: w.Once, Source: w.Source}, true
	}
	last := w.After[len(w.After)-1]
	return events.Event{Code: last.Code, Source: last.Source}, true
}

// pending lists the triggers still awaited, for the liveness check.
func (t *trigger) pending() []config.Trigger {
	w := t.when
	switch {
	case w == nil:
		if !t.startup {
			return []config.Trigger{{Source: events.Global, Code: events.Startup}}
		}
		return nil
	case w.Interval > 0:
		return nil
	case w.Once != "" || len(w.After) > 0:
		if t.fired {
			return nil
		}
		if len(w.After) > 0 {
			var out []config.Trigger
			for _, tr := range w.After {
				if t.remaining[triggerKey{tr.Source, tr.Code}] {
					out = append(out, tr)
				}
			}
			return out
		}
	}
	return w.Triggers()
}
