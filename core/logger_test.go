package core

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// JSON logs carry durations as the text logs do, "1.5s", not as nanoseconds
// (docs/configuration.md#logging-pilotfishs-own-log).
func TestJSONLogDurations(t *testing.T) {
	var b bytes.Buffer
	newLogger(&b, slog.LevelInfo, "json").Info("restarting after backoff", "in", 1500*time.Millisecond,
		slog.Group("g", "took", 250*time.Microsecond), "n", 3)
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if m["in"] != "1.5s" || m["g"].(map[string]any)["took"] != "250µs" || m["n"] != float64(3) {
		t.Fatalf("got %s", b.String())
	}
}
