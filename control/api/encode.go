package api

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
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
			b = appendString(b, w.Name)
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
	b = appendString(b, j.Name)
	b = append(b, `,"kind":`...)
	b = appendString(b, j.Kind)
	b = append(b, `,"state":`...)
	b = appendString(b, j.State)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(j.Pid), 10)
	b = append(b, `,"restarts":`...)
	b = strconv.AppendInt(b, int64(j.Restarts), 10)
	b = append(b, `,"health":`...)
	b = appendString(b, j.Health)
	b = append(b, `,"exit_code":`...)
	if j.ExitCode == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*j.ExitCode), 10)
	}
	b = append(b, `,"since":`...)
	b = appendTime(b, j.Since)
	b = append(b, `,"status":`...)
	b = appendString(b, j.Status)
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

const hexDigits = "0123456789abcdef"

// appendString writes s quoted as encoding/json does: <, > and & escaped for HTML, invalid
// UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
