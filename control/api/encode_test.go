package api

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The hand-written encoder writes what encoding/json writes, for values of every shape.
func TestAppendJSONAsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	strs := []string{"", "web", "a\"b\\c", "<script>&amp;", "tab\there\nnew\rline\b\f\x00\x1f\x7f", "\xff\xfe bad", "é ✓ 😀",
		"\u2028\u2029", "a\xc3", "exit status 3", "autostart = false: pilotfish start reindex runs it"}
	floats := []float64{0, 1, -1, 0.5, 1e-7, 1.5e-7, 123456.789, 1e20, 1e21, 1.2345e22, 3.14159, 1e-6, 0.000001234, math.NaN(), math.Inf(1), 99.999}
	str := func() string {
		if rng.IntN(3) == 0 {
			b := make([]byte, rng.IntN(12))
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			return string(b)
		}
		return strs[rng.IntN(len(strs))]
	}
	flt := func() float64 {
		if rng.IntN(2) == 0 {
			return floats[rng.IntN(len(floats))]
		}
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
	}
	zones := []*time.Location{time.UTC, time.FixedZone("x", 3600+1800), time.FixedZone("y", -7*3600)}
	tm := func() time.Time {
		if rng.IntN(5) == 0 {
			return time.Time{}
		}
		return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)*int64(rng.IntN(2))).In(zones[rng.IntN(len(zones))])
	}
	for n := range 3000 {
		var s Status
		if n%7 != 0 {
			s.Jobs = []Job{}
			for range rng.IntN(4) {
				j := Job{Name: str(), Kind: str(), State: str(), Pid: rng.IntN(1 << 22), Restarts: rng.IntN(100) - 1,
					Health: str(), Since: tm(), Status: str(), CPUSeconds: flt(), MemoryBytes: rng.Uint64() >> rng.IntN(64), CPUPercent: flt()}
				if rng.IntN(2) == 0 {
					c := rng.IntN(300) - 10
					j.ExitCode = &c
				}
				if rng.IntN(2) == 0 {
					nr := tm()
					j.NextRun = &nr
				}
				s.Jobs = append(s.Jobs, j)
			}
		}
		if n%5 != 0 {
			s.Watches = []Watch{}
			for range rng.IntN(3) {
				s.Watches = append(s.Watches, Watch{Name: str(), Healthy: rng.IntN(2) == 0, Instances: rng.IntN(1000)})
			}
		}
		s.Maintenance = rng.IntN(2) == 0
		for i := range s.Jobs { // encoding/json refuses these; the encoder writes 0
			for _, f := range []*float64{&s.Jobs[i].CPUSeconds, &s.Jobs[i].CPUPercent} {
				if math.IsNaN(*f) || math.IsInf(*f, 0) {
					*f = 0
				}
			}
		}
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}

func TestAppendFloatRefusedValues(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := string(appendFloat(nil, f)); got != "0" {
			t.Errorf("appendFloat(%v) = %s, want 0", f, got)
		}
	}
}

func BenchmarkStatusJSON(b *testing.B) {
	s := Status{Jobs: make([]Job, 50), Watches: []Watch{}}
	for i := range s.Jobs {
		s.Jobs[i] = Job{Name: "job" + string(rune('a'+i%26)), Kind: "service", State: "running", Pid: 1000 + i, Health: "healthy",
			Since: time.Now(), CPUSeconds: 0.12, MemoryBytes: 1 << 20, CPUPercent: 0.5}
	}
	b.Run("encoding/json", func(b *testing.B) {
		for range b.N {
			_, _ = json.Marshal(s)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		buf := make([]byte, 0, 16<<10)
		for range b.N {
			buf = s.AppendJSON(buf[:0])
		}
	})
}
