// Package consulagent starts a real Consul agent (-dev mode, loopback only, free ports) for
// tests and benchmarks. The binary comes from PILOTFISH_CONSUL_BIN or <repo root>/.bin/consul,
// which `make consul` builds from integration_tests/consul.
package consulagent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// EnvBin names the agent binary to use instead of <repo root>/.bin/consul.
	EnvBin = "PILOTFISH_CONSUL_BIN"
	// EnvRequire set to 1 makes Start fail, not skip, when the binary is missing (CI).
	EnvRequire = "PILOTFISH_REQUIRE_CONSUL"

	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	tailLines    = 40
	startTries   = 3 // fresh ports on a bind race with another process
	rootModule   = "github.com/pilotfish/pilotfish"
)

// Options change how an agent is started.
type Options struct {
	// Config is extra agent configuration in HCL, given with -config-file, e.g.
	// `limits { http_max_conns_per_client = 8 }`.
	Config string
	// LogLevel is the agent's -log-level (default info).
	LogLevel string
}

// Agent is a running (or stopped) Consul dev agent owned by one test.
type Agent struct {
	bin    string
	dir    string
	opts   Options
	ports  ports
	client *http.Client

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been reaped
	waitErr error
	stopped bool // exit was asked for (Stop, Kill), not a crash
	shown   bool // the log tail is already in the test output
	logPath string
	starts  int
}

type ports struct{ http, server, serfLAN, serfWAN int }

// Start starts an agent and registers its shutdown with t.Cleanup. Without the binary it
// skips the test, or fails it when PILOTFISH_REQUIRE_CONSUL=1.
func Start(t testing.TB) *Agent {
	t.Helper()
	return start(t, os.Getenv(EnvRequire) == "1", Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Agent {
	t.Helper()
	return start(t, os.Getenv(EnvRequire) == "1", o)
}

// Launch starts an agent outside a test (a benchmark): its log goes to dir, and the caller
// must Stop it.
func Launch(dir string, o Options) (*Agent, error) {
	bin, _, err := findBinary()
	if err != nil {
		return nil, err
	}
	a := newAgent(bin, dir, o)
	if err := a.launchOnFreePorts(); err != nil {
		return nil, fmt.Errorf("%v; log %s tail:\n%s", err, a.logFile(), a.tail())
	}
	return a, nil
}

func newAgent(bin, dir string, o Options) *Agent {
	return &Agent{
		bin: bin, dir: dir, opts: o,
		// No keep-alives: a pooled connection would outlive a Restart or Kill.
		client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
}

func start(t testing.TB, required bool, o Options) *Agent {
	t.Helper()
	bin, explicit, err := findBinary()
	if err != nil {
		if required || explicit {
			t.Fatalf("consul agent: %v", err)
		}
		t.Skipf("consul agent: %v", err)
	}
	a := newAgent(bin, t.TempDir(), o)
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		a.mu.Lock()
		crashed := a.cmd != nil && !a.stopped && isDone(a.done)
		shown := a.shown
		a.mu.Unlock()
		if crashed {
			t.Logf("consul agent exited on its own (%v); log tail:\n%s", a.exitErr(), a.tail())
		} else if t.Failed() && !shown {
			t.Logf("consul agent log tail (%s):\n%s", a.logFile(), a.tail())
		}
		a.Stop()
	})

	if err := a.launchOnFreePorts(); err != nil {
		t.Fatalf("consul agent: %v; log %s tail:\n%s", err, a.logFile(), a.shownTail())
	}
	return a
}

// launchOnFreePorts starts the agent on fresh ports, again on new ones when another process
// took one before the agent bound it.
func (a *Agent) launchOnFreePorts() error {
	var err error
	for try := 1; ; try++ {
		if a.ports, err = freePorts(); err != nil {
			return err
		}
		err = a.launch()
		if err == nil || try == startTries || !strings.Contains(a.tail(), "address already in use") {
			return err
		}
	}
}

// PID is the agent process's pid (0 before it started).
func (a *Agent) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.cmd.Process == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Dir is the directory that holds the agent's logs (and its extra configuration).
func (a *Agent) Dir() string { return a.dir }

// Addr is the host:port of the agent's HTTP API.
func (a *Agent) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ports.http)) }

// URL is the base URL of the agent's HTTP API, e.g. "http://127.0.0.1:41234".
func (a *Agent) URL() string { return "http://" + a.Addr() }

// Stop asks the agent to exit (SIGINT), SIGKILLs it if it has not exited within a bound,
// and reaps it. Stopping a stopped agent does nothing.
func (a *Agent) Stop() { a.halt(syscall.SIGINT, stopTimeout) }

// Kill SIGKILLs the agent and reaps it.
func (a *Agent) Kill() { a.halt(syscall.SIGKILL, stopTimeout) }

// Restart stops the agent and starts a new one on the same ports. The new agent has a fresh
// in-memory state: services registered before are gone.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	if err := a.launch(); err != nil {
		t.Fatalf("consul agent restart: %v; log %s tail:\n%s", err, a.logFile(), a.shownTail())
	}
}

func (a *Agent) halt(sig syscall.Signal, grace time.Duration) {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	if cmd == nil {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	a.mu.Unlock()
	if isDone(done) {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// launch starts the process on a.ports and waits until it serves with a leader.
func (a *Agent) launch() error {
	a.mu.Lock()
	a.starts++
	a.logPath = filepath.Join(a.dir, fmt.Sprintf("consul-%d.log", a.starts))
	a.mu.Unlock()
	out, err := os.Create(a.logPath)
	if err != nil {
		return err
	}
	defer out.Close() // the child holds its own copy

	p := a.ports
	level := a.opts.LogLevel
	if level == "" {
		level = "info"
	}
	args := []string{"agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(p.http),
		"-server-port", strconv.Itoa(p.server),
		"-serf-lan-port", strconv.Itoa(p.serfLAN),
		"-serf-wan-port", strconv.Itoa(p.serfWAN),
		// -dev would otherwise bind gRPC on fixed 8502, and DNS on 8600.
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-https-port", "-1", "-dns-port", "-1",
		"-log-level", level,
	}
	if a.opts.Config != "" {
		extra := filepath.Join(a.dir, "extra.hcl")
		if err := os.WriteFile(extra, []byte(a.opts.Config), 0o644); err != nil {
			return err
		}
		args = append(args, "-config-file", extra)
	}
	cmd := exec.Command(a.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, so a terminal's ^C reaches the test first; Pdeathsig, so the agent
	// never outlives a test binary that dies without running its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked exits, not the process: hold this
		// thread until the agent is reaped so no other goroutine can end it early.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		a.mu.Lock()
		a.cmd, a.done, a.stopped, a.waitErr = cmd, done, false, nil
		a.mu.Unlock()
		started <- nil
		err := cmd.Wait()
		a.mu.Lock()
		a.waitErr = err
		a.mu.Unlock()
		close(done)
	}()
	if err := <-started; err != nil {
		return err
	}

	if err := a.waitReady(done); err != nil {
		a.Kill()
		return err
	}
	return nil
}

// waitReady polls until the agent has a leader, answers /v1/agent/self and its own node is
// in the catalog, or the process exits, or readyTimeout passes.
func (a *Agent) waitReady(done chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = a.ready(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", readyTimeout, last)
		}
		select {
		case <-done:
			return fmt.Errorf("exited before it was ready (%v)", a.exitErr())
		case <-tick.C:
		}
	}
}

func (a *Agent) ready() error {
	var leader string
	if err := a.getJSON("/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	var self struct{ Config struct{ NodeName string } }
	if err := a.getJSON("/v1/agent/self", &self); err != nil {
		return err
	}
	var node struct{ Node *struct{ Node string } }
	if err := a.getJSON("/v1/catalog/node/"+self.Config.NodeName, &node); err != nil {
		return err
	}
	if node.Node == nil {
		return fmt.Errorf("node %q not in the catalog yet", self.Config.NodeName)
	}
	return nil
}

func (a *Agent) getJSON(path string, v any) error {
	resp, err := a.client.Get(a.URL() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, v)
}

func (a *Agent) exitErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waitErr
}

func (a *Agent) logFile() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logPath
}

func (a *Agent) shownTail() string {
	a.mu.Lock()
	a.shown = true
	a.mu.Unlock()
	return a.tail()
}

// tail returns the last lines of the current log.
func (a *Agent) tail() string {
	f, err := os.Open(a.logFile())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > tailLines {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// freePorts picks four loopback ports that are free for both TCP and UDP (serf uses both).
// Every port tried is held until all are chosen, so none is picked twice.
func freePorts() (ports, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var got []int
	for tries := 0; len(got) < 4; tries++ {
		if tries == 100 {
			return ports{}, errors.New("no loopback port free for both TCP and UDP")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, err
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		held = append(held, u)
		got = append(got, port)
	}
	return ports{http: got[0], server: got[1], serfLAN: got[2], serfWAN: got[3]}, nil
}

// findBinary reports explicit when PILOTFISH_CONSUL_BIN named the binary: a wrong path
// there is a mistake to fail on, not a reason to skip.
func findBinary() (bin string, explicit bool, err error) {
	if bin := os.Getenv(EnvBin); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", true, fmt.Errorf("%s=%s: %v", EnvBin, bin, err)
		}
		return bin, true, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", false, fmt.Errorf("%v; set %s or run `make consul` in the repository root", err, EnvBin)
	}
	bin = filepath.Join(root, ".bin", "consul")
	if _, err := os.Stat(bin); err != nil {
		return "", false, fmt.Errorf("%s not found: run `make consul` to build it (or set %s)", bin, EnvBin)
	}
	return bin, false, nil
}

// repoRoot walks up from the working directory (a test's package directory) to the main
// module's go.mod; nested modules such as integration_tests/consul are passed over.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(data) == rootModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", rootModule)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}
