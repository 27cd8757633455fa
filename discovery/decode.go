package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// healthEntry is the part of an entry of /v1/health/service a watch uses.
type healthEntry struct {
	Node struct {
		Node, Address string
	}
	Service struct {
		ID, Service, Address string
		Port                 int
		Tags                 []string
		Meta                 map[string]string
	}
}

// decodeHealth reads an answer of /v1/health/service. Each of a fleet's watchers gets every
// instance at every change, and about half of each entry is checks a watch does not read: one
// pass that skips them and reads only the fields above costs a fraction of encoding/json's
// two passes over everything. Anything it does not expect goes to encoding/json instead.
func decodeHealth(b []byte) ([]healthEntry, error) {
	if out, err := scanHealth(b); err == nil {
		return out, nil
	}
	var out []healthEntry
	err := json.Unmarshal(b, &out)
	return out, err
}

var errShape = errors.New("unexpected JSON")

func scanHealth(b []byte) ([]healthEntry, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, errShape
	}
	out := []healthEntry{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return out, trailing(b, i+1)
	}
	for {
		var e healthEntry
		end, err := eachKey(b, i, func(k []byte, v []byte) error {
			if string(v) == "null" {
				return nil
			}
			switch {
			case is(k, "Node"):
				_, err := eachKey(v, 0, func(k, v []byte) error {
					switch {
					case is(k, "Node"):
						return str(v, &e.Node.Node)
					case is(k, "Address"):
						return str(v, &e.Node.Address)
					}
					return nil
				})
				return err
			case is(k, "Service"):
				_, err := eachKey(v, 0, func(k, v []byte) error {
					s := &e.Service
					switch {
					case is(k, "ID"):
						return str(v, &s.ID)
					case is(k, "Service"):
						return str(v, &s.Service)
					case is(k, "Address"):
						return str(v, &s.Address)
					case is(k, "Port"):
						if string(v) == "null" {
							return nil
						}
						n, err := strconv.Atoi(string(v))
						s.Port = n
						return err
					case is(k, "Tags"):
						return strs(v, &s.Tags)
					case is(k, "Meta"):
						return strMap(v, &s.Meta)
					}
					return nil
				})
				return err
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		i = skipSpace(b, end)
		if i >= len(b) {
			return nil, errShape
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return out, trailing(b, i+1)
		default:
			return nil, errShape
		}
	}
}

// is matches a key the way encoding/json does: exactly or, failing that, folding case.
func is(k []byte, name string) bool {
	return string(k) == name || bytes.EqualFold(k, []byte(name))
}

// eachKey calls fn with each key of the object at b[i:] and the raw bytes of its value; it
// returns the index just past the object. Keys with escapes are not expected (errShape).
func eachKey(b []byte, i int, fn func(k, v []byte) error) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return 0, errShape
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, errShape
		}
		kEnd, esc, err := skipString(b, i)
		if err != nil || esc {
			return 0, errShape
		}
		key := b[i+1 : kEnd-1]
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return 0, errShape
		}
		vStart := skipSpace(b, i+1)
		vEnd, err := skipValue(b, vStart)
		if err != nil {
			return 0, err
		}
		if err := fn(key, b[vStart:vEnd]); err != nil {
			return 0, err
		}
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return 0, errShape
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, errShape
		}
	}
}

// skipValue returns the index just past the JSON value at b[i]. (A plain loop over the
// bytes beats bytes.IndexAny here: the strings of an answer are short.)
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errShape
	}
	switch b[i] {
	case '"':
		end, _, err := skipString(b, i)
		return end, err
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, _, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errShape
	}
	// A number, true, false or null.
	start := i
	for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] >= 'a' && b[i] <= 'z' || b[i] == '-' || b[i] == '+' || b[i] == '.' || b[i] == 'E') {
		i++
	}
	if i == start {
		return 0, errShape
	}
	return i, nil
}

// skipString returns the index just past the string that starts at b[i] (a quote), and
// whether it holds an escape.
func skipString(b []byte, i int) (int, bool, error) {
	esc := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			esc = true
			i++
		case '"':
			return i + 1, esc, nil
		}
	}
	return 0, false, errShape
}

// str decodes a JSON string (or null, which leaves dst alone).
func str(v []byte, dst *string) error {
	if len(v) >= 2 && v[0] == '"' {
		// encoding/json turns invalid UTF-8 into U+FFFD: leave those strings to it.
		if end, esc, err := skipString(v, 0); err == nil && !esc && end == len(v) && utf8.Valid(v) {
			*dst = string(v[1 : len(v)-1])
			return nil
		}
	}
	return json.Unmarshal(v, dst)
}

// strs decodes a JSON array of strings (or null).
func strs(v []byte, dst *[]string) error {
	if string(v) == "null" {
		*dst = nil
		return nil
	}
	if len(v) < 2 || v[0] != '[' {
		return errShape
	}
	out := []string{}
	i := skipSpace(v, 1)
	for i < len(v) && v[i] != ']' {
		end, err := skipValue(v, i)
		if err != nil {
			return err
		}
		var s string
		if v[i] != '"' {
			return errShape
		}
		if err := str(v[i:end], &s); err != nil {
			return err
		}
		out = append(out, s)
		i = skipSpace(v, end)
		if i < len(v) && v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
	*dst = out
	return nil
}

// strMap decodes a JSON object of strings (or null) into *dst, adding to what is there.
func strMap(v []byte, dst *map[string]string) error {
	if string(v) == "null" {
		*dst = nil
		return nil
	}
	out := *dst
	if out == nil {
		out = map[string]string{}
	}
	_, err := eachKey(v, 0, func(k, v []byte) error {
		if len(v) == 0 || v[0] != '"' || !utf8.Valid(k) {
			return errShape
		}
		var s string
		err := str(v, &s)
		out[string(k)] = s
		return err
	})
	if err != nil {
		return err
	}
	*dst = out
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errShape
	}
	return nil
}
