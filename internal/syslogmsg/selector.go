package syslogmsg

import (
	"fmt"
	"strings"
)

// Selector is a syslog.conf selector: "facility.severity" items separated by ";". Each item
// names facilities ("*", "mail", "kern,daemon") and a severity: "info" (info and more
// urgent), "=info" (exactly), "!info" (less urgent than info only), "!=info" (all but
// info), "*" (all), "none" (nothing). Items apply left to right, so "*.info;mail.none"
// is everything at info or above except mail.
type Selector struct {
	masks [24]uint8 // accepted severities per facility, bit n for severity n
}

// ParseSelector reads a selector; "" selects everything.
func ParseSelector(s string) (*Selector, error) {
	sel := &Selector{}
	if strings.TrimSpace(s) == "" {
		for i := range sel.masks {
			sel.masks[i] = 0xff
		}
		return sel, nil
	}
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		facs, sev, ok := strings.Cut(item, ".")
		if !ok {
			return nil, fmt.Errorf("%q has no severity; write it like \"mail.warning\" or \"*.*\"", item)
		}
		var which []int
		for _, f := range strings.Split(facs, ",") {
			f = strings.TrimSpace(f)
			if f == "*" {
				which = which[:0]
				for i := range sel.masks {
					which = append(which, i)
				}
				break
			}
			i := index(Facilities, f, nil)
			if i < 0 {
				return nil, fmt.Errorf("%q is not a facility; use one of %s or *", f, strings.Join(Facilities, ", "))
			}
			which = append(which, i)
		}
		mask, neg, err := severityMask(strings.TrimSpace(sev))
		if err != nil {
			return nil, err
		}
		for _, f := range which {
			switch {
			case neg:
				sel.masks[f] &^= mask
			case mask == 0: // none
				sel.masks[f] = 0
			default:
				sel.masks[f] |= mask
			}
		}
	}
	return sel, nil
}

func severityMask(s string) (mask uint8, neg bool, err error) {
	if s == "none" {
		return 0, false, nil
	}
	if s == "*" {
		return 0xff, false, nil
	}
	if strings.HasPrefix(s, "!") {
		neg, s = true, s[1:]
	}
	exact := strings.HasPrefix(s, "=")
	s = strings.TrimPrefix(s, "=")
	n := index(Severities, s, map[string]string{"panic": "emerg", "error": "err", "warn": "warning"})
	if n < 0 {
		return 0, false, fmt.Errorf("%q is not a severity; use one of %s, * or none", s, strings.Join(Severities, ", "))
	}
	if exact {
		return 1 << n, neg, nil
	}
	return uint8(1<<(n+1) - 1), neg, nil // n and every more urgent severity
}

func index(names []string, s string, aliases map[string]string) int {
	if a, ok := aliases[s]; ok && s != a {
		s = a
	}
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return -1
}

// Match reports whether the selector accepts a message of this facility and severity.
func (s *Selector) Match(facility, severity int) bool {
	if facility < 0 || facility >= len(s.masks) || severity < 0 || severity > 7 {
		return false
	}
	return s.masks[facility]&(1<<severity) != 0
}
