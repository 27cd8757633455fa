package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control/api"
)

// fuzzBackend is the test backend whose Shutdown never blocks: the fuzzer calls it often.
type fuzzBackend struct{ *backend }

func (fuzzBackend) Shutdown(string) {}

// bodyEndpoints are the routes that read a body, with {name} where a job's name goes: every
// decoder of the API, on its /v1 path and its ContainerPilot /v3 alias.
var bodyEndpoints = []string{
	"/v1/environ", "/v3/environ", "/v1/metric", "/v3/metric", "/v1/jobs/{name}/signal",
	"/v1/reload", "/v3/reload", "/v1/maintenance/enable", "/v1/maintenance/disable",
	"/v3/maintenance/enable", "/v3/maintenance/disable", "/v1/jobs/{name}/start",
	"/v1/jobs/{name}/stop", "/v1/jobs/{name}/restart", "/v1/shutdown",
}

// errorStatus is the status each error kind goes with.
var errorStatus = map[string]int{
	api.KindBadRequest: 400, api.KindInvalidConfig: 400, api.KindNotFound: 404,
	api.KindMethod: 405, api.KindConflict: 409, api.KindTooLarge: 413,
}

// FuzzHandlers sends arbitrary bodies (and job names, and methods) through the real router
// to every endpoint that reads a body: no body panics a handler, every answer is JSON, and
// every refusal is {"error":{"kind","message"}} with the 4xx status of its kind.
func FuzzHandlers(f *testing.F) {
	seeds := []struct {
		path, name, body string
	}{
		{"/v1/environ", "", `{"A":"b=c d"}`}, {"/v3/environ", "", `{"A":1}`}, {"/v1/environ", "", `{"A=B":"x"}`},
		{"/v1/metric", "", `{"orders_total":1,"queue":"+2"}`}, {"/v3/metric", "", `{"name":"orders_total","value":2,"labels":{"kind":"a"}}`}, {"/v3/metric", "", `{"orders_total":"2"}`},
		{"/v1/metric", "", `{"nope":1}`}, {"/v1/metric", "", `{"name":"x"}`}, {"/v1/metric", "", `{"name":"x","value":1,"extra":1}`},
		{"/v1/jobs/{name}/signal", "app", `{"signal":"HUP"}`}, {"/v1/jobs/{name}/signal", "nope", `{"signal":"KILL"}`},
		{"/v1/jobs/{name}/signal", "app", `{"signal":1}`}, {"/v1/jobs/{name}/signal", "app", `{}`},
		{"/v1/reload", "", `{}`}, {"/v3/reload", "", ``}, {"/v1/reload", "", `{"x":1}`},
		{"/v1/maintenance/enable", "", ``}, {"/v3/maintenance/disable", "", `{}`},
		{"/v1/jobs/{name}/start", "app", `{}`}, {"/v1/jobs/{name}/stop", "app", ``}, {"/v1/jobs/{name}/restart", "a/b", `{"force":true}`},
		{"/v1/jobs/{name}/stop", "", `{}`}, {"/v1/jobs/{name}/start", "%", `[]`}, {"/v1/shutdown", "", `{}`},
	}
	for _, s := range seeds {
		for i, p := range bodyEndpoints {
			if p == s.path {
				f.Add(uint8(i), false, s.name, []byte(s.body))
			}
		}
	}
	f.Add(uint8(0), true, "", []byte(`{}`))
	b := fuzzBackend{newBackend()}
	srv := &Server{b: b, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv.Started()
	h := srv.routes()
	f.Fuzz(func(t *testing.T, which uint8, get bool, name string, body []byte) {
		path := strings.ReplaceAll(bodyEndpoints[int(which)%len(bodyEndpoints)], "{name}", url.PathEscape(name))
		method := http.MethodPost
		if get {
			method = http.MethodGet
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
		what := fmt.Sprintf("%s %s %q", method, path, body)
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s: %d answered %q, not JSON: %q", what, rec.Code, ct, rec.Body)
		}
		if rec.Code < 400 {
			if rec.Code != 200 && rec.Code != 202 {
				t.Fatalf("%s: %d", what, rec.Code)
			}
			return
		}
		var eb api.ErrorBody
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&eb); err != nil || eb.Error.Kind == "" || eb.Error.Message == "" {
			t.Fatalf("%s: %d with an error body that is not {\"error\":{\"kind\",\"message\"}}: %s (%v)", what, rec.Code, rec.Body, err)
		}
		if want, ok := errorStatus[eb.Error.Kind]; !ok || want != rec.Code {
			t.Fatalf("%s: %d with kind %q", what, rec.Code, eb.Error.Kind)
		}
		// A refusal of an environ or metric body is what its decoder refuses, or the
		// backend's answer to what it decoded.
		switch {
		case strings.HasSuffix(path, "/environ") && !get:
			if _, err := DecodeEnviron(bytes.NewReader(body)); err == nil {
				t.Fatalf("%s: %d for a body DecodeEnviron accepts", what, rec.Code)
			}
		case strings.HasSuffix(path, "/metric") && !get:
			decode := DecodeMetrics
			if strings.HasPrefix(path, "/v3/") {
				decode = DecodeMetricsV3
			}
			if ms, err := decode(bytes.NewReader(body)); err == nil && ms[0].Name != "nope" {
				t.Fatalf("%s: %d for a body DecodeMetrics accepts", what, rec.Code)
			}
		}
	})
}

// Bodies the fuzzers flag when accepted, through the real socket.
func TestFuzzFoundBodies(t *testing.T) {
	s, b, _ := serve(t, config.Control{})
	for _, c := range []struct{ path, body, want string }{
		// A NUL byte in a value would make every later job start fail (exec refuses it).
		{"/v1/environ", `{"A":"x\u0000y"}`, `holds a NUL byte`},
		// A second value after the first was ignored.
		{"/v1/jobs/app/stop", `{} {"force":true}`, `more than one JSON value`},
		{"/v1/reload", `{}}`, `more than one JSON value`},
		{"/v1/jobs/app/signal", `{"signal":"HUP"}]`, `more than one JSON value`},
		{"/v1/maintenance/enable", `null`, `takes no parameters`},
	} {
		code, body := raw(t, s.Path(), "POST", c.path, c.body)
		if code != 400 || !strings.Contains(body, c.want) || !strings.Contains(body, `"kind":"bad-request"`) {
			t.Errorf("POST %s %s: %d %s; want 400 with %q", c.path, c.body, code, body, c.want)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.env) != 0 || len(b.signals) != 0 || b.maint {
		t.Errorf("refused bodies reached the backend: env %q signals %v maintenance %v", b.env, b.signals, b.maint)
	}
}
