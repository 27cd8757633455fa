package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/errdefs"
)

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Ping{Status: "ok", Version: s.b.Version()})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.b.Status()
	writeJSON(w, http.StatusOK, &st)
}

func (s *Server) job(w http.ResponseWriter, r *http.Request) {
	j, err := s.b.Job(chi.URLParam(r, "name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, &j)
}

func (s *Server) jobVerb(fn func(Backend, context.Context, string) (api.Job, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := decodeEmpty(r); err != nil {
			writeError(w, err)
			return
		}
		j, err := fn(s.b, r.Context(), chi.URLParam(r, "name"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, &j)
	}
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) {
	var body api.Signal
	if err := decodeStrict(r, &body); err != nil {
		writeError(w, err)
		return
	}
	sig, err := ParseSignalBody(body)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.b.SignalJob(r.Context(), chi.URLParam(r, "name"), sig); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// ParseSignalBody validates the body of POST /v1/jobs/{name}/signal.
func ParseSignalBody(body api.Signal) (syscall.Signal, error) {
	if body.Signal == "" {
		return 0, errdefs.Errorf(errdefs.ErrInvalid, "the body must name a signal, such as {\"signal\":\"HUP\"}")
	}
	sig, err := config.ParseSignal(body.Signal)
	if err != nil {
		return 0, errdefs.Wrap(errdefs.ErrInvalid, err)
	}
	return sig, nil
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if err := decodeEmpty(r); err != nil {
		writeError(w, err)
		return
	}
	res, err := s.b.Reload(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) maintenance(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := decodeEmpty(r); err != nil {
			writeError(w, err)
			return
		}
		if err := s.b.SetMaintenance(r.Context(), on); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	}
}

func (s *Server) environ(w http.ResponseWriter, r *http.Request) {
	env, err := DecodeEnviron(r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.b.PutEnv(env); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// Limits on the values set through /v1/environ (docs/api.md#limits). The kernel refuses to
// start a program with an environment string (KEY=VALUE and its NUL) over 128 KiB: such a
// value never gets in, or every job start after it would fail with E2BIG.
const (
	MaxEnvEntry = 128<<10 - 1 // len("KEY=VALUE")
	MaxEnvTotal = 1 << 20     // every value set through putenv, with its name
)

// DecodeEnviron reads {"KEY":"VALUE",…}: string values only, keys without '=', no NUL in a
// value, no entry over MaxEnvEntry.
func DecodeEnviron(body io.Reader) (map[string]string, error) {
	raw, err := readBody(body)
	if err != nil {
		return nil, err
	}
	var items map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "the body must be a JSON object of strings, such as {\"KEY\":\"VALUE\"}%s", detail(err))
	}
	env := make(map[string]string, len(items))
	for k, v := range items {
		if k == "" || bytes.ContainsAny([]byte(k), "=\x00") {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "%q is not a valid environment variable name", k)
		}
		var s *string
		if err := json.Unmarshal(v, &s); err != nil || s == nil {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "the value of %q must be a string (the body must be a JSON object of strings)", k)
		}
		if strings.IndexByte(*s, 0) >= 0 {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "the value of %q holds a NUL byte, which no environment variable can hold", k)
		}
		if n := len(k) + 1 + len(*s); n > MaxEnvEntry {
			return nil, errdefs.Errorf(errdefs.ErrTooLarge, "%s=… is %d bytes; an environment variable may take at most %d bytes with its name "+
				"(128 KiB: the kernel would refuse to start any job with it, E2BIG)", k, n, MaxEnvEntry)
		}
		env[k] = *s
	}
	return env, nil
}

// metric is /v1/metric (DecodeMetrics) and ContainerPilot's /v3/metric (DecodeMetricsV3:
// {"NAME": VALUE, …} where a value is a number or a string holding one, "2" or " 4.5 ").
func (s *Server) metric(decode func(io.Reader) ([]api.Metric, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		updates, err := decode(r.Body)
		if err != nil {
			writeError(w, err)
			return
		}
		if err := s.b.PutMetrics(updates); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	}
}

// DecodeMetricsV3 reads ContainerPilot's metric body.
func DecodeMetricsV3(body io.Reader) ([]api.Metric, error) {
	raw, err := readBody(body)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil || len(probe) == 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "the body must be a JSON object such as {\"orders_total\":\"2\"}%s", detail(err))
	}
	names := make([]string, 0, len(probe))
	for n := range probe {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]api.Metric, 0, len(names))
	for _, n := range names {
		m := api.Metric{Name: n}
		var s string
		if err := json.Unmarshal(probe[n], &m.Value); err != nil {
			if json.Unmarshal(probe[n], &s) != nil {
				return nil, errdefs.Errorf(errdefs.ErrInvalid, "the value of %q must be a number or a string holding one", n)
			}
			if m.Value, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
				return nil, errdefs.Errorf(errdefs.ErrInvalid, "the value of %q, %q, is not a number", n, s)
			}
		}
		if n == "" || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "%q needs a name and a finite number", n)
		}
		out = append(out, m)
	}
	return out, nil
}

// DecodeMetrics reads either {"NAME":VALUE,…} or {"name":…,"value":…,"labels":{…}}.
func DecodeMetrics(body io.Reader) ([]api.Metric, error) {
	raw, err := readBody(body)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil || probe == nil {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "the body must be a JSON object such as {\"orders_total\":1}%s", detail(err))
	}
	var out []api.Metric
	if _, long := probe["name"]; long {
		var m api.Metric
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "{\"name\":…,\"value\":…,\"labels\":{…}}%s", detail(err))
		}
		if _, ok := probe["value"]; !ok {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "%q has no \"value\"", m.Name)
		}
		out = append(out, m)
	} else {
		names := make([]string, 0, len(probe))
		for n := range probe {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			m, err := shortMetric(n, probe[n])
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "no metric to update")
	}
	for _, m := range out {
		if m.Name == "" {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "a metric needs a name")
		}
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "the value of %q must be a finite number", m.Name)
		}
	}
	return out, nil
}

// shortMetric reads one NAME: VALUE item: a number, or a string "+N" / "-N" that adds to a
// gauge.
func shortMetric(name string, raw json.RawMessage) (api.Metric, error) {
	m := api.Metric{Name: name}
	if err := json.Unmarshal(raw, &m.Value); err == nil {
		return m, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil && (strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-")) {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			m.Value, m.Add = v, true
			return m, nil
		}
	}
	return m, errdefs.Errorf(errdefs.ErrInvalid, "the value of %q must be a number (or \"+N\" / \"-N\" to add to a gauge)", name)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	HealthHandler(s.b).ServeHTTP(w, r)
}

// HealthHandler answers /v1/health: 200 when everything is healthy, else 503 with the
// failing jobs. The telemetry listener serves it over TCP too.
func HealthHandler(b interface{ Health() (api.Health, bool) }) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := b.Health()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, h)
	})
}

func (s *Server) shutdown(w http.ResponseWriter, r *http.Request) {
	if err := decodeEmpty(r); err != nil {
		writeError(w, err)
		return
	}
	reason := "asked through the control API"
	if p, ok := PeerOf(r.Context()); ok {
		reason = fmt.Sprintf("asked through the control API by pid %d (uid %d)", p.Pid, p.Uid)
	}
	writeJSON(w, http.StatusAccepted, struct{}{})
	s.b.Shutdown(reason)
}

// Event stream settings.
const (
	streamLimit     = 4096             // queued events before a stalled reader is dropped
	streamWrite     = 5 * time.Second  // a reader that does not take one event in time is dropped
	streamKeepalive = 15 * time.Second // comment lines keep proxies and clients from timing out
)

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	var since *uint64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, errdefs.Errorf(errdefs.ErrInvalid, "since must be an event sequence number (0 for the whole ring)"))
			return
		}
		since = &n
	}
	follow := true
	if v := r.URL.Query().Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, errdefs.Errorf(errdefs.ErrInvalid, "follow must be true or false"))
			return
		}
		follow = b
	}
	release, ok := s.openStream(w)
	if !ok {
		return
	}
	defer release()
	name := "events"
	if p, ok := PeerOf(r.Context()); ok {
		name = fmt.Sprintf("events:pid%d", p.Pid)
	}
	bus := s.b.Bus()
	sub := bus.Subscribe(events.SubscribeOptions{Name: name, Limit: streamLimit, Replay: since})
	defer sub.Close()
	end := bus.Seq()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWrite))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	keepalive := time.NewTicker(streamKeepalive)
	defer keepalive.Stop()
	for {
		for {
			ev, ok := sub.Next()
			if !ok {
				break
			}
			if !follow && ev.Seq > end {
				return
			}
			if !write(FormatEvent(ev)) {
				return
			}
		}
		if !follow {
			return
		}
		select {
		case <-sub.Ready():
		case <-sub.Done():
			s.log.Info("event stream reader fell behind; dropped it", "subscriber", name)
			return
		case <-keepalive.C:
			if !write([]byte(": keepalive\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// FormatEvent renders one event as a Server-Sent Events message.
func FormatEvent(ev events.Event) []byte {
	b, _ := json.Marshal(api.Event{Seq: ev.Seq, Code: string(ev.Code), Source: ev.Source, Time: ev.Time, Attrs: ev.Attrs})
	return fmt.Appendf(nil, "id: %d\ndata: %s\n\n", ev.Seq, b)
}

func readBody(body io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errdefs.Errorf(errdefs.ErrTooLarge, "the body is larger than %d bytes: %w", MaxBody, err)
	}
	if err != nil {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "cannot read the body: %v", err)
	}
	return raw, nil
}

// decodeStrict reads a JSON object into v, refusing unknown fields and trailing data.
func decodeStrict(r *http.Request, v any) error {
	raw, err := readBody(r.Body)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errdefs.Errorf(errdefs.ErrInvalid, "malformed JSON body%s", detail(err))
	}
	if !atEnd(dec) {
		return errdefs.Errorf(errdefs.ErrInvalid, "the body holds more than one JSON value")
	}
	return nil
}

// decodeEmpty accepts no body or {}.
func decodeEmpty(r *http.Request) error {
	raw, err := readBody(r.Body)
	if err != nil {
		return err
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	if raw[0] != '{' { // null is not {} either
		return errdefs.Errorf(errdefs.ErrInvalid, "this endpoint takes no parameters; send {} or nothing")
	}
	var v struct{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return errdefs.Errorf(errdefs.ErrInvalid, "this endpoint takes no parameters; send {} or nothing%s", detail(err))
	}
	if !atEnd(dec) {
		return errdefs.Errorf(errdefs.ErrInvalid, "this endpoint takes no parameters; send {} or nothing (the body holds more than one JSON value)")
	}
	return nil
}

// atEnd reports whether nothing but white space follows the value dec read (dec.More is
// false before a stray "}" or "]").
func atEnd(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

func detail(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}
