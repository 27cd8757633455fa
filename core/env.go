package core

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/pilotfish/pilotfish/control"
	"github.com/pilotfish/pilotfish/internal/errdefs"
)

// environ is pilotfish's own environment plus the values set at run time (putenv).
type environ struct {
	mu   sync.Mutex
	base []string
	set  map[string]string
	gen  uint64 // counts the changes, for jobs.Runtime.EnvGen
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

// addBase adds a variable of pilotfish's own.
func (e *environ) addBase(kv string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.base = append(e.base, kv)
	e.gen++
}

// Gen changes whenever List would return something else.
func (e *environ) Gen() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen
}

// Set records run-time values, unless all of them together would pass control.MaxEnvTotal.
func (e *environ) Set(kv map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	total := 0
	for k, v := range e.set {
		if _, replaced := kv[k]; !replaced {
			total += len(k) + len(v) + 2
		}
	}
	for k, v := range kv {
		total += len(k) + len(v) + 2
	}
	if total > control.MaxEnvTotal {
		return errdefs.Errorf(errdefs.ErrTooLarge, "the values set through putenv would take %d bytes, more than the %d (1 MiB) allowed in all; "+
			"overwrite some with shorter values", total, control.MaxEnvTotal)
	}
	maps.Copy(e.set, kv)
	e.gen++
	return nil
}
