package config

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// guard meters the evaluation of one load (docs/configuration.md#limits): a deadline, a
// budget for the size of all values computed, and the size of each value. HCL cannot be
// interrupted, so the guard sits between every two nodes of the syntax tree (guarded) and
// inside the functions that can make a result much larger than their arguments. The first
// limit hit fails that expression, and every later one at once. One load, one goroutine.
type guard struct {
	ctx      context.Context
	deadline time.Time
	spent    int64
	timeout  time.Duration
	err      error
	reported bool // a diagnostic says why err happened
}

func newGuard(ctx context.Context, start time.Time, timeout time.Duration) *guard {
	if ctx == nil {
		ctx = context.Background()
	}
	if timeout <= 0 {
		timeout = EvalTimeout
	}
	return &guard{ctx: ctx, deadline: start.Add(timeout), timeout: timeout}
}

// limitError is a limit the evaluation went over.
type limitError struct{ summary, detail string }

func (e *limitError) Error() string { return e.detail }

func overLimit(summary, format string, args ...any) *limitError {
	return &limitError{summary: summary, detail: fmt.Sprintf(format, args...) + "; see " + limitsDoc}
}

// repeated marks the diagnostics of expressions that failed only because an earlier one
// went over a limit; Parse drops them.
type repeated struct{}

// poll returns the limit hit so far, noticing the deadline and cancellation.
func (g *guard) poll() error {
	if g.err != nil {
		return g.err
	}
	switch {
	case g.ctx.Err() != nil:
		g.err = &limitError{summary: "Configuration load cancelled", detail: "the load was cancelled: " + context.Cause(g.ctx).Error()}
	case time.Now().After(g.deadline):
		g.err = overLimit("Configuration takes too long to evaluate", "evaluation stopped after %s", g.timeout)
	}
	return g.err
}

// stop records err as the limit hit, unless one was hit before.
func (g *guard) stop(err error) error {
	if g.err == nil {
		g.err = err
	}
	return g.err
}

// diag reports the limit hit at rng; only the first diagnostic is kept.
func (g *guard) diag(rng hcl.Range, err error) hcl.Diagnostics {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Evaluation limit", Detail: err.Error(), Subject: rng.Ptr()}
	if le, ok := err.(*limitError); ok {
		d.Summary = le.summary
	}
	if g.reported {
		d.Extra = repeated{}
	}
	g.reported = true
	return hcl.Diagnostics{d}
}

// charge adds v to the values computed and checks its size; it returns the elements v
// holds.
func (g *guard) charge(v cty.Value) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	m := meter{limit: MaxEvalBytes - g.spent}
	err := m.walk(v)
	g.spent += m.size
	if err == nil && g.spent > MaxEvalBytes {
		err = overLimit("Configuration evaluates to too much", "the expressions compute more than %d MiB of values", MaxEvalBytes>>20)
	}
	return m.elems, err
}

// meter measures a value: roughly the bytes it takes, and the elements it holds.
type meter struct {
	size, limit int64
	elems       int
}

const valueOverhead = 32 // bytes of a cty.Value and its share of a collection

func (m *meter) walk(v cty.Value) error {
	m.size += valueOverhead
	if m.size > m.limit {
		return overLimit("Configuration evaluates to too much", "the expressions compute more than %d MiB of values", MaxEvalBytes>>20)
	}
	if v.IsMarked() {
		v, _ = v.Unmark()
	}
	if !v.IsKnown() || v.IsNull() {
		return nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		n := len(v.AsString())
		if n > MaxString {
			return overLimit("Value too large", "a string of %d bytes, over the limit of %d MiB", n, MaxString>>20)
		}
		m.size += int64(n)
	case ty == cty.Number:
		return checkNumber(v)
	case ty.IsCollectionType() || ty.IsTupleType() || ty.IsObjectType():
		m.elems += v.LengthInt()
		if m.elems > MaxElements {
			return overLimit("Value too large", "a value with more than %d elements (nested ones included)", MaxElements)
		}
		keyed := ty.IsMapType() || ty.IsObjectType()
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if keyed {
				m.size += int64(len(k.AsString()))
			}
			if err := m.walk(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxExponent bounds numbers to about ±10^330: written out in decimal, as templates and
// string conversions do, a bigger or tinier one would take that many digits.
const maxExponent = 1100

func checkNumber(v cty.Value) error {
	f := v.AsBigFloat()
	if f.IsInf() || f.Sign() == 0 {
		return nil
	}
	if e := f.MantExp(nil); e > maxExponent || e < -maxExponent {
		return overLimit("Number out of range", "a number too large or too small to be written out (about 10^%d)", int(float64(e)*math.Log10(2)))
	}
	return nil
}

// guarded evaluates one node of the syntax tree under the guard.
type guarded struct {
	hclsyntax.Expression
	g *guard
	// A for expression counts the elements it has made so far, so that one making too many
	// stops at the first element too many rather than at its end.
	count *forCount // this node is the value or key of a for expression: it adds to count
	reset *forCount // this node is a for expression: it counts afresh
}

type forCount struct{ elems int }

func (e *guarded) Value(ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	if err := e.g.poll(); err != nil {
		return cty.DynamicVal, e.g.diag(e.Range(), err)
	}
	if e.reset != nil {
		e.reset.elems = 0
	}
	v, diags := e.Expression.Value(ctx)
	if diags.HasErrors() {
		return v, diags
	}
	elems, err := e.g.charge(v)
	if err == nil && e.count != nil {
		if e.count.elems += 1 + elems; e.count.elems > MaxElements {
			err = overLimit("Value too large", "a for expression making more than %d elements (nested ones included)", MaxElements)
		}
	}
	if err != nil {
		return cty.DynamicVal, append(diags, e.g.diag(e.Range(), e.g.stop(err))...)
	}
	return v, diags
}

// UnwrapExpression lets hcl.ExprList, hcl.ExprMap and the keyword helpers see the node.
func (e *guarded) UnwrapExpression() hcl.Expression { return e.Expression }

// wrapBody guards every expression of a body in HCL's native syntax.
func (g *guard) wrapBody(b *hclsyntax.Body) {
	for _, a := range b.Attributes {
		a.Expr = g.wrap(a.Expr)
	}
	for _, blk := range b.Blocks {
		g.wrapBody(blk.Body)
	}
}

func (g *guard) wrap(e hclsyntax.Expression) hclsyntax.Expression {
	if e == nil {
		return nil
	}
	g.wrapChildren(e)
	w := &guarded{Expression: e, g: g}
	if f, ok := e.(*hclsyntax.ForExpr); ok {
		w.reset = &forCount{}
		for _, part := range []*hclsyntax.Expression{&f.KeyExpr, &f.ValExpr} {
			if *part != nil {
				*part = g.wrap(*part)
				(*part).(*guarded).count = w.reset
			}
		}
	}
	return w
}

// wrapChildren guards the children of a node, so that no node ever works on a value that
// was not measured. The depth of the tree is bounded by checkSource.
func (g *guard) wrapChildren(e hclsyntax.Expression) {
	switch n := e.(type) {
	case *hclsyntax.FunctionCallExpr:
		for i := range n.Args {
			n.Args[i] = g.wrap(n.Args[i])
		}
	case *hclsyntax.ConditionalExpr:
		n.Condition, n.TrueResult, n.FalseResult = g.wrap(n.Condition), g.wrap(n.TrueResult), g.wrap(n.FalseResult)
	case *hclsyntax.IndexExpr:
		n.Collection, n.Key = g.wrap(n.Collection), g.wrap(n.Key)
	case *hclsyntax.TupleConsExpr:
		for i := range n.Exprs {
			n.Exprs[i] = g.wrap(n.Exprs[i])
		}
	case *hclsyntax.ObjectConsExpr:
		for i := range n.Items {
			n.Items[i].KeyExpr, n.Items[i].ValueExpr = g.wrap(n.Items[i].KeyExpr), g.wrap(n.Items[i].ValueExpr)
		}
	case *hclsyntax.ObjectConsKeyExpr:
		// Wrapped stays as is: HCL tells a bare name (a literal key) by its type.
		g.wrapChildren(n.Wrapped)
	case *hclsyntax.ForExpr:
		n.CollExpr, n.CondExpr = g.wrap(n.CollExpr), g.wrap(n.CondExpr)
		// n.KeyExpr and n.ValExpr: see wrap
	case *hclsyntax.SplatExpr:
		n.Source, n.Each = g.wrap(n.Source), g.wrap(n.Each)
	case *hclsyntax.RelativeTraversalExpr:
		n.Source = g.wrap(n.Source)
	case *hclsyntax.BinaryOpExpr:
		n.LHS, n.RHS = g.wrap(n.LHS), g.wrap(n.RHS)
	case *hclsyntax.UnaryOpExpr:
		n.Val = g.wrap(n.Val)
	case *hclsyntax.TemplateExpr:
		for i := range n.Parts {
			n.Parts[i] = g.wrap(n.Parts[i])
		}
	case *hclsyntax.TemplateJoinExpr:
		n.Tuple = g.wrap(n.Tuple)
	case *hclsyntax.TemplateWrapExpr:
		n.Wrapped = g.wrap(n.Wrapped)
	case *hclsyntax.ParenthesesExpr:
		n.Expression = g.wrap(n.Expression)
	}
}

// evalJSON evaluates an expression of HCL's JSON syntax as HCL does (strings are
// templates; arrays are tuples; objects are objects whose keys may be templates), but with
// every template guarded: HCL's JSON package parses and evaluates them out of reach.
func (g *guard) evalJSON(expr hcl.Expression, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	if err := g.poll(); err != nil {
		return cty.DynamicVal, g.diag(expr.Range(), err)
	}
	var (
		v     cty.Value
		diags hcl.Diagnostics
	)
	if list := jsonList(expr); list != nil {
		vals := make([]cty.Value, 0, len(list))
		for _, el := range list {
			ev, d := g.evalJSON(el, ctx)
			vals = append(vals, ev)
			diags = append(diags, d...)
		}
		v = cty.TupleVal(vals)
	} else if items := jsonMap(expr); items != nil {
		v, diags = g.evalJSONObject(items, ctx)
	} else {
		v, diags = expr.Value(nil) // the value as written, strings not interpolated
		if !diags.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() && containsTemplate(v.AsString()) {
			rng := expr.Range()
			start := hcl.Pos{Line: rng.Start.Line, Column: rng.Start.Column + 1, Byte: rng.Start.Byte + 1}
			tmpl, pd := hclsyntax.ParseTemplate([]byte(v.AsString()), rng.Filename, start)
			if pd.HasErrors() {
				return cty.DynamicVal, pd
			}
			v, diags = g.wrap(tmpl).Value(ctx)
		}
	}
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	if _, err := g.charge(v); err != nil {
		return cty.DynamicVal, append(diags, g.diag(expr.Range(), g.stop(err))...)
	}
	return v, diags
}

func (g *guard) evalJSONObject(items []hcl.KeyValuePair, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	attrs := make(map[string]cty.Value, len(items))
	ranges := make(map[string]hcl.Range, len(items))
	known := true
	for _, kv := range items {
		name, nd := g.evalJSON(kv.Key, ctx)
		val, vd := g.evalJSON(kv.Value, ctx)
		diags = append(append(diags, nd...), vd...)
		if nd.HasErrors() {
			known = false
			continue
		}
		name, err := convert.Convert(name, cty.String)
		if err != nil || name.IsNull() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid object key expression",
				Detail: "Cannot use this expression as an object key.", Subject: kv.Key.Range().Ptr()})
			continue
		}
		if !name.IsKnown() {
			known = false
			continue
		}
		key := name.AsString()
		if prev, dup := ranges[key]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate object attribute",
				Detail: fmt.Sprintf("An attribute named %q was already defined at %s.", key, prev), Subject: kv.Key.Range().Ptr()})
			continue
		}
		attrs[key], ranges[key] = val, kv.Key.Range()
	}
	if !known {
		return cty.DynamicVal, diags
	}
	return cty.ObjectVal(attrs), diags
}

// jsonList and jsonMap return the elements of a JSON array or object, nil for other values.
func jsonList(expr hcl.Expression) []hcl.Expression {
	if l, ok := expr.(interface{ ExprList() []hcl.Expression }); ok {
		return l.ExprList()
	}
	return nil
}

func jsonMap(expr hcl.Expression) []hcl.KeyValuePair {
	if m, ok := expr.(interface{ ExprMap() []hcl.KeyValuePair }); ok {
		return m.ExprMap()
	}
	return nil
}

// isJSONExpr tells an expression of HCL's JSON syntax: the only kind besides hclsyntax's
// that implements hcl.ExprCall.
func isJSONExpr(expr hcl.Expression) bool {
	if _, ok := expr.(hclsyntax.Expression); ok {
		return false
	}
	_, ok := expr.(interface{ ExprCall() *hcl.StaticCall })
	return ok
}

// guardFunc checks a call's arguments with pre before it runs: pre refuses a call whose
// result would go over a limit before it is computed.
func (g *guard) guardFunc(f function.Function, pre func(args []cty.Value) error) function.Function {
	if g == nil {
		return f
	}
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type:        f.ReturnTypeForValues,
		Impl: func(args []cty.Value, retType cty.Type) (cty.Value, error) {
			if g.poll() != nil {
				return cty.UnknownVal(retType), nil // the enclosing node reports it
			}
			for _, a := range args {
				if !a.IsWhollyKnown() {
					return f.Call(args)
				}
			}
			if err := pre(args); err != nil {
				g.stop(err)
				g.reported = true // as a function error, by HCL
				return cty.NilVal, err
			}
			return f.Call(args)
		},
	})
}

func tooLong(n int64) error {
	return overLimit("Value too large", "the result would be a string of %d bytes or more, over the limit of %d MiB", n, MaxString>>20)
}

func tooMany(n int64) error {
	return overLimit("Value too large", "the result would hold %d elements or more, over the limit of %d", n, MaxElements)
}

func str(v cty.Value) string {
	if v.IsNull() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// measure returns the size meter gives v (capped just over the budget).
func measure(v cty.Value) int64 {
	m := meter{limit: MaxEvalBytes + 1}
	_ = m.walk(v)
	return m.size
}

func preJoin(args []cty.Value) error {
	sep := int64(len(str(args[0])))
	var total, count int64
	for _, l := range args[1:] {
		if l.IsNull() {
			continue
		}
		for it := l.ElementIterator(); it.Next(); {
			_, e := it.Element()
			total += int64(len(str(e)))
			count++
		}
	}
	if count > 1 {
		total += sep * (count - 1)
	}
	if total > MaxString {
		return tooLong(total)
	}
	return nil
}

// formatBound bounds what a format string makes of arguments of size arg at most: every
// verb may print any argument (%[n]v), padded to any width or precision written in it.
func formatBound(f string, arg int64) int64 {
	verbs := int64(strings.Count(f, "%"))
	var widest, n int64
	for i := 0; i < len(f); i++ {
		if c := f[i]; c >= '0' && c <= '9' {
			n = min(n*10+int64(c-'0'), math.MaxInt32)
			widest = max(widest, n)
		} else {
			n = 0
		}
	}
	return int64(len(f)) + verbs*(widest+6*arg+400)
}

func preFormat(args []cty.Value) error {
	var arg int64
	for _, a := range args[1:] {
		arg = max(arg, measure(a))
	}
	if n := formatBound(str(args[0]), arg); n > MaxString {
		return tooLong(n)
	}
	return nil
}

func preFormatList(args []cty.Value) error {
	var arg, rows int64 = 0, 1
	for _, a := range args[1:] {
		arg = max(arg, measure(a))
		if ty := a.Type(); !a.IsNull() && (ty.IsListType() || ty.IsTupleType() || ty.IsSetType()) {
			rows = max(rows, int64(a.LengthInt()))
		}
	}
	if n := formatBound(str(args[0]), arg); n > MaxString {
		return tooLong(n)
	} else if rows*n > MaxEvalBytes {
		return tooLong(rows * n)
	}
	return nil
}

func preIndent(args []cty.Value) error {
	spaces, _ := args[0].AsBigFloat().Int64()
	s := str(args[1])
	if n := int64(len(s)) + max(spaces, 0)*int64(strings.Count(s, "\n")+1); n > MaxString || spaces > MaxString {
		return tooLong(max(n, spaces))
	}
	return nil
}

// preReplace counts the matches first; with a regular expression (/re/), each one may
// expand $1 references to at most the whole string.
func preReplace(args []cty.Value) error {
	s, sub, repl := str(args[0]), str(args[1]), str(args[2])
	per := int64(len(repl))
	var matches int64
	if len(sub) > 1 && sub[0] == '/' && sub[len(sub)-1] == '/' {
		re, err := regexp.Compile(sub[1 : len(sub)-1])
		if err != nil {
			return nil // the function reports it
		}
		per += int64(strings.Count(repl, "$")) * int64(len(s))
		if per == 0 {
			return nil
		}
		matches = int64(len(re.FindAllStringIndex(s, int(MaxString/per)+2)))
	} else if sub == "" {
		matches = int64(utf8.RuneCountInString(s)) + 1
	} else {
		matches = int64(strings.Count(s, sub))
	}
	if n := int64(len(s)) + matches*per; n > MaxString {
		return tooLong(n)
	}
	return nil
}

func preSplit(args []cty.Value) error {
	sep, s := str(args[0]), str(args[1])
	n := int64(strings.Count(s, sep)) + 1
	if sep == "" {
		n = int64(utf8.RuneCountInString(s))
	}
	if n > MaxElements {
		return tooMany(n)
	}
	return nil
}

func preRegex(args []cty.Value) error {
	if re, err := regexp.Compile(str(args[0])); err == nil && re.NumSubexp() >= MaxElements {
		return tooMany(int64(re.NumSubexp() + 1))
	}
	return nil
}

func preRegexAll(args []cty.Value) error {
	re, err := regexp.Compile(str(args[0]))
	if err != nil {
		return nil
	}
	per := int64(re.NumSubexp() + 1)
	if per > MaxElements {
		return tooMany(per)
	}
	if n := per * int64(len(re.FindAllStringIndex(str(args[1]), int(MaxElements/per)+1))); n > MaxElements {
		return tooMany(n)
	}
	return nil
}

func preJSONEncode(args []cty.Value) error {
	if n := 6 * measure(args[0]); n > MaxString {
		return tooLong(n)
	}
	return nil
}

func preJSONDecode(args []cty.Value) error {
	depth, elems := jsonShape(str(args[0]))
	if depth > MaxDepth {
		return overLimit("Value too deep", "the JSON nests more than %d levels", MaxDepth)
	}
	if elems > MaxElements {
		return tooMany(int64(elems))
	}
	return nil
}

// jsonShape returns how deeply a JSON text nests and about how many values it holds.
func jsonShape(s string) (depth, elems int) {
	level := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[', '{':
			level++
			depth = max(depth, level)
			elems++
		case ']', '}':
			level--
		case ',':
			elems++
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
	}
	return depth, elems
}

func preParseInt(args []cty.Value) error {
	digits := len(strings.TrimLeft(str(args[0]), "+-"))
	base, _ := args[1].AsBigFloat().Float64()
	if base < 2 {
		return nil
	}
	if bits := float64(digits) * math.Log2(base); bits > maxExponent {
		return overLimit("Number out of range", "a number of %d digits is too large", digits)
	}
	return nil
}
