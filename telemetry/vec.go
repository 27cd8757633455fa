package telemetry

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// defBuckets are Prometheus' default histogram buckets (docs/metrics.md).
var defBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Summaries estimate quantiles over a sliding window of summaryMaxAge, from at most
// summaryWindow observations per series (the most recent ones): exact while a series has
// fewer than that in the window, and then over the latest ones. Memory is bounded (16 KiB
// per series at most) and a scrape sorts at most summaryWindow values per series.
const (
	summaryMaxAge = 10 * time.Minute
	summaryWindow = 1024
)

// vec is a metric family with state: a counter, gauge, histogram or summary, one cell per
// combination of label values. Its methods are safe for concurrent use.
type vec struct {
	name, help string
	typ        metricType
	labels     []string  // names, in declared order
	bounds     []float64 // histograms
	quants     []float64 // summaries, increasing
	now        func() time.Time

	mu    sync.Mutex
	cells map[string]*cell
}

type cell struct {
	values []string
	v      float64 // counter or gauge value; histogram or summary sum
	count  uint64
	counts []uint64 // histograms: observations per bucket (not cumulative)
	// summaries: a ring of the latest observations and when they were made
	obs   []float64
	at    []int64
	start int
}

// newVec checks a definition the way a Prometheus registry did and builds its family.
func newVec(name, help string, typ metricType, labels []string, buckets []float64, objectives map[float64]float64) (*vec, error) {
	v := &vec{name: name, help: help, typ: typ, labels: labels, now: time.Now, cells: map[string]*cell{}}
	seen := map[string]bool{}
	for _, l := range labels {
		if seen[l] {
			return nil, fmt.Errorf("label %q is given twice", l)
		}
		seen[l] = true
		if (typ == histogramType && l == "le") || (typ == summaryType && l == "quantile") {
			return nil, fmt.Errorf("%q is a reserved label name for a %s", l, typeNames[typ])
		}
	}
	switch typ {
	case histogramType:
		b := buckets
		if len(b) == 0 {
			b = defBuckets
		}
		if math.IsInf(b[len(b)-1], 1) {
			b = b[:len(b)-1]
		}
		for i := 1; i < len(b); i++ {
			if b[i] <= b[i-1] {
				return nil, fmt.Errorf("histogram buckets must be strictly increasing, got %v", buckets)
			}
		}
		v.bounds = slices.Clone(b)
	case summaryType:
		if len(objectives) == 0 {
			objectives = map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}
		}
		for q := range objectives {
			v.quants = append(v.quants, q)
		}
		sort.Float64s(v.quants)
	}
	if len(labels) == 0 {
		// A metric without labels shows from the start, at zero.
		v.cell(nil)
	}
	return v, nil
}

// cell returns the series of these label values (in declared order), creating it. Callers
// hold mu, or own v alone.
func (v *vec) cell(values []string) *cell {
	key := strings.Join(values, "\xff")
	c := v.cells[key]
	if c == nil {
		c = &cell{values: slices.Clone(values)}
		if v.typ == histogramType {
			c.counts = make([]uint64, len(v.bounds))
		}
		v.cells[key] = c
	}
	return c
}

func (v *vec) add(values []string, x float64) {
	v.mu.Lock()
	v.cell(values).v += x
	v.mu.Unlock()
}

func (v *vec) set(values []string, x float64) {
	v.mu.Lock()
	v.cell(values).v = x
	v.mu.Unlock()
}

func (v *vec) observe(values []string, x float64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.cell(values)
	c.v += x
	c.count++
	switch v.typ {
	case histogramType:
		if i := sort.SearchFloat64s(v.bounds, x); i < len(c.counts) {
			c.counts[i]++
		}
	case summaryType:
		now := v.now().UnixNano()
		if len(c.obs) < summaryWindow {
			c.obs = append(c.obs, x)
			c.at = append(c.at, now)
		} else {
			c.obs[c.start], c.at[c.start] = x, now
			c.start = (c.start + 1) % summaryWindow
		}
	}
}

func (v *vec) delete(values []string) {
	v.mu.Lock()
	delete(v.cells, strings.Join(values, "\xff"))
	v.mu.Unlock()
}

// family is a snapshot of the vector for a scrape.
func (v *vec) family() family {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := family{name: v.name, help: v.help, typ: v.typ, series: make([]sample, 0, len(v.cells))}
	var window []float64
	cutoff := v.now().Add(-summaryMaxAge).UnixNano()
	for _, c := range v.cells {
		s := sample{labels: make([]label, len(v.labels)), value: c.v, count: c.count}
		for i, n := range v.labels {
			s.labels[i] = label{n, c.values[i]}
		}
		switch v.typ {
		case histogramType:
			s.bounds = v.bounds
			s.counts = make([]uint64, len(c.counts))
			var cum uint64
			for i, n := range c.counts {
				cum += n
				s.counts[i] = cum
			}
		case summaryType:
			window = window[:0]
			for i, x := range c.obs {
				if c.at[i] >= cutoff {
					window = append(window, x)
				}
			}
			sort.Float64s(window)
			s.quants = v.quants
			s.qvals = make([]float64, len(v.quants))
			for i, q := range v.quants {
				s.qvals[i] = quantile(window, q)
			}
		}
		f.series = append(f.series, s)
	}
	return f
}

// quantile is the value of rank ⌈q·n⌉ in sorted; NaN without observations.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
