package control

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pilotfish/pilotfish/control/api"
)

// FuzzDecoders feeds arbitrary bodies to every request decoder: they never panic, what they
// accept is well-formed, and it reads back the same once written again.
func FuzzDecoders(f *testing.F) {
	for _, seed := range []string{`{}`, `{"A":"b=c"}`, `{"orders_total":1,"g":"+2"}`, `{"name":"x","value":1,"labels":{"k":"v"}}`,
		`{"signal":"HUP"}`, `[]`, `null`, `{"signal":`, `{"A":1}`, `{"x":1e309}`, `{"name":"x","value":"NaN"}`,
		`{"A":"x\u0000y"}`, `{"A":"1","A":"2"}`, `{"g":"+Inf"}`, `{"g":"-0x1p-2"}`, `{} {"force":true}`, `{"signal":"64"}`,
		`{"name":"x","value":1}{"name":"y","value":2}`, "\xff", `{}}`, `{"signal":"HUP"}]`, `{"\ud800":"x"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if env, err := DecodeEnviron(bytes.NewReader(body)); err == nil {
			for k, v := range env {
				if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) || len(k)+1+len(v) > MaxEnvEntry {
					t.Fatalf("accepted env %q (a value of %d bytes), which no process can be given", k, len(v))
				}
			}
			again, _ := json.Marshal(env)
			if back, err := DecodeEnviron(bytes.NewReader(again)); err != nil || !reflect.DeepEqual(back, env) {
				t.Fatalf("env %q reads back as %q (%v)", env, back, err)
			}
		}
		if ms, err := DecodeMetrics(bytes.NewReader(body)); err == nil {
			if len(ms) == 0 {
				t.Fatal("accepted no metrics")
			}
			short := map[string]any{}
			for _, m := range ms {
				if m.Name == "" || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
					t.Fatalf("accepted %+v", m)
				}
				if m.Add {
					s := strconv.FormatFloat(m.Value, 'g', -1, 64)
					if !strings.HasPrefix(s, "-") {
						s = "+" + s
					}
					short[m.Name] = s
				} else {
					short[m.Name] = m.Value
				}
			}
			again, _ := json.Marshal(short)
			if len(ms) == 1 && ms[0].Labels != nil {
				again, _ = json.Marshal(ms[0])
			}
			back, err := DecodeMetrics(bytes.NewReader(again))
			for i := range back {
				if i < len(ms) && len(back[i].Labels) == 0 && len(ms[i].Labels) == 0 {
					back[i].Labels = ms[i].Labels // {} and none are one
				}
			}
			if err != nil || !reflect.DeepEqual(back, ms) {
				t.Fatalf("metrics %+v (from %q) read back from %s as %+v (%v)", ms, body, again, back, err)
			}
		}
		req, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
		var sig api.Signal
		if decodeStrict(req, &sig) == nil {
			if !json.Valid(body) {
				t.Fatalf("a signal body %q that is not one JSON value was accepted", body)
			}
			if n, err := ParseSignalBody(sig); err == nil && (n < 1 || n > 64) {
				t.Fatalf("accepted signal %d from %q", n, body)
			}
		}
		req, _ = http.NewRequest("POST", "/", bytes.NewReader(body))
		if decodeEmpty(req) == nil {
			var v struct{}
			trimmed := bytes.TrimSpace(body) // white space as Go sees it (\f too), not only JSON's
			if len(trimmed) != 0 && (json.Unmarshal(trimmed, &v) != nil || trimmed[0] != '{') {
				t.Fatalf("an endpoint without parameters accepted %q", body)
			}
		}
	})
}
