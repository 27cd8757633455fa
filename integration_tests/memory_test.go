package integration

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The first example of docs/operations.md#memory-and-cpu, run as written (its /tmp/ paths
// in a test directory): once the job has started, PID 1 holds few of its binary's pages
// (without the trim, about 11 MiB of them stay mapped), and a status call afterwards works,
// mapping back what it runs.
func TestMemoryDocExample(t *testing.T) {
	t.Parallel()
	requirePID1(t)
	// Instead of the example's sleep: until the trim shows, 10 s at most.
	out := runFootprintExample(t, 0, `for i in $(seq 100); do
  pf=$(pgrep -xf 'pilotfish run -config /tmp/one.hcl')
  [ -n "$pf" ] && [ "$(awk '/^RssFile/ {print $2}' /proc/$pf/status)" -lt 6144 ] && break
  sleep 0.1
done
`)
	m := regexp.MustCompile(`(?m)^RssFile:\s+(\d+) kB`).FindAllSubmatch(out, -1)
	if len(m) != 2 {
		t.Fatalf("want two RssFile lines:\n%s", out)
	}
	idle, _ := strconv.Atoi(string(m[0][1]))
	after, _ := strconv.Atoi(string(m[1][1]))
	t.Logf("RssFile idle %d kB, after a status call %d kB", idle, after)
	if idle > 6<<10 {
		t.Errorf("%d kB of the binary stay mapped after start-up, want at most 6 MiB:\n%s", idle, out)
	}
	if !strings.Contains(string(out), "pilotfish started") {
		t.Errorf("no start-up line:\n%s", out)
	}
}

// The second: once started, pilotfish runs on one P with the GC target back at 100%;
// GOMAXPROCS and GOGC in its environment win.
func TestCPUDocExample(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	for _, c := range []struct {
		env  []string
		want []string
	}{
		{nil, []string{"go_sched_gomaxprocs_threads 1\n", "go_gc_gogc_percent 100\n"}},
		{[]string{"GOMAXPROCS=2", "GOGC=50"}, []string{"go_sched_gomaxprocs_threads 2\n", "go_gc_gogc_percent 50\n"}},
	} {
		// Instead of the example's sleep: until the metrics show the setting, 10 s at most.
		out := runFootprintExample(t, 1, `for i in $(seq 100); do
  curl -s http://127.0.0.1:9191/metrics | grep -qx '`+strings.TrimSuffix(c.want[0], "\n")+`' && break
  sleep 0.1
done
`, c.env...)
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("with %v, want %q:\n%s", c.env, w, out)
			}
		}
	}
}

// runFootprintExample runs the i-th sh block of docs/operations.md#memory-and-cpu with its
// "sleep 1" replaced by wait (a loop on a condition), its /tmp/ paths in a test directory
// and its port a free one, and returns what it printed.
func runFootprintExample(t *testing.T, i int, wait string, env ...string) []byte {
	t.Helper()
	page := operationsPage(t, "Memory and CPU")
	blocks := docBlocks(t, page, "sh")
	if len(blocks) != 2 {
		t.Fatalf("%s: %d sh blocks, want 2", page, len(blocks))
	}
	if !strings.Contains(blocks[i].body, "sleep 1\n") {
		t.Fatalf("%s: the example has no \"sleep 1\" line to replace", page)
	}
	dir := t.TempDir()
	script := strings.Replace(blocks[i].body, "sleep 1\n", wait, 1)
	script = strings.ReplaceAll(script, "/tmp/", dir+"/")
	script = strings.ReplaceAll(script, "127.0.0.1:9191", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir, cmd.Env = dir, withBinOnPath(env...)
	// A pilotfish the script failed to stop would hold the output open: do not wait on it,
	// and stop it.
	cmd.WaitDelay = 5 * time.Second
	t.Cleanup(func() { _ = exec.Command("pkill", "-KILL", "-f", "pilotfish run -config "+dir).Run() })
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the example failed: %v\n%s", err, out)
	}
	return out
}
