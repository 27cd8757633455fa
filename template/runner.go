package template

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/discovery"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/backoff"
	"github.com/pilotfish/pilotfish/internal/tmplguard"
)

// maxWaitFactor bounds a quiet period that keeps being extended by changes: a template
// renders at the latest this many waits after the first change (consul-template's max).
const maxWaitFactor = 4

// writeRetry paces the attempts to write a file that could not be written (a read-only or
// full file system): nothing changes that, so the next attempt is not hurried.
var writeRetry = backoff.Policy{Initial: time.Second, Max: time.Minute}

// runner is one template: its goroutine renders it when what it read changed.
type runner struct {
	e    *Engine
	cfg  *config.Template
	p    *parsed
	perr error // the text does not parse (a configuration loaded without the checker)
	log  *slog.Logger

	pokeC chan struct{} // a value it read changed
	envC  chan struct{} // the environment may have changed
	quit  chan struct{}
	done  chan struct{}

	// Owned by the goroutine (by Apply before the goroutine starts, and by stopRunner after
	// it ended); deps is written under Engine.mu too.
	deps    map[discovery.ViewKey]bool
	env     map[string]envValue // what the last run read
	tried   bool                // it ran once
	first   bool                // the file was written, or found as it should be, once
	retry   backoff.Backoff
	retryAt time.Time // a write failed: try again then

	mu sync.Mutex // st
	st Status
}

func newRunner(e *Engine, cfg *config.Template) *runner {
	r := &runner{e: e, cfg: cfg, log: e.log.With("template", cfg.Name), pokeC: make(chan struct{}, 1), envC: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}), retry: backoff.New(writeRetry),
		st: Status{Name: cfg.Name, Destination: cfg.Destination}}
	p, err := parseText(cfg.Text)
	if err != nil {
		r.perr = fmt.Errorf("line %d: %s", err.Line, err.Message)
		r.log.Error("cannot parse the template; it will not render", "err", r.perr)
		r.st.Errors, r.st.LastError = 1, r.perr.Error()
	}
	r.p = p
	return r
}

// start starts the goroutine; Apply calls it for every runner it made, even one stopped
// in the meantime (which then ends at once).
func (r *runner) start() { go r.loop() }

func (r *runner) stop() {
	close(r.quit)
	<-r.done
}

func (r *runner) poke() {
	select {
	case r.pokeC <- struct{}{}:
	default:
	}
}

func (r *runner) checkEnv() {
	select {
	case r.envC <- struct{}{}:
	default:
	}
}

func (r *runner) loop() {
	defer close(r.done)
	select {
	case <-r.quit:
		return
	default:
	}
	if r.p == nil {
		<-r.quit
		return
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var due, deadline time.Time // a render is due then (zero: none)
	if !r.tried {
		r.render() // the first values it reads are followed from now on
	}
	if !r.retryAt.IsZero() {
		due = r.retryAt
		timer.Reset(time.Until(due))
	}
	schedule := func() {
		now := time.Now()
		switch {
		case !r.first || r.cfg.Wait == 0:
			due = now // the first render comes as soon as everything answered
		case due.IsZero():
			deadline = now.Add(maxWaitFactor * r.cfg.Wait)
			due = now.Add(r.cfg.Wait)
		default:
			due = now.Add(r.cfg.Wait) // the quiet period starts over…
			if due.After(deadline) {
				due = deadline // …but not for ever
			}
		}
		if !r.retryAt.IsZero() && r.retryAt.After(due) {
			due = r.retryAt
		}
		timer.Reset(time.Until(due))
	}
	for {
		select {
		case <-r.quit:
			return
		case <-r.pokeC:
			schedule()
		case <-r.envC:
			if r.envDiffers() {
				schedule()
			}
		case <-timer.C:
			due = time.Time{}
			r.render()
			if !r.retryAt.IsZero() && due.IsZero() {
				due = r.retryAt
				timer.Reset(time.Until(due))
			}
		}
	}
}

// envDiffers reports whether an environment value the last run read is not what it was.
func (r *runner) envDiffers() bool {
	if len(r.env) == 0 {
		return false
	}
	env := r.e.o.Env()
	for name, v := range r.env {
		if cur, ok := env[name]; ok != v.set || cur != v.value {
			return true
		}
	}
	return false
}

// run executes the template once. A dry run (Render) follows nothing new and records
// nothing.
func (r *runner) run(dry bool) ([]byte, *run, error) {
	if r.p == nil {
		return nil, nil, r.perr
	}
	rn := &run{Meter: tmplguard.NewMeter(limits, time.Now()), used: map[discovery.ViewKey]bool{},
		envRead: map[string]envValue{}, notSafe: map[discovery.ViewKey]bool{}}
	rn.lookup = func(k discovery.ViewKey) (*discovery.ViewData, bool) { return r.e.lookup(r, k) }
	if dry {
		rn.lookup = r.e.peek
	}
	if r.e.o.Env != nil {
		rn.env = r.e.o.Env()
	}
	out, err := r.p.execute(rn)
	return out, rn, err
}

// render runs the template and, when every value it read has answered, writes the file if
// its text changed and publishes changed.
func (r *runner) render() {
	start := time.Now()
	r.tried = true
	out, rn, err := r.run(false)
	r.e.setDeps(r, rn.used)
	r.env = rn.envRead
	if len(rn.missing) > 0 || len(rn.notSafe) > 0 {
		r.setStatus(func(st *Status) { st.Waiting = waiting(rn) })
		r.log.Debug("waiting for values", "values", strings.Join(waiting(rn), ", "))
		return
	}
	if err != nil {
		r.fail("cannot render the template; the file keeps its last text", err)
		return
	}
	wrote, err := writeFile(r.cfg.Destination, out, r.cfg.Perms)
	if err != nil {
		d := r.retry.Next()
		r.retryAt = time.Now().Add(d)
		r.fail("cannot write the file; will try again", err, "in", d.Round(time.Millisecond))
		return
	}
	r.retry.Reset()
	r.retryAt = time.Time{}
	first := !r.first
	r.first = true
	r.setStatus(func(st *Status) {
		st.Rendered, st.Waiting, st.LastError = true, nil, ""
		if wrote {
			st.Renders++
		}
	})
	switch {
	case wrote:
		r.log.Info("rendered", "destination", r.cfg.Destination, "bytes", len(out), "took", time.Since(start).Round(time.Microsecond))
	case first:
		r.log.Info("the file already holds the rendered text", "destination", r.cfg.Destination)
	default:
		return // the same text: the file is left alone, and nothing happened
	}
	r.e.gate.Publish(events.Changed, r.cfg.Source(), nil)
}

func (r *runner) fail(msg string, err error, attrs ...any) {
	r.setStatus(func(st *Status) {
		st.Errors++
		st.Waiting = nil
		st.LastError = err.Error()
	})
	r.log.Warn(msg, append([]any{"destination", r.cfg.Destination, "err", err}, attrs...)...)
}

func (r *runner) setStatus(fn func(*Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.st)
}

func (r *runner) status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Waiting = append([]string(nil), st.Waiting...)
	return st
}
