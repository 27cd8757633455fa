package control

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/pilotfish/pilotfish/control/client"
)

// FuzzDecoders feeds arbitrary bodies to every request decoder: they must never panic, and
// what they accept must be well-formed.
func FuzzDecoders(f *testing.F) {
	for _, seed := range []string{`{}`, `{"A":"b=c"}`, `{"orders_total":1,"g":"+2"}`, `{"name":"x","value":1,"labels":{"k":"v"}}`,
		`{"signal":"HUP"}`, `[]`, `null`, `{"signal":`, `{"A":1}`, `{"x":1e309}`, `{"name":"x","value":"NaN"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if env, err := DecodeEnviron(bytes.NewReader(body)); err == nil {
			for k, v := range env {
				if k == "" || bytes.ContainsAny([]byte(k), "=\x00") {
					t.Fatalf("accepted env name %q", k)
				}
				if bytes.IndexByte([]byte(v), 0) >= 0 || len(k)+1+len(v) > MaxEnvEntry {
					t.Fatalf("accepted a value the kernel would refuse at exec: %q (%d bytes)", k, len(v))
				}
			}
		}
		if ms, err := DecodeMetrics(bytes.NewReader(body)); err == nil {
			if len(ms) == 0 {
				t.Fatal("accepted no metrics")
			}
			for _, m := range ms {
				if m.Name == "" || m.Value != m.Value {
					t.Fatalf("accepted %+v", m)
				}
			}
		}
		req, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
		var sig client.Signal
		if decodeStrict(req, &sig) == nil {
			_, _ = ParseSignalBody(sig)
		}
		req, _ = http.NewRequest("POST", "/", bytes.NewReader(body))
		_ = decodeEmpty(req)
	})
}
