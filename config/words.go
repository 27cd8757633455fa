package config

import "errors"

// SplitWords splits s into words the way a POSIX shell splits a simple command: blanks
// separate words, 'single quotes' keep everything literally, "double quotes" keep blanks and
// honour \" \\ \$ \` escapes, and a backslash outside quotes escapes the next character.
// Nothing is expanded and no shell is run.
func SplitWords(s string) ([]string, error) {
	var (
		words  []string
		cur    []byte
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, string(cur))
				cur, inWord = cur[:0], false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a trailing backslash escapes nothing")
			}
			i++
			if s[i] != '\n' {
				cur = append(cur, s[i])
			}
			inWord = true
		case c == '\'':
			end := indexFrom(s, i+1, '\'')
			if end < 0 {
				return nil, errors.New("a single quote is not closed")
			}
			cur = append(cur, s[i+1:end]...)
			i, inWord = end, true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\' || s[i+1] == '$' || s[i+1] == '`') {
					i++
				}
				cur = append(cur, s[i])
			}
			if i >= len(s) {
				return nil, errors.New("a double quote is not closed")
			}
			inWord = true
		default:
			cur = append(cur, c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, string(cur))
	}
	return words, nil
}

func indexFrom(s string, from int, c byte) int {
	for i := from; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
