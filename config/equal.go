package config

import (
	"maps"
	"reflect"
	"slices"

	"github.com/hashicorp/hcl/v2"
)

// Equal methods say when two definitions do the same thing: a reload keeps a job whose new
// definition is Equal to the running one and restarts the others (docs/jobs.md#reload).
// Where a block is written (the hcl.Range fields) does not count. Nil and empty lists or
// maps are alike. TestEqualSeesEveryField fails when a field is added and left out here.

// Spec is a kind's own settings, in Job.Spec (see Kind.Decode).
type Spec interface {
	// Equal reports whether other is a spec of the same kind with the same settings.
	Equal(other Spec) bool
}

// Equal reports whether two jobs have the same definition.
func (j *Job) Equal(o *Job) bool {
	if j == nil || o == nil {
		return j == o
	}
	return j.Name == o.Name && j.Kind == o.Kind && slices.Equal(j.Exec, o.Exec) && j.Dir == o.Dir &&
		j.User == o.User && j.Group == o.Group && maps.Equal(j.Env, o.Env) && j.Restarts == o.Restarts &&
		j.Backoff == o.Backoff && j.StopSignal == o.StopSignal && j.StopTimeout == o.StopTimeout &&
		j.Timeout == o.Timeout && j.Overlap == o.Overlap && j.When.Equal(o.When) && j.Health.Equal(o.Health) &&
		j.Service.Equal(o.Service) && j.Logging.Equal(o.Logging) && specEqual(j.Spec, o.Spec) && j.Main == o.Main &&
		j.RestartOn == o.RestartOn && slices.Equal(j.SuccessCodes, o.SuccessCodes) && j.Autostart == o.Autostart &&
		maps.Equal(j.Limits, o.Limits) && intPtrEqual(j.OOMScoreAdj, o.OOMScoreAdj)
}

func intPtrEqual(a, b *int) bool {
	return a == b || a != nil && b != nil && *a == *b
}

func specEqual(a, b Spec) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(b)
}

// SpecEqual is Spec.Equal for a spec type whose fields all compare with == (a field that
// does not, such as a list, makes it fail to compile).
func SpecEqual[T comparable](s *T, other Spec) bool {
	o, ok := any(other).(*T)
	return ok && (s == o || s != nil && o != nil && *s == *o)
}

// Equal reports whether two triggers are the same.
func (w *When) Equal(o *When) bool {
	if w == nil || o == nil {
		return w == o
	}
	return w.Source == o.Source && w.Once == o.Once && w.Each == o.Each && w.Interval == o.Interval &&
		slices.EqualFunc(w.After, o.After, Trigger.Equal) && slices.EqualFunc(w.Any, o.Any, Trigger.Equal) &&
		w.Debounce == o.Debounce && w.Timeout == o.Timeout
}

// Equal reports whether two (source, code) pairs are the same.
func (t Trigger) Equal(o Trigger) bool { return t.Source == o.Source && t.Code == o.Code }

// Equal reports whether two health checks are the same.
func (h *Health) Equal(o *Health) bool {
	if h == nil || o == nil {
		return h == o
	}
	return slices.Equal(h.Exec, o.Exec) && h.HTTP == o.HTTP && h.TCP == o.TCP && h.Port == o.Port &&
		h.Log == o.Log && h.Interval == o.Interval && h.Timeout == o.Timeout && h.Grace == o.Grace &&
		h.Failures == o.Failures && h.Successes == o.Successes && h.OnFailure == o.OnFailure
}

// Equal reports whether two service registrations are the same. Its lists and maps are
// compared here; every other field, present or to come, by value.
func (s *Service) Equal(o *Service) bool {
	if s == nil || o == nil {
		return s == o
	}
	if !slices.Equal(s.Tags, o.Tags) || !maps.Equal(s.Meta, o.Meta) || !slices.Equal(s.Interfaces, o.Interfaces) {
		return false
	}
	a, b := *s, *o
	for _, v := range []*Service{&a, &b} {
		v.Tags, v.Meta, v.Interfaces = nil, nil, nil
		v.Range = hcl.Range{}
	}
	return reflect.DeepEqual(a, b)
}

// Equal reports whether two job logging blocks are the same.
func (l JobLogging) Equal(o JobLogging) bool {
	return l.Prefix == o.Prefix && l.Color == o.Color && l.File == o.File && l.Rotate.Equal(o.Rotate) &&
		l.Buffer == o.Buffer && l.Timestamps == o.Timestamps
}

// Equal reports whether two rotations are the same.
func (r *Rotate) Equal(o *Rotate) bool {
	if r == nil || o == nil {
		return r == o
	}
	return *r == *o
}
