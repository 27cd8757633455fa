package config

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Object reads an object attribute such as `backoff = { initial = "1s", max = "1m" }` and
// returns its items as attributes, so the Decoder's readers apply to them. Keys outside keys
// are errors.
func (d *Decoder) Object(attrs hcl.Attributes, name string, keys ...string) (hcl.Attributes, bool) {
	a, ok := attrs[name]
	if !ok {
		return nil, false
	}
	v, diags := d.eval(a.Expr)
	d.Diags = append(d.Diags, diags...)
	if diags.HasErrors() {
		return nil, false
	}
	if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		d.errorf(a.Expr.Range(), "Incorrect type", "%q must be an object such as { %s = ... }.", name, keys[0])
		return nil, false
	}
	ranges := map[string]hcl.Range{}
	if items, diags := hcl.ExprMap(a.Expr); !diags.HasErrors() {
		for _, kv := range items {
			if k, diags := d.eval(kv.Key); !diags.HasErrors() && k.Type() == cty.String {
				ranges[k.AsString()] = kv.Value.Range()
			}
		}
	}
	out := hcl.Attributes{}
	ok = true
	for k, ev := range v.AsValueMap() {
		rng, found := ranges[k]
		if !found {
			rng = a.Expr.Range()
		}
		if !contains(keys, k) {
			d.Errorf(rng, "%q has no key %q; it takes %s", name, k, quoteList(keys))
			ok = false
			continue
		}
		out[k] = &hcl.Attribute{Name: name + "." + k, Expr: hcl.StaticExpr(ev, rng), Range: rng, NameRange: rng}
	}
	return out, ok
}

func (l *loader) floats(a *hcl.Attribute, dst *[]float64) {
	v, ok := l.d.value(a, cty.List(cty.Number))
	if !ok {
		return
	}
	for _, e := range v.AsValueSlice() {
		f, _ := e.AsBigFloat().Float64()
		*dst = append(*dst, f)
	}
}

func (l *loader) objectives(a *hcl.Attribute) map[float64]float64 {
	v, ok := l.d.value(a, cty.Map(cty.Number))
	if !ok {
		return nil
	}
	out := map[float64]float64{}
	for k, e := range v.AsValueMap() {
		q, err := strconv.ParseFloat(k, 64)
		errv, _ := e.AsBigFloat().Float64()
		if err != nil || q <= 0 || q >= 1 || errv <= 0 || errv >= 1 {
			l.d.Errorf(a.Expr.Range(), "\"objectives\" maps quantiles to errors, both between 0 and 1, such as { \"0.5\" = 0.05, \"0.99\" = 0.001 }")
			return nil
		}
		out[q] = errv
	}
	return out
}

var ifaceRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.@-]+(:inet6?|\[\d+\])?$`) })

// CheckInterfaceSpec checks one entry of `service { interfaces }`: "eth0", "eth0:inet",
// "eth0:inet6", "eth0[1]", "inet", "inet6", a CIDR, or "static:ADDRESS".
func CheckInterfaceSpec(spec string) error {
	switch {
	case spec == "inet" || spec == "inet6":
		return nil
	case strings.HasPrefix(spec, "static:"):
		if net.ParseIP(strings.TrimPrefix(spec, "static:")) == nil {
			return fmt.Errorf("%q: static needs an IP address, such as \"static:192.0.2.7\"", spec)
		}
		return nil
	case strings.Contains(spec, "/"):
		if _, _, err := net.ParseCIDR(spec); err != nil {
			return fmt.Errorf("%q is not a CIDR such as \"10.0.0.0/8\"", spec)
		}
		return nil
	case ifaceRE().MatchString(spec):
		return nil
	}
	return fmt.Errorf("%q is not an interface spec; use \"eth0\", \"eth0:inet\", \"eth0:inet6\", \"eth0[1]\", \"inet\", \"inet6\", a CIDR or \"static:ADDRESS\"", spec)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedStrings(s []string) []string {
	sort.Strings(s)
	return s
}
