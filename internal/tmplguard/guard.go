package tmplguard

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	ttemplate "text/template"
	"text/template/parse"
	"time"
)

// Limits bound one run of a template.
type Limits struct {
	Steps     int           // nodes run inside loops and template calls
	FuncBytes int           // bytes all function calls may return, added up
	String    int           // the longest string one function may return
	Loop      int           // elements of one loop or split
	Time      time.Duration // the whole run
	Depth     int           // template calls within template calls (Instrument); 0: no limit
}

// Meter counts the work of one run against its Limits.
type Meter struct {
	l     Limits
	start time.Time
	steps int
	bytes int
	depth int
}

// NewMeter starts a meter; start is when the run's time began (a load may have spent some).
func NewMeter(l Limits, start time.Time) *Meter { return &Meter{l: l, start: start} }

// LimitError is the error of a run that went over one of its limits.
type LimitError struct{ msg string }

func (e *LimitError) Error() string { return e.msg }

func (m *Meter) budget() error {
	return &LimitError{fmt.Sprintf("the template does too much work (more than %d steps in loops and template calls, %d MiB of computed strings or %s); simplify it",
		m.l.Steps, m.l.FuncBytes>>20, m.l.Time)}
}

// Check adds n bytes computed by a function and checks the bytes and the time.
func (m *Meter) Check(n int) error {
	m.bytes += n
	if m.bytes > m.l.FuncBytes || time.Since(m.start) > m.l.Time {
		return m.budget()
	}
	return nil
}

// Result bounds one string a function returns.
func (m *Meter) Result(v string) (string, error) {
	if len(v) > m.l.String {
		return "", fmt.Errorf("the result would be %d bytes; at most %d", len(v), m.l.String)
	}
	return v, m.Check(len(v))
}

// tick is the meter called at the top of loop and template bodies, with the body's size.
func (m *Meter) tick(n int) (string, error) {
	m.steps += n
	if m.steps > m.l.Steps {
		return "", m.budget()
	}
	return "", m.Check(0)
}

// enter meters the start of a template body and counts how deep the calls go.
func (m *Meter) enter(n int) (string, error) {
	if m.depth++; m.l.Depth > 0 && m.depth > m.l.Depth {
		return "", &LimitError{fmt.Sprintf("templates call templates more than %d deep", m.l.Depth)}
	}
	return m.tick(n)
}

// leave ends a template body.
func (m *Meter) leave() string {
	m.depth--
	return ""
}

// The functions the nodes of TickNode and Instrument call.
const (
	TickName  = "_tick"
	enterName = "_enter"
	leaveName = "_leave"
)

// Stubs are placeholders for the functions of a Meter, for parsing: a template parsed with
// them runs with the Funcs of a Meter (Clone, then Funcs).
func Stubs() ttemplate.FuncMap {
	stub := func(...any) string { return "" }
	f := ttemplate.FuncMap{}
	for name := range (&Meter{}).Funcs() {
		f[name] = stub
	}
	return f
}

// TickNode is an action that calls the meter with a weight: the size of the body it opens.
// The template that runs it must have Funcs of a Meter.
func TickNode(weight int) parse.Node { return callNode(TickName + " " + strconv.Itoa(weight+1)) }

func callNode(call string) parse.Node {
	t, err := ttemplate.New("tick").Funcs(Stubs()).Parse("{{" + call + "}}")
	if err != nil {
		panic(err) // a constant template
	}
	return t.Tree.Root.Nodes[0]
}

// Size counts the nodes of a list, nested ones included: the work of one run of it.
func Size(list *parse.ListNode) int {
	if list == nil {
		return 0
	}
	n := len(list.Nodes)
	for _, node := range list.Nodes {
		switch node := node.(type) {
		case *parse.IfNode:
			n += Size(node.List) + Size(node.ElseList)
		case *parse.WithNode:
			n += Size(node.List) + Size(node.ElseList)
		case *parse.RangeNode:
			n += Size(node.ElseList) // the body meters itself
		}
	}
	return n
}

// Instrument meters every loop body and every template body of t and its associated
// templates (t itself is not metered: it runs once), and counts how deep template calls go.
// The template must have been parsed with Stubs.
func Instrument(t *ttemplate.Template) {
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		instrument(tt.Tree.Root)
		if tt.Name() != t.Name() {
			root := tt.Tree.Root
			nodes := append([]parse.Node{callNode(enterName + " " + strconv.Itoa(Size(root)+1))}, root.Nodes...)
			root.Nodes = append(nodes, callNode(leaveName))
		}
	}
}

func instrument(list *parse.ListNode) {
	if list == nil {
		return
	}
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.IfNode:
			instrument(n.List)
			instrument(n.ElseList)
		case *parse.WithNode:
			instrument(n.List)
			instrument(n.ElseList)
		case *parse.RangeNode:
			instrument(n.List)
			instrument(n.ElseList)
			if n.List != nil {
				n.List.Nodes = append([]parse.Node{TickNode(Size(n.List))}, n.List.Nodes...)
			}
		}
	}
}

// Funcs are the meter and bounded versions of the builtins that build strings (printf,
// print, println, html, js, urlquery) and of common helpers with consul-template's argument
// order, which pipes well: join SEP LIST, split SEP STRING, replaceAll FROM TO STRING,
// regexReplaceAll RE TO STRING, loop [START] STOP.
func (m *Meter) Funcs() ttemplate.FuncMap {
	return ttemplate.FuncMap{
		TickName:  m.tick,
		enterName: m.enter,
		leaveName: m.leave,
		"split": func(sep, str string) ([]string, error) {
			str = strings.TrimSpace(str)
			if str == "" {
				return []string{}, nil
			}
			if n := strings.Count(str, sep) + 1; n > m.l.Loop || sep == "" && len(str) > m.l.Loop {
				return nil, fmt.Errorf("split would make more than %d parts", m.l.Loop)
			}
			return strings.Split(str, sep), m.Check(len(str))
		},
		"join": func(sep string, parts []string) (string, error) {
			n := len(sep) * len(parts)
			for _, p := range parts {
				n += len(p)
			}
			if n > m.l.String {
				return "", fmt.Errorf("the result would be %d bytes; at most %d", n, m.l.String)
			}
			return m.Result(strings.Join(parts, sep))
		},
		"replaceAll": func(from, to, str string) (string, error) {
			if n := len(str) + (strings.Count(str, from)+1)*len(to); n > m.l.String {
				return "", fmt.Errorf("the result could be %d bytes; at most %d", n, m.l.String)
			}
			return m.Result(strings.ReplaceAll(str, from, to))
		},
		"regexReplaceAll": func(re, to, str string) (string, error) {
			rx, err := regexp.Compile(re)
			if err != nil {
				return "", err
			}
			// Each match may expand every $ of to into the whole input.
			per := len(to) + strings.Count(to, "$")*len(str)
			matches := rx.FindAllStringSubmatchIndex(str, m.l.Loop+1)
			if len(matches) > m.l.Loop || len(str)+len(matches)*per > m.l.String {
				return "", fmt.Errorf("the result could be larger than %d bytes", m.l.String)
			}
			return m.Result(rx.ReplaceAllString(str, to))
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
			if n := stop - start; n > m.l.Loop || n < -m.l.Loop {
				return nil, fmt.Errorf("loop: at most %d elements", m.l.Loop)
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
			return out, m.Check(8 * len(out))
		},
		"printf": func(format string, args ...any) (string, error) {
			if err := m.checkFormat(format, args); err != nil {
				return "", err
			}
			return m.Result(fmt.Sprintf(format, args...))
		},
		"print": func(args ...any) (string, error) {
			if err := m.checkArgs(args, 0); err != nil {
				return "", err
			}
			return m.Result(fmt.Sprint(args...))
		},
		"println": func(args ...any) (string, error) {
			if err := m.checkArgs(args, 0); err != nil {
				return "", err
			}
			return m.Result(fmt.Sprintln(args...))
		},
		"html": func(args ...any) (string, error) {
			if err := m.checkArgs(args, 6); err != nil {
				return "", err
			}
			return m.Result(template.HTMLEscapeString(fmt.Sprint(args...)))
		},
		"js": func(args ...any) (string, error) {
			if err := m.checkArgs(args, 6); err != nil {
				return "", err
			}
			return m.Result(template.JSEscapeString(fmt.Sprint(args...)))
		},
		"urlquery": func(args ...any) (string, error) {
			if err := m.checkArgs(args, 3); err != nil {
				return "", err
			}
			return m.Result(url.QueryEscape(fmt.Sprint(args...)))
		},
	}
}

func toInt(v any) (int, error) {
	switch v := v.(type) {
	case string:
		return strconv.Atoi(v)
	case int:
		return v, nil
	case int64:
		return int(v), nil
	}
	return 0, fmt.Errorf("loop: %v is not a whole number", v)
}

// checkArgs bounds what printing the arguments, grown by a factor, can make.
func (m *Meter) checkArgs(args []any, factor int) error {
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
	if n*max(factor, 1) > m.l.String {
		return fmt.Errorf("the result could be larger than %d bytes", m.l.String)
	}
	return nil
}

var verbRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`%[-+# 0]*(\*|\d*)(?:\.(\*|\d*))?`) })

// checkFormat bounds the widths and precisions of a format, which fmt honours up to a
// million each.
func (m *Meter) checkFormat(format string, args []any) error {
	n := len(format)
	for _, mt := range verbRE().FindAllStringSubmatch(format, -1) {
		for _, w := range mt[1:] {
			if w == "*" {
				return errors.New("printf: * widths are not allowed here")
			}
			if w != "" {
				v, _ := strconv.Atoi(w)
				n += v
			}
		}
	}
	if n > m.l.String {
		return fmt.Errorf("printf: the result could be larger than %d bytes", m.l.String)
	}
	return m.checkArgs(args, 1)
}

// TooNested reports the offset of the first template block more than max deep.
func TooNested(src []byte, limit int) (int, bool) {
	depth := 0
	for i := 0; i < len(src)-1; i++ {
		if src[i] != '{' || src[i+1] != '{' {
			continue
		}
		j := i + 2
		if j < len(src) && src[j] == '-' {
			j++
		}
		for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\n' || src[j] == '\r') {
			j++
		}
		word := src[j:min(len(src), j+8)]
		switch {
		case hasWord(word, "if"), hasWord(word, "range"), hasWord(word, "with"), hasWord(word, "define"), hasWord(word, "block"):
			if depth++; depth > limit {
				return i, false
			}
		case hasWord(word, "end"):
			depth = max(0, depth-1)
		}
	}
	return 0, true
}

func hasWord(b []byte, w string) bool {
	if !bytes.HasPrefix(b, []byte(w)) {
		return false
	}
	if len(b) == len(w) {
		return true
	}
	c := b[len(w)]
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_')
}

var errorRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^template: [^:]*:(\d+)(?::(\d+))?: (.*)$`) })

// Position reads the line (from 1) and column (from 1, 0 when not given) text/template names
// in an error, and the message without them. Parse errors name a line, run-time errors a
// line and a column (in bytes).
func Position(err error) (line, col int, msg string) {
	msg = err.Error()
	m := errorRE().FindStringSubmatch(msg)
	if m == nil {
		return 0, 0, msg
	}
	line, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		col, _ = strconv.Atoi(m[2])
	}
	return line, col, m[3]
}

// ErrTooLarge is the error of a Buffer that would grow past its limit.
var ErrTooLarge = errors.New("output too large")

// Buffer refuses to grow past Max bytes: a template run ends at the first write refused.
type Buffer struct {
	bytes.Buffer
	Max int
}

func (b *Buffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.Max {
		return 0, ErrTooLarge
	}
	return b.Buffer.Write(p)
}
