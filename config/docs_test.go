package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// configDoc is the configuration reference every key must appear in.
const configDoc = "../docs/configuration.md"

// inlineKeys are the keys of schemas written inline in load.go and of the objects read with
// Decoder.Object (backoff, rotate). The source scan below finds them by itself; this list
// makes sure the scan still works (it would otherwise pass by finding nothing).
var inlineKeys = []string{
	// control
	"socket", "mode", "group",
	// top-level logging
	"level", "format",
	// consul and consul.tls
	"address", "scheme", "token", "tls",
	"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify",
	// telemetry and telemetry.metric
	"listen", "register", "metric",
	"type", "help", "labels", "buckets", "objectives",
	// watch
	"service", "tag", "dc", "key", "prefix",
	// template
	"source", "contents", "destination", "perms", "wait",
	// job.backoff and job.logging.rotate
	"initial", "max",
	"size", "keep", "compress",
}

// TestEveryKeyIsDocumented fails when a configuration key or block name is missing from
// docs/configuration.md, where each must appear as `key`.
func TestEveryKeyIsDocumented(t *testing.T) {
	doc := readDoc(t)
	keys := map[string]string{} // key → where it was found

	for name, s := range map[string]*hcl.BodySchema{
		"rootSchema": rootSchema, "commonJobSchema": commonJobSchema, "whenSchema": whenSchema,
		"healthSchema": healthSchema, "serviceSchema": serviceSchema, "jobLoggingSchema": jobLoggingSchema,
		"limitsSchema": limitsSchema(),
	} {
		found := schemaKeys(s)
		if len(found) == 0 {
			t.Errorf("schema %s has no keys", name)
		}
		for _, k := range found {
			keys[k] = name
		}
	}

	scanned := scanSourceKeys(t)
	for _, k := range inlineKeys {
		if _, ok := scanned[k]; !ok {
			t.Errorf("the source scan did not find the inline key %q; fix scanSourceKeys or inlineKeys", k)
		}
	}
	for k, where := range scanned {
		keys[k] = where
	}
	for _, k := range inlineKeys {
		if _, ok := keys[k]; !ok {
			keys[k] = "inlineKeys"
		}
	}

	var missing []string
	for k, where := range keys {
		if !strings.Contains(doc, "`"+k+"`") {
			missing = append(missing, k+" (from "+where+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("key %s is not documented in %s as `key`", m, configDoc)
	}
}

// TestEveryFunctionIsDocumented fails when a function usable in configuration files is
// missing from docs/configuration.md.
func TestEveryFunctionIsDocumented(t *testing.T) {
	doc := readDoc(t)
	for _, f := range FunctionNames() {
		if !strings.Contains(doc, "`"+f+"`") {
			t.Errorf("function %s is not documented in %s as `%s`", f, configDoc, f)
		}
	}
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatalf("cannot read the configuration reference: %v", err)
	}
	return string(b)
}

func schemaKeys(s *hcl.BodySchema) []string {
	var out []string
	for _, a := range s.Attributes {
		out = append(out, a.Name)
	}
	for _, b := range s.Blocks {
		out = append(out, b.Type)
	}
	return out
}

// scanSourceKeys parses the package's Go files and returns every key named in an
// hcl.AttributeSchema or hcl.BlockHeaderSchema literal, and every key passed to
// Decoder.Object, with the file and line it was found at.
func scanSourceKeys(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	out := map[string]string{}
	add := func(e ast.Expr) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		if s, err := strconv.Unquote(lit.Value); err == nil {
			out[s] = fset.Position(lit.Pos()).String()
		}
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				field := schemaField(n.Type)
				if field == "" {
					if arr, ok := n.Type.(*ast.ArrayType); ok {
						field = schemaField(arr.Elt)
						if field != "" {
							// []hcl.AttributeSchema{{Name: "x"}, …}: the elements omit their type.
							for _, el := range n.Elts {
								if cl, ok := el.(*ast.CompositeLit); ok {
									fieldValue(cl, field, add)
								}
							}
						}
					}
					return true
				}
				fieldValue(n, field, add)
			case *ast.CallExpr:
				// d.Object(attrs, "backoff", "initial", "max"): the keys of an object value.
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Object" && len(n.Args) > 2 {
					for _, a := range n.Args[2:] {
						add(a)
					}
				}
			}
			return true
		})
	}
	return out
}

// schemaField names the field holding the key for hcl.AttributeSchema (Name) and
// hcl.BlockHeaderSchema (Type), or "" for any other type.
func schemaField(e ast.Expr) string {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "hcl" {
		return ""
	}
	switch sel.Sel.Name {
	case "AttributeSchema":
		return "Name"
	case "BlockHeaderSchema":
		return "Type"
	}
	return ""
}

func fieldValue(cl *ast.CompositeLit, field string, add func(ast.Expr)) {
	for _, el := range cl.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			if id, ok := kv.Key.(*ast.Ident); ok && id.Name == field {
				add(kv.Value)
			}
		}
	}
}
