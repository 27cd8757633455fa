package telemetry

import (
	"bufio"
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The exposition is written here rather than with the Prometheus client library: that
// library (with protobuf and procfs) was a fifth of the binary and of its resident pages,
// paid at every start. The output is what client_golang wrote, family for family: text
// format 0.0.4, or OpenMetrics 1.0.0 when the scraper asks for it (docs/metrics.md).

type metricType uint8

const (
	counterType metricType = iota
	gaugeType
	histogramType
	summaryType
)

var typeNames = [...]string{"counter", "gauge", "histogram", "summary"}

// family is one metric family as a scrape shows it.
type family struct {
	name, help string
	typ        metricType
	series     []sample
}

// sample is one series: its labels (the exposition sorts them by name) and its value, or
// the buckets or quantiles of a histogram or summary.
type sample struct {
	labels []label
	value  float64 // counters and gauges; the sum of histograms and summaries
	count  uint64  // histograms and summaries
	bounds []float64
	counts []uint64 // histograms: cumulative count at each bound; summaries: nil
	quants []float64
	qvals  []float64
}

type label struct{ name, value string }

// sortFamilies puts families in name order and series in label order, as client_golang did.
func sortFamilies(fams []family) {
	slices.SortFunc(fams, func(a, b family) int { return strings.Compare(a.name, b.name) })
	for i := range fams {
		for j := range fams[i].series {
			l := fams[i].series[j].labels
			slices.SortFunc(l, func(a, b label) int { return strings.Compare(a.name, b.name) })
		}
		slices.SortStableFunc(fams[i].series, func(a, b sample) int {
			for k := 0; k < len(a.labels) && k < len(b.labels); k++ {
				if c := strings.Compare(a.labels[k].value, b.labels[k].value); c != 0 {
					return c
				}
			}
			return len(a.labels) - len(b.labels)
		})
	}
}

// encoder writes families in one format.
type encoder struct {
	w  *bufio.Writer
	om bool // OpenMetrics 1.0.0
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func (e *encoder) family(f *family) {
	name, typ := f.name, typeNames[f.typ]
	if e.om && f.typ == counterType {
		// OpenMetrics names a counter's family without _total; its samples keep it. A
		// counter without the suffix cannot be written as one.
		if trimmed, ok := strings.CutSuffix(name, "_total"); ok {
			name = trimmed
		} else {
			typ = "unknown"
		}
	}
	e.w.WriteString("# HELP ")
	e.w.WriteString(name)
	e.w.WriteByte(' ')
	if e.om {
		valueEscaper.WriteString(e.w, f.help)
	} else {
		helpEscaper.WriteString(e.w, f.help)
	}
	e.w.WriteString("\n# TYPE ")
	e.w.WriteString(name)
	e.w.WriteByte(' ')
	e.w.WriteString(typ)
	e.w.WriteByte('\n')
	for i := range f.series {
		s := &f.series[i]
		switch f.typ {
		case counterType, gaugeType:
			e.line(f.name, "", s.labels, "", "", s.value, 0, false)
		case histogramType:
			for k, b := range s.bounds {
				e.line(f.name, "_bucket", s.labels, "le", e.float(b), 0, s.counts[k], true)
			}
			e.line(f.name, "_bucket", s.labels, "le", "+Inf", 0, s.count, true)
			e.line(f.name, "_sum", s.labels, "", "", s.value, 0, false)
			e.line(f.name, "_count", s.labels, "", "", 0, s.count, true)
		case summaryType:
			for k, q := range s.quants {
				e.line(f.name, "", s.labels, "quantile", e.float(q), s.qvals[k], 0, false)
			}
			e.line(f.name, "_sum", s.labels, "", "", s.value, 0, false)
			e.line(f.name, "_count", s.labels, "", "", 0, s.count, true)
		}
	}
}

// line writes one sample line; extra is the le or quantile label, written last.
func (e *encoder) line(name, suffix string, labels []label, extra, extraValue string, v float64, n uint64, isCount bool) {
	e.w.WriteString(name)
	e.w.WriteString(suffix)
	if len(labels) > 0 || extra != "" {
		e.w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				e.w.WriteByte(',')
			}
			e.w.WriteString(l.name)
			e.w.WriteString(`="`)
			valueEscaper.WriteString(e.w, l.value)
			e.w.WriteByte('"')
		}
		if extra != "" {
			if len(labels) > 0 {
				e.w.WriteByte(',')
			}
			e.w.WriteString(extra)
			e.w.WriteString(`="`)
			e.w.WriteString(extraValue)
			e.w.WriteByte('"')
		}
		e.w.WriteByte('}')
	}
	e.w.WriteByte(' ')
	if isCount {
		var buf [20]byte
		e.w.Write(strconv.AppendUint(buf[:0], n, 10))
	} else {
		e.w.WriteString(e.float(v))
	}
	e.w.WriteByte('\n')
}

// float formats a value as client_golang did: shortest form; OpenMetrics adds ".0" to
// whole numbers.
func (e *encoder) float(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if e.om && !strings.ContainsAny(s, "e.") {
		s += ".0"
	}
	return s
}

// negotiate picks the format from Accept the way client_golang's promhttp did: the most
// preferred of the types it knows wins, text format otherwise. The answer's escaping is the
// one asked for (all names here are valid legacy names, so the bytes do not change).
func negotiate(accept string) (om bool, contentType string) {
	type choice struct {
		typ, version, escaping string
		q                      float64
	}
	var choices []choice
	for part := range strings.SplitSeq(accept, ",") {
		params := strings.Split(part, ";")
		c := choice{typ: strings.ToLower(strings.TrimSpace(params[0])), q: 1}
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(p, "=")
			k, v = strings.ToLower(strings.TrimSpace(k)), strings.Trim(strings.TrimSpace(v), `"`)
			switch k {
			case "q":
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					c.q = f
				}
			case "version":
				c.version = v
			case "escaping":
				c.escaping = v
			}
		}
		choices = append(choices, c)
	}
	slices.SortStableFunc(choices, func(a, b choice) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	escaping := func(c choice) string {
		switch c.escaping {
		case "allow-utf-8", "underscores", "dots", "values":
			return c.escaping
		}
		return "underscores"
	}
	for _, c := range choices {
		switch c.typ {
		case "text/plain":
			if c.version == "0.0.4" || c.version == "1.0.0" || c.version == "" {
				return false, "text/plain; version=0.0.4; charset=utf-8; escaping=" + escaping(c)
			}
		case "application/openmetrics-text":
			switch c.version {
			case "1.0.0", "":
				return true, "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=" + escaping(c)
			case "0.0.1":
				return true, "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=" + escaping(c)
			}
		}
	}
	return false, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		k, v, _ := strings.Cut(params, "=")
		if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); strings.TrimSpace(k) == "q" && err == nil && q == 0 {
			return false
		}
		return true
	}
	return false
}

// serve writes a scrape of fams to w.
func serve(w http.ResponseWriter, r *http.Request, fams []family) {
	om, ct := negotiate(r.Header.Get("Accept"))
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		defer gz.Close()
		out = gz
	}
	bw := bufio.NewWriterSize(out, 16<<10)
	writeFamilies(bw, fams, om)
	bw.Flush()
}

func writeFamilies(w *bufio.Writer, fams []family, om bool) {
	e := encoder{w: w, om: om}
	for i := range fams {
		e.family(&fams[i])
	}
	if om {
		w.WriteString("# EOF\n")
	}
}
