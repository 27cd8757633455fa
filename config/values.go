package config

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"golang.org/x/sys/unix"
)

// Decoder evaluates attribute values and records every problem as a diagnostic. Kinds use it
// to read their own keys.
type Decoder struct {
	ctx   *hcl.EvalContext
	g     *guard
	Diags hcl.Diagnostics
}

// eval evaluates e under the load's guard (docs/configuration.md#limits). Every value a
// Decoder reads goes through here.
func (d *Decoder) eval(e hcl.Expression) (cty.Value, hcl.Diagnostics) {
	if d.g != nil && isJSONExpr(e) {
		return d.g.evalJSON(e, d.ctx)
	}
	return e.Value(d.ctx)
}

func (d *Decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	d.Diags = append(d.Diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

// Errorf records an error at rng.
func (d *Decoder) Errorf(rng hcl.Range, format string, args ...any) {
	d.errorf(rng, fmt.Sprintf(format, args...), "")
}

// Warnf records a warning at rng.
func (d *Decoder) Warnf(rng hcl.Range, format string, args ...any) {
	r := rng
	d.Diags = append(d.Diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: fmt.Sprintf(format, args...), Subject: &r})
}

// value evaluates attr and converts it to ty; ok is false when it failed (diagnostics added)
// or when the value is null.
func (d *Decoder) value(attr *hcl.Attribute, ty cty.Type) (cty.Value, bool) {
	v, diags := d.eval(attr.Expr)
	d.Diags = append(d.Diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	if v.IsNull() {
		d.errorf(attr.Expr.Range(), "Invalid value", "%q must not be null.", attr.Name)
		return cty.NilVal, false
	}
	if !v.IsWhollyKnown() {
		d.errorf(attr.Expr.Range(), "Invalid value", "%q has no known value.", attr.Name)
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		d.errorf(attr.Expr.Range(), "Incorrect type", "%q: %s, got %s.", attr.Name, convertMessage(ty), v.Type().FriendlyName())
		return cty.NilVal, false
	}
	return cv, true
}

func convertMessage(ty cty.Type) string {
	switch {
	case ty == cty.String:
		return "a string is required"
	case ty == cty.Bool:
		return "a bool (true or false) is required"
	case ty == cty.Number:
		return "a number is required"
	case ty.IsListType():
		return "a list of " + ty.ElementType().FriendlyName() + "s is required"
	case ty.IsMapType():
		return "a map of " + ty.ElementType().FriendlyName() + "s is required"
	}
	return ty.FriendlyName() + " is required"
}

// String reads a string attribute; absent attributes leave *dst unchanged.
func (d *Decoder) String(attrs hcl.Attributes, name string, dst *string) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	if v, ok := d.value(a, cty.String); ok {
		*dst = v.AsString()
		return true
	}
	return false
}

// Bool reads a bool attribute.
func (d *Decoder) Bool(attrs hcl.Attributes, name string, dst *bool) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	if v, ok := d.value(a, cty.Bool); ok {
		*dst = v.True()
		return true
	}
	return false
}

// Int reads a whole number within [lo, hi].
func (d *Decoder) Int(attrs hcl.Attributes, name string, lo, hi int, dst *int) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	v, ok := d.value(a, cty.Number)
	if !ok {
		return false
	}
	f, _ := v.AsBigFloat().Float64()
	if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		d.errorf(a.Expr.Range(), "Invalid value", "%q must be a whole number from %d to %d.", name, lo, hi)
		return false
	}
	*dst = int(f)
	return true
}

// Float reads a number.
func (d *Decoder) Float(attrs hcl.Attributes, name string, dst *float64) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	if v, ok := d.value(a, cty.Number); ok {
		*dst, _ = v.AsBigFloat().Float64()
		return true
	}
	return false
}

// Strings reads a list of strings.
func (d *Decoder) Strings(attrs hcl.Attributes, name string, dst *[]string) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	v, ok := d.value(a, cty.List(cty.String))
	if !ok {
		return false
	}
	out := []string{}
	for _, e := range v.AsValueSlice() {
		if e.IsNull() {
			d.errorf(a.Expr.Range(), "Invalid value", "%q must not contain null.", name)
			return false
		}
		out = append(out, e.AsString())
	}
	*dst = out
	return true
}

// StringList reads a list of strings, or a single string as a list of one.
func (d *Decoder) StringList(attrs hcl.Attributes, name string, dst *[]string) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	v, diags := d.eval(a.Expr)
	d.Diags = append(d.Diags, diags...)
	if diags.HasErrors() {
		return false
	}
	if v.Type() == cty.String && !v.IsNull() && v.IsKnown() {
		*dst = []string{v.AsString()}
		return true
	}
	return d.Strings(attrs, name, dst)
}

// Command reads a command: a list is taken as is, a string is split into words like a shell
// would (quotes respected) without running a shell.
func (d *Decoder) Command(attrs hcl.Attributes, name string, dst *[]string) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	v, diags := d.eval(a.Expr)
	d.Diags = append(d.Diags, diags...)
	if diags.HasErrors() {
		return false
	}
	var words []string
	if v.Type() == cty.String && !v.IsNull() && v.IsKnown() {
		var err error
		if words, err = SplitWords(v.AsString()); err != nil {
			d.errorf(a.Expr.Range(), "Invalid command", "%q: %s.", name, err)
			return false
		}
	} else {
		lv, ok := d.value(a, cty.List(cty.String))
		if !ok {
			return false
		}
		for _, e := range lv.AsValueSlice() {
			if e.IsNull() {
				d.errorf(a.Expr.Range(), "Invalid value", "%q must not contain null.", name)
				return false
			}
			words = append(words, e.AsString())
		}
	}
	if len(words) == 0 || words[0] == "" {
		d.errorf(a.Expr.Range(), "Invalid command", "%q must name a program to run.", name)
		return false
	}
	*dst = words
	return true
}

// StringMap reads a map of strings, keeping every key and value intact (values may contain
// "=" and spaces).
func (d *Decoder) StringMap(attrs hcl.Attributes, name string, dst *map[string]string) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	v, ok := d.value(a, cty.Map(cty.String))
	if !ok {
		return false
	}
	out := map[string]string{}
	for k, e := range v.AsValueMap() {
		if e.IsNull() {
			d.errorf(a.Expr.Range(), "Invalid value", "%q: the value of %q must not be null.", name, k)
			return false
		}
		out[k] = e.AsString()
	}
	*dst = out
	return true
}

// Pair is one key = value item of an object, with the ranges of both.
type Pair struct {
	Key, Value           string
	KeyRange, ValueRange hcl.Range
}

// Pairs reads an object of string values in source order.
func (d *Decoder) Pairs(attrs hcl.Attributes, name string) ([]Pair, bool) {
	a, ok := attrs[name]
	if !ok {
		return nil, false
	}
	items, diags := hcl.ExprMap(a.Expr)
	if diags.HasErrors() {
		d.errorf(a.Expr.Range(), "Invalid value", "%q must be an object such as { db = \"healthy\" }.", name)
		return nil, false
	}
	var out []Pair
	okAll := true
	for _, kv := range items {
		kval, kd := d.eval(kv.Key)
		vval, vd := d.eval(kv.Value)
		d.Diags = append(d.Diags, kd...)
		d.Diags = append(d.Diags, vd...)
		if kd.HasErrors() || vd.HasErrors() {
			okAll = false
			continue
		}
		ks, err1 := convert.Convert(kval, cty.String)
		vs, err2 := convert.Convert(vval, cty.String)
		if err1 != nil || err2 != nil || ks.IsNull() || vs.IsNull() {
			d.errorf(kv.Key.Range(), "Incorrect type", "%q: every key and value must be a string.", name)
			okAll = false
			continue
		}
		out = append(out, Pair{Key: ks.AsString(), Value: vs.AsString(), KeyRange: kv.Key.Range(), ValueRange: kv.Value.Range()})
	}
	return out, okAll
}

// Duration reads a duration: a string such as "500ms", "5s", "1m", or a number of seconds.
func (d *Decoder) Duration(attrs hcl.Attributes, name string, dst *time.Duration) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	v, diags := d.eval(a.Expr)
	d.Diags = append(d.Diags, diags...)
	if diags.HasErrors() {
		return false
	}
	if v.Type() == cty.Number && !v.IsNull() {
		f, _ := v.AsBigFloat().Float64()
		if f < 0 {
			d.errorf(a.Expr.Range(), "Invalid duration", "%q must not be negative.", name)
			return false
		}
		*dst = time.Duration(f * float64(time.Second))
		return true
	}
	sv, ok := d.value(a, cty.String)
	if !ok {
		return false
	}
	dur, err := time.ParseDuration(strings.TrimSpace(sv.AsString()))
	if err != nil {
		d.errorf(a.Expr.Range(), "Invalid duration", "%q: %q is not a duration; write it like \"500ms\", \"5s\", \"1m\" or \"2h\".", name, sv.AsString())
		return false
	}
	if dur < 0 {
		d.errorf(a.Expr.Range(), "Invalid duration", "%q must not be negative.", name)
		return false
	}
	*dst = dur
	return true
}

// Size reads a byte size: a number, or a string such as "50MB", "512KiB", "1G" (K, M, G are
// powers of 1024).
func (d *Decoder) Size(attrs hcl.Attributes, name string, dst *int64) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	sv, ok := d.value(a, cty.String)
	if !ok {
		return false
	}
	n, err := ParseSize(sv.AsString())
	if err != nil {
		d.errorf(a.Expr.Range(), "Invalid size", "%q: %s.", name, err)
		return false
	}
	*dst = n
	return true
}

// ParseSize parses "50MB", "10k", "1GiB", "4096".
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a size; write it like \"50MB\" or \"512KB\"", s)
	}
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
		"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q has an unknown unit; use B, KB, MB or GB", s)
	}
	if f*mult < 1 {
		return 0, fmt.Errorf("%q must be at least one byte", s)
	}
	return int64(f * mult), nil
}

// Signal reads a signal name ("SIGTERM", "TERM", "term") or number.
func (d *Decoder) Signal(attrs hcl.Attributes, name string, dst *syscall.Signal) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	sv, ok := d.value(a, cty.String)
	if !ok {
		return false
	}
	sig, err := ParseSignal(sv.AsString())
	if err != nil {
		d.errorf(a.Expr.Range(), "Invalid signal", "%q: %s.", name, err)
		return false
	}
	*dst = sig
	return true
}

// ParseSignal accepts "SIGTERM", "TERM", "term" or "15".
func ParseSignal(s string) (syscall.Signal, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(t); err == nil {
		if n > 0 && n < 65 {
			return syscall.Signal(n), nil
		}
		return 0, fmt.Errorf("%q is not a signal number", s)
	}
	if !strings.HasPrefix(t, "SIG") {
		t = "SIG" + t
	}
	if sig := unix.SignalNum(t); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("%q is not a signal name; use a name such as \"SIGTERM\" or \"HUP\"", s)
}

// FileMode reads an octal mode string such as "0660".
func (d *Decoder) FileMode(attrs hcl.Attributes, name string, dst *os.FileMode) bool {
	a, ok := attrs[name]
	if !ok {
		return false
	}
	sv, ok := d.value(a, cty.String)
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(sv.AsString(), 8, 32)
	if err != nil || n > 0o777 {
		d.errorf(a.Expr.Range(), "Invalid mode", "%q: %q is not an octal file mode such as \"0660\".", name, sv.AsString())
		return false
	}
	*dst = os.FileMode(n)
	return true
}

// Regexp reads a regular expression.
func (d *Decoder) Regexp(attrs hcl.Attributes, name string, dst *string) bool {
	if !d.String(attrs, name, dst) {
		return false
	}
	if _, err := regexp.Compile(*dst); err != nil {
		d.Errorf(attrs[name].Expr.Range(), "%q is not a valid regular expression: %s", name, err)
		return false
	}
	return true
}

// Rotate reads `rotate = { size = "50MB", keep = 5, compress = true }` (defaults 10MB, 3,
// false); nil when absent.
func (d *Decoder) Rotate(attrs hcl.Attributes, name string) *Rotate {
	obj, ok := d.Object(attrs, name, "size", "keep", "compress")
	if !ok {
		return nil
	}
	r := &Rotate{Size: 10 << 20, Keep: 3}
	d.Size(obj, "size", &r.Size)
	d.Int(obj, "keep", 0, 1000, &r.Keep)
	d.Bool(obj, "compress", &r.Compress)
	return r
}

// OneOf checks that *val is one of the allowed strings.
func (d *Decoder) OneOf(attrs hcl.Attributes, name, val string, allowed ...string) bool {
	for _, a := range allowed {
		if val == a {
			return true
		}
	}
	rng := hcl.Range{}
	if a, ok := attrs[name]; ok {
		rng = a.Expr.Range()
	}
	d.errorf(rng, "Invalid value", "%q must be one of %s; got %q.", name, quoteList(allowed), val)
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// SignalName returns "SIGTERM" for syscall.SIGTERM.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return strconv.Itoa(int(sig))
}
