package output

import "unicode/utf8"

// JSONFields are the fields of a job's JSON line between its time and its message
// (Copier.JSON): {"time":…,"job":JOB,"stream":STREAM,"msg":…} (docs/jobs.md#logging).
func JSONFields(job, stream string) []byte {
	b := append([]byte(`","job":`), AppendJSONString(nil, []byte(job))...)
	b = append(b, `,"stream":`...)
	b = AppendJSONString(b, []byte(stream))
	return append(b, `,"msg":`...)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. It reads as encoding/json's: invalid UTF-8
// becomes U+FFFD, control characters and U+2028/U+2029 are escaped; unlike
// encoding/json, <, > and & stay as they are (a log line is not HTML).
func AppendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
