package containerpilot

import (
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	ttemplate "text/template"
	"text/template/parse"
	"time"

	"github.com/pilotfish/pilotfish/config"
)

// runState meters one template run: the work done inside loops and template calls, the
// bytes the functions return, and the time.
type runState struct {
	env   map[string]string
	start time.Time
	steps int
	bytes int
	used  map[string]bool
}

var errBudget = fmt.Errorf("the template does too much work (more than %d steps in loops and template calls, %d MiB of computed strings or %s); simplify it", maxSteps, maxFuncBytes>>20, config.EvalTimeout)

func (s *runState) check(n int) error {
	s.bytes += n
	if s.bytes > maxFuncBytes || time.Since(s.start) > config.EvalTimeout {
		return errBudget
	}
	return nil
}

// result bounds one string a function returns.
func (s *runState) result(v string) (string, error) {
	if len(v) > maxString {
		return "", fmt.Errorf("the result would be %d bytes; at most %d", len(v), maxString)
	}
	return v, s.check(len(v))
}

func (s *runState) tick(n int) (string, error) {
	s.steps += n
	if s.steps > maxSteps {
		return "", errBudget
	}
	return "", s.check(0)
}

// tickNode is an action that calls the meter with a weight: the size of the body it opens.
func (s *runState) tickNode(weight int) parse.Node {
	t, err := ttemplate.New("tick").Funcs(ttemplate.FuncMap{"_tick": s.tick}).Parse("{{_tick " + strconv.Itoa(weight+1) + "}}")
	if err != nil {
		panic(err) // a constant template
	}
	return t.Tree.Root.Nodes[0]
}

// funcs are ContainerPilot's template functions (config/template/template.go of
// ContainerPilot 3), bounded, and bounded versions of the builtins that build strings.
func (s *runState) funcs() ttemplate.FuncMap {
	return ttemplate.FuncMap{
		"_tick": s.tick, // the meter, called at the top of loop bodies and template bodies
		"default": func(def, v any) (string, error) {
			if str, ok := v.(string); ok && str != "" {
				return str, nil
			}
			if str, ok := def.(string); ok {
				return str, nil
			}
			return s.result(fmt.Sprint(def))
		},
		"env": func(name string) string {
			s.used[name] = true
			return s.env[name]
		},
		"split": func(sep, str string) ([]string, error) {
			str = strings.TrimSpace(str)
			if str == "" {
				return []string{}, nil
			}
			if n := strings.Count(str, sep) + 1; n > maxLoop || sep == "" && len(str) > maxLoop {
				return nil, fmt.Errorf("split would make more than %d parts", maxLoop)
			}
			return strings.Split(str, sep), s.check(len(str))
		},
		"join": func(sep string, parts []string) (string, error) {
			n := len(sep) * len(parts)
			for _, p := range parts {
				n += len(p)
			}
			if n > maxString {
				return "", fmt.Errorf("the result would be %d bytes; at most %d", n, maxString)
			}
			return s.result(strings.Join(parts, sep))
		},
		"replaceAll": func(from, to, str string) (string, error) {
			if n := len(str) + (strings.Count(str, from)+1)*len(to); n > maxString {
				return "", fmt.Errorf("the result could be %d bytes; at most %d", n, maxString)
			}
			return s.result(strings.ReplaceAll(str, from, to))
		},
		"regexReplaceAll": func(re, to, str string) (string, error) {
			rx, err := regexp.Compile(re)
			if err != nil {
				return "", err
			}
			// Each match may expand every $ of to into the whole input.
			per := len(to) + strings.Count(to, "$")*len(str)
			matches := rx.FindAllStringSubmatchIndex(str, maxLoop+1)
			if len(matches) > maxLoop || len(str)+len(matches)*per > maxString {
				return "", fmt.Errorf("the result could be larger than %d bytes", maxString)
			}
			return s.result(rx.ReplaceAllString(str, to))
		},
		"loop": func(params ...any) ([]int, error) {
			var start, stop int
			ints := make([]int, len(params))
			for i, p := range params {
				n, err := toInt(p)
				if err != nil {
					return nil, err
				}
				ints[i] = n
			}
			switch len(ints) {
			case 1:
				stop = ints[0]
			case 2:
				start, stop = ints[0], ints[1]
			default:
				return nil, fmt.Errorf("loop: wrong number of arguments, expected 1 or 2, but got %d", len(params))
			}
			if n := stop - start; n > maxLoop || n < -maxLoop {
				return nil, fmt.Errorf("loop: at most %d elements", maxLoop)
			}
			var out []int
			if stop < start {
				for i := start; i > stop; i-- {
					out = append(out, i)
				}
			} else {
				for i := start; i < stop; i++ {
					out = append(out, i)
				}
			}
			return out, s.check(8 * len(out))
		},
		"printf": func(format string, args ...any) (string, error) {
			if err := checkFormat(format, args); err != nil {
				return "", err
			}
			return s.result(fmt.Sprintf(format, args...))
		},
		"print": func(args ...any) (string, error) {
			if err := checkArgs(args, 0); err != nil {
				return "", err
			}
			return s.result(fmt.Sprint(args...))
		},
		"println": func(args ...any) (string, error) {
			if err := checkArgs(args, 0); err != nil {
				return "", err
			}
			return s.result(fmt.Sprintln(args...))
		},
		"html": func(args ...any) (string, error) {
			if err := checkArgs(args, 6); err != nil {
				return "", err
			}
			return s.result(template.HTMLEscapeString(fmt.Sprint(args...)))
		},
		"js": func(args ...any) (string, error) {
			if err := checkArgs(args, 6); err != nil {
				return "", err
			}
			return s.result(template.JSEscapeString(fmt.Sprint(args...)))
		},
		"urlquery": func(args ...any) (string, error) {
			if err := checkArgs(args, 3); err != nil {
				return "", err
			}
			return s.result(url.QueryEscape(fmt.Sprint(args...)))
		},
	}
}

func toInt(v any) (int, error) {
	switch v := v.(type) {
	case string:
		return strconv.Atoi(v)
	case int:
		return v, nil
	}
	return 0, fmt.Errorf("loop: %v is not a whole number", v)
}

// checkArgs bounds what printing the arguments, grown by a factor, can make.
func checkArgs(args []any, factor int) error {
	n := 0
	for _, a := range args {
		switch a := a.(type) {
		case string:
			n += len(a)
		case []string:
			for _, e := range a {
				n += len(e) + 1
			}
		case []int:
			n += 21 * len(a)
		default:
			n += 64
		}
	}
	if n*max(factor, 1) > maxString {
		return fmt.Errorf("the result could be larger than %d bytes", maxString)
	}
	return nil
}

var verbRE = regexp.MustCompile(`%[-+# 0]*(\*|\d*)(?:\.(\*|\d*))?`)

// checkFormat bounds the widths and precisions of a format, which fmt honours up to a
// million each.
func checkFormat(format string, args []any) error {
	n := len(format)
	for _, m := range verbRE.FindAllStringSubmatch(format, -1) {
		for _, w := range m[1:] {
			if w == "*" {
				return errors.New("printf: * widths are not allowed here")
			}
			if w != "" {
				v, _ := strconv.Atoi(w)
				n += v
			}
		}
	}
	if n > maxString {
		return fmt.Errorf("printf: the result could be larger than %d bytes", maxString)
	}
	return checkArgs(args, 1)
}
