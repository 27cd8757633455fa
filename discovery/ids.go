package discovery

import (
	"context"
	"fmt"
	"maps"
)

// The rule for service IDs (docs/consul.md#service-ids): never one another live instance
// holds. Called on the loop.

// meta is the configured meta plus this instance's token.
func (m *Manager) meta(in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+1)
	maps.Copy(out, in)
	out[MetaInstance] = m.instance
	return out
}

// suffix is what tells this instance's NAME-HOSTNAME-SUFFIX from another's: the start of
// its token.
func (m *Manager) suffix() string { return m.instance[:min(6, len(m.instance))] }

// claim picks the ID s registers under, never one another live instance holds
// (docs/consul.md#service-ids): the ID in use or the configured one when free, this
// instance's, or held by an instance whose check lapsed (it stopped feeding it); else, for a
// default ID, NAME-HOSTNAME-SUFFIX with a suffix of this instance's own. An explicit `id`
// held by another live instance is refused (and retried).
func (m *Manager) claim(ctx context.Context, s *service) error {
	ids := []string{s.reg.ID}
	if s.base != s.reg.ID {
		ids = append(ids, s.base)
	}
	if suffixed := s.base + "-" + m.suffix(); !s.explicit && suffixed != s.reg.ID {
		ids = append(ids, suffixed)
	}
	var other string
	for _, id := range ids {
		h, err := m.b.Holder(ctx, id)
		if err != nil {
			return err
		}
		if h.Exists && h.Instance != m.instance {
			if !h.Lapsed {
				other = orDefault(h.Instance, "not pilotfish")
				continue
			}
			m.log.Warn("taking over a service ID whose check lapsed: the instance that held it stopped feeding it", "service", id, "holder", orDefault(h.Instance, "not pilotfish"))
		}
		if id != s.reg.ID {
			// The ID left behind is another live instance's: never deregister it.
			m.log.Warn("service ID held by another live instance; registering under another one", "service", s.reg.ID, "as", id, "holder", other)
			s.reg.ID, s.held, s.registered = id, false, false
		}
		s.owned, s.conflict = true, false
		return nil
	}
	err := fmt.Errorf("service id %q is held by another live instance (pilotfish instance %s); give each instance its own id", s.reg.ID, other)
	if !s.conflict {
		s.conflict = true
		m.log.Error("cannot register: the service id is taken; retrying until it is free", "service", s.reg.ID, "holder", other)
	}
	return err
}

// verify checks that a registration made a moment ago is still this instance's: two
// instances that found one ID free at the same moment both register it, and the second
// replaces the first. The one replaced moves to another ID (or, with an explicit id, waits).
func (m *Manager) verify(ctx context.Context, s *service) error {
	h, err := m.b.Holder(ctx, s.reg.ID)
	if err != nil {
		return err
	}
	s.verify = false
	switch {
	case !h.Exists:
		s.registered = false // the agent forgot it
	case h.Instance != m.instance:
		m.log.Warn("another instance registered the same service ID at the same moment; moving off it", "service", s.reg.ID, "holder", orDefault(h.Instance, "not pilotfish"))
		s.registered, s.held, s.owned = false, false, false // theirs now: never deregister it
	}
	return nil
}
