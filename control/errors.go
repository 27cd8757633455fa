package control

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/pilotfish/pilotfish/control/client"
)

// Error classes a Backend wraps its errors in; writeError maps them to status codes.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrInvalid     = errors.New("invalid request")
	ErrUnavailable = errors.New("unavailable")
	// ErrTooLarge: the request would make something grow past its limit (413).
	ErrTooLarge = errors.New("too large")
)

// ConfigError is a refused reload: the configuration file has errors.
type ConfigError struct {
	Diagnostics []string
}

func (e *ConfigError) Error() string {
	return "the configuration has errors; nothing was changed"
}

// statusOf maps an error to its HTTP status and kind.
func statusOf(err error) (int, string) {
	var cfgErr *ConfigError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &cfgErr):
		return http.StatusBadRequest, client.KindInvalidConfig
	case errors.As(err, &tooBig), errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, client.KindTooLarge
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, client.KindNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, client.KindConflict
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, client.KindBadRequest
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, client.KindUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, client.KindTimeout
	}
	return http.StatusInternalServerError, client.KindInternal
}

func writeError(w http.ResponseWriter, err error) {
	code, kind := statusOf(err)
	body := client.ErrorBody{Error: client.ErrorDetail{Kind: kind, Message: message(err)}}
	var cfgErr *ConfigError
	if errors.As(err, &cfgErr) {
		body.Diagnostics = cfgErr.Diagnostics
	}
	writeJSON(w, code, body)
}

// message is the error text without the class prefix ("not found: "), which the kind
// already says.
func message(err error) string {
	msg := err.Error()
	for _, class := range []error{ErrNotFound, ErrConflict, ErrInvalid, ErrUnavailable, ErrTooLarge} {
		if rest, ok := strings.CutPrefix(msg, class.Error()+": "); ok {
			return rest
		}
	}
	return msg
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
