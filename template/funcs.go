package template

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/pilotfish/pilotfish/discovery"
	"github.com/pilotfish/pilotfish/internal/tmplguard"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// run is one execution of a template: what it may spend (the meter), where its values come
// from, and what it read.
type run struct {
	*tmplguard.Meter
	tmpl    *texttemplate.Template // the clone being run, for executeTemplate
	lookup  func(discovery.ViewKey) (*discovery.ViewData, bool)
	env     map[string]string
	used    map[discovery.ViewKey]bool
	missing []discovery.ViewKey        // read but not answered yet, in the order read
	envRead map[string]envValue        // the variables read and what they held
	notSafe map[discovery.ViewKey]bool // safeLs / safeTree found nothing
}

// envValue is what a variable held when a template read it.
type envValue struct {
	value string
	set   bool
}

// catalogFuncs read the catalog: a template that calls one needs Consul.
var catalogFuncs = []string{"service", "services", "key", "keyOrDefault", "keyExists", "ls", "safeLs", "tree", "safeTree"}

// read returns the data of a dependency, noting it as used, or as missing until it answers.
func (r *run) read(k discovery.ViewKey) (*discovery.ViewData, bool) {
	if !r.used[k] {
		r.used[k] = true
	}
	d, ok := r.lookup(k)
	if !ok && !slices.Contains(r.missing, k) {
		r.missing = append(r.missing, k)
	}
	return d, ok
}

func (r *run) getenv(name string) (string, bool) {
	v, ok := r.env[name]
	r.envRead[name] = envValue{v, ok}
	return v, ok
}

// funcs are the template functions of one run (docs/templates.md#functions).
func (r *run) funcs() texttemplate.FuncMap {
	f := r.Meter.Funcs() // bounded split, join, replaceAll, regexReplaceAll, loop, printf…
	// The catalog.
	f["service"] = func(args ...string) ([]*Service, error) {
		if len(args) == 0 || args[0] == "" {
			return []*Service{}, nil
		}
		if len(args) > 1 && args[1] != "passing" {
			return nil, fmt.Errorf("service %q %q: pilotfish lists passing instances only; drop the filter", args[0], args[1])
		}
		k, err := serviceQuery(args[0])
		if err != nil {
			return nil, err
		}
		d, ok := r.read(k)
		if !ok {
			return []*Service{}, nil
		}
		return services(d.Instances), r.Check(64 * len(d.Instances))
	}
	f["services"] = func(args ...string) ([]*CatalogSnippet, error) {
		k, err := servicesQuery(args)
		if err != nil {
			return nil, err
		}
		d, ok := r.read(k)
		if !ok {
			return []*CatalogSnippet{}, nil
		}
		return snippets(d.Services), r.Check(32 * len(d.Services))
	}
	key := func(s string) (*discovery.KVPair, bool, error) {
		k, err := kvQuery(discovery.ViewKVKey, s)
		if err != nil {
			return nil, false, err
		}
		d, ok := r.read(k)
		if !ok {
			return nil, false, nil
		}
		for i := range d.Pairs {
			if d.Pairs[i].Key == k.Name {
				return &d.Pairs[i], true, nil
			}
		}
		return nil, true, nil
	}
	f["key"] = func(s string) (string, error) {
		p, answered, err := key(s)
		switch {
		case err != nil:
			return "", err
		case !answered:
			return "", nil
		case p == nil:
			return "", fmt.Errorf("key %q does not exist (keyOrDefault gives a default)", s)
		}
		return p.Value, nil
	}
	f["keyOrDefault"] = func(s, def string) (string, error) {
		p, _, err := key(s)
		if err != nil || p == nil || p.Value == "" {
			return def, err
		}
		return p.Value, nil
	}
	f["keyExists"] = func(s string) (bool, error) {
		p, _, err := key(s)
		return p != nil, err
	}
	list := func(s string, top, safe bool) ([]*KeyPair, error) {
		k, err := kvQuery(discovery.ViewKVPrefix, s)
		if err != nil {
			return nil, err
		}
		out := []*KeyPair{}
		d, ok := r.read(k)
		if !ok {
			return out, nil
		}
		for _, p := range d.Pairs {
			rel := strings.TrimPrefix(strings.TrimPrefix(p.Key, k.Name), "/")
			if rel == "" || strings.HasSuffix(rel, "/") || top && strings.Contains(rel, "/") {
				continue // the prefix itself, a "folder", or a key below the top level
			}
			out = append(out, &KeyPair{Path: p.Key, Key: rel, Value: p.Value, Flags: p.Flags, CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex})
		}
		if safe && len(out) == 0 {
			r.notSafe[k] = true // not rendered while the prefix is empty
		}
		return out, r.Check(64 * len(out))
	}
	f["ls"] = func(s string) ([]*KeyPair, error) { return list(s, true, false) }
	f["safeLs"] = func(s string) ([]*KeyPair, error) { return list(s, true, true) }
	f["tree"] = func(s string) ([]*KeyPair, error) { return list(s, false, false) }
	f["safeTree"] = func(s string) ([]*KeyPair, error) { return list(s, false, true) }

	// The environment: pilotfish's own, with the values set by putenv.
	f["env"] = func(name string) string {
		v, _ := r.getenv(name)
		return v
	}
	f["envOrDefault"] = func(name, def string) string {
		if v, ok := r.getenv(name); ok {
			return v
		}
		return def
	}
	f["mustEnv"] = func(name string) (string, error) {
		if v, _ := r.getenv(name); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("required environment variable %s is empty", name)
	}
	f["executeTemplate"] = func(name string, data ...any) (string, error) {
		var dot any
		switch len(data) {
		case 0:
		case 1:
			dot = data[0]
		default:
			return "", fmt.Errorf("executeTemplate: wrong number of arguments, expected 1 or 2, but got %d", len(data)+1)
		}
		b := tmplguard.Buffer{Max: maxOutput}
		if err := r.tmpl.ExecuteTemplate(&b, name, dot); err != nil {
			return "", err
		}
		return r.Result(b.String())
	}

	// Strings.
	f["toLower"] = strings.ToLower
	f["toUpper"] = strings.ToUpper
	f["toTitle"] = func(s string) string { return cases.Title(language.Und, cases.NoLower).String(s) }
	f["trimSpace"] = strings.TrimSpace
	f["trim"] = func(cutset, s string) string { return strings.Trim(s, cutset) }
	f["trimPrefix"] = func(prefix, s string) string { return strings.TrimPrefix(s, prefix) }
	f["trimSuffix"] = func(suffix, s string) string { return strings.TrimSuffix(s, suffix) }
	f["contains"] = func(v, l any) bool { return in(l, v) }
	f["in"] = in
	f["containsAll"] = containsSome(true, true)
	f["containsAny"] = containsSome(false, false)
	f["containsNone"] = containsSome(true, false)
	f["containsNotAll"] = containsSome(false, true)
	f["indent"] = func(spaces int, s string) (string, error) {
		if spaces < 0 {
			return "", errors.New("indent: the number of spaces must not be negative")
		}
		if n := len(s) + (strings.Count(s, "\n")+1)*spaces; n > maxOutput {
			return "", fmt.Errorf("indent: the result would be %d bytes", n)
		}
		pad := strings.Repeat(" ", spaces)
		lines := strings.SplitAfter(s, "\n")
		var b strings.Builder
		for _, l := range lines {
			if l != "" && l != "\n" {
				b.WriteString(pad)
			}
			b.WriteString(l)
		}
		return r.Result(b.String())
	}
	f["splitToMap"] = func(sep1, sep2, s string) (map[string]string, error) {
		parts, err := f["split"].(func(string, string) ([]string, error))(sep1, s)
		if err != nil {
			return nil, err
		}
		m := make(map[string]string, len(parts))
		for _, p := range parts {
			if k, v, ok := strings.Cut(p, sep2); ok {
				m[k] = v
			}
		}
		return m, nil
	}
	f["regexMatch"] = func(re, s string) (bool, error) {
		rx, err := regexp.Compile(re)
		if err != nil {
			return false, err
		}
		return rx.MatchString(s), nil
	}

	// Encodings.
	toJSON := func(indent bool, escape bool) func(any) (string, error) {
		return func(v any) (string, error) {
			b := tmplguard.Buffer{Max: maxOutput}
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(escape)
			if indent {
				enc.SetIndent("", "  ")
			}
			if err := enc.Encode(v); err != nil {
				return "", fmt.Errorf("toJSON: %w", err)
			}
			return r.Result(strings.TrimRight(b.String(), "\n"))
		}
	}
	f["toJSON"] = toJSON(false, true)
	f["toJSONPretty"] = toJSON(true, true)
	f["toUnescapedJSON"] = toJSON(false, false)
	f["toUnescapedJSONPretty"] = toJSON(true, false)
	f["parseJSON"] = func(s string) (any, error) {
		if s == "" {
			return map[string]any{}, nil
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("parseJSON: %w", err)
		}
		return v, r.Check(2 * len(s))
	}
	f["parseBool"] = func(s string) (bool, error) {
		if s == "" {
			return false, nil
		}
		return strconv.ParseBool(s)
	}
	f["parseInt"] = func(s string) (int64, error) {
		if s == "" {
			return 0, nil
		}
		return strconv.ParseInt(s, 10, 64)
	}
	f["parseUint"] = func(s string) (uint64, error) {
		if s == "" {
			return 0, nil
		}
		return strconv.ParseUint(s, 10, 64)
	}
	f["parseFloat"] = func(s string) (float64, error) {
		if s == "" {
			return 0, nil
		}
		return strconv.ParseFloat(s, 64)
	}
	f["base64Encode"] = func(s string) (string, error) { return r.Result(base64.StdEncoding.EncodeToString([]byte(s))) }
	f["base64Decode"] = func(s string) (string, error) {
		b, err := base64.StdEncoding.DecodeString(s)
		return string(b), err
	}
	f["base64URLEncode"] = func(s string) (string, error) { return r.Result(base64.URLEncoding.EncodeToString([]byte(s))) }
	f["base64URLDecode"] = func(s string) (string, error) {
		b, err := base64.URLEncoding.DecodeString(s)
		return string(b), err
	}
	f["sha256Hex"] = func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	f["md5sum"] = func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	f["timestamp"] = func(format ...string) (string, error) {
		now := time.Now().UTC()
		switch {
		case len(format) == 0:
			return now.Format(time.RFC3339), nil
		case len(format) > 1:
			return "", fmt.Errorf("timestamp: at most one argument, the format")
		case format[0] == "unix":
			return strconv.FormatInt(now.Unix(), 10), nil
		}
		return r.Result(now.Format(format[0]))
	}

	// Grouping.
	f["byTag"] = byTag
	f["byKey"] = byKey
	f["byPort"] = byPort
	f["explode"] = explode

	// Arithmetic: add b a is a + b, so that {{ .Port | add 1 }} pipes.
	f["add"] = arith("add", func(a, b int64) (int64, error) { return a + b, nil }, func(a, b float64) float64 { return a + b })
	f["subtract"] = arith("subtract", func(a, b int64) (int64, error) { return a - b, nil }, func(a, b float64) float64 { return a - b })
	f["multiply"] = arith("multiply", func(a, b int64) (int64, error) { return a * b, nil }, func(a, b float64) float64 { return a * b })
	f["divide"] = arith("divide", func(a, b int64) (int64, error) {
		if b == 0 {
			return 0, errors.New("divide: division by zero")
		}
		return a / b, nil
	}, func(a, b float64) float64 { return a / b })
	f["modulo"] = arith("modulo", func(a, b int64) (int64, error) {
		if b == 0 {
			return 0, errors.New("modulo: division by zero")
		}
		return a % b, nil
	}, nil)
	f["minimum"] = arith("minimum", func(a, b int64) (int64, error) { return min(a, b), nil }, func(a, b float64) float64 { return min(a, b) })
	f["maximum"] = arith("maximum", func(a, b int64) (int64, error) { return max(a, b), nil }, func(a, b float64) float64 { return max(a, b) })
	return f
}

// funcNames lists every function a template may call besides Go's builtins.
func funcNames() []string {
	r := &run{Meter: tmplguard.NewMeter(tmplguard.Limits{}, time.Now())}
	var out []string
	for name := range r.funcs() {
		if !strings.HasPrefix(name, "_") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// in reports whether l (a list or a string) holds v.
func in(l, v any) bool {
	lv, vv := reflect.ValueOf(l), reflect.ValueOf(v)
	switch lv.Kind() {
	case reflect.String:
		return vv.Kind() == reflect.String && strings.Contains(lv.String(), vv.String())
	case reflect.Array, reflect.Slice:
		for i := range lv.Len() {
			if equal(lv.Index(i), vv) {
				return true
			}
		}
	}
	return false
}

// equal compares two values the way a template writer means: numbers by value, strings by
// text.
func equal(a, b reflect.Value) bool {
	for a.Kind() == reflect.Interface && !a.IsNil() {
		a = a.Elem()
	}
	for b.Kind() == reflect.Interface && !b.IsNil() {
		b = b.Elem()
	}
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	if a.Kind() == reflect.String && b.Kind() == reflect.String {
		return a.String() == b.String()
	}
	return false
}

func number(v reflect.Value) (float64, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	}
	return 0, false
}

// containsSome builds containsAll, containsAny, containsNone and containsNotAll: whether
// l holds all, any, none or not all of the list vs.
func containsSome(retTrue, invert bool) func(vs, l any) (bool, error) {
	return func(vs, l any) (bool, error) {
		rv := reflect.ValueOf(vs)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return false, fmt.Errorf("the first argument must be a list, not %T", vs)
		}
		for i := range rv.Len() {
			if in(l, rv.Index(i).Interface()) != invert {
				return !retTrue, nil
			}
		}
		return retTrue, nil
	}
}

// byTag groups services (or catalog services) by each of their tags.
func byTag(list any) (any, error) {
	switch l := list.(type) {
	case []*Service:
		m := map[string][]*Service{}
		for _, s := range l {
			for _, t := range s.Tags {
				m[t] = append(m[t], s)
			}
		}
		return m, nil
	case []*CatalogSnippet:
		m := map[string][]*CatalogSnippet{}
		for _, s := range l {
			for _, t := range s.Tags {
				m[t] = append(m[t], s)
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("byTag: wrong argument type %T", list)
}

// byPort groups services by their port.
func byPort(list []*Service) map[int][]*Service {
	m := map[int][]*Service{}
	for _, s := range list {
		m[s.Port] = append(m[s.Port], s)
	}
	return m
}

// byKey groups keys by their first path segment: "redis/a/b" is b under "a/b" of "redis".
func byKey(pairs []*KeyPair) map[string]map[string]*KeyPair {
	m := map[string]map[string]*KeyPair{}
	for _, p := range pairs {
		top, rest, _ := strings.Cut(p.Key, "/")
		if rest == "" {
			continue
		}
		if m[top] == nil {
			m[top] = map[string]*KeyPair{}
		}
		c := *p
		c.Key = rest
		m[top][rest] = &c
	}
	return m
}

// explode turns keys into nested maps: "a/b" = "1" is {"a": {"b": "1"}}.
func explode(pairs []*KeyPair) (map[string]any, error) {
	m := map[string]any{}
	for _, p := range pairs {
		parts := strings.Split(p.Key, "/")
		cur := m
		for i, part := range parts {
			if i == len(parts)-1 {
				if part != "" {
					cur[part] = p.Value
				}
				break
			}
			next, ok := cur[part].(map[string]any)
			if !ok {
				if _, taken := cur[part]; taken {
					return nil, fmt.Errorf("explode: %q is both a value and a folder", strings.Join(parts[:i+1], "/"))
				}
				next = map[string]any{}
				cur[part] = next
			}
			cur = next
		}
	}
	return m, nil
}

// arith builds a two-number function with consul-template's order: f b a computes a OP b.
// Whole numbers stay whole; anything else is a float.
func arith(name string, ints func(a, b int64) (int64, error), floats func(a, b float64) float64) func(b, a any) (any, error) {
	return func(b, a any) (any, error) {
		ai, aInt := whole(a)
		bi, bInt := whole(b)
		if aInt && bInt {
			return ints(ai, bi)
		}
		af, aOK := number(reflect.ValueOf(a))
		bf, bOK := number(reflect.ValueOf(b))
		if s, ok := a.(string); ok {
			af, aOK = parseNumber(s)
		}
		if s, ok := b.(string); ok {
			bf, bOK = parseNumber(s)
		}
		if !aOK || !bOK || floats == nil {
			return nil, fmt.Errorf("%s: cannot compute with %v (%T) and %v (%T)", name, a, a, b, b)
		}
		return floats(af, bf), nil
	}
}

func whole(v any) (int64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint()), true
	case reflect.String:
		n, err := strconv.ParseInt(rv.String(), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func parseNumber(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}
