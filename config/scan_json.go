package config

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// scanJSON measures a file in HCL's JSON syntax: arrays and objects nest, and a string
// that holds ${ or %{ is a template HCL parses when it evaluates it. It returns how deeply
// the file nests.
func scanJSON(src []byte) (deepest int, err *scanError) {
	budget := &scanBudget{}
	var stack []byte // '{' or '['
	for i := 0; i < len(src); {
		c := src[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		if budget.tokens++; budget.tokens > MaxTokens {
			return deepest, &scanError{offset: i, limit: overTokens, broken: -1}
		}
		switch {
		case c == '{' || c == '[':
			stack = append(stack, c)
			deepest = max(deepest, len(stack))
			if len(stack) > MaxDepth {
				return deepest, &scanError{offset: i, limit: overDepth, broken: -1}
			}
			i++
		case c == '}' || c == ']':
			if n := len(stack); n > 0 && stack[n-1] == c-2 { // '{'+2 == '}', '['+2 == ']'
				stack = stack[:n-1]
			}
			i++
		case c == '"':
			end := jsonStringEnd(src, i)
			d, err := scanJSONString(src[i:end], len(stack), budget)
			deepest = max(deepest, d)
			if err != nil {
				err.offset += i
				return deepest, err
			}
			i = end
		case c == ',' || c == ':' || c == '=':
			i++
		case isDigit(c) || c == '-' || c == '+' || c == '.':
			for i < len(src) && (isDigit(src[i]) || bytes.IndexByte([]byte("-+.eE"), src[i]) >= 0) {
				i++
			}
		case isLetter(c):
			for i < len(src) && (isLetter(src[i]) || src[i] == '_') {
				i++
			}
		default:
			return deepest, nil // HCL's JSON lexer stops at the first byte it cannot read
		}
	}
	return deepest, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// jsonStringEnd returns the offset after the string starting at i, ended as HCL's JSON
// lexer ends it: at an unescaped quote, or before a control character.
func jsonStringEnd(src []byte, i int) int {
	escaping := false
	for i++; i < len(src); i++ {
		switch b := src[i]; {
		case b == '\\':
			escaping = !escaping
		case b == '"':
			if !escaping {
				return i + 1
			}
			escaping = false
		case b < 32:
			return i
		default:
			escaping = false
		}
	}
	return i
}

// scanJSONString measures the template in a JSON string token (quotes included); the
// offset of an error is within the token.
func scanJSONString(tok []byte, depth int, budget *scanBudget) (int, *scanError) {
	if !bytes.ContainsAny(tok, `$%\`) || len(tok) < 2 || tok[len(tok)-1] != '"' {
		return depth, nil
	}
	var s string
	if json.Unmarshal(tok, &s) != nil || !containsTemplate(s) {
		return depth, nil // HCL refuses the string or reads it as plain text
	}
	deepest, err := scanTemplate([]byte(s), depth, budget)
	if err != nil {
		err.offset = jsonRawOffset(tok, err.offset)
	}
	return deepest, err
}

func containsTemplate(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if (s[i] == '$' || s[i] == '%') && s[i+1] == '{' {
			return true
		}
	}
	return false
}

// jsonRawOffset maps an offset in a decoded JSON string to one in its token.
func jsonRawOffset(tok []byte, decoded int) int {
	i, n := 1, 0
	for i < len(tok)-1 && n < decoded {
		if tok[i] != '\\' {
			_, size := utf8.DecodeRune(tok[i:])
			i += size
			n += size
			continue
		}
		if i+1 < len(tok) && tok[i+1] == 'u' {
			i += 6
			n += 3 // most \u escapes of interest are one to three bytes; close enough
			continue
		}
		i += 2
		n++
	}
	return min(i, len(tok))
}
