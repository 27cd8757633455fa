package containerpilot

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/titanous/json5"
)

// The rendered text is read in three passes: a scan that measures how deeply it nests (the
// JSON5 module recurses), the JSON5 module itself, which decides what is valid and decodes
// every scalar, and a walk that records where each key and value is, which the module does
// not keep.

// node is one JSON5 value with its place in the rendered text.
type node struct {
	kind    nodeKind
	pos     int // offset of its first byte in the rendered text
	members []member
	elems   []*node
	val     any    // a scalar as the JSON5 module decodes it: string, float64, bool or nil
	raw     string // a scalar's text, as written
}

type nodeKind int

const (
	scalar nodeKind = iota
	object
	array
)

type member struct {
	key    string
	keyPos int
	val    *node
}

// get returns the last member named key (JSON5 keeps the last of a repeated key).
func (n *node) get(key string) *member {
	for i := len(n.members) - 1; i >= 0; i-- {
		if n.members[i].key == key {
			return &n.members[i]
		}
	}
	return nil
}

const maxJSONDepth = 64

// parseJSON5 reads the rendered text into a tree of nodes.
func parseJSON5(r *rendered) (*node, hcl.Diagnostics) {
	l := &lexer{src: r.text}
	if off, ok := l.depthOK(r); !ok {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Configuration nested too deeply",
			Detail: fmt.Sprintf("more than %d levels of objects and arrays", maxJSONDepth), Subject: ptr(r.rng(off))}}
	}
	var v any
	if err := json5.Unmarshal(r.text, &v); err != nil {
		return nil, syntaxError(r, err)
	}
	l.pos = 0
	n, err := l.value()
	if err != nil { // the module accepted it: a difference between the two readers
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid JSON5", Detail: err.Error(), Subject: ptr(r.rng(l.pos))}}
	}
	if n.kind != object {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid configuration",
			Detail: "a ContainerPilot configuration is one JSON5 object, { … }", Subject: ptr(r.rng(n.pos))}}
	}
	return n, nil
}

func ptr(r hcl.Range) *hcl.Range { return &r }

// syntaxError reports the JSON5 module's error at its place in the original file. A value
// that follows another without a comma is the most common mistake after rendering (a comma
// inside an {{ if }} block): the detail says after which line one is missing.
func syntaxError(r *rendered, err error) hcl.Diagnostics {
	var se *json5.SyntaxError
	if !errors.As(err, &se) {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid JSON5", Detail: err.Error(), Subject: ptr(r.rng(0))}}
	}
	off := max(0, min(int(se.Offset)-1, len(r.text)))
	msg := se.Error()
	detail := msg
	if strings.Contains(msg, "after object key:value pair") || strings.Contains(msg, "after array element") {
		if prev := lastValueEnd(r.text, off); prev >= 0 {
			p := r.pos(prev)
			detail = fmt.Sprintf("%s: is a comma missing after line %d (after rendering the template)?", msg, p.Line)
		}
	}
	if strings.Contains(msg, "in string literal") {
		detail = msg + ": a string must end on the line it starts on (or continue it with a backslash at the end of the line)"
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid JSON5", Detail: detail, Subject: ptr(r.rng(off))}}
}

// lastValueEnd is the offset of the last byte of text before off that is not white space
// or a comment.
func lastValueEnd(text []byte, off int) int {
	l := &lexer{src: text[:off]}
	last := -1
	for l.pos < len(l.src) {
		l.space()
		if l.pos >= len(l.src) {
			break
		}
		start := l.pos
		l.token()
		if l.pos == start {
			l.pos++
		}
		last = l.pos - 1
	}
	return last
}

// lexer walks JSON5 text: white space and comments, strings, punctuation, and the other
// literals (numbers, true, bare keys) as runs of other bytes.
type lexer struct {
	src []byte
	pos int
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' }

// space skips white space and comments.
func (l *lexer) space() {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case isJSONSpace(c):
			l.pos++
		case c == '/' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '/':
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		case c == '/' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '*':
			end := strings.Index(string(l.src[l.pos+2:]), "*/")
			if end < 0 {
				l.pos = len(l.src)
			} else {
				l.pos += end + 4
			}
		default:
			return
		}
	}
}

// token moves over one token: a string, one punctuation byte, or a literal.
func (l *lexer) token() {
	if l.pos >= len(l.src) {
		return
	}
	switch c := l.src[l.pos]; c {
	case '"', '\'':
		l.pos++
		for l.pos < len(l.src) && l.src[l.pos] != c {
			if l.src[l.pos] == '\\' {
				l.pos++
			}
			l.pos++
		}
		l.pos = min(l.pos+1, len(l.src))
	case '{', '}', '[', ']', ':', ',':
		l.pos++
	default:
		for l.pos < len(l.src) {
			c := l.src[l.pos]
			if isJSONSpace(c) || strings.IndexByte("{}[]:,\"'", c) >= 0 || c == '/' && l.pos+1 < len(l.src) && (l.src[l.pos+1] == '/' || l.src[l.pos+1] == '*') {
				break
			}
			l.pos++
		}
	}
}

// depthOK measures the nesting and turns the sentinels the template left outside strings
// into strings (the same length: ~ becomes "), so that the file parses.
func (l *lexer) depthOK(r *rendered) (int, bool) {
	depth := 0
	for l.pos < len(l.src) {
		l.space()
		if l.pos >= len(l.src) {
			break
		}
		start := l.pos
		l.token()
		switch l.src[start] {
		case '{', '[':
			if depth++; depth > maxJSONDepth {
				return start, false
			}
		case '}', ']':
			depth--
		case '~':
			if tok := string(l.src[start:l.pos]); len(tok) > 2 && strings.HasSuffix(tok, "~") {
				if _, ok := r.envs[tok[1:len(tok)-1]]; ok {
					l.src[start], l.src[l.pos-1] = '"', '"'
				}
			}
		}
		if l.pos == start {
			l.pos++
		}
	}
	return 0, true
}

// value reads one value. The text is valid JSON5: the module said so.
func (l *lexer) value() (*node, error) {
	l.space()
	if l.pos >= len(l.src) {
		return nil, errors.New("unexpected end of the file")
	}
	n := &node{pos: l.pos}
	switch l.src[l.pos] {
	case '{':
		n.kind = object
		l.pos++
		for {
			l.space()
			if l.pos >= len(l.src) {
				return nil, errors.New("unexpected end of the file")
			}
			if l.src[l.pos] == '}' {
				l.pos++
				return n, nil
			}
			keyPos := l.pos
			l.token()
			key := string(l.src[keyPos:l.pos])
			if key != "" && (key[0] == '"' || key[0] == '\'') {
				var s string
				if err := json5.Unmarshal(l.src[keyPos:l.pos], &s); err != nil {
					return nil, err
				}
				key = s
			}
			l.space()
			if l.pos >= len(l.src) || l.src[l.pos] != ':' {
				return nil, errors.New("a key without a value")
			}
			l.pos++
			v, err := l.value()
			if err != nil {
				return nil, err
			}
			n.members = append(n.members, member{key: key, keyPos: keyPos, val: v})
			l.space()
			if l.pos < len(l.src) && l.src[l.pos] == ',' {
				l.pos++
			}
		}
	case '[':
		n.kind = array
		l.pos++
		for {
			l.space()
			if l.pos >= len(l.src) {
				return nil, errors.New("unexpected end of the file")
			}
			if l.src[l.pos] == ']' {
				l.pos++
				return n, nil
			}
			v, err := l.value()
			if err != nil {
				return nil, err
			}
			n.elems = append(n.elems, v)
			l.space()
			if l.pos < len(l.src) && l.src[l.pos] == ',' {
				l.pos++
			}
		}
	default:
		start := l.pos
		l.token()
		n.raw = string(l.src[start:l.pos])
		if err := json5.Unmarshal(l.src[start:l.pos], &n.val); err != nil {
			return nil, err
		}
		return n, nil
	}
}
