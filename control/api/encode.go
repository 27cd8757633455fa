package api

import (
	"math"
	"strconv"
	"time"

	"github.com/pilotfish/pilotfish/internal/jsonstr"
)

// The status answer is the API's hottest: it is written by hand, byte for byte what
// encoding/json writes for the same value (control/api/encode_test.go holds them equal),
// without reflection and with one buffer.

// AppendJSON appends s as JSON, as encoding/json's Marshal writes it.
func (s *Status) AppendJSON(b []byte) []byte {
	b = append(b, `{"jobs":`...)
	if s.Jobs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Jobs {
			if i > 0 {
				b = append(b, ',')
			}
			b = s.Jobs[i].AppendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"watches":`...)
	if s.Watches == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, w := range s.Watches {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = jsonstr.Append(b, w.Name, true)
			b = append(b, `,"healthy":`...)
			b = strconv.AppendBool(b, w.Healthy)
			b = append(b, `,"instances":`...)
			b = strconv.AppendInt(b, int64(w.Instances), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"maintenance":`...)
	b = strconv.AppendBool(b, s.Maintenance)
	return append(b, '}')
}

// AppendJSON appends j as JSON, as encoding/json's Marshal writes it.
func (j *Job) AppendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = jsonstr.Append(b, j.Name, true)
	b = append(b, `,"kind":`...)
	b = jsonstr.Append(b, j.Kind, true)
	b = append(b, `,"state":`...)
	b = jsonstr.Append(b, j.State, true)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(j.Pid), 10)
	b = append(b, `,"restarts":`...)
	b = strconv.AppendInt(b, int64(j.Restarts), 10)
	b = append(b, `,"health":`...)
	b = jsonstr.Append(b, j.Health, true)
	b = append(b, `,"exit_code":`...)
	if j.ExitCode == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*j.ExitCode), 10)
	}
	b = append(b, `,"since":`...)
	b = appendTime(b, j.Since)
	b = append(b, `,"status":`...)
	b = jsonstr.Append(b, j.Status, true)
	if j.NextRun != nil {
		b = append(b, `,"next_run":`...)
		b = appendTime(b, *j.NextRun)
	}
	b = append(b, `,"cpu_seconds":`...)
	b = appendFloat(b, j.CPUSeconds)
	b = append(b, `,"memory_bytes":`...)
	b = strconv.AppendUint(b, j.MemoryBytes, 10)
	b = append(b, `,"cpu_percent":`...)
	b = appendFloat(b, j.CPUPercent)
	return append(b, '}')
}

// appendTime writes t as time.Time's MarshalJSON does (RFC 3339 with nanoseconds).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat writes f as encoding/json does; NaN and infinities, which it refuses, as 0.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs, fmt := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, f, fmt, -1, 64)
	if fmt == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
