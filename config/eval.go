package config

import (
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// evalContext exposes `env.NAME`, `env("NAME", "default")` and HCL's standard functions,
// under the guard g.
func evalContext(env map[string]string, g *guard) *hcl.EvalContext {
	vals := make(map[string]cty.Value, len(env))
	for k, v := range env {
		vals[k] = cty.StringVal(v)
	}
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"env": cty.ObjectVal(vals)},
		Functions: functions(env, g),
	}
}

func envFunc(env map[string]string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the environment variable NAME, or the default (\"\" when none is given) when it is unset.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if v, ok := env[args[0].AsString()]; ok {
				return cty.StringVal(v), nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return cty.StringVal(""), nil
		},
	})
}

// coalesceFunc returns its first argument that is neither null nor an empty string, as
// Terraform's coalesce does (cty's own skips only nulls), so coalesce(env("X"), "default")
// works.
var coalesceFunc = function.New(&function.Spec{
	Description: "Returns the first of its arguments that is not null and not an empty string.",
	VarParam:    &function.Parameter{Name: "vals", Type: cty.DynamicPseudoType, AllowNull: true, AllowUnknown: true, AllowDynamicType: true},
	Type: func(args []cty.Value) (cty.Type, error) {
		return stdlib.CoalesceFunc.ReturnType(typesOf(args))
	},
	Impl: func(args []cty.Value, retType cty.Type) (cty.Value, error) {
		var kept []cty.Value
		for _, a := range args {
			if a.IsKnown() && !a.IsNull() && a.Type() == cty.String && a.AsString() == "" {
				continue
			}
			kept = append(kept, a)
		}
		if len(kept) == 0 {
			return cty.StringVal(""), nil
		}
		return stdlib.CoalesceFunc.Call(kept)
	},
})

// distinctFunc is cty's distinct with a hash per element: cty compares each element with
// all the ones before it, through a function call each time (seconds for a few thousand).
var distinctFunc = function.New(&function.Spec{
	Description: "Removes any duplicate values from the given list, preserving the order of remaining elements.",
	Params:      []function.Parameter{{Name: "list", Type: cty.List(cty.DynamicPseudoType)}},
	Type: func(args []cty.Value) (cty.Type, error) {
		return args[0].Type(), nil
	},
	Impl: func(args []cty.Value, retType cty.Type) (cty.Value, error) {
		list := args[0]
		if !list.IsWhollyKnown() {
			return cty.UnknownVal(retType), nil
		}
		var out []cty.Value
		seen := map[int][]cty.Value{}
	elements:
		for it := list.ElementIterator(); it.Next(); {
			_, v := it.Element()
			h := v.Hash()
			for _, prev := range seen[h] {
				if prev.Equals(v).True() {
					continue elements
				}
			}
			seen[h] = append(seen[h], v)
			out = append(out, v)
		}
		if len(out) == 0 {
			return cty.ListValEmpty(retType.ElementType()), nil
		}
		return cty.ListVal(out), nil
	},
})

func typesOf(args []cty.Value) []cty.Type {
	out := make([]cty.Type, len(args))
	for i, a := range args {
		out[i] = a.Type()
	}
	return out
}

func functions(env map[string]string, g *guard) map[string]function.Function {
	return map[string]function.Function{
		"env":        envFunc(env),
		"abs":        stdlib.AbsoluteFunc,
		"ceil":       stdlib.CeilFunc,
		"chomp":      stdlib.ChompFunc,
		"coalesce":   coalesceFunc,
		"compact":    stdlib.CompactFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   distinctFunc,
		"element":    stdlib.ElementFunc,
		"flatten":    stdlib.FlattenFunc,
		"floor":      stdlib.FloorFunc,
		"format":     g.guardFunc(stdlib.FormatFunc, preFormat),
		"formatlist": g.guardFunc(stdlib.FormatListFunc, preFormatList),
		"indent":     g.guardFunc(stdlib.IndentFunc, preIndent),
		"join":       g.guardFunc(stdlib.JoinFunc, preJoin),
		"jsondecode": g.guardFunc(stdlib.JSONDecodeFunc, preJSONDecode),
		"jsonencode": g.guardFunc(stdlib.JSONEncodeFunc, preJSONEncode),
		"keys":       stdlib.KeysFunc,
		"length":     stdlib.LengthFunc,
		"lookup":     stdlib.LookupFunc,
		"lower":      stdlib.LowerFunc,
		"max":        stdlib.MaxFunc,
		"merge":      stdlib.MergeFunc,
		"min":        stdlib.MinFunc,
		"parseint":   g.guardFunc(stdlib.ParseIntFunc, preParseInt),
		"range":      stdlib.RangeFunc,
		"regex":      g.guardFunc(stdlib.RegexFunc, preRegex),
		"regexall":   g.guardFunc(stdlib.RegexAllFunc, preRegexAll),
		"replace":    g.guardFunc(stdlib.ReplaceFunc, preReplace),
		"reverse":    stdlib.ReverseListFunc,
		"sort":       stdlib.SortFunc,
		"split":      g.guardFunc(stdlib.SplitFunc, preSplit),
		"strrev":     stdlib.ReverseFunc,
		"substr":     stdlib.SubstrFunc,
		"title":      stdlib.TitleFunc,
		"trim":       stdlib.TrimFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		"upper":      stdlib.UpperFunc,
		"values":     stdlib.ValuesFunc,
		"zipmap":     stdlib.ZipmapFunc,
	}
}

// FunctionNames lists the functions available in configuration files, for the reference.
func FunctionNames() []string {
	var names []string
	for n := range functions(nil, nil) {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
