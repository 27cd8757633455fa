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
	"github.com/prometheus/client_golang/prometheus"
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
	def       *config.Metric
	collector prometheus.Collector
	counter   *prometheus.CounterVec
	gauge     *prometheus.GaugeVec
	observer  interface {
		GetMetricWith(prometheus.Labels) (prometheus.Observer, error)
	}
}

// customMetrics lives in a registry of its own, rebuilt by every Apply: a Prometheus
// registry never forgets a name's help and labels, so a redefined metric needs a new one.
type customMetrics struct {
	mu  sync.Mutex
	reg *prometheus.Registry
	by  map[string]*customMetric
}

func newCustomMetrics() *customMetrics {
	return &customMetrics{reg: prometheus.NewRegistry(), by: map[string]*customMetric{}}
}

func (c *customMetrics) registry() *prometheus.Registry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reg
}

// Apply installs the custom metrics of a configuration. A metric whose definition is
// unchanged keeps its values; changed ones start afresh; removed ones disappear.
func (t *Telemetry) Apply(defs []*config.Metric) error {
	c := t.custom
	c.mu.Lock()
	defer c.mu.Unlock()
	reg := prometheus.NewRegistry()
	by := map[string]*customMetric{}
	var errs []error
	for _, d := range defs {
		m, ok := c.by[d.Name]
		if !ok || !sameDefinition(m.def, d) {
			m = build(d)
		}
		if err := reg.Register(m.collector); err != nil {
			errs = append(errs, fmt.Errorf("cannot register metric %q: %w", d.Name, err))
			continue
		}
		by[d.Name] = m
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.reg, c.by = reg, by
	return nil
}

func sameDefinition(a, b *config.Metric) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Help == b.Help && slices.Equal(a.Labels, b.Labels) &&
		slices.Equal(a.Buckets, b.Buckets) && reflect.DeepEqual(a.Objectives, b.Objectives)
}

func build(d *config.Metric) *customMetric {
	m := &customMetric{def: d}
	labels := d.Labels
	switch d.Type {
	case "counter":
		m.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.Name, Help: d.Help}, labels)
		m.collector = m.counter
	case "gauge":
		m.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: d.Name, Help: d.Help}, labels)
		m.collector = m.gauge
	case "histogram":
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: d.Name, Help: d.Help, Buckets: d.Buckets}, labels)
		m.observer, m.collector = h, h
	case "summary":
		objectives := d.Objectives
		if len(objectives) == 0 {
			objectives = map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}
		}
		s := prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: d.Name, Help: d.Help, Objectives: objectives}, labels)
		m.observer, m.collector = s, s
	}
	if len(labels) == 0 {
		// Show a metric without labels from the start, at zero.
		switch {
		case m.counter != nil:
			m.counter.WithLabelValues()
		case m.gauge != nil:
			m.gauge.WithLabelValues()
		default:
			_, _ = m.observer.GetMetricWith(prometheus.Labels{})
		}
	}
	return m
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
	labels := prometheus.Labels(u.Labels)
	if labels == nil {
		labels = prometheus.Labels{}
	}
	switch {
	case m.counter != nil:
		m.counter.With(labels).Add(u.Value)
	case m.gauge != nil:
		if u.Add {
			m.gauge.With(labels).Add(u.Value)
		} else {
			m.gauge.With(labels).Set(u.Value)
		}
	default:
		if o, err := m.observer.GetMetricWith(labels); err == nil {
			o.Observe(u.Value)
		}
	}
}
