package telemetry

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/pilotfish/pilotfish/config"
)

// UpdateError is a refused custom metric update; the control API answers 404 when the
// metric is unknown and 400 otherwise.
type UpdateError struct {
	Unknown bool
	Msg     string
}

func (e *UpdateError) Error() string { return e.Msg }

func badUpdate(format string, args ...any) error {
	return &UpdateError{Msg: fmt.Sprintf(format, args...)}
}

// Update is one change to a custom metric.
type Update struct {
	Name   string
	Value  float64
	Labels map[string]string
	Add    bool // gauges: add Value instead of setting it
}

type customMetric struct {
	def *config.Metric
	vec *vec
}

// customMetrics is the declared metrics, replaced as a whole by every Apply.
type customMetrics struct {
	mu sync.Mutex
	by map[string]*customMetric
}

func newCustomMetrics() *customMetrics {
	return &customMetrics{by: map[string]*customMetric{}}
}

func (c *customMetrics) families(fams []family) []family {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.by {
		fams = append(fams, m.vec.family())
	}
	return fams
}

// Apply installs the custom metrics of a configuration. A metric whose definition is
// unchanged keeps its values; changed ones start afresh; removed ones disappear.
func (t *Telemetry) Apply(defs []*config.Metric) error {
	c := t.custom
	c.mu.Lock()
	defer c.mu.Unlock()
	by := map[string]*customMetric{}
	var errs []error
	for _, d := range defs {
		m, ok := c.by[d.Name]
		if !ok || !sameDefinition(m.def, d) {
			var err error
			if m, err = build(d); err != nil {
				errs = append(errs, fmt.Errorf("cannot register metric %q: %w", d.Name, err))
				continue
			}
		}
		if _, dup := by[d.Name]; dup {
			errs = append(errs, fmt.Errorf("cannot register metric %q: it is declared twice", d.Name))
			continue
		}
		by[d.Name] = m
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.by = by
	return nil
}

func sameDefinition(a, b *config.Metric) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Help == b.Help && slices.Equal(a.Labels, b.Labels) &&
		slices.Equal(a.Buckets, b.Buckets) && reflect.DeepEqual(a.Objectives, b.Objectives)
}

var metricTypes = map[string]metricType{"counter": counterType, "gauge": gaugeType, "histogram": histogramType, "summary": summaryType}

func build(d *config.Metric) (*customMetric, error) {
	typ, ok := metricTypes[d.Type]
	if !ok {
		return nil, fmt.Errorf("unknown type %q", d.Type)
	}
	v, err := newVec(d.Name, d.Help, typ, d.Labels, d.Buckets, d.Objectives)
	if err != nil {
		return nil, err
	}
	return &customMetric{def: d, vec: v}, nil
}

// Put applies updates in order. It checks them all first: one bad update rejects the
// request and changes nothing.
func (t *Telemetry) Put(updates []Update) error {
	c := t.custom
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range updates {
		if err := c.check(u); err != nil {
			return err
		}
	}
	for _, u := range updates {
		c.apply(u)
	}
	return nil
}

func (c *customMetrics) check(u Update) error {
	m, ok := c.by[u.Name]
	if !ok {
		names := slices.Sorted(maps.Keys(c.by))
		hint := "no custom metric is declared"
		if len(names) > 0 {
			hint = "declared: " + strings.Join(names, ", ")
		}
		return &UpdateError{Unknown: true, Msg: fmt.Sprintf("unknown metric %q (%s); declare it in telemetry { metric %q { … } }", u.Name, hint, u.Name)}
	}
	if math.IsNaN(u.Value) || math.IsInf(u.Value, 0) {
		return badUpdate("the value of %q must be a finite number", u.Name)
	}
	switch m.def.Type {
	case "counter":
		if u.Value < 0 {
			return badUpdate("%q is a counter; it only goes up, so %v cannot be added", u.Name, u.Value)
		}
	case "histogram", "summary":
		if u.Add {
			return badUpdate("%q is a %s; it observes values, \"+N\"/\"-N\" apply to gauges", u.Name, m.def.Type)
		}
	}
	want := slices.Clone(m.def.Labels)
	got := slices.Sorted(maps.Keys(u.Labels))
	sort.Strings(want)
	if !slices.Equal(want, got) {
		return badUpdate("%q takes the labels [%s], got [%s]", u.Name, strings.Join(want, ", "), strings.Join(got, ", "))
	}
	return nil
}

func (c *customMetrics) apply(u Update) {
	m := c.by[u.Name]
	values := make([]string, len(m.def.Labels))
	for i, l := range m.def.Labels {
		values[i] = u.Labels[l]
	}
	switch {
	case m.vec.typ == counterType, m.vec.typ == gaugeType && u.Add:
		m.vec.add(values, u.Value)
	case m.vec.typ == gaugeType:
		m.vec.set(values, u.Value)
	default:
		m.vec.observe(values, u.Value)
	}
}
