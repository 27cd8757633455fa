package containerpilot

import (
	"fmt"
	ttemplate "text/template"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/tmplguard"
)

// runState is one template run: its meter (internal/tmplguard) and the environment it reads.
type runState struct {
	*tmplguard.Meter
	env  map[string]string
	used map[string]bool
}

// limits of a template run (docs/migrating-from-containerpilot.md#limits).
var limits = tmplguard.Limits{Steps: maxSteps, FuncBytes: maxFuncBytes, String: maxString, Loop: maxLoop, Time: config.EvalTimeout}

// funcs are ContainerPilot's template functions (config/template/template.go of
// ContainerPilot 3), bounded, and bounded versions of the builtins that build strings.
func (s *runState) funcs() ttemplate.FuncMap {
	f := s.Meter.Funcs()
	f["default"] = func(def, v any) (string, error) {
		if str, ok := v.(string); ok && str != "" {
			return str, nil
		}
		if str, ok := def.(string); ok {
			return str, nil
		}
		return s.Result(fmt.Sprint(def))
	}
	f["env"] = func(name string) string {
		s.used[name] = true
		return s.env[name]
	}
	return f
}
