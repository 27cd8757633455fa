package integration

// A configuration whose only jobs listen (syslog) must not end at start-up (docs/jobs.md:
// pilotfish exits by itself only when nothing is running or listening and nothing can start
// again; a syslog job listens until it is stopped).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// docs/jobs.md with the syslog kind: start many pilotfish whose only job is a syslog server,
// many at a time (the race needs a busy machine); none may decide at start-up that "no job
// is running or can start again". (What goes wrong: the liveness check in core/liveness.go
// takes each job's status, then asks the job whether it is Behind() its events; a job that
// handled `startup` in between (waiting → listening) is judged from its stale "waiting"
// status but is "not behind" any more, so pilotfish shuts down.)
func TestSyslogOnlyConfigStaysUp(t *testing.T) {
	t.Parallel()
	const instances, together = 400, 16
	var mu sync.Mutex
	var died []string
	sem := make(chan struct{}, together)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dir := t.TempDir()
			sock := filepath.Join(dir, "pf.sock")
			p := start(t, opts{Dir: dir, Plain: true, Config: jsonLogs + `
job "log" {
  kind   = "syslog"
  listen = "unixgram://` + filepath.Join(dir, "log.sock") + `"
  output "console" {
    stdout = true
  }
}
` + controlBlock(sock)})
			listening := poll(10*time.Second, func() bool {
				if p.exited() {
					return true
				}
				code, _, body := rawRequest(sock, "GET", "/v1/jobs/log", nil, time.Second)
				var j struct{ State string }
				return code == http.StatusOK && json.Unmarshal(body, &j) == nil && j.State == "listening"
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case p.exited() || len(p.Logs()) > 0 && p.CountLogs(is("shutting down", "")) > 0:
				died = append(died, fmt.Sprintf("#%d: %q", i, p.shutdownReason()))
			case !listening:
				died = append(died, fmt.Sprintf("#%d: not listening within 10s", i))
			}
			_ = p.cmd.Process.Kill()
		}()
	}
	wg.Wait()
	if len(died) > 0 {
		t.Errorf("%d of %d pilotfish whose only job is a syslog server shut down by themselves at start-up: %v", len(died), instances, died)
	}
}
