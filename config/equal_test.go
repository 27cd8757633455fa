package config_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/jobs"
)

// kindJobs is the smallest job of each kind, to find the type of its Spec. A new kind
// must be added here: the test fails without it.
var kindJobs = map[string]string{
	"exec":    `exec = "true"`,
	"cron":    `kind = "cron"` + "\n" + `schedule = "@hourly"` + "\n" + `exec = "true"`,
	"inetd":   `kind = "inetd"` + "\n" + `listen = "tcp://127.0.0.1:7007"` + "\n" + `exec = "true"`,
	"notify":  `kind = "notify"` + "\n" + `exec = "true"`,
	"syslog":  `kind = "syslog"` + "\n" + `output "all" { stdout = true }`,
	"webhook": `kind = "webhook"` + "\n" + `url = "http://127.0.0.1:8099/"`,
}

// Every field of config.Job, of the blocks in it (when, health, service, logging, …) and
// of every kind's Spec counts in Job.Equal, but where the job is written (hcl.Range). The
// test changes each field in turn of a job where every field is set, so that a field added
// and forgotten in an Equal method fails it.
func TestEqualSeesEveryField(t *testing.T) {
	kinds := jobs.ConfigKinds()
	for name := range kinds {
		src, ok := kindJobs[name]
		if !ok {
			t.Errorf("kind %q has no job in kindJobs: add its smallest job there", name)
			continue
		}
		cfg, diags := config.Parse("test.hcl", []byte("job \"j\" {\n"+src+"\n}\n"), config.Options{Kinds: kinds})
		if cfg == nil {
			t.Fatalf("kind %s: %s", name, diags)
		}
		specType := reflect.TypeOf(cfg.Jobs[0].Spec)
		t.Run(name, func(t *testing.T) {
			build := func() *config.Job {
				j := &config.Job{}
				if specType != nil {
					j.Spec = reflect.New(specType.Elem()).Interface().(config.Spec)
				}
				fill(reflect.ValueOf(j))
				return j
			}
			base := build()
			if !base.Equal(build()) {
				t.Fatal("two jobs built alike are not Equal")
			}
			var muts []mutation
			walk(reflect.ValueOf(base).Elem(), "Job", -1, new(int), &muts)
			if len(muts) < 40 {
				t.Fatalf("only %d changes found", len(muts))
			}
			for i, m := range muts {
				changed := build()
				walk(reflect.ValueOf(changed).Elem(), "Job", i, new(int), nil)
				if m.ignored {
					if !base.Equal(changed) || !changed.Equal(base) {
						t.Errorf("%s (%s) makes the job differ; where a block is written must not", m.path, m.how)
					}
					continue
				}
				if base.Equal(changed) || changed.Equal(base) {
					t.Errorf("%s (%s): the jobs are still Equal; compare it in its Equal method", m.path, m.how)
				}
			}
		})
	}
}

// Watches and templates are compared by a reload too: an unchanged template keeps its
// queries and does not render again.
func TestEqualSeesEveryFieldOfWatchesAndTemplates(t *testing.T) {
	t.Run("watch", func(t *testing.T) { everyFieldCounts(t, "Watch", (*config.Watch).Equal) })
	t.Run("template", func(t *testing.T) { everyFieldCounts(t, "Template", (*config.Template).Equal) })
}

// everyFieldCounts changes each field of a filled T in turn and checks that equal sees it,
// and does not see where the value is written.
func everyFieldCounts[T any](t *testing.T, name string, equal func(a, b *T) bool) {
	build := func() *T {
		v := new(T)
		fill(reflect.ValueOf(v))
		return v
	}
	base := build()
	if !equal(base, build()) {
		t.Fatal("two values built alike are not Equal")
	}
	var muts []mutation
	walk(reflect.ValueOf(base).Elem(), name, -1, new(int), &muts)
	for i, m := range muts {
		changed := build()
		walk(reflect.ValueOf(changed).Elem(), name, i, new(int), nil)
		if got := equal(base, changed) && equal(changed, base); got != m.ignored {
			t.Errorf("%s (%s): Equal says %v", m.path, m.how, got)
		}
	}
}

func TestEqualNilAndEmptyAlike(t *testing.T) {
	a := &config.Job{Name: "a", Env: map[string]string{}, Exec: []string{}, When: &config.When{Any: []config.Trigger{}},
		Service: &config.Service{Tags: []string{}, Meta: map[string]string{}}}
	b := &config.Job{Name: "a", Service: &config.Service{}, When: &config.When{}}
	if !a.Equal(b) || !b.Equal(a) {
		t.Error("empty and nil lists or maps make jobs differ")
	}
	var nilJob *config.Job
	if !nilJob.Equal(nil) || nilJob.Equal(a) || a.Equal(nil) {
		t.Error("nil jobs")
	}
}

// mutation is one change walk can make.
type mutation struct {
	path, how string
	ignored   bool // a source position: Equal must not see it
}

var rangeType, posType = reflect.TypeFor[hcl.Range](), reflect.TypeFor[hcl.Pos]()

// fill sets everything reachable from v: pointers allocated (an interface keeps the
// pointer it holds), lists and maps given one element, every scalar a non-zero value.
// Calls on alike values give alike results.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem())
	case reflect.Interface:
		if !v.IsNil() {
			fill(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0))
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		bump(v)
	}
}

// bump changes a scalar.
func bump(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
	default:
		panic(fmt.Sprintf("equal_test: no way to change a %s; teach fill and bump", v.Type()))
	}
}

// walk visits every change that can be made below v, in one order. With muts set it lists
// them; otherwise it makes change number target (counted in *n).
func walk(v reflect.Value, path string, target int, n *int, muts *[]mutation) {
	at := func(how string, ignored bool) bool {
		i := *n
		*n++
		if muts != nil {
			*muts = append(*muts, mutation{path, how, ignored})
		}
		return i == target
	}
	if v.Type() == rangeType {
		if at("moved in the file", true) {
			v.Field(0).SetString(v.Field(0).String() + ".moved")
		}
		return
	}
	if v.Type() == posType {
		if at("moved in the file", true) {
			v.Field(0).SetInt(v.Field(0).Int() + 1)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if at("set to nil", false) {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		walk(v.Elem(), path, target, n, muts)
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		if at("set to nil", false) {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		walk(v.Elem().Elem(), path+"("+v.Elem().Type().String()+")", target, n, muts) // a spec is a pointer
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				walk(v.Field(i), path+"."+f.Name, target, n, muts)
			}
		}
	case reflect.Slice:
		if at("one element more", false) {
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e)
			v.Set(reflect.Append(v, e))
			return
		}
		walk(v.Index(0), path+"[0]", target, n, muts)
	case reflect.Map:
		keys := v.MapKeys()
		if at("one key more", false) {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			k.Set(keys[0])
			bump(k)
			fill(e)
			v.SetMapIndex(k, e)
			return
		}
		e := reflect.New(v.Type().Elem()).Elem()
		e.Set(v.MapIndex(keys[0]))
		walk(e, path+"[key]", target, n, muts)
		v.SetMapIndex(keys[0], e)
	default:
		if at("changed", false) {
			bump(v)
		}
	}
}

// The kinds' specs compare with their own kind only.
func TestSpecEqualAcrossKinds(t *testing.T) {
	specs := []config.Spec{&jobs.CronSpec{}, &jobs.InetdSpec{}, &jobs.NotifySpec{}, &jobs.SyslogSpec{}, &jobs.WebhookSpec{}}
	for i, a := range specs {
		for j, b := range specs {
			if got := a.Equal(b); got != (i == j) {
				t.Errorf("%T.Equal(%T) = %v", a, b, got)
			}
		}
	}
	if slices.ContainsFunc(specs, func(s config.Spec) bool { return s.Equal(nil) }) {
		t.Error("a spec is Equal to nil")
	}
}
