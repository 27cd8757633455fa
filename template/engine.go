package template

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/discovery"
	"github.com/pilotfish/pilotfish/events"
)

// Catalog is where templates' values come from: discovery.Manager.
type Catalog interface {
	Follow(k discovery.ViewKey, notify func(*discovery.ViewData)) *discovery.ViewSub
}

// Options configure an Engine.
type Options struct {
	Catalog Catalog // nil without a consul block: only the environment can be read
	Bus     *events.Bus
	Log     *slog.Logger
	// Env is the environment templates read: pilotfish's, with the values set by putenv.
	Env func() map[string]string
}

// Errors of Render.
var (
	ErrUnknown = errors.New("no such template")
	ErrWaiting = errors.New("the template waits for values that have not answered yet")
)

// Engine runs the templates of the configuration.
type Engine struct {
	o    Options
	log  *slog.Logger
	sub  *events.Subscription
	done chan struct{} // the bus reader ended

	// Events wait from Apply until the next global startup: the jobs built with the
	// configuration subscribe before it.
	gate *events.Gate

	mu      sync.Mutex
	runners map[string]*runner
	deps    map[discovery.ViewKey]*dep
	closed  bool
}

// dep is one value templates read, followed through one view, shared by every template that
// reads it.
type dep struct {
	key discovery.ViewKey
	sub *discovery.ViewSub

	mu    sync.Mutex // users; taken under Engine.mu, or alone by changed
	users map[*runner]bool
}

// changed tells every template that read the value to render again. It runs on the view's
// goroutine and never blocks.
func (d *dep) changed(*discovery.ViewData) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for r := range d.users {
		r.poke()
	}
}

// New builds an engine; it follows the bus for the startup and shutdown events.
func New(o Options) *Engine {
	e := &Engine{o: o, log: o.Log.With("component", "template"), done: make(chan struct{}), gate: events.NewGate(o.Bus),
		runners: map[string]*runner{}, deps: map[discovery.ViewKey]*dep{}}
	e.sub = o.Bus.Subscribe(events.SubscribeOptions{Name: "templates", Filter: func(ev events.Event) bool {
		return ev.Source == events.Global && (ev.Code == events.Startup || ev.Code == events.Shutdown)
	}})
	go e.follow()
	return e
}

// follow releases the held events at startup and stops every template at shutdown.
func (e *Engine) follow() {
	defer close(e.done)
	for {
		select {
		case <-e.sub.Ready():
		case <-e.sub.Done():
			return
		}
		for {
			ev, ok := e.sub.Next()
			if !ok {
				break
			}
			if ev.Code == events.Shutdown {
				e.stopAll()
				continue
			}
			e.gate.Release(ev.Seq)
		}
	}
}

// Apply runs the templates of a configuration (at start-up, before any job starts, and at
// each reload): an unchanged template keeps running, without rendering again unless an
// environment value it read changed; a changed one starts over; a removed one stops (its
// file stays). A new template that reads only the environment is rendered before Apply
// returns. Its events wait for the next global startup.
func (e *Engine) Apply(ts []*config.Template) {
	want := make(map[string]*config.Template, len(ts))
	for _, t := range ts {
		want[t.Name] = t
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.gate.Hold()
	var stop, start, kept []*runner
	for name, r := range e.runners {
		if c, ok := want[name]; !ok || !c.Equal(r.cfg) {
			stop = append(stop, r)
			delete(e.runners, name)
		} else {
			kept = append(kept, r)
		}
	}
	for _, t := range ts {
		if _, ok := e.runners[t.Name]; !ok {
			r := newRunner(e, t)
			e.runners[t.Name] = r
			start = append(start, r)
		}
	}
	e.mu.Unlock()
	for _, r := range stop {
		e.stopRunner(r)
	}
	sort.Slice(start, func(i, j int) bool { return start[i].cfg.Name < start[j].cfg.Name })
	for _, r := range start {
		if r.p != nil && r.p.catalog == "" {
			r.render() // before any job starts: a job reads its configuration at start-up
		}
		r.start()
	}
	for _, r := range kept {
		r.checkEnv()
	}
}

// EnvChanged renders again, after their wait, the templates whose environment values
// changed (putenv).
func (e *Engine) EnvChanged() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.runners {
		r.checkEnv()
	}
}

// stopAll stops every template (the shutdown began): nothing is written any more.
func (e *Engine) stopAll() {
	e.mu.Lock()
	e.closed = true
	list := make([]*runner, 0, len(e.runners))
	for name, r := range e.runners {
		list = append(list, r)
		delete(e.runners, name)
	}
	e.mu.Unlock()
	for _, r := range list {
		e.stopRunner(r)
	}
}

// Close stops every template and lets go of every value.
func (e *Engine) Close() {
	e.stopAll()
	e.sub.Close()
	<-e.done
}

// stopRunner stops a template's goroutine and lets go of what only it read.
func (e *Engine) stopRunner(r *runner) {
	r.stop()
	e.setDeps(r, nil)
}

// lookup returns the value of k for r, following it from now on if nobody did.
func (e *Engine) lookup(r *runner, k discovery.ViewKey) (*discovery.ViewData, bool) {
	e.mu.Lock()
	d := e.deps[k]
	if d == nil {
		if e.o.Catalog == nil || e.closed {
			e.mu.Unlock()
			return nil, false // never answers
		}
		d = &dep{key: k, users: map[*runner]bool{}}
		// Follow never waits for a view's goroutine, and notify takes only d.mu: safe
		// under e.mu.
		d.sub = e.o.Catalog.Follow(k, d.changed)
		e.deps[k] = d
	}
	d.mu.Lock()
	d.users[r] = true
	d.mu.Unlock()
	e.mu.Unlock()
	return d.sub.Data()
}

// peek returns the value of k if some template follows it, without following it.
func (e *Engine) peek(k discovery.ViewKey) (*discovery.ViewData, bool) {
	e.mu.Lock()
	d := e.deps[k]
	e.mu.Unlock()
	if d == nil {
		return nil, false
	}
	return d.sub.Data()
}

// setDeps records what r read in its last run and lets go of the values nobody reads any
// more. Closing a view waits for its goroutine: it happens with no lock held.
func (e *Engine) setDeps(r *runner, used map[discovery.ViewKey]bool) {
	var release []*discovery.ViewSub
	e.mu.Lock()
	for k := range r.deps {
		if used[k] {
			continue
		}
		d := e.deps[k]
		if d == nil {
			continue
		}
		d.mu.Lock()
		delete(d.users, r)
		empty := len(d.users) == 0
		d.mu.Unlock()
		if empty {
			delete(e.deps, k)
			release = append(release, d.sub)
		}
	}
	r.deps = used
	e.mu.Unlock()
	for _, s := range release {
		s.Close()
	}
}

// Status is one template's state (docs/api.md#templates).
type Status struct {
	Name        string
	Destination string
	Rendered    bool     // its file was written, or found as it should be, once
	Renders     uint64   // writes of the file
	Errors      uint64   // runs and writes that failed
	LastError   string   // "" once a run succeeds
	Waiting     []string // values it read that have not answered yet
}

// Status lists every template, by name.
func (e *Engine) Status() []Status {
	e.mu.Lock()
	list := make([]*runner, 0, len(e.runners))
	for _, r := range e.runners {
		list = append(list, r)
	}
	e.mu.Unlock()
	out := make([]Status, 0, len(list))
	for _, r := range list {
		out = append(out, r.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ReadsCatalog reports whether a template reads Consul (it renders again when the catalog
// changes).
func (e *Engine) ReadsCatalog() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.runners {
		if r.p != nil && r.p.catalog != "" {
			return true
		}
	}
	return false
}

// Render runs a template now with the values at hand, without writing it: what it would
// write (`pilotfish render`).
func (e *Engine) Render(name string) (Rendered, error) {
	e.mu.Lock()
	r := e.runners[name]
	e.mu.Unlock()
	if r == nil {
		return Rendered{}, fmt.Errorf("%w %q", ErrUnknown, name)
	}
	out, rn, err := r.run(true)
	switch {
	case rn != nil && len(rn.missing) > 0:
		return Rendered{}, fmt.Errorf("%w: %s", ErrWaiting, strings.Join(waiting(rn), ", "))
	case err != nil:
		return Rendered{}, fmt.Errorf("template %q cannot render: %w", name, err)
	}
	return Rendered{Name: name, Destination: r.cfg.Destination, Text: out}, nil
}

// Rendered is what a template would write.
type Rendered struct {
	Name        string
	Destination string
	Text        []byte
}

func waiting(rn *run) []string {
	out := make([]string, 0, len(rn.missing)+len(rn.notSafe))
	for _, k := range rn.missing {
		out = append(out, describe(k))
	}
	for k := range rn.notSafe {
		out = append(out, describe(k)+" (empty; safeLs and safeTree wait for a key)")
	}
	sort.Strings(out[len(rn.missing):])
	return out
}
