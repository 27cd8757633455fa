package discovery

import (
	"context"
	"time"
)

// What the followers and the loop share about the agent, under Manager.mu: its identity
// (restarts), and the hand-over of connections when it is crowded.

// checkAgent asks the agent who it is, and returns the number of agent restarts seen so far
// (a blocking query's index from before a restart means nothing to the new agent), or why the
// agent did not say. A different identity means the agent restarted and may have forgotten
// every local service: the loop registers everything again. Consul answers pending blocking
// queries normally when it shuts down, so this check, not an error, is what notices a quick
// restart. A 429 is no outage: the agent is there, and busy.
func (m *Manager) checkAgent(ctx context.Context) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	id, err := m.b.AgentID(cctx)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case isTooMany(err):
		m.crowdedTil = time.Now().Add(crowdedFor)
		return m.agentGen, err
	case err != nil:
		if !m.agentDown {
			m.agentDown = true
			m.errs["agent"]++
			m.log.Warn("catalog agent unreachable; retrying", "err", err)
		}
		return m.agentGen, err
	}
	if m.agentDown {
		m.log.Info("catalog agent reachable again")
	}
	if m.agentID != "" && m.agentID != id {
		if !m.agentDown {
			m.errs["agent"]++ // an outage too short to see
		}
		m.agentGen++
		m.resyncSoon()
	}
	m.agentDown, m.agentID = false, id
	return m.agentGen, nil
}

// yield asks the watches to give up their connections for d: the agent refused a call of
// the loop because this address holds too many connections (Consul's
// limits.http_max_conns_per_client), and this instance's own registrations and health come
// before what it watches. Each blocking query holds a connection for as long as it waits.
func (m *Manager) yield(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until := time.Now().Add(d); until.After(m.yieldUntil) {
		m.yieldUntil = until
	}
	m.yieldChangedLocked()
}

// endYield lets the watches back after wait (the time the loop's connection takes to close
// by itself).
func (m *Manager) endYield(wait time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until := time.Now().Add(wait); m.yieldUntil.After(until) {
		m.yieldUntil = until
		m.yieldChangedLocked()
	}
}

// yieldChangedLocked wakes whoever waits on the yield state; call with mu held.
func (m *Manager) yieldChangedLocked() {
	if m.yieldCh != nil {
		close(m.yieldCh)
	}
	m.yieldCh = make(chan struct{})
}

// markCrowded notes a 429: for a while, the loop's calls go through the hand-over in sync.
func (m *Manager) markCrowded() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crowdedTil = time.Now().Add(crowdedFor)
}

func (m *Manager) crowded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return time.Now().Before(m.crowdedTil)
}

// releaseIdle closes the loop's idle connection at once, when the backend can.
func (m *Manager) releaseIdle() {
	if c, ok := m.b.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// yielding returns until when the watches stay off, and a channel closed when that changes.
func (m *Manager) yielding() (time.Time, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.yieldCh == nil {
		m.yieldCh = make(chan struct{})
	}
	return m.yieldUntil, m.yieldCh
}

// agentKnown reports whether the agent's identity was learnt.
func (m *Manager) agentKnown() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.agentID != ""
}

// resyncSoon asks the loop to register everything again.
func (m *Manager) resyncSoon() {
	select {
	case m.resync <- struct{}{}:
	default:
	}
}
