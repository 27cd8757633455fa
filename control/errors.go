package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/internal/errdefs"
)

// errorClasses gives each error class its status and kind on the wire: the one place that
// does (docs/api.md#errors, which a test keeps in step). An error in none of them is a 500
// internal. An error in two classes takes the first.
var errorClasses = []struct {
	class  error
	status int
	kind   string
}{
	{errdefs.ErrInvalidConfig, http.StatusBadRequest, api.KindInvalidConfig},
	{errdefs.ErrInvalid, http.StatusBadRequest, api.KindBadRequest},
	{errdefs.ErrNotFound, http.StatusNotFound, api.KindNotFound},
	{errdefs.ErrMethodNotAllowed, http.StatusMethodNotAllowed, api.KindMethod},
	{errdefs.ErrConflict, http.StatusConflict, api.KindConflict},
	{errdefs.ErrTooLarge, http.StatusRequestEntityTooLarge, api.KindTooLarge},
	{errdefs.ErrTooMany, http.StatusTooManyRequests, api.KindTooManyStreams},
	{errdefs.ErrStarting, http.StatusServiceUnavailable, api.KindStarting},
	{errdefs.ErrUnavailable, http.StatusServiceUnavailable, api.KindUnavailable},
	{errdefs.ErrTimeout, http.StatusGatewayTimeout, api.KindTimeout},
}

// HTTPStatus is the status code and kind of an error answer.
func HTTPStatus(err error) (code int, kind string) {
	for _, c := range errorClasses {
		if errors.Is(err, c.class) {
			return c.status, c.kind
		}
	}
	return http.StatusInternalServerError, api.KindInternal
}

// ConfigError is a refused reload: the configuration file has errors (class
// errdefs.ErrInvalidConfig).
type ConfigError struct {
	Diagnostics []string
	Errors      int // how many of the diagnostics are errors
}

func (e *ConfigError) Error() string {
	switch e.Errors {
	case 0:
		return "the configuration has errors; nothing was changed"
	case 1:
		return "the configuration has 1 error; nothing was changed"
	}
	return fmt.Sprintf("the configuration has %d errors; nothing was changed", e.Errors)
}

func (e *ConfigError) Unwrap() error { return errdefs.ErrInvalidConfig }

// writeError answers with the error's status and {"error":{"kind","message"}}.
func writeError(w http.ResponseWriter, err error) {
	code, kind := HTTPStatus(err)
	body := api.ErrorBody{Error: api.ErrorDetail{Kind: kind, Message: err.Error()}}
	var cfgErr *ConfigError
	if errors.As(err, &cfgErr) {
		body.Diagnostics = cfgErr.Diagnostics
	}
	writeJSON(w, code, body)
}

// jsonBufs keeps the buffers answers are encoded into: an answer is built whole, sent with
// its Content-Length in one write, and leaves no garbage behind.
var jsonBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf: a buffer that grew larger than this (a huge answer) is left to the GC.
const maxPooledBuf = 256 << 10

// jsonAppender is an answer that writes its own JSON (the status: control/api/encode.go).
type jsonAppender interface{ AppendJSON([]byte) []byte }

// writeJSON answers with v as compact JSON (docs/api.md: `| jq` indents it for a human).
func writeJSON(w http.ResponseWriter, code int, v any) {
	buf := jsonBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			jsonBufs.Put(buf)
		}
	}()
	buf.Reset()
	if a, ok := v.(jsonAppender); ok {
		buf.Write(a.AppendJSON(buf.AvailableBuffer()))
		buf.WriteByte('\n') // as an Encoder ends a value
	} else if err := json.NewEncoder(buf).Encode(v); err != nil {
		// Nothing is sent yet, so the client gets a clear error, not half an answer.
		code = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(buf).Encode(api.ErrorBody{Error: api.ErrorDetail{Kind: api.KindInternal, Message: "cannot encode the answer: " + err.Error()}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
