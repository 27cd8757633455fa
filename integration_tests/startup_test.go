package integration

// Signals and requests that arrive while pilotfish starts (docs/cli.md, docs/jobs.md#pid-1-duties-and-signals, docs/guarantees.md#limits).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// slowConfig is a configuration of about size bytes that takes a while to load: cron jobs
// (none due for a year), each with an interpolation. Its one job started at start-up
// writes dir/ran.
func slowConfig(dir string, size int) string {
	var b strings.Builder
	b.WriteString(jsonLogs)
	fmt.Fprintf(&b, "job \"first\" {\n  exec = [\"touch\", %s]\n}\n", hclString(filepath.Join(dir, "ran")))
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "job \"j%d\" {\n  kind = \"cron\"\n  schedule = \"@yearly\"\n  exec = [\"true\", \"${lower(\"J%d\")}\"]\n}\n", i, i)
	}
	return b.String()
}

// docs/cli.md, docs/jobs.md: a SIGTERM or SIGINT that arrives while the configuration loads ends pilotfish
// within a second with a log line and exit code 0 (a shutdown by signal); no job starts.
// It is neither held until the load ends nor lost, and never a silent exit 2.
func TestSignalWhileConfigLoads(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(unixSignalName(sig), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// Its evaluation runs for the whole load budget (seconds) before it is refused.
			p := start(t, opts{Config: slowConfig(dir, 1000) + overBudgetConfig, Dir: dir})
			p.WaitSignalHandlers(10 * time.Second)
			code, took := p.SignalWait(sig, 30*time.Second)
			if code != 0 {
				t.Errorf("exit code %d, want 0 (a shutdown by signal)", code)
			}
			if took > 2*time.Second {
				t.Errorf("pilotfish exited %s after %s, want within a second", took.Round(time.Millisecond), unixSignalName(sig))
			}
			if !strings.Contains(p.Stderr.String(), unixSignalName(sig)) {
				t.Errorf("no log line names %s; stderr:\n%s", unixSignalName(sig), tail(p.Stderr.String(), 2000))
			}
			if exists(filepath.Join(dir, "ran")) {
				t.Errorf("a job ran although the signal came before start-up")
			}
			t.Logf("%s during the load: exit %d after %s", unixSignalName(sig), code, took.Round(time.Millisecond))
		})
	}
}

// docs/cli.md: a SIGHUP or SIGUSR1 during the load is not lost either: it takes effect once
// pilotfish runs (here SIGUSR1: maintenance on).
func TestSignalWhileConfigLoadsIsKept(t *testing.T) {
	// Not parallel: thousands of jobs start, and other tests time their answers.
	dir := t.TempDir()
	sock := filepath.Join(dir, "pf.sock")
	cfg := jsonLogs + controlBlock(sock) + `
job "steady" {
  exec = "sleep 1000"
}
` + strings.TrimPrefix(slowConfig(dir, 300_000), jsonLogs)
	p := start(t, opts{Config: cfg, Dir: dir})
	p.WaitSignalHandlers(10 * time.Second)
	p.Signal(syscall.SIGUSR1)
	waitPing(t, p, sock, 60*time.Second)
	a := newGoAPI(t, sock)
	waitFor(t, 10*time.Second, func() bool {
		st, err := a.Status()
		return err == nil && st.Maintenance
	}, "the SIGUSR1 sent during the load to switch maintenance on")
	code, _ := p.SignalWait(syscall.SIGTERM, 30*time.Second)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// docs/guarantees.md#limits: until every job is installed, mutating calls answer 503 starting; none of them
// may reach a half-built daemon (a reload then panicked inside the handler and leaked the
// jobs it built). Reloads and job verbs hammer the socket from the moment it appears.
func TestMutatingCallsDuringStartUp(t *testing.T) {
	// Not parallel: four clients hammer the socket, and other tests time their answers.
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "pf.sock")
			var b strings.Builder
			b.WriteString(jsonLogs + controlBlock(sock))
			for i := range 200 {
				fmt.Fprintf(&b, "job \"s%d\" {\n  exec = \"sleep 1000\"\n}\n", i)
			}
			p := start(t, opts{Config: b.String(), Dir: dir})
			var mu sync.Mutex
			answers := map[string]int{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					path := []string{"/v1/reload", "/v1/jobs/s0/restart", "/v1/maintenance/enable", "/v1/environ"}[w]
					body := []byte("{}")
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := os.Stat(sock); err != nil {
							continue
						}
						code, _, resp := rawRequest(sock, "POST", path, body, 30*time.Second)
						key := fmt.Sprint(code)
						if code == http.StatusServiceUnavailable {
							key += " " + errorKind(resp)
						}
						mu.Lock()
						answers[path+" "+key]++
						mu.Unlock()
					}
				}()
			}
			p.WaitLog(30*time.Second, is("pilotfish started", ""), "pilotfish started")
			waitPing(t, p, sock, 10*time.Second)
			close(stop)
			wg.Wait()
			for k, n := range answers {
				path, code, _ := strings.Cut(k, " ")
				if code != "200" && code != "0" && code != "503 "+client.KindStarting {
					t.Errorf("%s answered %s %d times during start-up, want 200 or 503 %s", path, code, n, client.KindStarting)
				}
			}
			if strings.Contains(p.Stderr.String(), "panic") {
				t.Fatalf("a handler panicked:\n%s", tail(p.Stderr.String(), 3000))
			}
			st := must[client.Status](t, "status")(newGoAPI(t, sock).Status())
			if len(st.Jobs) != 200 {
				t.Errorf("%d jobs after start-up, want 200", len(st.Jobs))
			}
			code, _ := p.SignalWait(syscall.SIGTERM, 30*time.Second)
			if code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			// Only the 200 jobs ran: nothing built by a refused or broken reload is left.
			if n := p.CountLogs(is("started", "")); n > 200+answers["/v1/jobs/s0/restart 200"] {
				t.Errorf("%d job starts for 200 jobs", n)
			}
			t.Logf("answers: %v", answers)
		})
	}
}

// errorKind is the kind of a JSON error answer ("" if it is not one).
func errorKind(body []byte) string {
	var e client.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		return ""
	}
	return e.Error.Kind
}
