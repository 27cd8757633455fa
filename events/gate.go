package events

import "sync"

// Gate holds back the events of a publisher that runs on its own (a watch's first answer, a
// template's first render) from Hold until the next global startup after it: the jobs built
// with a configuration subscribe just before that startup, and an event published earlier
// would reach none of them. Held events are published in their order, right after the
// startup, by Release. The owner calls Hold when it applies a configuration, and Release
// with each global startup it receives.
//
// Concurrency: every method may be called from any goroutine.
type Gate struct {
	bus *Bus

	mu      sync.Mutex
	held    bool
	after   uint64 // the bus's last sequence number when Hold was called
	pending []held
}

type held struct {
	code   Code
	source string
	attrs  map[string]string
}

// NewGate returns a gate that is open: events go out at once until Hold.
func NewGate(bus *Bus) *Gate { return &Gate{bus: bus} }

// Hold keeps events back until a startup published after now.
func (g *Gate) Hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held, g.after = true, g.bus.Seq()
}

// Publish publishes an event, or keeps it until the gate opens.
func (g *Gate) Publish(code Code, source string, attrs map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock() // publishing never blocks; the lock keeps the order
	if g.held {
		g.pending = append(g.pending, held{code, source, attrs})
		return
	}
	g.bus.Publish(code, source, attrs)
}

// Release opens the gate for a global startup with sequence number seq, unless that startup
// was published before Hold, and publishes what it held.
func (g *Gate) Release(seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held || seq <= g.after {
		return
	}
	for _, e := range g.pending {
		g.bus.Publish(e.code, e.source, e.attrs)
	}
	g.held, g.pending = false, nil
}
