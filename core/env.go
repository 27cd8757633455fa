package core

import (
	"maps"
	"slices"
	"strings"
	"sync"
)

// environ is pilotfish's own environment plus the values set at run time (putenv).
type environ struct {
	mu   sync.Mutex
	base []string
	set  map[string]string
}

func newEnviron(base []string) *environ {
	return &environ{base: base, set: map[string]string{}}
}

// List returns KEY=VALUE pairs, run-time values last so they win.
func (e *environ) List() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := append([]string(nil), e.base...)
	for _, k := range slices.Sorted(maps.Keys(e.set)) {
		out = append(out, k+"="+e.set[k])
	}
	return out
}

// Map returns the environment as a map, for interpolation.
func (e *environ) Map() map[string]string {
	m := map[string]string{}
	for _, kv := range e.List() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Set records run-time values.
func (e *environ) Set(kv map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	maps.Copy(e.set, kv)
}
