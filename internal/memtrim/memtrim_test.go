package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestParseMapsLine(t *testing.T) {
	const exe = "/usr/bin/pilot fish"
	for _, c := range []struct {
		line string
		ok   bool
	}{
		{"00400000-00b5f000 r-xp 00000000 fd:01 123 /usr/bin/pilot fish", true},
		{"00b60000-00d4f000 r--p 00760000 fd:01 123 /usr/bin/pilot fish", true},
		{"0127a000-012f5000 rw-p 00e7a000 fd:01 123 /usr/bin/pilot fish", false}, // data: never
		{"0127a000-012f5000 r--s 00e7a000 fd:01 123 /usr/bin/pilot fish", false}, // shared
		{"7f00000000-7f00001000 r--p 00000000 fd:01 9 /usr/lib/other.so", false},
		{"c000000000-c000400000 rw-p 00000000 00:00 0 ", false},
		{"zz-00b5f000 r-xp 00000000 fd:01 123 /usr/bin/pilot fish", false},
	} {
		if _, ok := parseMapsLine([]byte(c.line), exe); ok != c.ok {
			t.Errorf("%q: kept %v, want %v", c.line, ok, c.ok)
		}
	}
}

// After Trim, the test binary's resident file pages drop; the test running on is the proof
// that the pages it needs come back.
func TestTrimDropsBinaryPages(t *testing.T) {
	if len(binaryMappings()) == 0 {
		t.Fatal("no read-only mapping of the executable found in /proc/self/maps")
	}
	before := rssFile(t)
	n := Trim()
	after := rssFile(t)
	t.Logf("dropped %d KiB of mappings; RssFile %d → %d kB", n>>10, before, after)
	if n == 0 || after >= before {
		t.Errorf("RssFile %d → %d kB after dropping %d bytes of mappings", before, after, n)
	}
}

func rssFile(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
