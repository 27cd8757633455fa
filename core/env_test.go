package core

import (
	"errors"
	"strings"
	"testing"

	"github.com/pilotfish/pilotfish/internal/errdefs"
)

func TestEnvironTotalIsBounded(t *testing.T) {
	e := newEnviron([]string{"PATH=/bin"})
	val := strings.Repeat("x", 100<<10)
	set := 0
	for i := range 20 {
		err := e.Set(map[string]string{string(rune('A' + i)): val})
		if err != nil {
			if !errors.Is(err, errdefs.ErrTooLarge) {
				t.Fatalf("value %d: %v, want a too-large error", i, err)
			}
			break
		}
		set++
	}
	if set != 10 {
		t.Fatalf("%d values of 100 KiB set, want 10 (1 MiB in all)", set)
	}
	// Overwriting a value counts its new size only, so shortening one makes room.
	if err := e.Set(map[string]string{"A": val}); err != nil {
		t.Fatalf("overwriting a value with one of the same size: %v", err)
	}
	if err := e.Set(map[string]string{"A": "", "K": val}); err != nil {
		t.Fatalf("shortening one to add another: %v", err)
	}
	if got := e.Map()["K"]; got != val {
		t.Fatalf("K not set")
	}
}
