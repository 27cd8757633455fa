package config

import (
	"math"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sys/unix"
)

// RlimitUnlimited is a limit written "unlimited" (RLIM_INFINITY).
const RlimitUnlimited = math.MaxUint64

// Rlimit is one resource limit a job's `limits` block may set
// (docs/configuration.md#limits-and-oom_score_adj): its name in the block, the setrlimit
// resource, and whether it is a size in bytes (then "8MiB" is accepted too) rather than a
// count or a time.
type Rlimit struct {
	Name     string
	Resource int
	Bytes    bool
}

// Rlimits lists every limit of the `limits` block, in the order of its documentation.
func Rlimits() []Rlimit {
	return []Rlimit{
		{"nofile", unix.RLIMIT_NOFILE, false},
		{"nproc", unix.RLIMIT_NPROC, false},
		{"core", unix.RLIMIT_CORE, true},
		{"stack", unix.RLIMIT_STACK, true},
		{"memlock", unix.RLIMIT_MEMLOCK, true},
		{"as", unix.RLIMIT_AS, true},
		{"data", unix.RLIMIT_DATA, true},
		{"fsize", unix.RLIMIT_FSIZE, true},
		{"msgqueue", unix.RLIMIT_MSGQUEUE, true},
		{"cpu", unix.RLIMIT_CPU, false},
		{"locks", unix.RLIMIT_LOCKS, false},
		{"sigpending", unix.RLIMIT_SIGPENDING, false},
		{"nice", unix.RLIMIT_NICE, false},
		{"rtprio", unix.RLIMIT_RTPRIO, false},
		{"rttime", unix.RLIMIT_RTTIME, false},
	}
}

// RlimitResource returns the setrlimit resource of a limit's name.
func RlimitResource(name string) (int, bool) {
	for _, r := range Rlimits() {
		if r.Name == name {
			return r.Resource, true
		}
	}
	return 0, false
}

func limitsSchema() *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, r := range Rlimits() {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: r.Name})
	}
	return s
}

// decodeLimits reads `limits { nofile = 65536  stack = "8MiB"  core = "unlimited" }`.
func (l *loader) decodeLimits(b *hcl.Block) map[string]uint64 {
	d := l.d
	schema := limitsSchema()
	content, diags := b.Body.Content(schema)
	l.suggestKeys(diags, schema)
	d.Diags = append(d.Diags, diags...)
	out := map[string]uint64{}
	for _, r := range Rlimits() {
		a, ok := content.Attributes[r.Name]
		if !ok {
			continue
		}
		v, diags := d.eval(a.Expr)
		d.Diags = append(d.Diags, diags...)
		if diags.HasErrors() {
			continue
		}
		if n, ok := limitValue(v, r.Bytes); ok {
			out[r.Name] = n
			continue
		}
		what := "a whole number >= 0 or \"unlimited\""
		if r.Bytes {
			what = "a size (a number of bytes, or a string such as \"8MiB\") or \"unlimited\""
		}
		d.errorf(a.Expr.Range(), "Invalid limit", "limits.%s must be %s.", r.Name, what)
	}
	return out
}

func limitValue(v cty.Value, bytes bool) (uint64, bool) {
	if v.IsNull() || !v.IsWhollyKnown() {
		return 0, false
	}
	switch v.Type() {
	case cty.Number:
		f, _ := v.AsBigFloat().Float64()
		if f < 0 || f != math.Trunc(f) || f >= math.MaxUint64 {
			return 0, false
		}
		return uint64(f), true
	case cty.String:
		s := strings.TrimSpace(v.AsString())
		if s == "unlimited" || s == "infinity" {
			return RlimitUnlimited, true
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil && n != RlimitUnlimited {
			return n, true
		}
		if bytes {
			if n, err := ParseSize(s); err == nil {
				return uint64(n), true
			}
		}
	}
	return 0, false
}

// checkResources refuses `limits` and `oom_score_adj` on a job that runs no process.
func (l *loader) checkResources(j *Job, kind Kind, attrs hcl.Attributes, blocks hcl.Blocks) {
	if kind.ExecRule() != ExecForbidden && !j.RegistrationOnly() {
		return
	}
	if a := attrs["oom_score_adj"]; a != nil {
		l.d.Errorf(a.NameRange, "job %q runs no process; \"oom_score_adj\" applies to a job's processes", j.Name)
	}
	for _, b := range blocks {
		if b.Type == "limits" {
			l.d.Errorf(b.DefRange, "job %q runs no process; \"limits\" apply to a job's processes", j.Name)
		}
	}
}
